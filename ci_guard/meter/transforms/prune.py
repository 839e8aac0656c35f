"""Pruning: an oversized tool result is cut to its first and last lines, with a one-line marker.

The cut is a pure function of the text and the policy, so the same result is cut the same way on
every later turn and the prompt-cache prefix of later calls stays identical. The newest turn (what
the model has not seen yet) and excluded tools are never cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ci_guard.meter.transforms.toolresults import ToolResult, replace, tokens_of, tool_results
from ci_guard.policy.models import PruneSpec


@dataclass
class Pruned:
    body: dict[str, Any]
    results: int = 0
    tokens: int = 0  # estimated tokens removed


def marker(lines: int, chars: int, limit: int) -> str:
    return (f"[ci-guard: {lines} lines ({chars} characters, about {(chars + 3) // 4} tokens) of this tool result "
            f"were removed by the context policy: results above {limit} tokens keep their first and last lines]")


def cut(text: str, spec: PruneSpec) -> str | None:
    """The pruned text, or None when ``text`` is within the limit (or cutting would not shrink it)."""
    if tokens_of(text) <= spec.max_tokens:
        return None
    head_n, tail_n = spec.keep.head_lines, spec.keep.tail_lines
    head_end = 0
    for _ in range(head_n):  # str.find in a loop: no split of a megabyte into a million strings
        nl = text.find("\n", head_end)
        if nl < 0:
            head_end = len(text)
            break
        head_end = nl + 1
    tail_start = len(text)
    for _ in range(tail_n):
        nl = text.rfind("\n", head_end, tail_start - 1)
        if nl < 0:
            tail_start = head_end
            break
        tail_start = nl + 1
    budget = spec.max_tokens * 4  # characters: a few huge lines must not keep the result oversized
    head, tail = text[:head_end], text[tail_start:]
    if len(head) + len(tail) > budget:
        share = budget * head_n // max(1, head_n + tail_n)
        keep_tail = budget - share  # characters from the text's ends (one huge line has no lines to keep)
        head, tail = text[:share], (text[len(text) - keep_tail:] if keep_tail > 0 else "")
    removed = text[len(head):len(text) - len(tail)]
    if not removed:
        return None
    lines = removed.count("\n") + (0 if removed.endswith("\n") else 1)
    sep = "" if not head or head.endswith("\n") else "\n"
    out = f"{head}{sep}{marker(lines, len(removed), spec.max_tokens)}\n{tail}"
    return out if len(out) < len(text) else None


def prune(endpoint: str, body: dict[str, Any], spec: PruneSpec,
          results: list[ToolResult] | None = None) -> Pruned:
    excluded = set(spec.exclude_tools)
    out = Pruned(body)
    for result in results if results is not None else tool_results(endpoint, body):
        # A result whose tool is unknown might be an excluded one: left alone when any is excluded.
        if result.newest or (excluded and (result.name is None or result.name in excluded)):
            continue
        new = cut(result.text, spec)
        if new is None:
            continue
        out.body = replace(out.body, result.path, new)
        out.results += 1
        out.tokens += tokens_of(result.text) - tokens_of(new)
    return out
