"""A lean HTTP/1.1 client for the proxy's upstream hop: an asyncio protocol + MagicStack's httptools parser.

Why not aiohttp's ClientSession: on the proxy's hot path (one agent, one call at a time) its client
side costs about 0.3 ms more per call than a plain asyncio connection, which is most of the proxy's
added latency. This client does only what the hop needs: keep-alive connections per origin, the
request written in one ``write``, the response parsed by httptools (never by hand) and its body
handed over chunk by chunk as it arrives.

Errors: :class:`UpstreamConnectionError` (cannot connect, or the connection broke before a response),
:class:`UpstreamPayloadError` (the body was cut short or could not be decoded), :class:`UpstreamError`
(anything else wrong with the response); a connect or between-bytes timeout raises ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import httptools

READ_SIZE = 64 * 1024
MAX_IDLE_PER_ORIGIN = 32  # more idle connections than this are closed on release
IDLE_KEEPALIVE_S = 15.0  # servers close idle connections; don't offer one older than this
# Characters that may stay as they are in a request target (RFC 3986 reserved + unreserved + '%').
_TARGET_SAFE = "/?#[]@!$&'()*+,;=:-._~%"
# What decides the CA store ssl.create_default_context() loads (OpenSSL's default verify paths)
TLS_ENVIRONMENT = ("SSL_CERT_FILE", "SSL_CERT_DIR")
_tls_contexts: dict[tuple[str | None, ...], ssl.SSLContext] = {}


def default_tls_context() -> ssl.SSLContext:
    """The verifying TLS context for providers: ``ssl.create_default_context()`` (the system's CA
    store, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``), HTTP/1.1 by ALPN.

    Made once per process and CA store: loading the store costs ~27 ms of CPU (2-core bench machine),
    more than the rest of a run's start. The warm launcher makes it before it forks, so a run whose
    environment names the same store uses the launcher's; one that names another gets its own.
    """
    key = tuple(os.environ.get(name) for name in TLS_ENVIRONMENT)
    context = _tls_contexts.get(key)
    if context is None:
        context = ssl.create_default_context()
        context.set_alpn_protocols(["http/1.1"])
        _tls_contexts[key] = context
    return context


class UpstreamError(Exception):
    """The upstream's answer could not be used."""


class UpstreamConnectionError(UpstreamError):
    """No connection to the upstream, or it broke before the response began."""


class UpstreamPayloadError(UpstreamError):
    """The response body was cut short or could not be decoded."""


class _Disconnected(Exception):
    """The connection ended before any byte of a response: the server may have closed it while idle."""


Origin = tuple[str, str, int]  # scheme, host, port


# -- headers -------------------------------------------------------------------------------------
class Headers:
    """Response headers: case-insensitive lookups, every value kept in arrival order."""

    __slots__ = ("_first", "_items")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        self._first: dict[str, str] = {}
        for name, value in items:
            self._first.setdefault(name.lower(), value)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._first.get(name.lower(), default)

    def getall(self, name: str) -> list[str]:
        key = name.lower()
        return [v for k, v in self._items if k.lower() == key]

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def without(self, *names: str) -> Headers:
        drop = {n.lower() for n in names}
        return Headers([(k, v) for k, v in self._items if k.lower() not in drop])


