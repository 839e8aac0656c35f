"""A lean HTTP/1.1 server for the proxy's agent-facing side: an asyncio protocol + MagicStack's httptools parser.

Why not aiohttp's web server: on the proxy's hot path (one agent, one call at a time) this server
adds 0.14-0.16 ms less latency per call (measured A/B, BENCHMARKS.md), the largest single cost left
once the upstream hop went lean. This server does only what the proxy needs: keep-alive,
requests handled one at a time per connection (pipelined ones wait in a queue), bodies by
content-length or chunked (parsed by httptools, never by hand), ``Expect: 100-continue``, responses
with a content-length or chunked and written as they come (server-sent events), HEAD, a body size
limit, idle timeouts and a graceful shutdown.

Handlers see only :mod:`ci_guard.meter.agent_http`. A handler keeps running when its agent goes
away (the call must still be metered and recorded); its writes then raise ``ClientGone``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable, Iterable
from http import HTTPStatus
from urllib.parse import unquote

import httptools

from ci_guard.meter.agent_http import ClientGone, Handler, Response, ResponseWriter, StreamResponse
from ci_guard.meter.upstream_client import Headers
from ci_guard.secrets import redact

# Limits (docs/run.md, "Security model"). The body limit is above what the providers accept
# (Anthropic Messages: 32 MB; OpenAI: 50 MB with files inline), so no real request is refused here.
MAX_BODY_BYTES = 64 * 1024 * 1024  # the largest request body accepted
MAX_BUFFERED_BYTES = 256 * 1024 * 1024  # request bodies held at once, all connections together
MAX_URL_BYTES = 16 * 1024  # request target; longer: 414
MAX_HEAD_BYTES = 64 * 1024  # request line + all headers; larger: 431
HEAD_TIMEOUT_S = 30.0  # a request whose headers are not complete after this long: 408
IDLE_TIMEOUT_S = 75.0  # a keep-alive connection with no request for this long is closed (aiohttp's default)
BODY_TIMEOUT_S = 60.0  # a request body that makes no progress for this long is answered 408
BODY_DEADLINE_S = 300.0  # a request body not complete after this long is answered 408 (a 1-byte trickle)
MAX_QUEUED = 8  # pipelined requests waiting behind the one being handled; more pause reading
SHUTDOWN_GRACE_S = 10.0

log = logging.getLogger(__name__)


class _BodyError(Exception):
    """The request body cannot be read; the connection is answered with ``status`` and closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _HeadError(_BodyError):
    """The request line or headers break a limit: answered with ``status`` before any handler runs."""


def _head(status: int, headers: Iterable[tuple[str, str]], framing: str, close: bool) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    for name, value in headers:
        if name.lower() not in ("content-length", "transfer-encoding", "connection"):  # framing is ours
            lines.append(f"{name}: {value}")
    if framing:
        lines.append(framing)
    if close:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


