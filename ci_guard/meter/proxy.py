"""The metering proxy: an aiohttp server on 127.0.0.1 that the agent talks to instead of the provider.

Routes: ``/anthropic/...`` forwards to the Anthropic upstream, ``/openai/v1/...`` to the OpenAI (or
OpenAI-compatible) upstream. Generation endpoints are metered through a wire adapter; harmless GETs
pass through; any other POST is refused unless the policy allows it, because an unmetered POST
could spend money behind the meter's back.

The agent authenticates with the per-run token; the proxy swaps it for the real key, which only
ci-guard's own process holds.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
from aiohttp import web

from ci_guard.ledger.records import CallRecord
from ci_guard.meter.caps import PlannedCall
from ci_guard.meter.providers.base import CallResult, WireAdapter
from ci_guard.meter.providers.registry import adapter_for
from ci_guard.meter.session import MeterSession
from ci_guard.meter.upstreams import Upstreams
from ci_guard.pricing.usage import Usage
from ci_guard.secrets import redact

HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer",
        "Trailers", "Transfer-Encoding", "Upgrade", "Host", "Content-Length",
    )
)
# Credentials of the agent (the run token) never go upstream; encoding is negotiated by us.
DROP_REQUEST = HOP_BY_HOP | {"x-api-key", "authorization", "accept-encoding"}
DROP_RESPONSE = HOP_BY_HOP | {"content-encoding"}

class MeterProxy:
    """The proxy application for one run. Start with :meth:`start`, stop with :meth:`close`."""

    def __init__(self, session: MeterSession, upstreams: Upstreams, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.session = session
        self.upstreams = upstreams
        self.host = host
        self.port = port
        self._client: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._inflight: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{provider:anthropic|openai}/{tail:.*}", self.handle)
        app.router.add_route("GET", "/_ci_guard/health", self.health)
        self._client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.upstreams.connect_timeout_s,
                                          sock_read=self.upstreams.read_timeout_s),
            auto_decompress=True,
            trust_env=True,  # HTTPS_PROXY / NO_PROXY: CI runners behind a corporate proxy
        )
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        if sockets:
            self.port = sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=5)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"run_id": self.session.run_id, "stopped": self.session.guard.stopped})

    # -- request handling --------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        presented = request.headers.get("x-api-key")
        if presented is None:
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                presented = auth[7:].strip()
        return presented is not None and hmac.compare_digest(presented.encode(), self.session.token.encode())

    async def handle(self, request: web.Request) -> web.StreamResponse:
        provider = request.match_info["provider"]
        tail = request.match_info["tail"]
        if not self._authorized(request):
            return self._error(provider, 401, "authentication_error",
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
                    return await self._metered(request, provider, tail, adapter)
                if not self._unmetered_allowed(provider, path):
                    return self._error(
                        provider, 403, "permission_error",
                        f"ci-guard: POST {path} is not a metered endpoint and could spend money "
                        "unmetered; allow it in the policy (enforcement.allow_unmetered_posts) if it is harmless",
                    )
            elif request.method not in ("GET", "HEAD"):
                return self._error(provider, 405, "invalid_request_error",
                                   f"ci-guard: method {request.method} is not proxied")
            return await self._passthrough(request, provider, tail)
        finally:
            if task is not None:
                self._inflight.discard(task)

    def _unmetered_allowed(self, provider: str, path: str) -> bool:
        full = f"/{provider}{path}"
        allowed = self.session.decision.enforcement.allow_unmetered_posts
        return any(full.rstrip("/") == p.rstrip("/") or path.rstrip("/") == p.rstrip("/") for p in allowed)

    def _upstream_headers(self, request: web.Request, provider: str) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in DROP_REQUEST}
        headers.update(self.upstreams.auth_headers(provider))
        headers["accept-encoding"] = "identity"
        return headers

    def _target(self, request: web.Request, provider: str, tail: str) -> str:
        url = self.upstreams.target(provider, tail)
        if request.query_string:
            url += "?" + request.query_string
        return url

    async def _passthrough(self, request: web.Request, provider: str, tail: str) -> web.StreamResponse:
        assert self._client is not None
        body = await request.read()
        try:
            async with self._client.request(
                request.method, self._target(request, provider, tail),
                headers=self._upstream_headers(request, provider), data=body or None,
            ) as upstream:
                payload = await upstream.read()
                return web.Response(status=upstream.status, body=payload, headers=_response_headers(upstream))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return self._error(provider, 502, "api_error", f"ci-guard: upstream unreachable: {_describe(exc)}")

    async def _count_tokens(self, request: web.Request, provider: str, tail: str) -> web.StreamResponse:
        # Forwarded and recorded (it is free and not a turn), but still subject to the runtime cap.
        guard = self.session.guard
        admission = guard.admit(PlannedCall("count_tokens", 0, None, None, is_turn=False))
        if not admission.allowed:
            self.session.announce_stop_if_needed()
            return self._error(provider, 400, "invalid_request_error", _cap_message(admission.cap, admission.message))
        return await self._passthrough(request, provider, tail)

    async def _metered(self, request: web.Request, provider: str, tail: str,
                       adapter: WireAdapter) -> web.StreamResponse:
        session = self.session
        raw = await request.read()
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("the request body is not a JSON object")
        except ValueError as exc:
            return self._error(provider, 400, "invalid_request_error", f"ci-guard: invalid JSON body: {exc}")

        original = body
        info = adapter.inspect(body)
        requested_model = info.model
        model = requested_model
        allowed = session.allowed_models
        if allowed and model not in allowed:
            if session.decision.enforcement.model_enforcement == "reject" or not session.decision.model:
                return self._refused(request, provider, adapter, info.model, "model_not_allowed",
                                     f"ci-guard: model {model!r} is not allowed for this run "
                                     f"(allowed: {', '.join(sorted(allowed))})", info.fingerprint)
            model = session.decision.model
            body = adapter.set_model(body, model)

        refusal = session.pricer.refusal(model)
        if refusal:
            return self._refused(request, provider, adapter, model, "unpriced_model", refusal, info.fingerprint)

        remaining = session.guard.remaining_usd()
        planned = PlannedCall(
            fingerprint=info.fingerprint,
            estimated_input_tokens=info.estimated_input_tokens,
            max_output_tokens=info.max_output_tokens,
            worst_case_usd=session.pricer.worst_case(model, info.estimated_input_tokens, info.max_output_tokens),
        )
        fit = None
        if remaining is not None and planned.worst_case_usd is not None and planned.worst_case_usd > remaining > 0:
            # only a call whose worst case does not fit needs to know how much output still does
            fit = session.pricer.max_output_within(model, info.estimated_input_tokens, remaining)
            if fit is not None and fit < getattr(adapter, "min_output_tokens", 1):
                fit = 0  # below the API's minimum output cap the call cannot be made valid: refuse it
        admission = session.guard.admit(planned, fit)
        if not admission.allowed:
            return self._refused(request, provider, adapter, model, admission.cap or "cap",
                                 _cap_message(admission.cap, admission.message), info.fingerprint)
        max_output = info.max_output_tokens
        if admission.max_output_tokens is not None and (max_output is None or admission.max_output_tokens < max_output):
            body = adapter.clamp_output(body, admission.max_output_tokens)
            max_output = admission.max_output_tokens
        held = session.guard.hold(
            planned.worst_case_usd if max_output == info.max_output_tokens
            else session.pricer.worst_case(model, info.estimated_input_tokens, max_output))

        body, strip_usage = adapter.prepare(body)
        # Adapters return a new object when they change a request: forward the agent's own bytes otherwise.
        data = raw if body is original else json.dumps(body, separators=(",", ":")).encode()
        return await self._forward_metered(request, provider, tail, adapter, data, strip_usage,
                                           requested_model, model, info.stream, info.fingerprint, held)

    async def _forward_metered(self, request: web.Request, provider: str, tail: str, adapter: WireAdapter,
                               data: bytes, strip_usage: bool, requested_model: str | None,
                               model: str | None, stream: bool, fp: str, held: Decimal) -> web.StreamResponse:
        assert self._client is not None
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        result = CallResult()
        status_code: int | None = None
        call_status = "ok"
        response: web.StreamResponse
        try:
            async with self._client.post(
                self._target(request, provider, tail),
                headers=self._upstream_headers(request, provider),
                data=data,
            ) as upstream:
                status_code = upstream.status
                ctype = upstream.headers.get("content-type", "")
                if "text/event-stream" in ctype:
                    response, result, call_status = await self._relay_stream(request, upstream, adapter, strip_usage,
                                                                             provider)
                else:
                    payload = await upstream.read()
                    # Send first, meter after: the agent is not kept waiting for our bookkeeping.
                    # (The call's worst case stays held until it is settled, so a next call that
                    # arrives in between cannot overspend.)
                    response = await _send_whole(request, upstream, payload)
                    result = adapter.parse_response(payload)
                    result.complete = result.complete or upstream.status < 400
                if upstream.status >= 400:
                    call_status = "error"
        except TimeoutError:
            call_status, status_code = "error", 504
            result.error = f"upstream timed out (no data for {self.upstreams.read_timeout_s:g}s)"
            response = self._error(provider, 504, "timeout_error", f"ci-guard: {result.error}")
        except aiohttp.ClientError as exc:
            call_status, status_code = "error", 502
            result.error = f"upstream unreachable: {_describe(exc)}"
            response = self._error(provider, 502, "api_error", f"ci-guard: {result.error}")
        except BaseException as exc:  # cancelled, or a bug: still account for the call, then let it go on
            result.error = result.error or f"the call was interrupted ({type(exc).__name__})"
            self._settle(request, adapter, result, started_at, t0, status_code, "cut", stream,
                         requested_model, model, fp, held)
            raise
        self._settle(request, adapter, result, started_at, t0, status_code, call_status, stream,
                     requested_model, model, fp, held)
        return response

    async def _relay_stream(self, request: web.Request, upstream: aiohttp.ClientResponse, adapter: WireAdapter,
                            strip_usage: bool, provider: str) -> tuple[web.StreamResponse, CallResult, str]:
        """Forward an SSE stream chunk by chunk while the adapter meters it on the side."""
        meter = adapter.stream_meter(strip_usage)
        response = web.StreamResponse(status=upstream.status, headers=_response_headers(upstream))
        await response.prepare(request)
        status = "ok"
        client_gone = False
        cut_error: str | None = None
        try:
            async for chunk in upstream.content.iter_any():
                out = meter.feed(chunk)
                if out and not client_gone:
                    try:
                        await response.write(out)
                    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
                        client_gone = True
                        break
            tail = meter.close()
            if tail and not client_gone:
                await response.write(tail)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as exc:
            status = "cut"
            cut_error = f"upstream stream ended early: {_describe(exc)}"
            if provider == "anthropic" and not client_gone:
                # A proper error event, so the agent's SDK raises instead of hanging on a half stream.
                err = json.dumps({"type": "error", "error": {"type": "api_error", "message": "ci-guard: "
                                  "the upstream stream ended before the message was complete"}})
                try:
                    await response.write(f"event: error\ndata: {err}\n\n".encode())
                except (ConnectionResetError, aiohttp.ClientConnectionResetError):
                    client_gone = True
        result = meter.result()
        if cut_error:
            result.error = result.error or cut_error
        if client_gone:
            status = "cut"
            result.error = result.error or "the agent closed the stream before it ended"
        elif not result.complete and status == "ok" and upstream.status < 400:
            status = "cut"
            result.error = result.error or "the stream ended without its final event"
        if not client_gone:
            try:
                await response.write_eof()
            except (ConnectionResetError, aiohttp.ClientConnectionResetError):
                pass
        return response, result, status

    def _settle(self, request: web.Request, adapter: WireAdapter, result: CallResult, started_at: datetime,
                t0: float, status_code: int | None, call_status: str, stream: bool,
                requested_model: str | None, model: str | None, fp: str, held: Decimal) -> None:
        session = self.session
        served = result.model_served or model
        cost = session.pricer.cost(served, result.usage) if _has_usage(result.usage) else Decimal(0)
        error_sig = None
        if call_status == "error":
            error_sig = f"{status_code} {result.error or ''}"[:200]
        session.guard.settle_call(cost_usd=cost, tool_calls=result.tool_calls, error_signature=error_sig,
                                  held_usd=held)
        session.record(CallRecord(
            run_id=session.run_id,
            seq=session.next_seq(),
            started_at=started_at,
            ended_at=datetime.now(UTC),
            provider=adapter.provider,
            endpoint=adapter.endpoint,
            model_requested=requested_model,
            model_served=served,
            usage=result.usage,
            cost_usd=cost,
            status=call_status,
            http_status=status_code,
            stream=stream,
            tool_calls=result.tool_calls,
            context_tokens=result.usage.context_tokens,
            latency_ms=(time.perf_counter() - t0) * 1000,
            fingerprint=fp,
            error=redact(result.error)[:500] if result.error else None,
            session_id=request.headers.get("x-claude-code-session-id"),
        ))

    def _refused(self, request: web.Request, provider: str, adapter: WireAdapter, model: str | None, cap: str,
                 message: str, fp: str) -> web.Response:
        session = self.session
        now = datetime.now(UTC)
        session.record(CallRecord(
            run_id=session.run_id, seq=session.next_seq(), started_at=now, ended_at=now,
            provider=adapter.provider, endpoint=adapter.endpoint, model_requested=model, model_served=None,
            usage=Usage(), cost_usd=Decimal(0), status="refused", http_status=400, fingerprint=fp,
            error=f"{cap}: {message}"[:500], session_id=request.headers.get("x-claude-code-session-id"),
            is_turn=False,
        ))
        return web.Response(status=400, body=adapter.error_body(400, cap, message),
                            content_type="application/json")

    def _error(self, provider: str, status: int, kind: str, message: str) -> web.Response:
        if provider == "anthropic":
            body = {"type": "error", "error": {"type": kind, "message": message}}
        else:
            body = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
        return web.json_response(body, status=status)


async def _send_whole(request: web.Request, upstream: aiohttp.ClientResponse, payload: bytes) -> web.StreamResponse:
    response = web.StreamResponse(status=upstream.status, headers=_response_headers(upstream))
    response.content_length = len(payload)
    try:
        await response.prepare(request)
        await response.write(payload)
        await response.write_eof()
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass  # the agent went away; the call is still metered and recorded
    return response


def _response_headers(upstream: aiohttp.ClientResponse) -> dict[str, str]:
    return {k: v for k, v in upstream.headers.items() if k.lower() not in DROP_RESPONSE}


def _has_usage(u: Usage) -> bool:
    return bool(u.input_tokens or u.output_tokens or u.cache_read_tokens or u.cache_write_tokens)


def _cap_message(cap: str | None, detail: str) -> str:
    return (f"ci-guard: this run was stopped by its {cap} cap ({detail}). "
            "This is not retryable; end the task now.")


def _describe(exc: BaseException) -> str:
    return redact(f"{type(exc).__name__}: {exc}".strip().rstrip(":"))


__all__ = ["MeterProxy"]
