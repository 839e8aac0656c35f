"""The lean agent-facing server on its own: raw sockets, so every byte the agent sends is ours."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httptools
import pytest

from ci_guard.meter import agent_server
from ci_guard.meter.agent_http import Request, Response, StreamResponse, json_response
from ci_guard.meter.agent_server import AgentServer
from ci_guard.meter.upstream_client import UpstreamClient


@dataclass
class App:
    """Echo handler plus a never-ending stream that records when it notices the agent has gone."""

    seen: list[Request] = field(default_factory=list)
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, request: Request) -> StreamResponse:
        self.seen.append(request)
        if request.path == "/stream":
            return await self._stream(request)
        if request.path == "/slow":
            await self.release.wait()
        body = await request.read()
        return json_response({"method": request.method, "path": request.path, "query": request.query_string,
                              "headers": request.headers.items(), "body": body.decode()})

    async def _stream(self, request: Request) -> StreamResponse:
        response = StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        try:
            for i in range(1000):
                await response.write(f"data: {i}\n\n".encode())
                await asyncio.sleep(0.01)
        except ConnectionResetError:
            self.gone.set()
        return response


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class _Parsed:
    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body = b""
        self.done = False
        self.head_done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode()

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done = True


async def read_answer(reader: asyncio.StreamReader, head_only: bool = False) -> Answer:
    """One response, parsed with httptools; leftover bytes of a pipelined next one stay in ``reader``."""
    parsed = _Parsed()
    parser = httptools.HttpResponseParser(parsed)
    if head_only:  # a HEAD answer has no body whatever its content-length says: read the head alone
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        parser.feed_data(head)
        return Answer(parser.get_status_code(), parsed.headers, b"")
    while not parsed.done:
        byte = await asyncio.wait_for(reader.read(1), 5)  # byte by byte: never swallow the next response
        assert byte, "the server closed the connection mid-response"
        parser.feed_data(byte)
    return Answer(parser.get_status_code(), parsed.headers, parsed.body)


@asynccontextmanager
async def serving(app: Callable[[Request], Awaitable[StreamResponse]]) -> AsyncIterator[AgentServer]:
    server = AgentServer(app)
    await server.start()
    try:
        yield server
    finally:
        await server.close(grace_s=2.0)


async def connect(server: AgentServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


def post(path: str, body: bytes, *extra: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: x", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


def test_request_fields_and_keep_alive_reuse():
    async def go() -> None:
        app = App()
        async with serving(app) as server:
            client = UpstreamClient(connect_timeout_s=5, read_timeout_s=5)
            for i in range(3):
                async with client.request("POST", f"http://127.0.0.1:{server.port}/openai/v1/x%20y?a=1%26b&c=2",
                                          {"X-Api-Key": "k", "X-Multi": "1"}, f"body{i}".encode()) as r:
                    echoed = json.loads(await r.read())
                assert r.status == 200 and echoed["body"] == f"body{i}"
            await client.close()
            assert client.connections_opened == 1  # the same connection served all three
            assert echoed["path"] == "/openai/v1/x y" and echoed["query"] == "a=1%26b&c=2"
            assert ["X-Api-Key", "k"] in echoed["headers"]  # original spelling kept for forwarding
            assert app.seen[0].headers.get("x-api-key") == "k"  # case-insensitive lookup
    run(go())


def test_repeated_headers_are_all_kept():
    async def go() -> None:
        app = App()
        async with serving(app) as server:
            reader, writer = await connect(server)
            writer.write(post("/e", b"", "Anthropic-Beta: a", "anthropic-beta: b"))
            assert (await read_answer(reader)).status == 200
            assert app.seen[0].headers.getall("anthropic-beta") == ["a", "b"]
            writer.close()
    run(go())


def test_chunked_request_body():
    async def go() -> None:
        async with serving(App()) as server:
            reader, writer = await connect(server)
            writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            answer = await read_answer(reader)
            assert answer.status == 200 and json.loads(answer.body)["body"] == "hello world"
            writer.close()
    run(go())


def test_expect_100_continue_is_answered_before_the_body():
    async def go() -> None:
        async with serving(App()) as server:
            reader, writer = await connect(server)
            writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(b"ping")
            answer = await read_answer(reader)
            assert answer.status == 200 and json.loads(answer.body)["body"] == "ping"
            writer.close()
    run(go())


def test_client_gone_mid_stream_is_reported_to_the_handler():
    async def go() -> None:
        app = App()
        async with serving(app) as server:
            reader, writer = await connect(server)
            writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert b"transfer-encoding: chunked" in head.lower()
            assert b"data: 0" in await asyncio.wait_for(reader.readuntil(b"data: 0\n\n"), 5)
            writer.close()
            await asyncio.wait_for(app.gone.wait(), 5)  # the write after the agent left raised
    run(go())


def test_streamed_chunks_decode_for_a_real_client():
    async def go() -> None:
        async def app(request: Request) -> StreamResponse:
            response = StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            for i in range(3):
                await response.write(f"data: {i}\n\n".encode())
            await response.write_eof()
            return response

        async with serving(app) as server:
            client = UpstreamClient(connect_timeout_s=5, read_timeout_s=5)
            async with client.request("GET", f"http://127.0.0.1:{server.port}/s", {}) as r:
                assert await r.read() == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
            assert client.idle_count() == 1  # the chunked body ended cleanly: the connection is reusable
            await client.close()
    run(go())


def test_malformed_request_gets_400_and_close():
    async def go() -> None:
        async with serving(App()) as server:
            reader, writer = await connect(server)
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")
            answer = await read_answer(reader)
            assert answer.status == 400 and answer.headers.get("connection") == "close"
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed
    run(go())


def test_bad_chunk_in_body_gets_400():
    async def go() -> None:
        async with serving(App()) as server:
            reader, writer = await connect(server)
            writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nhello\r\n")
            answer = await read_answer(reader)
            assert answer.status == 400
            assert await asyncio.wait_for(reader.read(), 5) == b""
    run(go())


def test_pipelined_requests_are_answered_in_order():
    async def go() -> None:
        app = App()
        async with serving(app) as server:
            reader, writer = await connect(server)
            writer.write(post("/slow", b"first") + post("/e", b"second") + post("/e", b"third"))
            await asyncio.sleep(0.05)
            assert len(app.seen) == 1  # the later ones wait for the first to be answered
            app.release.set()
            bodies = [json.loads((await read_answer(reader)).body)["body"] for _ in range(3)]
            assert bodies == ["first", "second", "third"]
            writer.close()
    run(go())


def test_head_has_no_body_and_keeps_the_connection():
    async def go() -> None:
        async def app(request: Request) -> StreamResponse:
            return Response(200, b"0123456789", content_type="text/plain")

        async with serving(app) as server:
            reader, writer = await connect(server)
            writer.write(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await read_answer(reader, head_only=True)
            assert head.status == 200 and head.headers["content-length"] == "10"
            writer.write(b"GET /h HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await read_answer(reader)  # would misparse if the HEAD answer had carried a body
            assert answer.body == b"0123456789"
            writer.close()
    run(go())


def test_connection_close_is_honoured():
    async def go() -> None:
        async with serving(App()) as server:
            reader, writer = await connect(server)
            writer.write(post("/e", b"x", "Connection: close"))
            answer = await read_answer(reader)
            assert answer.status == 200 and answer.headers.get("connection") == "close"
            assert await asyncio.wait_for(reader.read(), 5) == b""
    run(go())


@pytest.mark.parametrize("chunked", [False, True])
def test_body_too_large_gets_413(monkeypatch, chunked):
    monkeypatch.setattr(agent_server, "MAX_BODY_BYTES", 1000)

    async def go() -> None:
        app = App()
        async with serving(app) as server:
            reader, writer = await connect(server)
            if chunked:
                writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                             + b"400\r\n" + b"a" * 1024 + b"\r\n")
            else:
                writer.write(post("/e", b"a" * 1001))
            answer = await read_answer(reader)
            assert answer.status == 413 and answer.headers.get("connection") == "close"
            assert await asyncio.wait_for(reader.read(), 5) == b""
    run(go())


def test_shutdown_lets_the_request_in_hand_finish_and_closes_idle_connections():
    async def go() -> None:
        app = App()
        server = AgentServer(app)
        await server.start()
        idle_reader, _idle_writer = await connect(server)
        reader, writer = await connect(server)
        writer.write(post("/slow", b"late"))
        await asyncio.sleep(0.05)
        closing = asyncio.create_task(server.close(grace_s=5.0))
        await asyncio.sleep(0.05)
        assert await asyncio.wait_for(idle_reader.read(), 5) == b""  # the idle one is closed at once
        assert not closing.done()  # the busy one is given its grace
        app.release.set()
        answer = await read_answer(reader)
        assert answer.status == 200 and answer.headers.get("connection") == "close"
        await asyncio.wait_for(closing, 5)
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", server.port)  # no longer accepting
    run(go())


def test_idle_connection_times_out(monkeypatch):
    monkeypatch.setattr(agent_server, "IDLE_TIMEOUT_S", 0.2)

    async def go() -> None:
        async with serving(App()) as server:
            reader, writer = await connect(server)
            writer.write(post("/e", b"x"))
            assert (await read_answer(reader)).status == 200
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed after ~0.2 s of idleness
    run(go())