# -- content decoding ----------------------------------------------------------------------------
class _Decoder:
    """Undo gzip/deflate the upstream applied although we asked for identity: the meter reads plain bytes."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        # gzip: 16 + MAX_WBITS; deflate is meant to be zlib-wrapped, but some servers send it raw.
        self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS)
        self._started = False

    def feed(self, data: bytes) -> bytes:
        try:
            return self._feed(data)
        except zlib.error as exc:
            raise UpstreamPayloadError(f"cannot decode the {self.encoding} response body: {exc}") from exc

    def _feed(self, data: bytes) -> bytes:
        if not self._started and self.encoding == "deflate":
            self._started = True
            try:
                return self._obj.decompress(data)
            except zlib.error:
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate
        self._started = True
        return self._obj.decompress(data)

    def flush(self) -> bytes:
        return self._obj.flush()


def _decoder_for(encoding: str | None) -> _Decoder | None:
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return None
    if enc in ("gzip", "x-gzip", "deflate"):
        return _Decoder(enc)
    raise UpstreamError(f"the upstream answered with content-encoding {enc!r} although the proxy asked for identity")


# -- one connection ------------------------------------------------------------------------------
class _Connection(asyncio.Protocol):
    """One keep-alive connection; parses one response at a time with httptools callbacks.

    A protocol rather than asyncio streams: bytes land in :meth:`data_received` and a waiting
    reader is woken with one future, and the between-bytes timeout is one ``call_later`` per wait
    that actually has to wait (none when the bytes are already here). On the proxy's hot path that
    is measurably cheaper than ``StreamReader.read`` under ``asyncio.timeout`` for every read.
    """

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.idle_since = time.monotonic()
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._inbox: list[bytes] = []  # bytes received and not yet parsed
        self._inbox_size = 0
        self._eof = False
        self._lost: Exception | None = None  # why the connection broke, if it did
        self._waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._read_paused = False
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self._reset()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.received = 0  # bytes of the current response
        self.raw_headers: list[tuple[str, str]] = []
        self.status = 0
        self.keep_alive = False
        self.headers_done = False
        self.message_done = False
        self.body: list[bytes] = []

    # asyncio protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        self._inbox.append(data)
        self._inbox_size += len(data)
        if self._inbox_size > READ_SIZE and not self._read_paused and self.transport is not None:
            self._read_paused = True  # the reader is behind (a slow agent): let TCP push back
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._lost = exc
        self._wake()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_exception(ConnectionResetError("the upstream closed the connection"))
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        # Read the parser's state here: once the message is complete it resets for the next one.
        status = self.parser.get_status_code()
        if status < 200:
            self.raw_headers = []  # an interim 1xx answer: the real response follows
            return
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.headers_done:
            self.message_done = True

    # I/O
    def usable(self) -> bool:
        fresh = time.monotonic() - self.idle_since < IDLE_KEEPALIVE_S
        return fresh and not self._eof and not self._inbox and not self.closing()

    def closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    async def send(self, data: list[bytes]) -> None:
        self._reset()
        if self._eof or self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the upstream closed the connection")
        if len(data) == 1:
            self.transport.write(data[0])
        else:
            self.transport.writelines(data)  # one vectored write: a megabyte body is not copied again
        if self._write_paused:  # a large body and a slow reader: wait until the buffer drains
            self._drain_waiter = self._loop.create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None

    async def feed(self, read_timeout: float) -> bool:
        """Read once and parse; False at end of stream. Raises _Disconnected if nothing came at all."""
        if not self._inbox and not self._eof:
            await self._wait(read_timeout)
        if not self._inbox:
            if self._lost is not None:
                if self.received == 0:
                    raise _Disconnected(str(self._lost))
                raise UpstreamPayloadError(f"the connection broke mid-response: {self._lost}")
            if self.received == 0:
                raise _Disconnected("the server closed the connection")
            return False
        data = self._inbox[0] if len(self._inbox) == 1 else b"".join(self._inbox)
        self._inbox.clear()
        self._inbox_size = 0
        if self._read_paused and self.transport is not None and not self._eof:
            self._read_paused = False
            self.transport.resume_reading()
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise UpstreamPayloadError(f"malformed HTTP response: {exc}") from exc
        return True

    async def _wait(self, read_timeout: float) -> None:
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(read_timeout, _time_out, waiter, read_timeout)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def _time_out(waiter: asyncio.Future[None], read_timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError(f"no data from the upstream for {read_timeout:g}s"))


# -- the response --------------------------------------------------------------------------------
class UpstreamResponse:
    """Status and headers are known on creation; the body is read with :meth:`chunks` or :meth:`read`."""

    def __init__(self, conn: _Connection, read_timeout: float, head_only: bool,
                 on_done: Callable[[_Connection, bool], None]) -> None:
        self._conn = conn
        self._read_timeout = read_timeout
        self._on_done: Callable[[_Connection, bool], None] | None = on_done
        self.status = conn.status
        headers = Headers(conn.raw_headers)
        self._decoder = _decoder_for(headers.get("content-encoding"))
        if self._decoder is not None:
            headers = headers.without("content-encoding", "content-length")
        self.headers = headers
        # No length and not chunked: the body ends when the server closes the connection.
        self._close_delimited = "content-length" not in headers and \
            "chunked" not in (headers.get("transfer-encoding") or "").lower()
        self._head_only = head_only
        self._finished = head_only or self.status in (204, 304)
        self._reusable = not head_only and conn.keep_alive

    def body_ready(self) -> bool:
        """True when body bytes have already arrived (usually with the head, in the same packet)."""
        return bool(self._conn.body or self._conn._inbox)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, in chunks as they arrive (decoded when the upstream compressed it)."""
        conn = self._conn
        while not self._finished:
            if conn.body:
                data, conn.body = b"".join(conn.body), []
                out = self._decoder.feed(data) if self._decoder else data
                if out:
                    yield out
                continue
            if conn.message_done:
                self._finished = True
            elif not await self._feed():
                self._end_of_stream()
        if self._decoder is not None:
            tail = self._decoder.flush()
            if tail:
                yield tail
        self._release()

    async def _feed(self) -> bool:
        try:
            return await self._conn.feed(self._read_timeout)
        except _Disconnected as exc:  # cannot happen after the head was read; kept for completeness
            raise UpstreamPayloadError(str(exc)) from exc

    def _end_of_stream(self) -> None:
        if not self._close_delimited:
            raise UpstreamPayloadError("the upstream closed the connection before the response body was complete")
        self._finished = True
        self._reusable = False

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    def _release(self) -> None:
        if self._on_done is not None:
            release, self._on_done = self._on_done, None
            release(self._conn, self._finished and self._reusable)

    def close(self) -> None:
        """Give the connection back (only when the whole body was read) or close it."""
        self._release()


