"""OpenAI Chat Completions (``POST /v1/chat/completions``): requests, JSON bodies and SSE streams.

A stream reports usage only when asked (``stream_options.include_usage``): then one extra chunk
with ``choices: []`` and the request's ``usage`` comes just before ``data: [DONE]``. So that no
stream goes unmetered, :meth:`OpenAIChat.prepare` asks for it when the client did not, and the
meter then drops that chunk from what the client sees (it never asked for it).
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
from ci_guard.pricing.normalize import from_openai_chat
from ci_guard.pricing.usage import Usage

ERROR_TYPES = {
    "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
    "rate_limit_error", "insufficient_quota", "server_error", "api_error", "invalid_api_key",
}
_TYPE_BY_STATUS = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 429: "rate_limit_error",
}
_SEMANTIC_KEYS = ("model", "messages", "tools", "tool_choice", "functions", "function_call")


class OpenAIChat(WireAdapter):
    provider = "openai"
    endpoint = "chat.completions"

    def inspect(self, body: dict[str, Any]) -> RequestInfo:
        info = request_info(body, output_cap_keys=("max_completion_tokens", "max_tokens"),
                            input_keys=("messages", "tools", "functions"), semantic_keys=_SEMANTIC_KEYS)
        n = body.get("n")
        if isinstance(n, int) and not isinstance(n, bool) and n > 1:
            info.choices = n  # billed: the prompt once, each choice's output (request_checks bounds n)
        return info

    def prepare(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        if not body.get("stream"):
            return body, False
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            return body, False
        options = dict(options) if isinstance(options, dict) else {}
        options["include_usage"] = True
        return updated(body, {"stream_options": options}), True

    def set_model(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        return updated(body, {"model": model})

    def clamp_output(self, body: dict[str, Any], max_output_tokens: int) -> dict[str, Any]:
        """Lower the output cap, under the name the client used.

        ``max_completion_tokens`` is the current name (reasoning models reject ``max_tokens``); a
        client that sent only the legacy ``max_tokens`` keeps it, since its server may know no
        other name. Reasoning tokens count against the cap, so the cap bounds the billed output.
        """
        changes: dict[str, Any] = {}  # a large body stays split (providers/body.py)
        limit = max(self.min_output_tokens, max_output_tokens)
        legacy_only = "max_tokens" in body and "max_completion_tokens" not in body
        names = ("max_tokens",) if legacy_only else ("max_completion_tokens", "max_tokens")
        for name in names:
            current = body.get(name)
            if name == "max_completion_tokens" or isinstance(current, int):
                changes[name] = min(current, limit) if isinstance(current, int) else limit
        return updated(body, changes)

    def parse_response(self, body: bytes) -> CallResult:
        data, err = load_json_body(body)
        if err is not None:
            return CallResult(error=err)
        if data.get("error") and "choices" not in data:
            return CallResult(error=error_text(data.get("error")))
        choices = [c for c in as_list(data.get("choices")) if isinstance(c, dict)]
        return CallResult(
            usage=from_openai_chat(as_dict(data.get("usage"))),
            tool_calls=sum(_message_tool_calls(as_dict(c.get("message"))) for c in choices),
            model_served=as_str(data.get("model")),
            complete="choices" in data,
            stop_reason=as_str(choices[0].get("finish_reason")) if choices else None,
            service_tier=as_str(data.get("service_tier")),
        )

    def stream_meter(self, strip_usage_chunk: bool = False) -> StreamMeter:
        return ChatStreamMeter(strip_usage_chunk)

    def error_body(self, status: int, kind: str, message: str) -> bytes:
        return openai_error_body(status, kind, message)


def openai_error_body(status: int, kind: str, message: str) -> bytes:
    """``{"error":{"message","type","param","code"}}`` (Chat Completions and Responses alike).

    A ci-guard cap name becomes ``code: "ci_guard_<cap>"`` with ``type: invalid_request_error``;
    use status 400 for caps: the SDKs (and Codex) retry 408/409/429 and 5xx, not 400.
    """
    if kind in ERROR_TYPES:
        err_type, code = kind, None
    else:
        err_type = _TYPE_BY_STATUS.get(status, "server_error" if status >= 500 else "invalid_request_error")
        code = f"ci_guard_{kind}" if kind else None
    return json.dumps({"error": {"message": message, "type": err_type, "param": None, "code": code}}).encode()


def _message_tool_calls(message: dict[str, Any]) -> int:
    calls = message.get("tool_calls")
    count = len(calls) if isinstance(calls, list) else 0
    return count + (1 if message.get("function_call") else 0)  # the legacy single function call


def _index(value: Any) -> int:
    # An index keys a set: anything but an int (a list would not even hash) counts as index 0.
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class ChatStreamMeter(SSEStreamMeter):
    """Chunks are data-only events; ``[DONE]`` ends the stream (and is always forwarded)."""

    def __init__(self, strip_usage_chunk: bool) -> None:
        super().__init__(hold=strip_usage_chunk)
        self._strip = strip_usage_chunk
        self._usage: dict[str, Any] = {}
        self._tool_indices: set[tuple[int, int]] = set()
        self._legacy_calls: set[int] = set()

    def on_event(self, event: SSEEvent) -> bool:
        if event.data.strip() == "[DONE]":
            self._result.complete = True
            return True
        data = self.json_object(event)
        if data is None:
            return True
        if data.get("error"):
            self.record_error(error_text(data["error"]))
            return True
        self._result.model_served = as_str(data.get("model")) or self._result.model_served
        self._result.service_tier = as_str(data.get("service_tier")) or self._result.service_tier
        choices = data.get("choices")
        for choice in as_list(choices):
            self._read_choice(choice)
        usage = data.get("usage")
        if isinstance(usage, dict):
            self._usage = usage  # the usage chunk holds the whole request's totals
            if self._strip and not choices:
                return False
        return True

    def _read_choice(self, choice: Any) -> None:
        if not isinstance(choice, dict):
            return
        index = _index(choice.get("index"))
        delta = as_dict(choice.get("delta"))
        for call in as_list(delta.get("tool_calls")):
            if isinstance(call, dict):
                # Later fragments of a call repeat its index; a new index is a new call.
                self._tool_indices.add((index, _index(call.get("index"))))
        if delta.get("function_call"):
            self._legacy_calls.add(index)
        self._result.tool_calls = len(self._tool_indices) + len(self._legacy_calls)
        finish = as_str(choice.get("finish_reason"))
        if finish:
            self._result.stop_reason = finish

    def current_usage(self) -> Usage:
        return from_openai_chat(self._usage)
