"""Issue 12 #7: the agent-facing server's limits on header, URL and body size and on slow senders."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from ci_guard.meter import agent_server
from ci_guard.meter.agent_server import AgentServer
from tests.meter.test_agent_server import App, connect, post, read_answer, run


async def _serve(app, **kw) -> AgentServer:
    server = AgentServer(app, **kw)
    await server.start()
    return server


async def _closed(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), 5) == b""


def test_a_gigantic_header_block_is_refused_431_without_being_kept():
    async def go() -> None:
        server = await _serve(App())
        try:
            reader, writer = await connect(server)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
            line = b"X-Junk: " + b"a" * 8000 + b"\r\n"
            for _ in range(2000):  # 16 MB of headers if nobody stopped us
                writer.write(line)
                await writer.drain()
                await asyncio.sleep(0.02)
                if len(reader._buffer) or reader.at_eof():  # type: ignore[attr-defined]  # answered
                    break
            answer = await read_answer(reader)
            assert answer.status == 431 and await _closed(reader)
        finally:
            await server.close(grace_s=1)
    run(go())


def test_a_huge_url_is_refused_414():
    async def go() -> None:
        server = await _serve(App())
        try:
            reader, writer = await connect(server)
            writer.write(b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_answer(reader)).status == 414
        finally:
            await server.close(grace_s=1)
    run(go())


def test_headers_sent_one_byte_at_a_time_time_out(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(agent_server, "HEAD_TIMEOUT_S", 0.6)

    async def go() -> None:
        server = await _serve(App())
        try:
            reader, writer = await connect(server)
            t0 = time.monotonic()
            for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 100:
                writer.write(bytes([byte]))  # always some progress, never a complete head
                await asyncio.sleep(0.05)
                if time.monotonic() - t0 > 0.45:  # stop before the deadline (writing after the close resets)
                    break
            answer = await read_answer(reader)  # no other timer would fire for 60 s and more
            assert answer.status == 408 and time.monotonic() - t0 < 3
        finally:
            await server.close(grace_s=1)
    run(go())


def test_a_body_trickled_forever_times_out(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(agent_server, "BODY_DEADLINE_S", 0.8)

    async def go() -> None:
        server = await _serve(App())
        try:
            reader, writer = await connect(server)
            writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            t0 = time.monotonic()
            read = asyncio.ensure_future(read_answer(reader))
            while time.monotonic() - t0 < 0.6:  # a byte every 0.05 s: never silent for BODY_TIMEOUT_S
                writer.write(b"x")
                await asyncio.sleep(0.05)
            answer = await read
            assert answer.status == 408 and time.monotonic() - t0 < 2.5
        finally:
            await server.close(grace_s=1)
    run(go())


def test_a_body_that_stops_arriving_times_out(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(agent_server, "BODY_TIMEOUT_S", 0.5)

    async def go() -> None:
        server = await _serve(App())
        try:
            reader, writer = await connect(server)
            writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 400)
            t0 = time.monotonic()
            answer = await read_answer(reader)  # 600 bytes never come
            assert answer.status == 408 and 0.45 < time.monotonic() - t0 < 3
        finally:
            await server.close(grace_s=1)
    run(go())


def test_a_slow_body_that_keeps_coming_is_read_whole(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(agent_server, "BODY_TIMEOUT_S", 0.3)

    async def go() -> None:
        server = await _serve(App())
        try:
            reader, writer = await connect(server)
            writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
            for _ in range(10):  # 1 s in all, never silent for 0.3 s
                await asyncio.sleep(0.1)
                writer.write(b"y")
            answer = await read_answer(reader)
            assert answer.status == 200 and json.loads(answer.body)["body"] == "y" * 10
        finally:
            await server.close(grace_s=1)
    run(go())


def test_the_token_is_checked_before_the_body_is_buffered():
    import socket

    from tests.meter.harness import echo_upstream, proxied

    with echo_upstream() as up, proxied(up.url) as p:
        with socket.create_connection(("127.0.0.1", p.proxy.port), timeout=5) as sock:
            # 10 MB announced with 100-continue: an agent without the token is never invited to send it
            sock.sendall(b"POST /anthropic/v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: wrong\r\n"
                         b"Content-Length: 10000000\r\nExpect: 100-continue\r\n\r\n")
            sock.sendall(b"x" * 100_000)  # and what it sends anyway is not kept
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 401") and b"100 Continue" not in answer
        assert p.proxy._server.buffered == 0 and up.requests == []


def test_bodies_held_at_once_are_bounded(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(agent_server, "MAX_BUFFERED_BYTES", 1000)

    async def go() -> None:
        app = App()
        server = await _serve(app)
        try:
            reader, writer = await connect(server)
            writer.write(post("/e", b"x" * 5000))
            assert (await read_answer(reader)).status == 503
            assert server.buffered == 0  # released when the request ended
            reader, writer = await connect(server)
            writer.write(post("/e", b"y" * 500))
            assert (await read_answer(reader)).status == 200 and server.buffered == 0
        finally:
            await server.close(grace_s=1)
    run(go())
