"""OpenAI Responses bodies and SSE events for a planned reply (the shapes Codex parses).

Every event carries ``type`` and an increasing ``sequence_number``; the final ``response.completed``
holds the whole output list and the usage, which is where Codex reads it.
"""

from __future__ import annotations

import time
from typing import Any

from ci_guard.simulator.conversation import Request
from ci_guard.simulator.ids import make_id
from ci_guard.simulator.replies import Reply

Event = tuple[str, dict[str, Any]]


def _items(reply: Reply, call: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [{
        "type": "message", "id": make_id("msg_", call), "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
    }]
    if reply.tool is not None:
        items.append({"type": "function_call", "id": make_id("fc_", call), "call_id": make_id("call_", call),
                      "name": reply.tool.name, "arguments": reply.tool.arguments, "status": "completed"})
    return items


def _response(request: Request, model: str, call: int, status: str, output: list[Any],
              usage: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": make_id("resp_", call), "object": "response", "created_at": int(time.time()),
            "status": status, "model": model, "output": output, "usage": usage, "error": None,
            "incomplete_details": None, "instructions": None, "metadata": {}, "parallel_tool_calls": True,
            "temperature": 1.0, "top_p": 1.0, "tool_choice": "auto", "tools": [], "text": {"format": {"type": "text"}},
            "reasoning": {"effort": None, "summary": None}, "store": False, "service_tier": "default"}


def body(request: Request, reply: Reply, usage: dict[str, Any], model: str, call: int) -> dict[str, Any]:
    return _response(request, model, call, "completed", _items(reply, call), usage)


def events(request: Request, reply: Reply, usage: dict[str, Any], model: str, call: int) -> list[Event]:
    out: list[Event] = []

    def emit(kind: str, **payload: Any) -> None:
        out.append((kind, {"type": kind, "sequence_number": len(out), **payload}))

    emit("response.created", response=_response(request, model, call, "in_progress", [], None))
    emit("response.in_progress", response=_response(request, model, call, "in_progress", [], None))
    items = _items(reply, call)
    for index, item in enumerate(items):
        if item["type"] == "message":
            _message_events(emit, index, item)
        else:
            _call_events(emit, index, item)
    emit("response.completed", response=_response(request, model, call, "completed", items, usage))
    return out


def _message_events(emit: Any, index: int, item: dict[str, Any]) -> None:
    text = item["content"][0]["text"]
    emit("response.output_item.added", output_index=index,
         item={**item, "status": "in_progress", "content": []})
    empty = {"type": "output_text", "text": "", "annotations": []}
    emit("response.content_part.added", item_id=item["id"], output_index=index, content_index=0, part=empty)
    half = len(text) // 2
    for part in (text[:half], text[half:]):
        if part:
            emit("response.output_text.delta", item_id=item["id"], output_index=index, content_index=0,
                 delta=part, logprobs=[])
    emit("response.output_text.done", item_id=item["id"], output_index=index, content_index=0, text=text,
         logprobs=[])
    emit("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
         part=item["content"][0])
    emit("response.output_item.done", output_index=index, item=item)


def _call_events(emit: Any, index: int, item: dict[str, Any]) -> None:
    emit("response.output_item.added", output_index=index,
         item={**item, "arguments": "", "status": "in_progress"})
    args = item["arguments"]
    half = len(args) // 2
    for part in (args[:half], args[half:]):
        if part:
            emit("response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=part)
    emit("response.function_call_arguments.done", item_id=item["id"], output_index=index, arguments=args,
         name=item["name"])
    emit("response.output_item.done", output_index=index, item=item)
