"""Thinking budgets above ``max_thinking_tokens`` are lowered to it (Anthropic ``thinking.budget_tokens``).

The request stays valid: the budget only goes down, so ``max_tokens`` stays above it.
"""

from __future__ import annotations

from typing import Any

from ci_guard.meter.providers.body import updated


def clamp(body: dict[str, Any], limit: int) -> tuple[dict[str, Any], int | None]:
    """(body, the budget it had) -- the body itself and None when nothing was above the limit."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return body, None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget <= limit:
        return body, None
    return updated(body, {"thinking": {**thinking, "budget_tokens": limit}}), budget
