"""Per-call routing: the first ``route`` entry whose features all hold sends the call to its model.

Features are those of the single call: tools declared or not, the declared output cap, stream,
the estimated request size, the requested model, and agents' own markers (Claude Code's session
title call: no tools, a system prompt asking for a title). Routing never raises the price: a route
to a model dearer than the one asked for is not taken (escalation is a decision-time matter).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ci_guard.policy.conditions import Comparison, compile_glob, parse_comparison
from ci_guard.policy.decision import Route


@dataclass
class CallFeatures:
    tools: bool
    max_output_tokens: int | None
    request_tokens: int
    stream: bool
    model: str | None
    agent_call: str | None


def features(body: dict[str, Any], model: str | None, max_output: int | None, request_tokens: int,
             stream: bool) -> CallFeatures:
    tools = body.get("tools")
    has_tools = isinstance(tools, list) and bool(tools)
    return CallFeatures(has_tools, max_output, request_tokens, stream, model,
                        "title" if not has_tools and _asks_for_title(body) else None)


def _asks_for_title(body: dict[str, Any]) -> bool:
    """Claude Code's title call: its system prompt asks for a short title of the conversation."""
    system = body.get("system")
    texts = [system] if isinstance(system, str) else [
        b.get("text") for b in system if isinstance(b, dict)] if isinstance(system, list) else []
    return any(isinstance(t, str) and "title" in t.lower() and len(t) < 4000 for t in texts)


@lru_cache(maxsize=256)
def _cmp(text: str) -> Comparison:
    return parse_comparison(text, kind="count")


@lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    return compile_glob(pattern)


def matches(route: Route, f: CallFeatures) -> bool:
    w = route.when
    if w.tools is not None and (w.tools == "present") != f.tools:
        return False
    if w.stream is not None and w.stream != f.stream:
        return False
    if w.max_output_tokens is not None and (
            f.max_output_tokens is None or not _cmp(w.max_output_tokens).test(f.max_output_tokens)):
        return False
    if w.request_tokens is not None and not _cmp(w.request_tokens).test(f.request_tokens):
        return False
    if w.model is not None and (f.model is None or not any(_glob(g).fullmatch(f.model) for g in w.model)):
        return False
    return not (w.agent_call is not None and w.agent_call != f.agent_call)


def pick(routes: list[Route], f: CallFeatures) -> Route | None:
    return next((r for r in routes if matches(r, f)), None)
