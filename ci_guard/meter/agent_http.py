"""What the proxy's handlers see of the agent-facing HTTP server: a request and two kinds of response.

The handlers (:mod:`ci_guard.meter.proxy`, :mod:`ci_guard.meter.metered`) depend only on this
module, not on the server behind it (:mod:`ci_guard.meter.agent_server`), the same way they reach
upstreams through :mod:`ci_guard.meter.upstream_hop`.

* :class:`Request`: method, path, raw query string, headers (case-insensitive, original names and
  values kept for forwarding) and ``await read()`` for the body.
* :class:`Response`: a whole body, sent in one write.
* :class:`StreamResponse`: ``prepare`` / ``write`` / ``write_eof``, each ``write`` leaves at once
  (server-sent events). When the agent has gone away, ``write`` raises :class:`ClientGone`, a
  ``ConnectionResetError``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from ci_guard.meter.upstream_client import Headers


class ClientGone(ConnectionResetError):
    """The agent closed its connection; nothing more can be sent to it."""


class ResponseWriter(Protocol):
    """The server's side of one response (one per request)."""

    async def start(self, status: int, headers: Iterable[tuple[str, str]], content_length: int | None,
                    flush: bool = True) -> None: ...
    async def write(self, data: bytes) -> None: ...
    async def end(self) -> None: ...


class Request(Protocol):
    method: str
    path: str  # percent-decoded, without the query
    query_string: str  # as the agent sent it (still percent-encoded)
    headers: Headers

    async def read(self) -> bytes: ...

    @property
    def writer(self) -> ResponseWriter: ...


class StreamResponse:
    """A response whose body is written piece by piece after :meth:`prepare`."""

    def __init__(self, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.headers = dict(headers or {})
        self.content_length: int | None = None  # None: chunked (or close-delimited for HTTP/1.0)
        self._writer: ResponseWriter | None = None
        self.finished = False

    @property
    def prepared(self) -> bool:
        return self._writer is not None

    async def prepare(self, request: Request, flush: bool = True) -> None:
        """Start the response. ``flush=False`` keeps a stream's head until the first write (one
        packet instead of two when that write follows at once)."""
        self._writer = request.writer
        await self._writer.start(self.status, self.headers.items(), self.content_length, flush)

    async def write(self, data: bytes) -> None:
        assert self._writer is not None, "prepare() first"
        await self._writer.write(data)

    async def write_eof(self) -> None:
        if self._writer is not None and not self.finished:
            self.finished = True
            await self._writer.end()


class Response(StreamResponse):
    """A whole body; the server sends status, headers and body in one write."""

    def __init__(self, status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None,
                 content_type: str | None = None) -> None:
        super().__init__(status, headers)
        if content_type is not None:
            self.headers["content-type"] = content_type
        self.body = body
        self.content_length = len(body)

    async def send(self, request: Request) -> None:
        await self.prepare(request)
        if self.body:
            await self.write(self.body)
        await self.write_eof()


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(data).encode(), content_type="application/json")


Handler = Callable[[Request], Awaitable[StreamResponse]]

__all__ = ["ClientGone", "Handler", "Request", "Response", "ResponseWriter", "StreamResponse", "json_response"]