# -- one request ---------------------------------------------------------------------------------
class _Request:
    """A request as the handler sees it (see agent_http.Request), and the writer of its response."""

    def __init__(self, conn: _Connection, url: bytes, raw_headers: list[tuple[str, str]], method: str,
                 http10: bool, keep_alive: bool) -> None:
        self._conn = conn
        self.method = method
        parsed = httptools.parse_url(url)
        self.path = unquote(parsed.path.decode("utf-8", "surrogateescape"))
        self.query_string = parsed.query.decode("utf-8", "surrogateescape") if parsed.query else ""
        self.headers = Headers(raw_headers)
        self.http10 = http10
        self.keep_alive = keep_alive
        self.expect_continue = (self.headers.get("expect") or "").lower() == "100-continue"
        self._body: list[bytes] = []
        self._held = 0  # bytes of this body counted in the server's buffered total
        self.discard_body = False
        self.started_at = conn.loop.time()
        self.last_data = self.started_at  # when the last piece of the body arrived
        self.body_size = 0
        self.body_done = False
        self.error: _BodyError | None = None
        self._waiter: asyncio.Future[None] | None = None
        # response state
        self.started = False
        self.done = False
        self._pending = b""  # a head held back so that head and body leave in one write
        self._chunked = False
        self._head_only = method == "HEAD"

    # body, fed by the connection
    def feed(self, data: bytes) -> None:
        self.body_size += len(data)
        if self.body_size > MAX_BODY_BYTES:
            self.fail(_BodyError(413, f"the request body is larger than {MAX_BODY_BYTES} bytes"))
            return
        if self.discard_body:  # no valid token: its body is never buffered (the handler answers 401)
            return
        server = self._conn.server
        if server.buffered + len(data) > MAX_BUFFERED_BYTES:
            self.fail(_BodyError(503, "ci-guard: too many large requests at once; retry shortly"))
            return
        server.buffered += len(data)
        self._held += len(data)
        self._body.append(data)
        self.last_data = self._conn.loop.time()
        # The reader is woken only when the body is complete (or fails), not for each piece of a
        # megabyte body: read() itself watches for a body that stops arriving.

    def release(self) -> None:
        """The body was handed over (or abandoned): it no longer counts against MAX_BUFFERED_BYTES."""
        self._conn.server.buffered -= self._held
        self._held = 0

    def finish(self) -> None:
        self.body_done = True
        self._wake()

    def fail(self, error: _BodyError) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self) -> bytes:
        loop = self._conn.loop
        while not self.body_done:
            if self.error is not None:
                raise self.error
            if self.expect_continue:  # the agent waits for this before it sends the body
                self.expect_continue = False
                self._conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.last_data = loop.time()  # from now on the agent sends
            now = loop.time()
            left = min(self.last_data + BODY_TIMEOUT_S, self.started_at + BODY_DEADLINE_S) - now
            if left <= 0:
                self.fail(_BodyError(408, f"the request body did not arrive in time (no data for "
                                          f"{BODY_TIMEOUT_S:g}s or not complete after {BODY_DEADLINE_S:g}s)"))
                continue
            self._waiter = loop.create_future()
            try:
                async with asyncio.timeout(left):
                    await self._waiter
            except TimeoutError:
                pass  # data may have come meanwhile: the loop checks the time left again
            finally:
                self._waiter = None
        if self.error is not None:
            self.release()
            raise self.error
        body, self._body = b"".join(self._body), []
        self.release()
        return body

    # response (agent_http.ResponseWriter)
    @property
    def writer(self) -> ResponseWriter:
        return self

    async def start(self, status: int, headers: Iterable[tuple[str, str]], content_length: int | None,
                    flush: bool = True) -> None:
        if self.started:
            raise RuntimeError("the response was already started")
        self.started = True
        if not self.body_done:
            self.keep_alive = False  # an unread body would be taken for the next request
        close = not self.keep_alive or self._conn.closing
        no_body = self._head_only or status in (204, 304) or 100 <= status < 200
        if content_length is not None:
            framing = "" if status in (204, 304) else f"content-length: {content_length}"
        elif no_body:
            framing = ""
        elif self.http10:
            framing, close = "", True  # no chunked in HTTP/1.0: the body ends when the connection does
        else:
            framing, self._chunked = "transfer-encoding: chunked", True
        self.keep_alive = not close
        self._head_only = no_body
        self._pending = _head(status, headers, framing, close)
        if content_length is None and flush:
            await self._flush(b"")  # a stream: the agent gets the head now, not with the first event

    async def write(self, data: bytes) -> None:
        if not data or self._head_only:
            return
        if self._chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        await self._flush(data)

    async def end(self) -> None:
        if self.done:
            return
        self.done = True
        await self._flush(b"0\r\n\r\n" if self._chunked and not self._head_only else b"")

    async def _flush(self, data: bytes) -> None:
        if self._pending:
            data, self._pending = self._pending + data, b""
        if data:
            self._conn.send(data)
        await self._conn.drain()


