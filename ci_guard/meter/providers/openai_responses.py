"""OpenAI Responses API (``POST /v1/responses``, what Codex speaks): requests, bodies, SSE streams.

Usage is final in ``response.completed`` (also read from ``response.failed`` / ``.incomplete``
when present) under ``response.usage``. Tool calls are output items whose type ends in ``_call``
(``function_call``, ``custom_tool_call``, ``local_shell_call``, ``web_search_call``, ...), counted
from ``response.output_item.done`` events. A top-level ``error`` event carries code and message.
"""

from __future__ import annotations

from typing import Any

from ci_guard.meter.providers.base import (
    CallResult,
    RequestInfo,
    StreamMeter,
    WireAdapter,
    as_dict,
    as_str,
    error_text,
    load_json_body,
    request_info,
)
from ci_guard.meter.providers.body import updated
from ci_guard.meter.providers.openai_chat import openai_error_body
from ci_guard.meter.providers.sse import SSEEvent, SSEStreamMeter
from ci_guard.pricing.normalize import from_openai_responses
from ci_guard.pricing.usage import Usage

_SEMANTIC_KEYS = ("model", "input", "instructions", "tools", "tool_choice", "previous_response_id")
_TERMINAL = ("response.completed", "response.failed", "response.incomplete")
WEB_SEARCH_ITEM = "web_search_call"


class OpenAIResponses(WireAdapter):
    provider = "openai"
    endpoint = "responses"
    min_output_tokens = 16  # the API rejects a smaller max_output_tokens

    def inspect(self, body: dict[str, Any]) -> RequestInfo:
        return request_info(body, output_cap_keys=("max_output_tokens",),
                            input_keys=("instructions", "input", "tools"), semantic_keys=_SEMANTIC_KEYS)

    def prepare(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        return body, False  # response.completed always carries usage

    def set_model(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        return updated(body, {"model": model})

    def clamp_output(self, body: dict[str, Any], max_output_tokens: int) -> dict[str, Any]:
        """Lower ``max_output_tokens`` (it bounds reasoning and visible output together)."""
        limit = max(self.min_output_tokens, max_output_tokens)
        current = body.get("max_output_tokens")
        # a large body stays split: its conversation is not decoded to change the cap (providers/body.py)
        return updated(body, {"max_output_tokens": min(current, limit) if isinstance(current, int) else limit})

    def parse_response(self, body: bytes) -> CallResult:
        data, err = load_json_body(body)
        if err is not None:
            return CallResult(error=err)
        if data.get("error") and "output" not in data:
            return CallResult(error=error_text(data["error"]))
        result = CallResult(usage=from_openai_responses(as_dict(data.get("usage"))))
        _read_response(result, data)
        result.tool_calls = count_tool_items(data.get("output"))
        result.web_searches = count_web_searches(data.get("output"))
        return result

    def stream_meter(self, strip_usage_chunk: bool = False) -> StreamMeter:
        return ResponsesStreamMeter()

    def error_body(self, status: int, kind: str, message: str) -> bytes:
        return openai_error_body(status, kind, message)


def count_web_searches(output: Any) -> int:
    """``web_search_call`` items: the web search tool is billed per call, on top of the tokens."""
    if not isinstance(output, list):
        return 0
    return sum(1 for item in output if isinstance(item, dict) and item.get("type") == WEB_SEARCH_ITEM)


def count_tool_items(output: Any) -> int:
    if not isinstance(output, list):
        return 0
    return sum(1 for item in output if isinstance(item, dict) and _is_tool_item(item))


def _is_tool_item(item: dict[str, Any]) -> bool:
    return str(item.get("type", "")).endswith("_call")


def _read_response(result: CallResult, response: dict[str, Any]) -> None:
    """Fill model, stop reason, completeness and errors from a Response object."""
    result.model_served = as_str(response.get("model")) or result.model_served
    result.service_tier = as_str(response.get("service_tier")) or result.service_tier
    status = as_str(response.get("status"))
    if status == "completed":
        result.complete = True
        result.stop_reason = "completed"
    elif status == "incomplete":
        # A normal end, cut by max_output_tokens or a content filter: usage is final.
        result.complete = True
        result.stop_reason = as_str(as_dict(response.get("incomplete_details")).get("reason")) or "incomplete"
    elif status:
        result.stop_reason = status
    if response.get("error") and result.error is None:
        result.error = error_text(response["error"])


class ResponsesStreamMeter(SSEStreamMeter):
    def __init__(self) -> None:
        super().__init__(hold=False)
        self._usage: dict[str, Any] = {}
        self._done_tools = 0
        self._done_searches = 0

    def on_event(self, event: SSEEvent) -> bool:
        data = self.json_object(event)
        if data is None:
            return True
        kind = as_str(data.get("type")) or event.event
        if kind == "response.output_item.done":
            item = data.get("item")
            if isinstance(item, dict) and _is_tool_item(item):
                self._done_tools += 1
                self._result.tool_calls = self._done_tools
                if item.get("type") == WEB_SEARCH_ITEM:
                    self._done_searches += 1
                    self._result.web_searches = self._done_searches
        elif kind in _TERMINAL and isinstance(data.get("response"), dict):
            self._read_final(data["response"])
        elif kind == "response.created" and isinstance(data.get("response"), dict):
            self._result.model_served = as_str(data["response"].get("model")) or self._result.model_served
            self._result.service_tier = as_str(data["response"].get("service_tier")) or self._result.service_tier
        elif kind == "error":
            self.record_error(error_text({"type": data.get("code"), "message": data.get("message")}))
        return True

    def _read_final(self, response: dict[str, Any]) -> None:
        _read_response(self._result, response)
        if isinstance(response.get("usage"), dict):
            self._usage = response["usage"]
        # The final output list is authoritative when a server skipped output_item.done events.
        self._result.tool_calls = max(self._done_tools, count_tool_items(response.get("output")))
        self._result.web_searches = max(self._done_searches, count_web_searches(response.get("output")))

    def current_usage(self) -> Usage:
        return from_openai_responses(self._usage)
