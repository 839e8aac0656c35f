"""Anthropic context editing (beta ``context-management-2025-06-27``) as the API applies it.

``clear_tool_uses_20250919``: when the request's input passes ``trigger`` (default 100,000 input
tokens), the oldest tool results are replaced by a placeholder, keeping the newest ``keep`` tool
uses (default 3) and ``exclude_tools``; with ``clear_at_least`` nothing is cleared unless at least
that many tokens would go. The answer reports ``context_management.applied_edits`` with
``cleared_tool_uses`` and ``cleared_input_tokens``. Without the beta header, or on a model without
context editing, the request is refused with a 400, like the real API.

``clear_thinking_20251015``: the thinking blocks of all but the newest ``keep`` assistant turns
(``{"type": "thinking_turns", "value": N}``, default 1; ``"all"`` keeps every one) are removed;
reported with ``cleared_thinking_turns`` and ``cleared_input_tokens``. As the API, it must be the
first edit and needs extended thinking on.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from ci_guard.simulator.prompt_cache import block_tokens

BETA = "context-management-2025-06-27"
EDIT = "clear_tool_uses_20250919"
THINKING_EDIT = "clear_thinking_20251015"
PLACEHOLDER = "[tool result cleared]"
THINKING_BLOCKS = ("thinking", "redacted_thinking")
_SUPPORTED = re.compile(r"^claude-(?:(?:opus|sonnet)-4(?:-\d+)?|haiku-4-5|(?:opus|sonnet|haiku|fable|mythos)-5"
                        r"(?:-\d+)?|mythos-preview)(?:-\d{8})?$")


class EditRefused(Exception):
    """The request asks for context editing the API would refuse (message for a 400)."""


def _value(spec: Any, default: int) -> int:
    if isinstance(spec, dict) and isinstance(spec.get("value"), int):
        return int(spec["value"])
    return default


def apply(body: dict[str, Any], beta_header: str, model: str) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """(the body the model sees, applied_edits or None when the request asked for none)."""
    cm = body.get("context_management")
    if cm is None:
        return body, None
    if BETA not in [b.strip() for b in beta_header.split(",")]:
        raise EditRefused(f"context_management: Extra inputs are not permitted (the {BETA} beta is required)")
    if not _SUPPORTED.match(model):
        raise EditRefused(f"context management is not supported on model {model}")
    edits = cm.get("edits") if isinstance(cm, dict) else None
    if not isinstance(edits, list):
        raise EditRefused("context_management.edits: Field required")
    applied: list[dict[str, Any]] = []
    out = body
    for i, edit in enumerate(edits):
        kind = edit.get("type") if isinstance(edit, dict) else None
        if kind == EDIT:
            out, uses, tokens = _clear_tool_uses(out, edit)
            if uses:
                applied.append({"type": EDIT, "cleared_tool_uses": uses, "cleared_input_tokens": tokens})
        elif kind == THINKING_EDIT:
            if i != 0:
                raise EditRefused(f"context_management.edits: {THINKING_EDIT} must be the first edit")
            thinking = body.get("thinking")
            if not (isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")):
                raise EditRefused(f"context_management.edits: {THINKING_EDIT} requires thinking to be enabled")
            out, turns, tokens = _clear_thinking(out, edit)
            if turns:
                applied.append({"type": THINKING_EDIT, "cleared_thinking_turns": turns,
                                "cleared_input_tokens": tokens})
        else:
            raise EditRefused(f"context_management.edits: unknown edit type {kind!r}")
    return {k: v for k, v in out.items() if k != "context_management"}, applied


def _clear_thinking(body: dict[str, Any], edit: dict[str, Any]) -> tuple[dict[str, Any], int, int]:
    """Thinking blocks of all but the newest ``keep`` assistant turns that have any (keep "all": none)."""
    keep_spec = edit.get("keep")
    if keep_spec == "all":
        return body, 0, 0
    keep = _value(keep_spec, 1)
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    turns = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"
             and isinstance(m.get("content"), list)
             and any(isinstance(b, dict) and b.get("type") in THINKING_BLOCKS for b in m["content"])]
    chosen = turns[:max(0, len(turns) - keep)]
    if not chosen:
        return body, 0, 0
    out = copy.deepcopy(body)
    tokens = 0
    for i in chosen:
        content = out["messages"][i]["content"]
        gone = [b for b in content if isinstance(b, dict) and b.get("type") in THINKING_BLOCKS]
        tokens += sum(block_tokens(b) for b in gone)
        out["messages"][i]["content"] = [b for b in content if b not in gone]
    return out, len(chosen), tokens


def _total(body: dict[str, Any]) -> int:
    parts = [body.get("tools"), body.get("system"), body.get("messages")]
    return sum(block_tokens(p) for p in parts if p is not None)


def _clear_tool_uses(body: dict[str, Any], edit: dict[str, Any]) -> tuple[dict[str, Any], int, int]:
    if _total(body) <= _value(edit.get("trigger"), 100_000):
        return body, 0, 0
    keep = _value(edit.get("keep"), 3)
    at_least = _value(edit.get("clear_at_least"), 0)
    excluded = set(edit.get("exclude_tools") or [])
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    names: dict[str, str] = {}
    found: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        for j, block in enumerate(content if isinstance(content, list) else []):
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use":
                names[str(block.get("id"))] = str(block.get("name"))
            elif block.get("type") == "tool_result" and names.get(str(block.get("tool_use_id"))) not in excluded:
                found.append((i, j))
    chosen = found[:max(0, len(found) - keep)]
    out = copy.deepcopy(body)
    tokens = 0
    for i, j in chosen:
        block = out["messages"][i]["content"][j]
        before = block_tokens(block.get("content"))
        block["content"] = PLACEHOLDER
        tokens += before - block_tokens(PLACEHOLDER)
    if not chosen or tokens < at_least:
        return body, 0, 0
    return out, len(chosen), tokens
