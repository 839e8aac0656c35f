"""One metered generation call, from the agent's request to the ledger row.

1. **Plan**: read the request, enforce the model, price it, ask the caps (waiting while calls in
   flight hold the rest of the cost cap), lower the output cap when needed, hold the worst case.
2. **Forward**: send it upstream with the real key; relay the answer (streams chunk by chunk) while
   the wire adapter meters it on the side.
3. **Settle**: price what was used (an unpriced or cut-off call is never free), release the hold,
   update the caps and record the call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ci_guard.ledger.records import CallRecord
from ci_guard.meter.agent_http import Request, Response, StreamResponse
from ci_guard.meter.caps import WAIT_FOR_CALLS_IN_FLIGHT, Admission, PlannedCall
from ci_guard.meter.pricer import ASSUMED_MAX_OUTPUT
from ci_guard.meter.providers.base import CallResult, RequestInfo, StreamMeter, WireAdapter, billed_tier
from ci_guard.meter.providers.body import SCANS_COMPILED, request_pieces
from ci_guard.meter.request_checks import BadRequest, parse_body, unmetered_fee_tools
from ci_guard.meter.upstream_client import UpstreamError
from ci_guard.meter.upstream_hop import Response as UpstreamAnswer
from ci_guard.pricing.usage import Usage
from ci_guard.secrets import StreamRedactor, redact, redact_bytes
from ci_guard.tokens.media import openai_image_extra_tokens

if TYPE_CHECKING:
    from ci_guard.meter.proxy import MeterProxy

# Credentials of the agent (the run token) never go upstream; encoding is negotiated by us.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "host", "content-length",
})
DROP_REQUEST = HOP_BY_HOP | {"x-api-key", "authorization", "accept-encoding"}
DROP_RESPONSE = HOP_BY_HOP | {"content-encoding"}

# How long a call may wait for calls in flight to release the part of the cost cap they hold.
MAX_WAIT_FOR_HELD_S = 600.0
# The response header in which Gemini says which tier served a call
# (https://ai.google.dev/gemini-api/docs/priority-inference): "standard", "priority" or "flex".
GEMINI_TIER_HEADER = "x-gemini-service-tier"
# OpenAI's prompt_cache_options.ttl that makes a request's cache writes dearer (GPT-5.6+: 2.5x input
# instead of the default 30-minute 1.25x)
LONG_CACHE_TTL = "12h"
# A stream cut before the provider reported its output is charged one output token per this many
# bytes relayed to the agent (SSE framing makes it an overestimate: the cap errs on the safe side).
CUT_BYTES_PER_OUTPUT_TOKEN = 10
# A whole JSON answer that reports no usage is charged one output token per this many bytes of its
# body: ~4 bytes a token is the usual average for text, and the JSON around it only adds bytes.
BODY_BYTES_PER_OUTPUT_TOKEN = 4
# Where a large body is inspected. With the compiled scans (_bytescan.c) inspection costs ~0.35 ms
# per MB, and when no other call is in flight the event loop spends it itself: there is nobody to
# hold up, and the hand-off to a worker thread and back cost a 1 MB request ~0.25 ms more
# (BENCHMARKS.md, "Scale"). While other calls are in flight, a body from
# INSPECT_IN_THREAD_WHEN_BUSY_BYTES on goes to the thread, so their streams are not held up behind
# it (the head-of-line row there); so does any body from INSPECT_IN_THREAD_BYTES on (~6 ms inline),
# and, without the compiled scans (~1.5 ms per MB in Python), every body from 256 kB on.
INSPECT_IN_THREAD_BYTES = 16 * 1024 * 1024 if SCANS_COMPILED else 256 * 1024
INSPECT_IN_THREAD_WHEN_BUSY_BYTES = 256 * 1024


class Refusal(Exception):
    """The call is refused before it goes upstream (cap, model, price, unsupported request)."""

    def __init__(self, cap: str, message: str, model: str | None) -> None:
        super().__init__(message)
        self.cap = cap
        self.message = message
        self.model = model


@dataclass
class Plan:
    info: RequestInfo
    requested_model: str | None
    model: str | None
    data: bytes | list[Any]  # what goes upstream: the agent's bytes, or the pieces of a changed request
    strip_usage: bool
    held: Decimal
    worst: Decimal | None = None  # the call's worst case, as held (journaled while it is in flight)
    worst_output: int = 0  # the output tokens that worst case assumes (every choice's whole cap)
    changes: Any = None  # transforms.Changes when the context policy changed the call
    beta: str | None = None  # an anthropic-beta feature a transform needs


class MeteredCall:
    def __init__(self, proxy: MeterProxy, request: Request, provider: str, tail: str,
                 adapter: WireAdapter) -> None:
        self.proxy = proxy
        self.session = proxy.session
        self.request = request
        self.provider = provider
        self.tail = tail
        self.adapter = adapter

    # -- 1. plan ---------------------------------------------------------------------------------
    async def run(self) -> StreamResponse:
        raw = await self.request.read()
        try:
            if len(raw) >= INSPECT_IN_THREAD_BYTES or (len(raw) >= INSPECT_IN_THREAD_WHEN_BUSY_BYTES
                                                        and self.proxy.other_calls_in_flight()):
                # on a worker thread the event loop serves the other requests meanwhile (the split
                # runs without the GIL; elsewhere the loop gets it back within the 0.2 ms switch
                # interval); see INSPECT_IN_THREAD_BYTES for when the loop does it itself
                body, info = await asyncio.to_thread(self._inspect, raw)
            else:
                body, info = self._inspect(raw)
        except BadRequest as exc:
            return self.proxy.error(self.provider, 400, "invalid_request_error", f"ci-guard: {exc}")
        except RecursionError:  # nested just below the parser's limit: too deep for the meter's walks
            return self.proxy.error(self.provider, 400, "invalid_request_error",
                                    "ci-guard: the JSON body is nested too deeply")
        try:
            plan = await self._plan(raw, body, info)
        except Refusal as refusal:
            return self._refused(refusal, info)
        except RecursionError:  # nothing is held yet: the hold is the last step of planning
            return self.proxy.error(self.provider, 400, "invalid_request_error",
                                    "ci-guard: the JSON body is nested too deeply")
        del raw, body  # the plan holds what goes upstream: a megabyte body is not kept twice
        return await self._forward(plan)

    def _inspect(self, raw: bytes) -> tuple[Mapping[str, Any], RequestInfo]:
        transforms = self.session.transforms
        # a large body is split at its top level only (providers/body.py), and where the run's
        # context policy indexes the conversation, its messages are located in the same pass
        split = transforms.split(self.provider, self.adapter.endpoint) if transforms is not None else None
        body = parse_body(raw, split)
        info = self.adapter.inspect(body)  # type: ignore[arg-type]
        if self.provider == "openai" and info.inference_geo is None:
            # OpenAI has no request field for it: a data-residency upstream (eu.api.openai.com...)
            # processes every call in its region, and bills the regional uplift (pricing "inference_geo").
            info.inference_geo = self.proxy.upstreams.openai_region()
        return body, info

    async def _plan(self, raw: bytes, body: dict[str, Any], info: RequestInfo) -> Plan:
        session, adapter = self.session, self.adapter
        original = body
        if adapter.endpoint == "responses" and body.get("background"):
            raise Refusal("unmeterable_request", "ci-guard: background responses cannot be metered (their "
                          "usage is only known to a later poll); send the request without background", info.model)
        model, body = self._enforce_model(info, body)
        changes, beta = None, None
        if session.transforms is not None:
            # The transforms read the request as a mapping (a large one stays lazily decoded: only
            # the parts a transform reads are decoded) and build a new dict only when they change it.
            done = session.transforms.apply(
                provider=adapter.provider, endpoint=adapter.endpoint, raw=raw, body=body, model=model,
                max_output=info.max_output_tokens, input_tokens=info.estimated_input_tokens, stream=info.stream,
                set_model=adapter.set_model, not_dearer=session.pricer.not_dearer)
            body, model, beta = done.body, done.model, done.beta
            changes = done.changes if done.changes.any() or done.changes.agent_caches else None
            removed = done.changes.pruned_tokens + done.changes.cleared_tokens
            if removed:  # the caps and the worst case judge what is sent, not what the agent sent
                info = dataclasses.replace(info, estimated_input_tokens=max(0, info.estimated_input_tokens - removed))
        extra = openai_image_extra_tokens(model, *info.openai_images)
        if extra:  # images on a model that bills them at a multiplier (gpt-4o-mini: ~48k tokens each)
            info = dataclasses.replace(info, estimated_input_tokens=info.estimated_input_tokens + extra)
        refusal = session.pricer.refusal(model)
        if refusal:
            raise Refusal("unpriced_model", refusal, model)
        fee_tools = unmetered_fee_tools(body.get("tools"))
        if fee_tools and session.decision.enforcement.strict:
            raise Refusal("unmetered_tool", f"ci-guard: hosted tool(s) {', '.join(fee_tools)} carry fees ci-guard "
                          "does not meter and the policy is strict (enforcement.strict); remove them from the "
                          "request", info.model)
        if info.unmeasured_media and session.decision.enforcement.strict:
            raise Refusal("unmeasured_media", f"ci-guard: {info.unmeasured_media} image(s) or document(s) by URL or "
                          "file id: their size cannot be known before the call and the policy is strict "
                          "(enforcement.strict); send them inline (base64)", info.model)
        worst = self._worst_case(model, info, info.max_output_tokens)
        planned = PlannedCall(
            fingerprint=info.fingerprint, estimated_input_tokens=info.estimated_input_tokens,
            max_output_tokens=info.max_output_tokens, worst_case_usd=worst,
        )
        admission = await self._admit(planned, model, info)
        max_output = info.max_output_tokens
        target = admission.max_output_tokens  # per choice (see _fit)
        if target is None and max_output is None and session.guard.limits.max_cost_usd is not None:
            target = ASSUMED_MAX_OUTPUT  # the worst case assumed this cap: make it true
        if target is not None and (max_output is None or target < max_output):
            body = adapter.clamp_output(body, target)
            max_output = target
            worst = self._worst_case(model, info, max_output)
        body, strip_usage = adapter.prepare(body)
        # Adapters return a new object when they change a request: forward the agent's own bytes otherwise.
        # A large request is changed by splicing its parts into the agent's bytes (providers/body.py).
        data = raw if body is original else request_pieces(body)
        held = session.guard.hold(worst)  # last: nothing before it may fail with a hold taken
        worst_output = (max_output or ASSUMED_MAX_OUTPUT) * info.choices
        return Plan(info, info.model, model, data, strip_usage, held, worst, worst_output, changes, beta)

    def _worst_case(self, model: str | None, info: RequestInfo, max_output: int | None) -> Decimal | None:
        """The most the call can cost: the input once, the output cap once per choice (Chat ``n``)."""
        per_choice = max_output or ASSUMED_MAX_OUTPUT
        pricer = self.session.pricer
        worst = pricer.worst_case(model, info.estimated_input_tokens, per_choice * info.choices,
                                  billed_tier(info), info.inference_geo, self._long_writes(info))
        if worst is not None and pricer.searches_every_call(model):  # a search model's fee is certain
            worst += pricer.fees(self.adapter.provider, 1, model)
        return worst

    def _long_writes(self, info: RequestInfo) -> bool:
        """Whether the call may write long-life cache entries (the model's cache_write_1h): any
        Anthropic request (a breakpoint's ttl "1h"), an OpenAI one only with a 12-hour cache life."""
        return self.adapter.provider != "openai" or info.cache_ttl == LONG_CACHE_TTL

    def _enforce_model(self, info: RequestInfo, body: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        session = self.session
        model, allowed = info.model, session.allowed_models
        if not allowed or model in allowed:
            return model, body
        if session.decision.enforcement.model_enforcement == "reject" or not session.decision.model:
            raise Refusal("model_not_allowed", f"ci-guard: model {model!r} is not allowed for this run "
                          f"(allowed: {', '.join(sorted(allowed))})", model)
        return session.decision.model, self.adapter.set_model(body, session.decision.model)

    async def _admit(self, planned: PlannedCall, model: str | None, info: RequestInfo) -> Admission:
        """Ask the caps; while calls in flight hold what this one needs, wait for them to end."""
        session, guard = self.session, self.session.guard
        deadline = time.monotonic() + MAX_WAIT_FOR_HELD_S
        while True:
            admission = guard.admit(planned, self._fit(planned, model, info))
            if admission.cap != WAIT_FOR_CALLS_IN_FLIGHT:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                admission = Admission(False, cap="max_cost", message=admission.message)
                break
            session.settled.clear()
            try:
                await asyncio.wait_for(session.settled.wait(), min(left, 5.0))
            except TimeoutError:
                pass  # re-check: the runtime cap may have passed meanwhile
        if not admission.allowed:
            raise Refusal(admission.cap or "cap", cap_message(admission.cap, admission.message), model)
        return admission

    def _fit(self, planned: PlannedCall, model: str | None, info: RequestInfo) -> int | None:
        remaining = self.session.guard.remaining_usd()
        worst = planned.worst_case_usd
        if remaining is None or worst is None or not (worst > remaining > 0):
            return None  # only a call whose worst case does not fit needs to know how much output still does
        fit = self.session.pricer.max_output_within(model, planned.estimated_input_tokens, remaining,
                                                    billed_tier(info), info.inference_geo, self._long_writes(info))
        if fit is not None:
            fit //= info.choices  # every choice may use the whole cap: share what fits between them
        if fit is not None and fit < getattr(self.adapter, "min_output_tokens", 1):
            return 0  # below the API's minimum output cap the call cannot be made valid: refuse it
        return fit

    # -- 2. forward ------------------------------------------------------------------------------
    async def _forward(self, plan: Plan) -> StreamResponse:
        proxy = self.proxy
        assert proxy.client is not None
        started_at, t0 = datetime.now(UTC), time.perf_counter()
        # The call's number is taken before it goes upstream, so its journal line and its ledger row
        # share it: a line without a row is a call that ci-guard died during (inflight.py).
        seq = self.session.next_seq()
        journal = getattr(self.session.recorder, "journal", None)
        if journal is not None:
            journal.begin(run_id=self.session.run_id, seq=seq, started_at=started_at, provider=self.adapter.provider,
                          endpoint=self.adapter.endpoint, model_requested=plan.requested_model, model=plan.model,
                          input_tokens=plan.info.estimated_input_tokens, output_tokens=plan.worst_output,
                          cost_usd=plan.worst, stream=plan.info.stream)
        meter: StreamMeter | None = None
        result, status_code, call_status, relayed = CallResult(), None, "ok", 0
        served_tier = None
        try:
            headers = proxy.upstream_headers(self.request, self.provider)
            if plan.beta:
                _add_beta(headers, plan.beta)
            async with proxy.client.request(
                "POST", proxy.target(self.request, self.provider, self.tail), headers, plan.data,
            ) as upstream:
                status_code = upstream.status
                # Gemini reports the tier that served a call in a header, not the body (standard after a
                # priority request was downgraded, flex when flex served it): it prices the call.
                served_tier = upstream.headers.get(GEMINI_TIER_HEADER)
                if "text/event-stream" in upstream.headers.get("content-type", ""):
                    meter = self.adapter.stream_meter(plan.strip_usage)
                    response, result, call_status, relayed = await self._relay(upstream, meter)
                else:
                    payload = await _read_bounded(upstream)
                    # Send first, meter after: the agent is not kept waiting for our bookkeeping (the
                    # call's worst case stays held until it is settled, so nothing can overspend).
                    response = await _send_whole(self.request, upstream, payload)
                    relayed = len(payload)
                    result = self.adapter.parse_response(payload)
                    result.complete = result.complete or upstream.status < 400
                if upstream.status >= 400:
                    call_status = "error"
        except TimeoutError:
            call_status, status_code = "error", 504
            result = meter.result() if meter else result
            result.error = f"upstream timed out (no data for {proxy.upstreams.read_timeout_s:g}s)"
            response = proxy.error(self.provider, 504, "timeout_error", f"ci-guard: {result.error}")
        except UpstreamBodyTooLarge as exc:
            # The upstream answered and may have billed: charged like a cut answer (the input
            # estimate; nothing reached the agent), never as free.
            call_status, status_code = "cut", 502
            result.error = f"upstream {exc}"
            response = proxy.error(self.provider, 502, "api_error", f"ci-guard: {result.error}")
        except UpstreamError as exc:
            call_status, status_code = "error", 502
            result = meter.result() if meter else result
            result.error = f"upstream unreachable: {describe(exc)}"
            response = proxy.error(self.provider, 502, "api_error", f"ci-guard: {result.error}")
        except BaseException as exc:  # cancelled, or a bug: still account for the call, then let it go on
            result = meter.result() if meter else result
            result.error = result.error or f"the call was interrupted ({type(exc).__name__})"
            self._settle(plan, seq, result, started_at, t0, status_code, "cut", relayed)
            raise
        if served_tier and not result.service_tier:
            result.service_tier = served_tier
        self._settle(plan, seq, result, started_at, t0, status_code, call_status, relayed)
        return response

    async def _relay(self, upstream: UpstreamAnswer,
                     meter: StreamMeter) -> tuple[StreamResponse, CallResult, str, int]:
        """Forward an SSE stream chunk by chunk; return the response, what was metered, the status, bytes relayed."""
        response = StreamResponse(status=upstream.status, headers=response_headers(upstream))
        # The first event usually arrives with the head: then both leave in one write. The head is
        # never held while the agent would have to wait for an event that is not here yet.
        await response.prepare(self.request, flush=not upstream.body_ready())
        relayed, client_gone, cut_error = 0, False, None
        redactor = StreamRedactor()  # an upstream that echoes the real key must not hand it to the agent
        try:
            early = meter.forwards_unchanged  # forward first, meter after: parsing never delays the agent
            async for chunk in upstream.chunks():
                out = redactor.feed(chunk if early else meter.feed(chunk))
                try:
                    if out:
                        await response.write(out)
                        relayed += len(out)
                except ConnectionResetError:
                    client_gone = True
                    break
                finally:
                    if early:  # also when the agent is gone: what the upstream sent is metered
                        meter.feed(chunk)
            tail = redactor.feed(meter.close()) + redactor.close()
            if tail and not client_gone:
                await response.write(tail)
                relayed += len(tail)
        except (UpstreamError, TimeoutError) as exc:  # cut short, broken, malformed or silent too long
            cut_error = f"upstream stream ended early: {describe(exc)}"
            if self.provider == "anthropic":
                client_gone = not await _write_error_event(response)
        result = meter.result()
        status = "ok"
        if cut_error or client_gone:
            status = "cut"
            result.error = result.error or cut_error or "the agent closed the stream before it ended"
        elif not result.complete and upstream.status < 400:
            status = "cut"
            result.error = result.error or "the stream ended without its final event"
        if not client_gone:
            try:
                await response.write_eof()
            except ConnectionResetError:
                pass
        return response, result, status, relayed

    # -- 3. settle -------------------------------------------------------------------------------
    def _settle(self, plan: Plan, seq: int, result: CallResult, started_at: datetime, t0: float,
                status_code: int | None, call_status: str, relayed: int) -> None:
        session = self.session
        usage, note = result.usage, None
        if plan.info.cache_ttl == LONG_CACHE_TTL and usage.cache_write_tokens:
            # OpenAI: every breakpoint such a request writes has the 12-hour minimum life (priced as the
            # model's cache_write_1h); the usage reports the writes without their life
            usage = dataclasses.replace(usage, cache_write_1h_tokens=usage.cache_write_tokens)
        if call_status == "cut":
            usage, note = _estimate_cut(usage, plan.info.estimated_input_tokens, relayed)
        elif call_status == "ok" and not _has_usage(usage):
            # An answer without usage (a Chat stream from an upstream that ignores include_usage, a
            # body with no or null usage) was still served and billed: never record it as free.
            usage, note = _estimate_missing(plan.info.estimated_input_tokens, relayed, plan.info.stream)
        served = result.model_served or plan.model
        # The tier that served the call sets its price; when the answer did not say, the one asked for
        # (except a cheaper one, flex or batch: see billed_tier). Anthropic fast mode is the tier "fast".
        tier = billed_tier(plan.info, result)
        geo = result.inference_geo or plan.info.inference_geo
        cost = Decimal(0)
        if _has_usage(usage):
            priced = session.pricer.cost(served, usage, plan.model, plan.requested_model, service_tier=tier,
                                         inference_geo=geo)
            cost = priced if priced is not None else plan.held  # never free: charge the held worst case
        context = self._savings(plan, result, usage, served, cost, tier, geo) if plan.changes is not None else None
        searches = result.web_searches
        if not searches and status_code is not None and status_code < 400 \
                and session.pricer.searches_every_call(served):
            searches = 1  # a Chat search model (gpt-5-search-api...) searched before it answered
        cost += session.pricer.fees(self.adapter.provider, searches, served, preview=plan.info.web_search_preview)
        error_sig = f"{status_code} {result.error or ''}"[:200] if call_status == "error" else None
        session.guard.settle_call(cost_usd=cost, tool_calls=result.tool_calls, error_signature=error_sig,
                                  held_usd=plan.held)
        error = "; ".join(x for x in (result.error, note) if x) or None
        session.record(CallRecord(
            run_id=session.run_id, seq=seq, started_at=started_at, ended_at=datetime.now(UTC),
            provider=self.adapter.provider, endpoint=self.adapter.endpoint, model_requested=plan.requested_model,
            model_served=served, usage=usage, cost_usd=cost, status=call_status, http_status=status_code,
            stream=plan.info.stream, tool_calls=result.tool_calls, context_tokens=usage.context_tokens,
            latency_ms=(time.perf_counter() - t0) * 1000, fingerprint=plan.info.fingerprint,
            error=redact(error)[:500] if error else None,
            session_id=self.request.headers.get("x-claude-code-session-id"), web_searches=searches,
            service_tier=tier, inference_geo=geo, estimated=note is not None, context=context,
            context_saved_usd=Decimal(context["saved_usd"]) if context and context.get("saved_usd") else Decimal(0),
        ))

    def _savings(self, plan: Plan, result: CallResult, usage: Usage, served: str | None, cost: Decimal,
                 tier: str | None, geo: str | None) -> dict[str, Any]:
        """What the context policy changed in this call and what that saved (see transforms/savings.py)."""
        from ci_guard.meter.transforms import savings

        changes = plan.changes
        if result.cleared_input_tokens or result.cleared_tool_uses or result.cleared_thinking_turns:
            changes.cleared_tokens, changes.cleared_results = result.cleared_input_tokens, result.cleared_tool_uses
            changes.cleared_thinking_turns = result.cleared_thinking_turns
            changes.cleared_by = "provider"
        out: dict[str, Any] = changes.as_json()
        if not _has_usage(usage) or not changes.any():
            return out
        as_sent_model = changes.routed_from or served
        as_sent = self.session.pricer.cost(as_sent_model, savings.counterfactual(usage, changes, self.adapter.provider),
                                           plan.requested_model, served, service_tier=tier, inference_geo=geo)
        saved = savings.saved_usd(as_sent, cost)
        if saved is not None:
            out.update(cost_as_sent_usd=str(as_sent), saved_usd=str(saved), method=savings.method(changes))
        return out

    def _refused(self, refusal: Refusal, info: RequestInfo) -> Response:
        session, now = self.session, datetime.now(UTC)
        session.record(CallRecord(
            run_id=session.run_id, seq=session.next_seq(), started_at=now, ended_at=now,
            provider=self.adapter.provider, endpoint=self.adapter.endpoint, model_requested=refusal.model,
            model_served=None, usage=Usage(), cost_usd=Decimal(0), status="refused", http_status=400,
            fingerprint=info.fingerprint, error=f"{refusal.cap}: {refusal.message}"[:500],
            session_id=self.request.headers.get("x-claude-code-session-id"), is_turn=False,
        ))
        return Response(status=400, body=self.adapter.error_body(400, refusal.cap, refusal.message),
                            content_type="application/json")


def _add_beta(headers: dict[str, str], feature: str) -> None:
    """Append ``feature`` to the request's ``anthropic-beta`` header (whatever its case), once."""
    from ci_guard.meter.transforms.clear import with_beta

    key = next((k for k in headers if k.lower() == "anthropic-beta"), "anthropic-beta")
    headers[key] = with_beta(headers.get(key))


def _estimate_cut(usage: Usage, estimated_input: int, relayed: int) -> tuple[Usage, str | None]:
    """What a stream cut before its final usage is charged: never less than what it visibly used.

    Input comes from the provider when it reported it (Anthropic's message_start), else from the
    request's estimate; output is at least the bytes relayed to the agent over
    CUT_BYTES_PER_OUTPUT_TOKEN.
    """
    input_tokens = usage.input_tokens
    if usage.context_tokens == 0:
        input_tokens = estimated_input
    output = max(usage.output_tokens, relayed // CUT_BYTES_PER_OUTPUT_TOKEN)
    if (input_tokens, output) == (usage.input_tokens, usage.output_tokens):
        return usage, None
    estimated = Usage(input_tokens=input_tokens, cache_write_tokens=usage.cache_write_tokens,
                      cache_write_1h_tokens=usage.cache_write_1h_tokens, cache_read_tokens=usage.cache_read_tokens,
                      output_tokens=output, reasoning_tokens=usage.reasoning_tokens)
    return estimated, "usage estimated: the stream ended before the provider reported it"


def _estimate_missing(estimated_input: int, received: int, stream: bool) -> tuple[Usage, str]:
    """What an answer that reported no usage is charged: the request's input estimate (the one its
    worst case was held with) and output from the bytes received."""
    per_token = CUT_BYTES_PER_OUTPUT_TOKEN if stream else BODY_BYTES_PER_OUTPUT_TOKEN
    output = max(1, received // per_token)
    return (Usage(input_tokens=max(1, estimated_input), output_tokens=output),
            "usage estimated: the provider's answer reported no usage")


# A whole (non-streamed) answer is held in memory to be metered and redacted: an upstream must not
# be able to make the proxy hold more than this (streams are relayed chunk by chunk). A real answer
# is a few hundred kilobytes; 64 MiB is what an agent may send (agent_server.MAX_BODY_BYTES).
MAX_UPSTREAM_BODY = 64 * 1024 * 1024


class UpstreamBodyTooLarge(UpstreamError):
    """A non-streamed upstream answer larger than :data:`MAX_UPSTREAM_BODY`."""


async def _read_bounded(upstream: UpstreamAnswer) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in upstream.chunks():
        size += len(chunk)
        if size > MAX_UPSTREAM_BODY:
            raise UpstreamBodyTooLarge(f"its answer is larger than {MAX_UPSTREAM_BODY // (1024 * 1024)} MiB "
                                       "(not relayed)")
        parts.append(chunk)
    return b"".join(parts)


async def _write_error_event(response: StreamResponse) -> bool:
    """A proper Anthropic error event, so the agent's SDK raises instead of waiting on a half stream."""
    err = json.dumps({"type": "error", "error": {"type": "api_error", "message": "ci-guard: the upstream "
                      "stream ended before the message was complete"}})
    try:
        await response.write(f"event: error\ndata: {err}\n\n".encode())
        return True
    except ConnectionResetError:
        return False


async def _send_whole(request: Request, upstream: UpstreamAnswer, payload: bytes) -> StreamResponse:
    payload = redact_bytes(payload)  # an upstream that echoes the real key must not hand it to the agent
    response = StreamResponse(status=upstream.status, headers=response_headers(upstream))
    response.content_length = len(payload)
    try:
        await response.prepare(request)
        await response.write(payload)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the agent went away; the call is still metered and recorded
    return response


def response_headers(upstream: UpstreamAnswer) -> dict[str, str]:
    return {k: redact(v) for k, v in upstream.headers.items() if k.lower() not in DROP_RESPONSE}


def _has_usage(u: Usage) -> bool:
    return bool(u.input_tokens or u.output_tokens or u.cache_read_tokens or u.cache_write_tokens)


def cap_message(cap: str | None, detail: str) -> str:
    return (f"ci-guard: this run was stopped by its {cap} cap ({detail}). "
            "This is not retryable; end the task now.")


def describe(exc: BaseException) -> str:
    return redact(f"{type(exc).__name__}: {exc}".strip().rstrip(":"))
