"""A lean HTTP/1.1 client for the proxy's upstream hop: asyncio streams + MagicStack's httptools parser.

Why not aiohttp's ClientSession: on the proxy's hot path (one agent, one call at a time) its client
side costs about 0.3 ms more per call than a plain stream connection, which is most of the proxy's
added latency. This client does only what the hop needs: keep-alive connections per origin, the
request written in one ``write``, the response parsed by httptools (never by hand) and its body
handed over chunk by chunk as it arrives.

Errors: :class:`UpstreamConnectionError` (cannot connect, or the connection broke before a response),
:class:`UpstreamPayloadError` (the body was cut short or could not be decoded), :class:`UpstreamError`
(anything else wrong with the response); a connect or between-bytes timeout raises ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import TracebackType
from urllib.parse import quote, urlsplit

import httptools

READ_SIZE = 64 * 1024
MAX_IDLE_PER_ORIGIN = 32  # more idle connections than this are closed on release
IDLE_KEEPALIVE_S = 15.0  # servers close idle connections; don't offer one older than this
# Characters that may stay as they are in a request target (RFC 3986 reserved + unreserved + '%').
_TARGET_SAFE = "/?#[]@!$&'()*+,;=:-._~%"


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
class _Connection:
    """One keep-alive connection; parses one response at a time with httptools callbacks."""

    def __init__(self, origin: Origin, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.origin = origin
        self.reader = reader
        self.writer = writer
        self.idle_since = time.monotonic()
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
        return fresh and not self.reader.at_eof() and not self.writer.is_closing()

    async def send(self, data: bytes) -> None:
        self._reset()
        self.writer.write(data)
        await self.writer.drain()

    async def feed(self, read_timeout: float) -> bool:
        """Read once and parse; False at end of stream. Raises _Disconnected if nothing came at all."""
        try:
            async with asyncio.timeout(read_timeout):
                data = await self.reader.read(READ_SIZE)
        except TimeoutError:
            raise TimeoutError(f"no data from the upstream for {read_timeout:g}s") from None
        except OSError as exc:
            if self.received == 0:
                raise _Disconnected(str(exc)) from exc
            raise UpstreamPayloadError(f"the connection broke mid-response: {exc}") from exc
        if not data:
            if self.received == 0:
                raise _Disconnected("the server closed the connection")
            return False
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise UpstreamPayloadError(f"malformed HTTP response: {exc}") from exc
        return True

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()


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
                 body: bytes | None) -> None:
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
                body: bytes | None = None) -> _RequestContext:
        return _RequestContext(self, method, url, headers, body)

    async def send(self, method: str, url: str, headers: Mapping[str, str],
                   body: bytes | None = None) -> UpstreamResponse:
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

    async def _exchange(self, conn: _Connection, data: bytes) -> None:
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
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=host if tls else None, limit=READ_SIZE)
        except TimeoutError:
            raise TimeoutError(f"connecting to {_where(origin)} timed out after {self.connect_timeout_s:g}s") from None
        except OSError as exc:  # refused, DNS, TLS verification (ssl.SSLError is an OSError)
            raise UpstreamConnectionError(f"cannot connect to {_where(origin)}: {exc}") from exc
        self.connections_opened += 1
        return _Connection(origin, reader, writer)

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:  # loading the CA store takes milliseconds: once per client
            self._ssl_context = ssl.create_default_context()
            self._ssl_context.set_alpn_protocols(["http/1.1"])
        return self._ssl_context

    def _release(self, conn: _Connection, reusable: bool) -> None:
        idle = self._idle.setdefault(conn.origin, deque())
        if not reusable or len(idle) >= MAX_IDLE_PER_ORIGIN or conn.writer.is_closing():
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
        for conn in conns:
            try:
                await conn.writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass  # the server may already be gone; closing is best effort


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


def _serialize(method: str, target: str, origin: Origin, headers: Mapping[str, str], body: bytes | None) -> bytes:
    """Request line, headers and body as one buffer, so the request leaves in a single write."""
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
        lines.append(f"content-length: {len(body or b'')}")
    head = "\r\n".join(lines)
    if head.count("\n") != len(lines) - 1 or head.count("\r") != len(lines) - 1:
        raise UpstreamError("a request header contains a line break")  # no header injection upstream
    return head.encode("utf-8", "surrogateescape") + b"\r\n\r\n" + (body or b"")


def _where(origin: Origin) -> str:
    return f"{origin[1]}:{origin[2]}"


__all__ = ["Headers", "UpstreamClient", "UpstreamConnectionError", "UpstreamError", "UpstreamPayloadError",
           "UpstreamResponse"]
