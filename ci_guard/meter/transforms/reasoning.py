"""OpenAI reasoning effort above ``max_reasoning_effort`` is lowered to it: the analogue of the
thinking-budget clamp (Chat Completions ``reasoning_effort``, Responses ``reasoning.effort``).

The request stays valid: the ceiling is one of low, medium and high, which every OpenAI reasoning
model accepts, and an effort only ever goes down to it. ``none`` and ``minimal`` (accepted by some
models only) and values this module does not know are left as the agent sent them; so is a model
that accepts a single effort (the gpt-5 pro models take only ``high``).
"""

from __future__ import annotations

import re
from typing import Any

from ci_guard.meter.providers.body import updated

# OpenAI's efforts, lowest first (the docs: none, minimal, low, medium, high, xhigh; gpt-5.6: max).
ORDER = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
_SINGLE_EFFORT = re.compile(r"^(?:openai/)?gpt-5(?:\.\d+)?-pro(?:-\d{4}-\d{2}-\d{2})?$")


def clamp(endpoint: str, body: dict[str, Any], model: str | None, ceiling: str) -> tuple[dict[str, Any], str | None]:
    """(body, the effort it had) -- the body itself and None when nothing was above the ceiling."""
    if model and _SINGLE_EFFORT.match(model):
        return body, None
    if endpoint == "chat.completions":
        effort = body.get("reasoning_effort")
        if _above(effort, ceiling):
            return updated(body, {"reasoning_effort": ceiling}), effort
    elif endpoint == "responses":
        reasoning = body.get("reasoning")
        effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
        if _above(effort, ceiling):
            return updated(body, {"reasoning": {**reasoning, "effort": ceiling}}), effort  # type: ignore[dict-item]
    return body, None


def _above(effort: Any, ceiling: str) -> bool:
    return isinstance(effort, str) and effort in ORDER and ORDER.index(effort) > ORDER.index(ceiling)