class _RequestContext:
    """``async with client.request(...) as response``: the connection is settled on exit."""

    def __init__(self, client: UpstreamClient, method: str, url: str, headers: Mapping[str, str],
                 body: bytes | list[Any] | None) -> None:
        self._args = (method, url, headers, body)
        self._client = client
        self._response: UpstreamResponse | None = None

    async def __aenter__(self) -> UpstreamResponse:
        self._response = await self._client.send(*self._args)
        return self._response

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._response is not None:
            self._response.close()


# -- the client ----------------------------------------------------------------------------------
class UpstreamClient:
    """Keep-alive HTTP/1.1 client. One per proxy; :meth:`close` on shutdown."""

    def __init__(self, *, connect_timeout_s: float, read_timeout_s: float,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._ssl_context = ssl_context
        self._idle: dict[Origin, deque[_Connection]] = {}
        self.connections_opened = 0  # for tests and benchmarks

    def request(self, method: str, url: str, headers: Mapping[str, str],
                body: bytes | list[Any] | None = None) -> _RequestContext:
        return _RequestContext(self, method, url, headers, body)

    async def send(self, method: str, url: str, headers: Mapping[str, str],
                   body: bytes | list[Any] | None = None) -> UpstreamResponse:
        """Send the request and read the response head; the caller must read the body or close it."""
        origin, target = _split(url)
        data = _serialize(method, target, origin, headers, body)
        conn, reused = await self._acquire(origin)
        try:
            await self._exchange(conn, data)
        except _Disconnected as exc:
            conn.close()
            if not reused:
                raise UpstreamConnectionError(f"{_where(origin)}: {exc}") from None
            # A pooled connection the server closed while idle: nothing of ours was answered, so
            # sending it again on a fresh connection cannot duplicate a call.
            conn = await self._connect(origin)
            try:
                await self._exchange(conn, data)
            except _Disconnected as exc2:
                conn.close()
                raise UpstreamConnectionError(f"{_where(origin)}: {exc2}") from None
            except BaseException:
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise
        return UpstreamResponse(conn, self.read_timeout_s, method == "HEAD", self._release)

    async def _exchange(self, conn: _Connection, data: list[bytes]) -> None:
        try:
            await conn.send(data)
        except OSError as exc:
            raise _Disconnected(str(exc)) from exc
        while not conn.headers_done:
            if not await conn.feed(self.read_timeout_s):
                raise UpstreamConnectionError("the upstream closed the connection in the middle of the response head")

    async def _acquire(self, origin: Origin) -> tuple[_Connection, bool]:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()  # the most recently used one is the least likely to be stale
            if conn.usable():
                return conn, True
            conn.close()
        return await self._connect(origin), False

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        tls = self._tls() if scheme == "https" else None
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await asyncio.get_running_loop().create_connection(
                    lambda: _Connection(origin), host, port, ssl=tls, server_hostname=host if tls else None)
        except TimeoutError:
            raise TimeoutError(f"connecting to {_where(origin)} timed out after {self.connect_timeout_s:g}s") from None
        except OSError as exc:  # refused, DNS, TLS verification (ssl.SSLError is an OSError)
            raise UpstreamConnectionError(f"cannot connect to {_where(origin)}: {exc}") from exc
        self.connections_opened += 1
        return conn

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = default_tls_context()
        return self._ssl_context

    def _release(self, conn: _Connection, reusable: bool) -> None:
        idle = self._idle.setdefault(conn.origin, deque())
        if not reusable or len(idle) >= MAX_IDLE_PER_ORIGIN or conn.closing():
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def idle_count(self) -> int:
        return sum(len(q) for q in self._idle.values())

    async def close(self) -> None:
        conns = [c for q in self._idle.values() for c in q]
        self._idle.clear()
        for conn in conns:
            conn.close()
        if conns:  # closing is best effort: the server may already be gone
            await asyncio.wait([c.closed for c in conns], timeout=1.0)


# -- request bytes -------------------------------------------------------------------------------
def _split(url: str) -> tuple[Origin, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise UpstreamConnectionError(f"unsupported upstream URL {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    target = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE)
    return (scheme, parts.hostname, port), target


# A body up to this size is joined to the head, so that the request leaves in a single write; a
# larger one is written after it in the same vectored write, not copied into a new buffer.
JOIN_BODY_MAX = 64 * 1024


def _serialize(method: str, target: str, origin: Origin, headers: Mapping[str, str],
               body: bytes | list[Any] | None) -> list[bytes]:
    """Request line, headers and body as the buffers of one write (``body`` may be a list of
    bytes-like pieces, a spliced request: they are written as they are, never joined here)."""
    pieces = body if isinstance(body, list) else None
    size = sum(len(p) for p in pieces) if pieces is not None else len(body or b"")
    scheme, host, port = origin
    default_port = 443 if scheme == "https" else 80
    host_header = host if port == default_port else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        host_header = f"[{host}]" if port == default_port else f"[{host}]:{port}"
    lines = [f"{method} {target} HTTP/1.1", f"host: {host_header}"]
    for name, value in headers.items():
        if name.lower() in ("host", "content-length", "transfer-encoding", "connection"):
            continue  # framing is ours
        lines.append(f"{name}: {value}")
    if body or method not in ("GET", "HEAD"):
        lines.append(f"content-length: {size}")
    head = "\r\n".join(lines)
    if head.count("\n") != len(lines) - 1 or head.count("\r") != len(lines) - 1:
        raise UpstreamError("a request header contains a line break")  # no header injection upstream
    head_bytes = head.encode("utf-8", "surrogateescape") + b"\r\n\r\n"
    if pieces is not None:
        return [head_bytes, *pieces] if size > JOIN_BODY_MAX else [b"".join([head_bytes, *pieces])]
    if body and len(body) > JOIN_BODY_MAX:
        return [head_bytes, body]
    return [head_bytes + (body or b"")]


def _where(origin: Origin) -> str:
    return f"{origin[1]}:{origin[2]}"


__all__ = ["Headers", "UpstreamClient", "UpstreamConnectionError", "UpstreamError", "UpstreamPayloadError",
           "UpstreamResponse"]
