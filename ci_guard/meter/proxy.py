"""The metering proxy: a lean HTTP server on 127.0.0.1 that the agent talks to instead of the provider.

Routes: ``/anthropic/...`` forwards to the Anthropic upstream, ``/openai/v1/...`` to the OpenAI (or
OpenAI-compatible) upstream. Generation endpoints are metered through a wire adapter; harmless GETs
pass through; any other POST is refused unless the policy allows it, because an unmetered POST
could spend money behind the meter's back.

The agent authenticates with the per-run token; the proxy swaps it for the real key, which only
ci-guard's own process holds.

The server is :mod:`ci_guard.meter.agent_server`; the handlers here see only the request/response
interface of :mod:`ci_guard.meter.agent_http`.
"""

from __future__ import annotations

import asyncio
import hmac
import socket
from typing import Any

from ci_guard.meter import loop
from ci_guard.meter.agent_http import Request, Response, StreamResponse, json_response
from ci_guard.meter.agent_server import SHUTDOWN_GRACE_S, AgentServer
from ci_guard.meter.caps import PlannedCall
from ci_guard.meter.metered import DROP_REQUEST, MeteredCall, cap_message, describe, response_headers
from ci_guard.meter.providers.registry import adapter_for
from ci_guard.meter.session import MeterSession
from ci_guard.meter.upstream_client import Headers, UpstreamError
from ci_guard.meter.upstream_hop import UpstreamHop
from ci_guard.meter.upstreams import Upstreams
from ci_guard.secrets import redact_bytes

PROVIDERS = ("anthropic", "openai")
# After this many request bytes, the proxy gives freed memory back to the system once it has had
# no request in flight for TRIM_IDLE_S (see loop.release_free_memory).
TRIM_AFTER_BYTES = 16 * 1024 * 1024
TRIM_IDLE_S = 0.5
HEALTH_PATH = "/_ci_guard/health"


