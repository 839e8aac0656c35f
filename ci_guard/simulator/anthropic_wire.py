"""Anthropic Messages bodies and SSE events for a planned reply.

The stream follows the documented order (message_start, content_block_start/delta/stop per block,
message_delta with cumulative usage, message_stop) plus one ``ping``, as the real API sends. No
thinking blocks are emitted: clients accept a reply without them, and a fake signature would not.
"""

from __future__ import annotations

import json
from typing import Any

from ci_guard.simulator.conversation import Request
from ci_guard.simulator.ids import make_id
from ci_guard.simulator.replies import Reply

Event = tuple[str, dict[str, Any]]


def _blocks(reply: Reply, call: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": reply.text}]
    if reply.tool is not None:
        blocks.append({"type": "tool_use", "id": make_id("toolu_", call), "name": reply.tool.name,
                       "input": reply.tool.input})
    return blocks


def _message(request: Request, model: str, call: int, content: list[Any], usage: dict[str, Any],
             stop: str | None) -> dict[str, Any]:
    return {"id": make_id("msg_", call), "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage}


def stop_reason(reply: Reply) -> str:
    if reply.truncated:
        return "max_tokens"
    return "tool_use" if reply.tool is not None else "end_turn"


def body(request: Request, reply: Reply, usage: dict[str, Any], model: str, call: int) -> dict[str, Any]:
    return _message(request, model, call, _blocks(reply, call), usage, stop_reason(reply))


def events(request: Request, reply: Reply, usage: dict[str, Any], model: str, call: int) -> list[Event]:
    start_usage = {**usage, "output_tokens": 1}  # provisional, as the API sends it
    out: list[Event] = [
        ("message_start", {"type": "message_start",
                           "message": _message(request, model, call, [], start_usage, None)}),
        ("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(_blocks(reply, call)):
        out += _block_events(index, block)
    final = {k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens",
                                    "cache_read_input_tokens", "output_tokens")}
    out.append(("message_delta", {"type": "message_delta",
                                  "delta": {"stop_reason": stop_reason(reply), "stop_sequence": None},
                                  "usage": final}))
    out.append(("message_stop", {"type": "message_stop"}))
    return out


def _block_events(index: int, block: dict[str, Any]) -> list[Event]:
    if block["type"] == "text":
        start = {"type": "text", "text": ""}
        text = block["text"]
        half = len(text) // 2
        deltas = [{"type": "text_delta", "text": part} for part in (text[:half], text[half:]) if part]
    else:
        start = {**block, "input": {}}
        args = json.dumps(block["input"], separators=(",", ":"))
        half = len(args) // 2
        deltas = [{"type": "input_json_delta", "partial_json": ""}]
        deltas += [{"type": "input_json_delta", "partial_json": p} for p in (args[:half], args[half:]) if p]
    out: list[Event] = [("content_block_start", {"type": "content_block_start", "index": index,
                                                  "content_block": start})]
    out += [("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas]
    out.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return out


def error(status: int, message: str | None = None) -> dict[str, Any]:
    kind, default = {
        400: ("invalid_request_error", "Invalid request"),
        401: ("authentication_error", "invalid x-api-key"),
        404: ("not_found_error", "Not found"),
        429: ("rate_limit_error", "Number of requests has exceeded your rate limit"),
        500: ("api_error", "Internal server error"),
        529: ("overloaded_error", "Overloaded"),
    }.get(status, ("api_error", f"Simulated error {status}"))
    return {"type": "error", "error": {"type": kind, "message": message or default},
            "request_id": "req_sim"}


def count_tokens(request: Request) -> dict[str, Any]:
    return {"input_tokens": request.total_tokens}


def models() -> dict[str, Any]:
    names = ["claude-sonnet-4-5", "claude-opus-4-5", "claude-haiku-4-5"]
    data = [{"type": "model", "id": n, "display_name": n, "created_at": "2025-09-29T00:00:00Z"} for n in names]
    return {"data": data, "has_more": False, "first_id": names[0], "last_id": names[-1]}
