"""Anthropic Messages API (``POST /v1/messages``): requests, JSON bodies and SSE streams.

Usage in a stream (docs, "Streaming Messages"): ``message_start.message.usage`` carries the input
side and a provisional ``output_tokens``; every ``message_delta.usage`` is *cumulative*, so each
field it carries replaces the one seen before (never adds). An ``error`` event may arrive after
the HTTP 200. Tool calls are ``tool_use`` and ``server_tool_use`` content blocks.
"""

from __future__ import annotations

import json
from typing import Any

from ci_guard.meter.providers.base import (
    CallResult,
    RequestInfo,
    StreamMeter,
    WireAdapter,
    as_dict,
    as_list,
    as_str,
    error_text,
    load_json_body,
    request_info,
)
from ci_guard.meter.providers.body import updated
from ci_guard.meter.providers.sse import SSEEvent, SSEStreamMeter
from ci_guard.pricing.normalize import anthropic_web_searches, from_anthropic
from ci_guard.pricing.usage import Usage

THINKING_MIN_BUDGET = 1024  # the API rejects a smaller budget_tokens
THINKING_EDIT = "clear_thinking_20251015"  # context editing of thinking blocks: needs thinking on
TOOL_BLOCKS = ("tool_use", "server_tool_use")
ERROR_TYPES = {
    "invalid_request_error", "authentication_error", "billing_error", "permission_error",
    "not_found_error", "conflict_error", "request_too_large", "rate_limit_error", "api_error",
    "timeout_error", "overloaded_error",
}
_TYPE_BY_STATUS = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 409: "conflict_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}
_SEMANTIC_KEYS = ("model", "messages", "system", "tools", "tool_choice")


