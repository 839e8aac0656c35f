"""OpenAI Chat Completions bodies and stream chunks for a planned reply."""

from __future__ import annotations

import time
from typing import Any

from ci_guard.simulator.conversation import Request
from ci_guard.simulator.ids import make_id
from ci_guard.simulator.replies import Reply

Event = tuple[str, Any]  # ("message", chunk dict) or ("message", "[DONE]")


def _tool_calls(reply: Reply, call: int) -> list[dict[str, Any]]:
    if reply.tool is None:
        return []
    return [{"id": make_id("call_", call), "type": "function",
             "function": {"name": reply.tool.name, "arguments": reply.tool.arguments}}]


def finish_reason(reply: Reply) -> str:
    if reply.truncated:
        return "length"
    return "tool_calls" if reply.tool is not None else "stop"


def body(request: Request, reply: Reply, usage: dict[str, Any], model: str, call: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    calls = _tool_calls(reply, call)
    if calls:
        message["tool_calls"] = calls
    return {"id": make_id("chatcmpl-", call), "object": "chat.completion", "created": int(time.time()),
            "model": model, "system_fingerprint": "fp_sim",
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish_reason(reply)}],
            "usage": usage}


def events(request: Request, reply: Reply, usage: dict[str, Any], model: str, call: int,
           include_usage: bool) -> list[Event]:
    base = {"id": make_id("chatcmpl-", call), "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "system_fingerprint": "fp_sim"}
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> Event:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return ("message", {**base, "choices": [choice], **extra})

    half = len(reply.text) // 2
    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": part}) for part in (reply.text[:half], reply.text[half:]) if part]
    for i, tc in enumerate(_tool_calls(reply, call)):
        args = tc["function"]["arguments"]
        cut = len(args) // 2
        out.append(chunk({"tool_calls": [{"index": i, "id": tc["id"], "type": "function",
                                          "function": {"name": tc["function"]["name"], "arguments": ""}}]}))
        out += [chunk({"tool_calls": [{"index": i, "function": {"arguments": part}}]})
                for part in (args[:cut], args[cut:]) if part]
    out.append(chunk({}, finish_reason(reply)))
    if include_usage:
        out.append(("message", {**base, "choices": [], "usage": usage}))
    out.append(("message", "[DONE]"))
    return out


def error(status: int, message: str | None = None) -> dict[str, Any]:
    kind, code, default = {
        400: ("invalid_request_error", None, "Invalid request"),
        401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided"),
        404: ("invalid_request_error", "not_found", "Not found"),
        429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests"),
        500: ("server_error", None, "The server had an error while processing your request."),
        503: ("server_error", None, "The engine is currently overloaded, please try again later"),
    }.get(status, ("server_error", None, f"Simulated error {status}"))
    return {"error": {"message": message or default, "type": kind, "param": None, "code": code}}


def models() -> dict[str, Any]:
    names = ["gpt-5", "gpt-5-mini", "gpt-5-codex", "gpt-4.1"]
    return {"object": "list",
            "data": [{"id": n, "object": "model", "created": 1754000000, "owned_by": "openai"} for n in names]}