class MeterProxy:
    """The proxy application for one run. Start with :meth:`start`, stop with :meth:`close`."""

    def __init__(self, session: MeterSession, upstreams: Upstreams, *, host: str = "127.0.0.1",
                 port: int = 0, sock: socket.socket | None = None) -> None:
        """Serve on host:port, or on ``sock`` when given (a socket already listening on its address)."""
        self.session = session
        self.upstreams = upstreams
        self.host, self.port = sock.getsockname()[:2] if sock is not None else (host, port)
        self.sock = sock
        self.client: UpstreamHop | None = None
        self._server: AgentServer | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._bytes_since_trim = 0
        self._trim_timer: asyncio.TimerHandle | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        # The lean client for direct upstreams; aiohttp for those behind an HTTP(S) proxy from the env.
        self.client = UpstreamHop(self.upstreams)
        self._server = AgentServer(self.route, self.host, self.port, authorize=self._token_ok, sock=self.sock)
        await self._server.start()
        self.port = self._server.port

    async def close(self) -> None:
        # In-flight calls get SHUTDOWN_GRACE_S to finish when the run ends (well below `stop`'s wait).
        if self._server is not None:
            await self._server.close(SHUTDOWN_GRACE_S)
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=SHUTDOWN_GRACE_S)
        if self.client is not None:
            await self.client.close()

    async def route(self, request: Request) -> StreamResponse:
        """``/anthropic/...`` and ``/openai/...`` are proxied; ``/_ci_guard/health`` answers for `ci-guard start`."""
        provider, sep, tail = request.path[1:].partition("/")
        if sep and provider in PROVIDERS:
            return await self.handle(request, provider, tail)
        if request.path == HEALTH_PATH:
            if not self._authorized(request):  # the run id and state are the run's business only
                return json_response({"error": "ci-guard: invalid or missing run token"}, status=401)
            if request.method in ("GET", "HEAD"):
                return await self.health(request)
            return json_response({"error": f"method {request.method} not allowed"}, status=405)
        return json_response({"error": f"ci-guard: no route for {request.path}"}, status=404)

    async def health(self, request: Request) -> StreamResponse:
        return json_response({"run_id": self.session.run_id, "stopped": self.session.guard.stopped})

    # -- request handling --------------------------------------------------------------------
    def _authorized(self, request: Request) -> bool:
        return self._token_ok(request.headers)

    def _token_ok(self, headers: Headers) -> bool:
        presented = headers.get("x-api-key")
        if presented is None:
            auth = headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                presented = auth[7:].strip()
        # surrogateescape: a header of non-UTF-8 bytes is a wrong token, not a crash.
        return presented is not None and hmac.compare_digest(presented.encode("utf-8", "surrogateescape"),
                                                             self.session.token.encode())

    def other_calls_in_flight(self) -> bool:
        """Whether requests other than the current one are being served (read, planned, relayed)."""
        return len(self._inflight) > (asyncio.current_task() in self._inflight)

    async def handle(self, request: Request, provider: str, tail: str) -> StreamResponse:
        if not self._authorized(request):
            return self.error(provider, 401, "authentication_error",
                               "ci-guard: invalid or missing run token for this metering proxy")
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            path = "/" + tail
            if request.method == "POST":
                if provider == "anthropic" and path.rstrip("/") == "/v1/messages/count_tokens":
                    return await self._count_tokens(request, provider, tail)
                adapter = adapter_for(provider, path)
                if adapter is not None:
                    return await MeteredCall(self, request, provider, tail, adapter).run()
                if not self._unmetered_allowed(provider, path) and _is_batch(provider, path):
                    return self.error(
                        provider, 403, "permission_error",
                        f"ci-guard: POST {path} is refused: batch jobs are billed when they finish, after "
                        "the run, so the meter could neither cap nor record them (docs/run.md, "
                        "\"Batch jobs\"); send the requests to the Messages / Responses API instead",
                    )
                if not self._unmetered_allowed(provider, path):
                    return self.error(
                        provider, 403, "permission_error",
                        f"ci-guard: POST {path} is not a metered endpoint and could spend money "
                        "unmetered; allow it in the policy (enforcement.allow_unmetered_posts) if it is harmless",
                    )
            elif request.method not in ("GET", "HEAD"):
                return self.error(provider, 405, "invalid_request_error",
                                   f"ci-guard: method {request.method} is not proxied")
            return await self._passthrough(request, provider, tail)
        finally:
            if task is not None:
                self._inflight.discard(task)
            self._bytes_since_trim += getattr(request, "body_size", 0)
            if self._bytes_since_trim >= TRIM_AFTER_BYTES and not self._inflight:
                if self._trim_timer is not None:
                    self._trim_timer.cancel()
                self._trim_timer = asyncio.get_running_loop().call_later(TRIM_IDLE_S, self._trim_if_idle)

    def _trim_if_idle(self) -> None:
        self._trim_timer = None
        if not self._inflight:
            self._bytes_since_trim = 0
            loop.release_free_memory()

    def _unmetered_allowed(self, provider: str, path: str) -> bool:
        full = f"/{provider}{path}"
        allowed = self.session.decision.enforcement.allow_unmetered_posts
        return any(full.rstrip("/") == p.rstrip("/") or path.rstrip("/") == p.rstrip("/") for p in allowed)

    def upstream_headers(self, request: Request, provider: str) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in DROP_REQUEST}
        headers.update(self.upstreams.auth_headers(provider))
        headers["accept-encoding"] = "identity"
        return headers

    def target(self, request: Request, provider: str, tail: str) -> str:
        url = self.upstreams.target(provider, tail)
        if request.query_string:
            url += "?" + request.query_string
        return url

    async def _passthrough(self, request: Request, provider: str, tail: str) -> StreamResponse:
        assert self.client is not None
        body = await request.read()
        try:
            async with self.client.request(
                request.method, self.target(request, provider, tail), self.upstream_headers(request, provider),
                body or None,
            ) as upstream:
                payload = redact_bytes(await upstream.read())
                return Response(status=upstream.status, body=payload, headers=response_headers(upstream))
        except (UpstreamError, TimeoutError) as exc:
            return self.error(provider, 502, "api_error", f"ci-guard: upstream unreachable: {describe(exc)}")

    async def _count_tokens(self, request: Request, provider: str, tail: str) -> StreamResponse:
        # Forwarded and recorded (it is free and not a turn), but still subject to the runtime cap.
        guard = self.session.guard
        admission = guard.admit(PlannedCall("count_tokens", 0, None, None, is_turn=False))
        if not admission.allowed:
            self.session.announce_stop_if_needed()
            return self.error(provider, 400, "invalid_request_error", cap_message(admission.cap, admission.message))
        return await self._passthrough(request, provider, tail)

    def error(self, provider: str, status: int, kind: str, message: str) -> Response:
        if provider == "anthropic":
            body = {"type": "error", "error": {"type": kind, "message": message}}
        else:
            body = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
        return json_response(body, status=status)


def _is_batch(provider: str, path: str) -> bool:
    """Batch creation and its input-file upload: OpenAI ``/v1/batches`` and ``/v1/files``, Anthropic
    ``/v1/messages/batches``."""
    path = path.rstrip("/")
    if provider == "anthropic":
        return path.startswith("/v1/messages/batches")
    return path.startswith(("/v1/batches", "/v1/files", "/batches", "/files"))


__all__ = ["MeterProxy"]