class AnthropicMessages(WireAdapter):
    provider = "anthropic"
    endpoint = "messages"

    def inspect(self, body: dict[str, Any]) -> RequestInfo:
        info = request_info(body, output_cap_keys=("max_tokens",), input_keys=("system", "messages", "tools"),
                            semantic_keys=_SEMANTIC_KEYS)
        info.speed = as_str(body.get("speed"))  # fast mode: an Anthropic request field only
        return info

    def prepare(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        return body, False  # every Anthropic stream reports usage already

    def set_model(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        return updated(body, {"model": model})

    def clamp_output(self, body: dict[str, Any], max_output_tokens: int) -> dict[str, Any]:
        """Lower ``max_tokens``; keep extended thinking valid (1024 <= budget_tokens < max_tokens).

        Thinking tokens are part of ``max_tokens``. When no valid budget fits any more (max_tokens
        <= 1024) thinking is dropped: the API accepts earlier thinking blocks in the history of a
        request without thinking, and the call can still answer.
        """
        current = body.get("max_tokens")
        limit = max(self.min_output_tokens, max_output_tokens)
        new = min(current, limit) if isinstance(current, int) else limit
        changes: dict[str, Any] = {"max_tokens": new}
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") == "enabled":
            if new <= THINKING_MIN_BUDGET:
                return _without_thinking(body, changes)
            budget = thinking.get("budget_tokens")
            budget = budget if isinstance(budget, int) else new - 1
            changes["thinking"] = {**thinking, "budget_tokens": max(THINKING_MIN_BUDGET, min(budget, new - 1))}
        # a large body stays split: its conversation is not decoded to change the cap (providers/body.py)
        return updated(body, changes)

    def parse_response(self, body: bytes) -> CallResult:
        data, err = load_json_body(body)
        if err is not None:
            return CallResult(error=err)
        if data.get("type") == "error" or ("error" in data and "content" not in data):
            return CallResult(error=error_text(data.get("error")))
        content = as_list(data.get("content"))
        cleared_uses, cleared_tokens, cleared_turns = applied_edits(data.get("context_management"))
        return CallResult(
            usage=from_anthropic(as_dict(data.get("usage"))),
            tool_calls=sum(1 for b in content if _is_tool_block(b)),
            model_served=as_str(data.get("model")),
            complete=data.get("type") == "message",
            stop_reason=as_str(data.get("stop_reason")),
            web_searches=anthropic_web_searches(as_dict(data.get("usage"))),
            service_tier=as_str(as_dict(data.get("usage")).get("service_tier")),
            inference_geo=as_str(as_dict(data.get("usage")).get("inference_geo")),
            speed=as_str(as_dict(data.get("usage")).get("speed")),
            cleared_tool_uses=cleared_uses, cleared_input_tokens=cleared_tokens, cleared_thinking_turns=cleared_turns,
        )

    def stream_meter(self, strip_usage_chunk: bool = False) -> StreamMeter:
        return AnthropicStreamMeter()

    def error_body(self, status: int, kind: str, message: str) -> bytes:
        """``{"type":"error","error":{"type","message"}}``.

        ``kind`` is used as the error type when it is one of Anthropic's; otherwise (a ci-guard
        cap name) the type follows the status. For caps use status 400 (``invalid_request_error``):
        the SDKs and Claude Code do not retry it, whereas 408/409/429/5xx/529 are retried.
        """
        if kind in ERROR_TYPES:
            err_type = kind
        else:
            err_type = _TYPE_BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error")
            message = f"{message} [ci_guard_{kind}]" if kind else message
        return json.dumps({"type": "error", "error": {"type": err_type, "message": message}}).encode()


def _without_thinking(body: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Thinking dropped: a thinking-clearing edit goes too (the API refuses it without thinking)."""
    drop = ["thinking"]
    cm = body.get("context_management")
    edits = cm.get("edits") if isinstance(cm, dict) else None
    if isinstance(edits, list):
        kept = [e for e in edits if not (isinstance(e, dict) and e.get("type") == THINKING_EDIT)]
        if len(kept) != len(edits):
            if kept:
                changes["context_management"] = {**cm, "edits": kept}  # type: ignore[dict-item]
            else:
                drop.append("context_management")
    return updated(body, changes, drop=drop)


def applied_edits(context_management: Any) -> tuple[int, int, int]:
    """(tool uses cleared, input tokens cleared, thinking turns cleared) from a response's
    ``context_management`` object (``clear_tool_uses_20250919`` and ``clear_thinking_20251015``
    edits each report their ``cleared_input_tokens``; the tokens are summed)."""
    if not isinstance(context_management, dict) or not isinstance(context_management.get("applied_edits"), list):
        return 0, 0, 0
    counts = {"cleared_tool_uses": 0, "cleared_input_tokens": 0, "cleared_thinking_turns": 0}
    for edit in context_management["applied_edits"]:
        if not isinstance(edit, dict):
            continue
        for key in counts:
            value = edit.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                counts[key] += value
    return counts["cleared_tool_uses"], counts["cleared_input_tokens"], counts["cleared_thinking_turns"]


def _is_tool_block(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") in TOOL_BLOCKS


class AnthropicStreamMeter(SSEStreamMeter):
    def __init__(self) -> None:
        super().__init__(hold=False)
        self._usage: dict[str, Any] = {}

    def on_event(self, event: SSEEvent) -> bool:
        data = self.json_object(event)
        if data is None:
            return True
        kind = as_str(data.get("type")) or event.event
        if kind == "message_start":
            message = as_dict(data.get("message"))
            self._result.model_served = as_str(message.get("model")) or self._result.model_served
            start_usage = as_dict(message.get("usage"))
            self._result.service_tier = as_str(start_usage.get("service_tier"))
            self._result.inference_geo = as_str(start_usage.get("inference_geo"))
            self._result.speed = as_str(start_usage.get("speed"))
            self._merge(message.get("usage"))
        elif kind == "message_delta":
            delta_usage = as_dict(data.get("usage"))
            self._result.speed = as_str(delta_usage.get("speed")) or self._result.speed
            self._merge(delta_usage)
            if "context_management" in data:  # cumulative like usage: the latest report replaces
                uses, tokens, turns = applied_edits(data["context_management"])
                self._result.cleared_tool_uses, self._result.cleared_input_tokens = uses, tokens
                self._result.cleared_thinking_turns = turns
            stop = as_str(as_dict(data.get("delta")).get("stop_reason"))
            if stop:
                self._result.stop_reason = stop
        elif kind == "content_block_start":
            if _is_tool_block(data.get("content_block")):
                self._result.tool_calls += 1
        elif kind == "message_stop":
            self._result.complete = True
        elif kind == "error":
            self.record_error(error_text(data.get("error")))
        return True  # unknown events (ping, new types) are forwarded and ignored

    def _merge(self, usage: Any) -> None:
        # Cumulative counts: a field present replaces the previous value -- but only a count (or a
        # breakdown object) does: a null or a garbled value must not erase a count already read.
        for key, value in as_dict(usage).items():
            if isinstance(value, dict) or (isinstance(value, int | float) and not isinstance(value, bool)):
                self._usage[key] = value
        self._result.web_searches = anthropic_web_searches(self._usage)

    def current_usage(self) -> Usage:
        return from_anthropic(self._usage)