# -- one connection ------------------------------------------------------------------------------
class _Connection(asyncio.Protocol):
    """Parses requests with httptools callbacks and handles them one after the other."""

    def __init__(self, server: AgentServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[_Request] = deque()
        self.task: asyncio.Task[None] | None = None
        self.lost = False
        self.closing = False  # answer the request in hand with connection: close, then close
        self.last_active = self.loop.time()
        self._idle_timer: asyncio.TimerHandle | None = None
        self._paused = False  # the transport's write buffer is full
        self._drain: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._parsing: _Request | None = None
        self._url: list[bytes] = []
        self._raw_headers: list[tuple[str, str]] = []
        self._url_size = self._head_size = 0
        self._head_timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport subclasses
        self.server.connections.add(self)
        self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.server.connections.discard(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if self._head_timer is not None:
            self._head_timer.cancel()
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ClientGone("the agent closed the connection"))
        gone = _BodyError(400, "the agent closed the connection before the request body was complete")
        for request in (self._parsing, *self.queue):
            if request is not None and not request.body_done:
                request.fail(gone)
        if self._parsing is not None and self._parsing not in self.queue:
            self._parsing.release()

    def eof_received(self) -> bool:
        # An agent that half-closes is treated as gone (as aiohttp does): close our side too, so a
        # stream being relayed to it notices at its next write.
        return False

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.last_active = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # We speak no other protocol; the request itself was parsed. Answer it, then close.
            if self.queue:
                self.queue[-1].keep_alive = False
            self._stop_reading()
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadError):
                self._reject(exc.__context__.status, str(exc.__context__))
            else:
                self._malformed(f"malformed HTTP request: {exc}")

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url, self._raw_headers = [], []
        self._url_size = self._head_size = 0
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_timeout)

    def on_url(self, url: bytes) -> None:
        self._url_size += len(url)
        if self._url_size > MAX_URL_BYTES:
            raise _HeadError(414, f"the request target is longer than {MAX_URL_BYTES} bytes")
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > MAX_HEAD_BYTES:
            raise _HeadError(431, f"the request headers are larger than {MAX_HEAD_BYTES} bytes")
        self._raw_headers.append((name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape")))

    def _head_timeout(self) -> None:
        self._head_timer = None
        self._reject(408, f"the request headers were not complete after {HEAD_TIMEOUT_S:g}s")

    def on_headers_complete(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        parser = self.parser
        request = _Request(self, b"".join(self._url), self._raw_headers, parser.get_method().decode("ascii"),
                           parser.get_http_version() == "1.0", parser.should_keep_alive())
        self._parsing = request
        authorize = self.server.authorize
        if authorize is not None and not authorize(request.headers):
            # Checked before the body: a request without the run token never gets one buffered.
            request.discard_body = True
            request.expect_continue = False
            request.keep_alive = False
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            # Refuse before the agent sends (or we buffer) the body; with 100-continue it never does.
            request.expect_continue = False
            request.fail(_BodyError(413, f"the request body is larger than {MAX_BODY_BYTES} bytes"))
            self._stop_reading()
        self.queue.append(request)
        if len(self.queue) > MAX_QUEUED:
            self._pause_reading()
        if self.task is None:
            self.task = self.loop.create_task(self._handle_queue())

    def on_body(self, body: bytes) -> None:
        request = self._parsing
        if request is None or request.error is not None:
            return
        request.feed(body)
        if request.error is not None:
            self._stop_reading()  # too large: do not buffer the rest

    def on_message_complete(self) -> None:
        if self._parsing is not None:
            self._parsing.finish()
            self._parsing = None

    # handling
    async def _handle_queue(self) -> None:
        try:
            while self.queue and not self.lost:
                request = self.queue.popleft()
                if self._reading_paused and len(self.queue) <= MAX_QUEUED and not self.closing:
                    self._reading_paused = False
                    self.transport.resume_reading()  # type: ignore[union-attr]
                await self._handle(request)
                if not request.keep_alive or self.closing:
                    self.close()
                    break
        finally:
            self.task = None
            self.last_active = self.loop.time()

    async def _handle(self, request: _Request) -> None:
        try:
            await self._handle_one(request)
        finally:
            request.release()  # a body the handler never read stops counting against the limit

    async def _handle_one(self, request: _Request) -> None:
        if request.error is not None:
            await self._answer_error(request, request.error.status, str(request.error))
            return
        try:
            await _finish(request, await self.server.handler(request))
        except ClientGone:
            request.keep_alive = False
        except _BodyError as exc:
            await self._answer_error(request, exc.status, str(exc))
        except Exception as exc:  # a bug in a handler: answer 500 rather than leave the agent hanging
            log.error("ci-guard proxy: the request handler failed: %s", redact(f"{type(exc).__name__}: {exc}"))
            await self._answer_error(request, 500, "ci-guard: internal error in the metering proxy")

    async def _answer_error(self, request: _Request, status: int, message: str) -> None:
        request.keep_alive = False
        if request.started or self.lost:
            return
        try:
            await Response(status, f"{message}\n".encode(), content_type="text/plain; charset=utf-8").send(request)
        except ClientGone:
            pass

    def _malformed(self, message: str) -> None:
        """Answer 400 right away (unless a response is in progress) and close: the stream cannot be resynced."""
        self._reject(400, message)

    def _reject(self, status: int, message: str) -> None:
        """Answer ``status`` right away (unless a response is in progress) and close."""
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._url, self._raw_headers = [], []  # a too-large head is not kept
        self._stop_reading()
        if self._parsing is not None:  # its body will never complete: its handler answers the error
            self._parsing.fail(_BodyError(status, message))
            self._parsing = None
        if self.task is None:
            if self.lost or self.transport is None or self.transport.is_closing():
                return
            self.send(_head(status, [("content-type", "text/plain; charset=utf-8")], "content-length: "
                            f"{len(message) + 1}", True) + message.encode() + b"\n")
            self.close()
        else:
            self.closing = True  # finish the request in hand, drop what came after it

    # writing
    def send(self, data: bytes) -> None:
        if self.lost or self.transport is None or self.transport.is_closing():
            raise ClientGone("the agent closed the connection")
        self.transport.write(data)

    async def drain(self) -> None:
        if self.lost:
            raise ClientGone("the agent closed the connection")
        if self._paused:
            self._drain = self.loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None

    # lifecycle
    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def _stop_reading(self) -> None:
        self._pause_reading()
        self.closing = True

    def _arm_idle_timer(self) -> None:
        self._idle_timer = self.loop.call_later(IDLE_TIMEOUT_S, self._idle_check)

    def _idle_check(self) -> None:
        # One timer per connection, re-armed for the time left, rather than a new timer per packet.
        idle_for = self.loop.time() - self.last_active
        if self.task is None and idle_for >= IDLE_TIMEOUT_S:
            self.close()
            return
        self._idle_timer = self.loop.call_later(max(IDLE_TIMEOUT_S - idle_for, 1.0), self._idle_check)

    def shutdown(self) -> None:
        """Close now if idle; otherwise after the response in hand (which says connection: close)."""
        self.closing = True
        if self.task is None:
            self.close()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


async def _finish(request: _Request, response: StreamResponse) -> None:
    """Send what the handler returned: a whole body, or the end of a stream it began."""
    if response.prepared:
        await response.write_eof()  # a no-op when the handler ended the stream itself
    elif isinstance(response, Response):
        await response.send(request)
    else:  # a stream response never prepared: it has no body
        response.content_length = 0
        await response.prepare(request)
        await response.write_eof()


# -- the server ----------------------------------------------------------------------------------
class AgentServer:
    """Serve ``handler`` on host:port (port 0: any free port, see :attr:`port` after :meth:`start`), or on
    ``sock``, a socket already listening (connections made before :meth:`start` wait in its backlog)."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0,
                 authorize: Callable[[Headers], bool] | None = None, sock: socket.socket | None = None) -> None:
        self.handler = handler
        self.authorize = authorize  # when it says no, the request's body is not buffered
        self.buffered = 0  # bytes of request bodies held right now (MAX_BUFFERED_BYTES)
        self.host = host
        self.port = port
        self.sock = sock
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.sock is not None:
            self._server = await loop.create_server(lambda: _Connection(self), sock=self.sock)
        else:
            self._server = await loop.create_server(lambda: _Connection(self), self.host, self.port,
                                                    reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Stop accepting, let requests in hand finish for up to ``grace_s``, then cancel them and close."""
        if self._server is None:
            return
        self._server.close()
        for conn in list(self.connections):
            conn.shutdown()
        tasks = {conn.task for conn in self.connections if conn.task is not None}
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        self._server = None


__all__ = ["BODY_DEADLINE_S", "HEAD_TIMEOUT_S", "IDLE_TIMEOUT_S", "MAX_BODY_BYTES", "MAX_BUFFERED_BYTES",
           "MAX_HEAD_BYTES", "MAX_URL_BYTES", "SHUTDOWN_GRACE_S", "AgentServer"]
