"""What the fake provider reads from a request: its turn, its tools and its deterministic token counts.

Counts come from the same estimator the proxy uses before a call
(:func:`ci_guard.tokens.estimate.estimate_input_tokens`), so a request's served input equals
the proxy's estimate. Prompt caching is simulated without state: the conversation up to the last
model reply was the previous call's input, so it is reported as a cache read; the rest is new.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ci_guard.tokens.estimate import estimate_input_tokens


@dataclass
class ToolDecl:
    name: str
    schema: dict[str, Any] = field(default_factory=dict)


@dataclass
class Request:
    endpoint: str  # "messages" | "chat.completions" | "responses"
    model: str
    stream: bool
    turn: int  # model replies already in the conversation
    tools: list[ToolDecl]
    total_tokens: int  # the whole input
    prefix_tokens: int  # the part the previous call already sent (simulated cache)
    cache_control: bool = False  # Anthropic: the request asks for caching
    cache_ttl_1h: bool = False
    max_output: int | None = None  # the request's output cap; a real provider never bills past it
    speed: str | None = None  # Anthropic fast mode: the request's speed ("fast" | "standard"), echoed in usage


def _max_output(body: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def read_request(endpoint: str, body: dict[str, Any]) -> Request:
    reader = {"messages": _anthropic, "chat.completions": _chat, "responses": _responses}[endpoint]
    return reader(body)


def _anthropic(body: dict[str, Any]) -> Request:
    messages = _list(body.get("messages"))
    system, tools = body.get("system"), body.get("tools")
    k = _last_reply_index(messages, lambda m: m.get("role") == "assistant")
    text = repr(body)  # cheap scan for cache_control markers anywhere in the request
    return Request(
        endpoint="messages",
        model=str(body.get("model") or "claude-sonnet-4-5"),
        stream=bool(body.get("stream")),
        turn=sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant"),
        tools=[ToolDecl(t["name"], t.get("input_schema") or {}) for t in _list(tools)
               if isinstance(t, dict) and t.get("name") and "input_schema" in t],
        total_tokens=estimate_input_tokens(system, messages, tools),
        prefix_tokens=estimate_input_tokens(system, messages[:k], tools) if k > 0 else 0,
        cache_control="cache_control" in text,
        cache_ttl_1h="'ttl': '1h'" in text,
        max_output=_max_output(body, "max_tokens"),
        speed=body["speed"] if body.get("speed") in ("fast", "standard") else None,
    )


def _chat(body: dict[str, Any]) -> Request:
    messages = _list(body.get("messages"))
    tools, functions = body.get("tools"), body.get("functions")
    k = _last_reply_index(messages, lambda m: m.get("role") == "assistant")
    decls = [ToolDecl(t["function"]["name"], t["function"].get("parameters") or {})
             for t in _list(tools) if isinstance(t, dict) and isinstance(t.get("function"), dict)
             and t["function"].get("name")]
    return Request(
        endpoint="chat.completions",
        model=str(body.get("model") or "gpt-5"),
        stream=bool(body.get("stream")),
        turn=sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant"),
        tools=decls,
        total_tokens=estimate_input_tokens(messages, tools, functions),
        prefix_tokens=estimate_input_tokens(messages[:k], tools, functions) if k > 0 else 0,
        max_output=_max_output(body, "max_completion_tokens", "max_tokens"),
    )


def _responses(body: dict[str, Any]) -> Request:
    raw_input = body.get("input")
    items = _list(raw_input) if isinstance(raw_input, list) else []
    instructions, tools = body.get("instructions"), body.get("tools")
    # The model's last reply may be several items (reasoning, message, function_call): the cache
    # prefix ends before the first of them.
    k = _last_reply_index(items, _is_model_item)
    while k > 0 and _is_model_item(items[k - 1]):
        k -= 1
    decls = [ToolDecl(t["name"], t.get("parameters") or {}) for t in _list(tools)
             if isinstance(t, dict) and t.get("type") == "function" and t.get("name")]
    return Request(
        endpoint="responses",
        model=str(body.get("model") or "gpt-5"),
        stream=bool(body.get("stream")),
        turn=_reply_groups(items),
        tools=decls,
        total_tokens=estimate_input_tokens(instructions, raw_input, tools),
        prefix_tokens=estimate_input_tokens(instructions, items[:k], tools) if k > 0 else 0,
        max_output=_max_output(body, "max_output_tokens"),
    )


def _is_model_item(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    kind = str(item.get("type", "message"))
    return kind == "reasoning" or kind.endswith("_call") or (kind == "message" and item.get("role") == "assistant")


def _reply_groups(items: list[Any]) -> int:
    """Runs of consecutive model items: one per model reply (Codex sends no assistant roles)."""
    groups, inside = 0, False
    for item in items:
        model = _is_model_item(item)
        if model and not inside:
            groups += 1
        inside = model
    return groups


def _last_reply_index(items: list[Any], is_reply: Any) -> int:
    """Index of the last model reply (0 when none): what came before it was the previous input."""
    for i in range(len(items) - 1, -1, -1):
        if isinstance(items[i], dict) and is_reply(items[i]):
            return i
    return 0


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
