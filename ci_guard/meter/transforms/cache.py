"""Prompt caching for Anthropic requests that ask for none: breakpoints on the stable prefix.

Anthropic caches the prefix up to a block marked ``cache_control`` (tools, then system, then
messages); at most four marks per request; a later request reads the longest cached prefix it
repeats byte for byte (looking back up to 20 blocks from each mark) and writes the rest up to its
last mark. Marks go on the last tool, the last system block, the model's last reply and the newest
turn -- except a newest turn that pruning will rewrite on the next call: caching it would be a
cache write (1.25x input) that is never read.

A request that carries ``cache_control`` anywhere manages caching itself (Claude Code does) and is
left alone. OpenAI caches prefixes automatically: nothing is added there, and nothing is reordered.
"""

from __future__ import annotations

from typing import Any

from ci_guard.meter.providers.body import updated

EPHEMERAL = {"type": "ephemeral"}
MAX_BREAKPOINTS = 4
# Blocks that accept cache_control (thinking blocks do not; empty text cannot be cached).
_CACHEABLE = ("text", "image", "document", "tool_use", "tool_result", "search_result")


def caches_at_top(body: dict[str, Any]) -> bool:
    """``cache_control`` on the request, a tool or a system block: decided without reading the
    conversation (Claude Code marks its system prompt, so a large request of it is never decoded)."""
    return "cache_control" in body or marks_any(body.get("tools")) or marks_any(body.get("system"))


def marks_any(items: Any) -> bool:
    """``cache_control`` on an element of the list ``items`` (anything else: False)."""
    return isinstance(items, list) and any(isinstance(i, dict) and "cache_control" in i for i in items)


def manages_caching(body: dict[str, Any]) -> bool:
    """True when the agent set ``cache_control`` anywhere it can go: the request (automatic caching),
    a tool, a system block, a message block or a block inside a tool result. Walks blocks, never
    text, so a tool result that merely prints the word is not mistaken for a breakpoint."""
    if caches_at_top(body):
        return True
    messages = body.get("messages")
    return isinstance(messages, list) and any(message_caches(m) for m in messages)


def message_caches(message: Any) -> bool:
    """``cache_control`` on a block of this message or on a block inside one of its tool results."""
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return False
    for block in content:
        if not isinstance(block, dict):
            continue
        if "cache_control" in block or marks_any(block.get("content")):
            return True
    return False


def add_breakpoints(body: dict[str, Any], skip_newest: bool = False) -> tuple[dict[str, Any], int]:
    """(a copy of ``body`` with breakpoints added, how many); the body itself when none fits."""
    out, added = top_breakpoints(body)
    messages = body.get("messages")
    if isinstance(messages, list) and messages:
        new_messages = list(messages)
        changed = False
        roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
        for i in message_targets(roles, skip_newest):
            if added >= MAX_BREAKPOINTS:
                break
            marked = mark_message(messages[i])
            if marked is not None:
                new_messages[i] = marked
                added += 1
                changed = True
        if changed:
            out["messages"] = new_messages
    return (updated(body, out) if out else body), added


def top_breakpoints(body: Any) -> tuple[dict[str, Any], int]:
    """(the changed tools and system, how many breakpoints they got): the marks before the conversation."""
    out: dict[str, Any] = {}
    added = 0
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[-1], dict):
        new_tools = list(tools)
        new_tools[-1] = {**tools[-1], "cache_control": EPHEMERAL}
        out["tools"] = new_tools
        added += 1
    system = body.get("system")
    if isinstance(system, str) and system:
        out["system"] = [{"type": "text", "text": system, "cache_control": EPHEMERAL}]
        added += 1
    elif isinstance(system, list) and system and _cacheable(system[-1]):
        new_system = list(system)
        new_system[-1] = {**system[-1], "cache_control": EPHEMERAL}
        out["system"] = new_system
        added += 1
    return out, added


def message_targets(roles: list[Any], skip_newest: bool) -> list[int]:
    """The messages that get a mark, in order: the model's last reply, then the newest turn."""
    targets = []
    last_reply = last_assistant(roles)
    if last_reply >= 0:
        targets.append(last_reply)
    if not skip_newest and roles and len(roles) - 1 != last_reply:
        targets.append(len(roles) - 1)
    return targets


def last_assistant(roles: list[Any]) -> int:
    """The position of the last message with the assistant role (-1: none)."""
    return next((i for i in range(len(roles) - 1, -1, -1) if roles[i] == "assistant"), -1)


def _cacheable(block: Any) -> bool:
    if not isinstance(block, dict) or block.get("type") not in _CACHEABLE:
        return False
    return not (block.get("type") == "text" and not block.get("text"))


def mark_message(message: Any) -> dict[str, Any] | None:
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    if isinstance(content, str):
        if not content:
            return None
        return {**message, "content": [{"type": "text", "text": content, "cache_control": EPHEMERAL}]}
    if not isinstance(content, list):
        return None
    for j in range(len(content) - 1, -1, -1):
        if _cacheable(content[j]):
            new_content = list(content)
            new_content[j] = {**content[j], "cache_control": EPHEMERAL}
            return {**message, "content": new_content}
    return None
