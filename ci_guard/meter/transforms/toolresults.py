"""Where the tool results of a request are, in each wire format, and how to replace one.

Requests are never modified in place: :func:`replace` copies only the containers on the path to
the changed value, so an untouched request stays the very object the agent sent (and its bytes are
forwarded unchanged) and a changed one shares everything else with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ci_guard.meter.providers.body import updated

Path = tuple[Any, ...]


@dataclass
class ToolResult:
    path: Path  # from the body to the text (a str) of the result
    text: str
    name: str | None  # the tool's name, when the request says which tool made the call
    item: int  # index of the message / input item holding it
    newest: bool  # part of the newest turn (after the model's last reply): never changed


def tokens_of(text: str) -> int:
    """The estimate the proxy uses everywhere (about four characters per token), without encoding."""
    return (len(text) + 3) // 4


def replace(body: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    """A copy of ``body`` with the value at ``path`` replaced; containers off the path are shared
    (a large body's other top-level parts stay undecoded bytes: providers/body.py ``updated``)."""
    head, rest = path[0], path[1:]
    return updated(body, {head: _set(body[head], rest, value)})


def _set(node: Any, path: Path, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    new = list(node) if isinstance(node, list) else dict(node)
    new[head] = _set(node[head], rest, value)
    return new


def tool_results(endpoint: str, body: dict[str, Any]) -> list[ToolResult]:
    """Every textual tool result of a request, oldest first."""
    if endpoint == "messages":
        return list(_anthropic(body))
    if endpoint == "chat.completions":
        return list(_chat(body))
    if endpoint == "responses":
        return list(_responses(body))
    return []


def _last(items: list[Any], is_reply: Any) -> int:
    for i in range(len(items) - 1, -1, -1):
        if isinstance(items[i], dict) and is_reply(items[i]):
            return i
    return -1


def _anthropic(body: dict[str, Any]) -> Iterator[ToolResult]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    names: dict[str, str] = {}
    last_reply = _last(messages, lambda m: m.get("role") == "assistant")
    for i, message in enumerate(messages):
        yield from anthropic_message(message, i, i > last_reply, names)


def anthropic_message(message: Any, i: int, newest: bool, names: dict[str, str]) -> Iterator[ToolResult]:
    """The tool results of the Messages message ``i``; ``names`` holds the tool uses of the messages
    before it and gets this message's (a result's tool is the last use of its id seen so far)."""
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        return
    for j, block in enumerate(message["content"]):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "tool_use" and isinstance(block.get("id"), str) and isinstance(block.get("name"), str):
            names[block["id"]] = block["name"]
        elif kind == "tool_result":
            name = names.get(block.get("tool_use_id")) if isinstance(block.get("tool_use_id"), str) else None
            yield from _texts(block.get("content"), ("messages", i, "content", j, "content"), ("text",), name, i,
                              newest)


def _texts(value: Any, base: Path, kinds: tuple[str, ...], name: str | None, i: int,
           newest: bool) -> Iterator[ToolResult]:
    """A tool result's text at ``base``: a string, or the parts of a list whose type is one of ``kinds``."""
    if isinstance(value, str):
        yield ToolResult(base, value, name, i, newest)
    elif isinstance(value, list):
        for k, part in enumerate(value):
            if isinstance(part, dict) and part.get("type") in kinds and isinstance(part.get("text"), str):
                yield ToolResult((*base, k, "text"), part["text"], name, i, newest)


def _chat(body: dict[str, Any]) -> Iterator[ToolResult]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    names: dict[str, str] = {}
    last_reply = _last(messages, lambda m: m.get("role") == "assistant")
    for i, message in enumerate(messages):
        yield from chat_message(message, i, i > last_reply, names)


def chat_message(message: Any, i: int, newest: bool, names: dict[str, str]) -> Iterator[ToolResult]:
    """The tool results of the Chat Completions message ``i`` (``names`` as for :func:`anthropic_message`)."""
    if not isinstance(message, dict):
        return
    role = message.get("role")
    if role == "assistant" and isinstance(message.get("tool_calls"), list):
        for call in message["tool_calls"]:
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(call.get("id"), str) and isinstance(fn.get("name"), str):
                names[call["id"]] = fn["name"]
    elif role == "tool":
        call_id = message.get("tool_call_id")
        name = names.get(call_id) if isinstance(call_id, str) else None
        yield from _texts(message.get("content"), ("messages", i, "content"), ("text",), name, i, newest)


def is_model_item(item: dict[str, Any]) -> bool:
    """A Responses input item the model produced (the newest turn is what follows the last one)."""
    kind = str(item.get("type", "message"))
    return kind == "reasoning" or kind.endswith("_call") or (kind == "message" and item.get("role") == "assistant")


def _responses(body: dict[str, Any]) -> Iterator[ToolResult]:
    items = body.get("input")
    if not isinstance(items, list):
        return
    names: dict[str, str] = {}
    last_reply = _last(items, is_model_item)
    for i, item in enumerate(items):
        yield from responses_item(item, i, i > last_reply, names)


def responses_item(item: Any, i: int, newest: bool, names: dict[str, str]) -> Iterator[ToolResult]:
    """The tool output of the Responses input item ``i`` (``names`` as for :func:`anthropic_message`)."""
    if not isinstance(item, dict):
        return
    kind = item.get("type")
    if kind in ("function_call", "custom_tool_call") and isinstance(item.get("call_id"), str):
        if isinstance(item.get("name"), str):
            names[item["call_id"]] = item["name"]
    elif kind in ("function_call_output", "custom_tool_call_output"):
        call_id = item.get("call_id")
        name = names.get(call_id) if isinstance(call_id, str) else None
        yield from _texts(item.get("output"), ("input", i, "output"), ("input_text", "output_text", "text"), name, i,
                          newest)


# The tool results of one message (Responses: input item) of each wire format's conversation.
MESSAGE_RESULTS = {"messages": anthropic_message, "chat.completions": chat_message, "responses": responses_item}
