"""The lean upstream client against scripted local servers (raw asyncio, so every byte is ours)."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import trustme

from ci_guard.errors import InvalidInputError
from ci_guard.meter.upstream_aiohttp import AiohttpTransport
from ci_guard.meter.upstream_client import (
    UpstreamClient,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamPayloadError,
)
from ci_guard.meter.upstream_hop import UpstreamHop, env_proxy_applies
from ci_guard.meter.upstreams import Upstreams, upstreams_from_env

Reply = Callable[[int, asyncio.StreamWriter], Awaitable[bool]]  # (request number, writer) -> keep open?


@dataclass
class Server:
    """Accepts connections, reads each request (head + content-length body), lets ``reply`` answer it."""

    reply: Reply
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.decode().split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                self.requests.append(head + await reader.readexactly(length))
                if not await self.reply(len(self.requests), writer):
                    return
        finally:
            writer.close()


async def serve(reply: Reply, tls: ssl.SSLContext | None = None) -> tuple[Server, asyncio.Server]:
    server = Server(reply)
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    server.port = srv.sockets[0].getsockname()[1]
    return server, srv


def ok(body: bytes = b"hello", extra: str = "") -> Reply:
    async def reply(n: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body)
        await writer.drain()
        return True
    return reply


def client(read: float = 5.0, ssl_context: ssl.SSLContext | None = None) -> UpstreamClient:
    return UpstreamClient(connect_timeout_s=2.0, read_timeout_s=read, ssl_context=ssl_context)


async def get(c: UpstreamClient, url: str, method: str = "POST", body: bytes | None = b"{}") -> tuple[int, dict, bytes]:
    async with c.request(method, url, {"x-test": "1"}, body) as r:
        return r.status, dict(r.headers.items()), await r.read()


def test_content_length_body_headers_and_request_bytes() -> None:
    async def scenario() -> None:
        server, srv = await serve(ok(b'{"a":1}', "Set-Cookie: a=1\r\nset-cookie: b=2\r\nX-Req: r1\r\n"))
        c = client()
        async with c.request("POST", f"http://127.0.0.1:{server.port}/v1/messages?beta=true",
                             {"x-api-key": "k", "content-length": "999"}, b'{"q":1}') as r:
            assert r.status == 200
            assert r.headers.get("x-req") == "r1" and r.headers.get("X-REQ") == "r1"
            assert r.headers.getall("set-cookie") == ["a=1", "b=2"]
            assert await r.read() == b'{"a":1}'
        sent = server.requests[0].decode()
        assert sent.startswith("POST /v1/messages?beta=true HTTP/1.1\r\n")
        assert f"host: 127.0.0.1:{server.port}\r\n" in sent
        assert "content-length: 7\r\n" in sent and "999" not in sent  # framing is the client's own
        assert sent.endswith('\r\n\r\n{"q":1}')
        await c.close()
        srv.close()
    asyncio.run(scenario())


def test_chunked_body_arrives_chunk_by_chunk() -> None:
    async def scenario() -> None:
        release = asyncio.Event()

        async def reply(n: int, writer: asyncio.StreamWriter) -> bool:
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n"
                         b"6\r\nfirst \r\n")
            await writer.drain()
            await release.wait()  # the second chunk only goes out once the client saw the first
            writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
            await writer.drain()
            return True

        server, srv = await serve(reply)
        c = client()
        seen = []
        async with c.request("POST", f"http://127.0.0.1:{server.port}/s", {}, b"{}") as r:
            async for chunk in r.chunks():
                seen.append(chunk)
                release.set()
        assert seen == [b"first ", b"second"]
        assert c.idle_count() == 1  # fully read: back in the pool
        await c.close()
        srv.close()
    asyncio.run(scenario())


def test_close_delimited_body_ends_at_eof_and_is_not_pooled() -> None:
    async def reply(n: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\npart one, ")
        await writer.drain()
        writer.write(b"part two")
        await writer.drain()
        return False  # the server closes: that is the end of the body

    async def scenario() -> None:
        server, srv = await serve(reply)
        c = client()
        assert (await get(c, f"http://127.0.0.1:{server.port}/"))[2] == b"part one, part two"
        assert c.idle_count() == 0
        await c.close()
        srv.close()
    asyncio.run(scenario())


def test_keep_alive_reuses_one_connection() -> None:
    async def scenario() -> None:
        server, srv = await serve(ok())
        c = client()
        for _ in range(5):
            assert (await get(c, f"http://127.0.0.1:{server.port}/x"))[2] == b"hello"
        assert server.connections == 1 and c.connections_opened == 1 and len(server.requests) == 5
        await c.close()
        srv.close()
    asyncio.run(scenario())


def test_unread_body_closes_the_connection_instead_of_pooling_it() -> None:
    async def scenario() -> None:
        server, srv = await serve(ok(b"x" * 1000))
        c = client()
        async with c.request("GET", f"http://127.0.0.1:{server.port}/", {}, None) as r:
            assert r.status == 200  # body left unread
        assert c.idle_count() == 0
        assert (await get(c, f"http://127.0.0.1:{server.port}/"))[2] == b"x" * 1000
        assert server.connections == 2
        await c.close()
        srv.close()
    asyncio.run(scenario())


def test_server_closing_an_idle_connection_is_retried_on_a_fresh_one() -> None:
    async def reply(n: int, writer: asyncio.StreamWriter) -> bool:
        if n == 2:
            return False  # got the request on the idle connection and closed it without a byte
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        return True

    async def scenario() -> None:
        server, srv = await serve(reply)
        c = client()
        url = f"http://127.0.0.1:{server.port}/"
        assert (await get(c, url))[2] == b"ok"
        assert (await get(c, url))[2] == b"ok"  # first attempt dropped, retried once
        assert server.connections == 2 and len(server.requests) == 3
        await c.close()
        srv.close()
    asyncio.run(scenario())


def test_idle_connection_closed_by_the_server_is_not_reused() -> None:
    async def reply(n: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        return False  # closes right after answering, without saying connection: close

    async def scenario() -> None:
        server, srv = await serve(reply)
        c = client()
        url = f"http://127.0.0.1:{server.port}/"
        for _ in range(3):
            assert (await get(c, url))[2] == b"ok"
            await asyncio.sleep(0.05)  # let the close arrive
        assert len(server.requests) == 3 and server.connections == 3
        await c.close()
        srv.close()
    asyncio.run(scenario())


def test_partly_received_response_is_not_retried() -> None:
    async def reply(n: int, writer: asyncio.StreamWriter) -> bool:
        if n == 2:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-")  # half a head, then gone
            await writer.drain()
            return False
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        return True

    async def scenario() -> None:
        server, srv = await serve(reply)
        c = client()
        url = f"http://127.0.0.1:{server.port}/"
        await get(c, url)
        with pytest.raises(UpstreamConnectionError):
            await get(c, url)
        assert len(server.requests) == 2  # sent once, never again
        await c.close()
        srv.close()
    asyncio.run(scenario())


def test_body_cut_short_raises_a_payload_error() -> None:
    async def reply(n: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b")
        await writer.drain()
        return False

    async def scenario() -> None:
        server, srv = await serve(reply)
        c = client()
        got = []
        with pytest.raises(UpstreamPayloadError):
            async with c.request("POST", f"http://127.0.0.1:{server.port}/", {}, b"{}") as r:
                async for chunk in r.chunks():
                    got.append(chunk)
        assert got == [b"only ten b"] and c.idle_count() == 0
        await c.close()
        srv.close()
    asyncio.run(scenario())


@pytest.mark.parametrize("encoding,pack", [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send it
])
def test_compressed_body_is_decoded_and_the_header_dropped(encoding: str, pack: Callable[[bytes], bytes]) -> None:
    plain = b'{"usage":{"input_tokens":10}}' * 50
    packed = pack(plain)

    async def reply(n: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(f"HTTP/1.1 200 OK\r\ncontent-encoding: {encoding}\r\ncontent-length: {len(packed)}\r\n\r\n"
                     .encode() + packed)
        await writer.drain()
        return True

    async def scenario() -> None:
        server, srv = await serve(reply)
        c = client()
        _, headers, body = await get(c, f"http://127.0.0.1:{server.port}/")
        assert body == plain and len(packed) < len(plain)
        assert not {k.lower() for k in headers} & {"content-encoding", "content-length"}
        await c.close()
        srv.close()
    asyncio.run(scenario())


def test_unsupported_encoding_is_an_error_not_garbage_for_the_meter() -> None:
    async def scenario() -> None:
        server, srv = await serve(ok(b"\x1b\x00", "content-encoding: br\r\n"))
        c = client()
        with pytest.raises(UpstreamError, match="br"):
            await get(c, f"http://127.0.0.1:{server.port}/")
        await c.close()
        srv.close()
    asyncio.run(scenario())


def test_silent_upstream_times_out_and_refused_connect_is_a_connection_error() -> None:
    async def silent(n: int, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    async def scenario() -> None:
        server, srv = await serve(silent)
        c = client(read=0.2)
        with pytest.raises(TimeoutError):
            await get(c, f"http://127.0.0.1:{server.port}/")
        srv.close()
        await srv.wait_closed()
        with pytest.raises(UpstreamConnectionError, match="cannot connect"):
            await get(c, f"http://127.0.0.1:{server.port}/")
        await c.close()
    asyncio.run(scenario())


def test_head_response_ends_without_a_body() -> None:
    async def scenario() -> None:
        async def reply(n: int, writer: asyncio.StreamWriter) -> bool:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n")
            await writer.drain()
            return True
        server, srv = await serve(reply)
        c = client(read=1.0)
        status, headers, body = await get(c, f"http://127.0.0.1:{server.port}/", method="HEAD", body=None)
        assert status == 200 and body == b"" and headers["content-length"] == "1234"
        await c.close()
        srv.close()
    asyncio.run(scenario())


def test_header_with_a_line_break_is_refused() -> None:
    async def scenario() -> None:
        server, srv = await serve(ok())
        c = client()
        with pytest.raises(UpstreamError, match="line break"):
            async with c.request("GET", f"http://127.0.0.1:{server.port}/", {"x": "a\r\nx-injected: 1"}):
                pass
        assert server.requests == []
        await c.close()
        srv.close()
    asyncio.run(scenario())


def test_tls_upstream_with_a_trusted_certificate() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)

    async def scenario() -> None:
        server, srv = await serve(ok(b"secure"), tls=server_ctx)
        c = client(ssl_context=trusted)
        for _ in range(2):
            assert (await get(c, f"https://localhost:{server.port}/v1/models", method="GET", body=None))[2] == b"secure"
        assert server.connections == 1
        await c.close()
        # The system store does not know the test CA, and the name must match the certificate.
        with pytest.raises(UpstreamConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await get(client(), f"https://localhost:{server.port}/", method="GET", body=None)
        with pytest.raises(UpstreamConnectionError):
            await get(client(ssl_context=trusted), f"https://127.0.0.1:{server.port}/", method="GET", body=None)
        srv.close()
    asyncio.run(scenario())


def test_environment_proxy_falls_back_to_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)

    async def transports(env: dict[str, str]) -> tuple[object, object]:
        hop = UpstreamHop(upstreams_from_env(env))
        try:
            return (type(hop.transport_for("https://api.anthropic.com/v1/messages")),
                    type(hop.transport_for("http://127.0.0.1:8011/v1/messages")))
        finally:
            await hop.close()

    assert asyncio.run(transports({})) == (UpstreamClient, UpstreamClient)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert env_proxy_applies("https://api.anthropic.com/v1/messages")
    assert not env_proxy_applies("http://127.0.0.1:8011/v1")
    assert asyncio.run(transports({})) == (AiohttpTransport, UpstreamClient)
    monkeypatch.setenv("NO_PROXY", "api.anthropic.com")
    assert asyncio.run(transports({})) == (UpstreamClient, UpstreamClient)
    monkeypatch.delenv("HTTPS_PROXY")
    assert asyncio.run(transports({"CI_GUARD_UPSTREAM_CLIENT": "aiohttp"})) == (AiohttpTransport, AiohttpTransport)
    with pytest.raises(InvalidInputError, match="CI_GUARD_UPSTREAM_CLIENT"):
        upstreams_from_env({"CI_GUARD_UPSTREAM_CLIENT": "curl"})


def test_aiohttp_transport_maps_errors_like_the_lean_client() -> None:
    async def scenario() -> None:
        server, srv = await serve(ok(b"x" * 10, ""))
        port = server.port
        srv.close()
        await srv.wait_closed()
        hop = UpstreamHop(Upstreams(client="aiohttp"))
        try:
            with pytest.raises(UpstreamConnectionError):
                async with hop.request("GET", f"http://127.0.0.1:{port}/", {}):
                    pass
        finally:
            await hop.close()
    asyncio.run(scenario())


@pytest.mark.parametrize("transport", ["lean", "aiohttp"])
@pytest.mark.parametrize("size", [10, 200_000])
def test_a_body_given_as_pieces_goes_upstream_as_their_bytes(transport: str, size: int) -> None:
    """A spliced request (providers/body.py request_pieces) is written from its pieces, never joined
    by the lean client; the framing counts their bytes; aiohttp gets them joined."""
    whole = b'{"messages":[' + b'"' + "é".encode() * size + b'"]}'
    view = memoryview(whole)
    pieces = [view[:13], bytes(view[13:20]), view[20:]]

    async def scenario() -> None:
        server, srv = await serve(ok(b"{}"))
        hop = UpstreamHop(Upstreams(client="aiohttp" if transport == "aiohttp" else "auto"))
        try:
            for _ in range(2):  # a pooled connection the second time
                async with hop.request("POST", f"http://127.0.0.1:{server.port}/v1/messages", {}, pieces) as r:
                    assert r.status == 200 and await r.read() == b"{}"
        finally:
            await hop.close()
            srv.close()
        for sent in server.requests:
            head, body = sent.split(b"\r\n\r\n", 1)
            assert body == whole and f"content-length: {len(whole)}".encode() in head.lower()
    asyncio.run(scenario())


def test_the_default_tls_context_is_made_once_per_ca_store(tmp_path, monkeypatch):
    """Loading the CA store costs ~27 ms: once per process (and the warm launcher's runs share its),
    but a run whose environment names another store (SSL_CERT_FILE / SSL_CERT_DIR) gets that one."""
    import subprocess

    from ci_guard.meter.upstream_client import default_tls_context

    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    system = default_tls_context()
    assert default_tls_context() is system and system.verify_mode == ssl.CERT_REQUIRED and system.check_hostname
    assert client()._tls() is system  # (a client without its own context uses it)
    key, cert = tmp_path / "ca.key", tmp_path / "ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=ci-guard test CA"], check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    own = default_tls_context()
    assert own is not system
    assert [dict(c["subject"][0])["commonName"] for c in own.get_ca_certs()] == ["ci-guard test CA"]
    monkeypatch.delenv("SSL_CERT_FILE")
    assert default_tls_context() is system
