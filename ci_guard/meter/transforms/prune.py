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
    budget = spec.max_tokens * 4  # characters: a few huge lines must not keep the result oversized
    # The kept lines are found in at most ``budget`` characters from each end, by one C-level split
    # each: no walk over the megabyte in between, no million-string split.
    region = text[:budget + 1]
    parts = region.split("\n", head_n) if head_n else [region]
    head_end = len(region) - len(parts[-1]) if len(parts) > head_n else len(region)
    region = text[max(head_end, len(text) - budget - 1):]
    ends_nl = text.endswith("\n")
    parts = region.rsplit("\n", tail_n + ends_nl) if tail_n else [region]
    if not tail_n:
        tail_start = len(text)
    elif len(parts) > tail_n + ends_nl:
        tail_start = len(text) - (len(region) - len(parts[0]) - 1)
    else:
        tail_start = len(text) - len(region)
    tail_len = len(text) - tail_start
    if head_end + tail_len > budget:
        share = budget * head_n // max(1, head_n + tail_n)
        head_end, tail_len = share, max(0, budget - share)  # characters from the ends: one huge line
    cut_end = len(text) - tail_len
    removed = cut_end - head_end
    if removed <= 0:
        return None
    # counted in place: no copy of the removed part (a megabyte log is cut on every call)
    lines = text.count("\n", head_end, cut_end) + (0 if text[cut_end - 1] == "\n" else 1)
    head = text[:head_end]
    sep = "" if not head or head.endswith("\n") else "\n"
    out = f"{head}{sep}{marker(lines, removed, spec.max_tokens)}\n{text[cut_end:]}"
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
