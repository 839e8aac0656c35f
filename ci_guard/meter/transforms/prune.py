"""Pruning: an oversized tool result is cut to its first and last lines, with a one-line marker.

The cut is a pure function of the text and the policy, so the same result is cut the same way on
every later turn and the prompt-cache prefix of later calls stays identical. The newest turn (what
the model has not seen yet) and excluded tools are never cut.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import xxhash

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


class CutMemo:
    """The cuts of the tool results seen earlier in a run: an agent re-sends every earlier result on
    every later turn, and each is cut the same way (``cut`` is a pure function of the text and the
    spec), so a later turn finds it here instead of cutting it again (~5x cheaper on a 30 kB log).

    Keyed by the text's XXH3-128 under a secret random seed (an agent that does not know the seed
    cannot craft two texts with one key) and its length; only the cut is kept, not the text, so the
    memo stays small: at most ``max_entries`` cuts, least recently used go first. One memo per run
    and spec; the proxy calls it from its event loop only.
    """

    def __init__(self, spec: PruneSpec, max_entries: int = 4096) -> None:
        self.spec = spec
        self.max_entries = max_entries
        self._seed = secrets.randbits(64)
        self._cuts: OrderedDict[tuple[bytes, int], str | None] = OrderedDict()

    def __call__(self, text: str) -> str | None:
        if tokens_of(text) <= self.spec.max_tokens:
            return None  # within the limit: nothing to remember
        key = (xxhash.xxh3_128_digest(text.encode("utf-8", "surrogatepass"), self._seed), len(text))
        if key in self._cuts:
            self._cuts.move_to_end(key)
            return self._cuts[key]
        out = self._cuts[key] = cut(text, self.spec)
        if len(self._cuts) > self.max_entries:
            self._cuts.popitem(last=False)
        return out


def prune(endpoint: str, body: dict[str, Any], spec: PruneSpec,
          results: list[ToolResult] | None = None, cutter: Callable[[str], str | None] | None = None) -> Pruned:
    excluded = set(spec.exclude_tools)
    out = Pruned(body)
    for result in results if results is not None else tool_results(endpoint, body):
        # A result whose tool is unknown might be an excluded one: left alone when any is excluded.
        if result.newest or (excluded and (result.name is None or result.name in excluded)):
            continue
        new = cutter(result.text) if cutter is not None else cut(result.text, spec)
        if new is None:
            continue
        out.body = replace(out.body, result.path, new)
        out.results += 1
        out.tokens += tokens_of(result.text) - tokens_of(new)
    return out
