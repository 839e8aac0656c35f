"""Exact cost of a call from normalised usage and a model price.

Every class is computed exactly (tokens x USD per million / 1,000,000 in Decimal); only the total
is rounded, once, to the micro-dollar with ROUND_HALF_UP, so a sum of calls never drifts from the
provider's own arithmetic by more than half a micro-dollar per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from ci_guard.pricing.rates import ModelPrice, Rates, decimal_text
from ci_guard.pricing.usage import Usage

MICRO = Decimal("0.000001")
PER_MILLION = Decimal(1_000_000)
UNLIMITED_OUTPUT = 2**31 - 1  # what max_output_for_budget returns when output is free


@dataclass(frozen=True)
class CostBreakdown:
    model: str
    rates: Rates  # the rates that applied (a long-context tier's when above its threshold)
    tier_above_tokens: int | None  # threshold of the tier that applied, None for the base rates
    input_usd: Decimal
    cache_write_5m_usd: Decimal
    cache_write_1h_usd: Decimal
    cache_read_usd: Decimal
    output_usd: Decimal  # reasoning included
    reasoning_usd: Decimal  # informational: the part of output_usd that was reasoning
    exact_usd: Decimal  # the unrounded sum
    total_usd: Decimal  # exact_usd rounded half-up to the micro-dollar

    @property
    def total_micros(self) -> int:
        return int(self.total_usd * PER_MILLION)

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "tier_above_tokens": self.tier_above_tokens,
            "rates_per_million": self.rates.as_json(),
            "input_usd": decimal_text(self.input_usd),
            "cache_write_5m_usd": decimal_text(self.cache_write_5m_usd),
            "cache_write_1h_usd": decimal_text(self.cache_write_1h_usd),
            "cache_read_usd": decimal_text(self.cache_read_usd),
            "output_usd": decimal_text(self.output_usd),
            "reasoning_usd": decimal_text(self.reasoning_usd),
            "exact_usd": decimal_text(self.exact_usd),
            "total_usd": str(self.total_usd),
        }


def _part(tokens: int, rate: Decimal) -> Decimal:
    return Decimal(tokens) * rate / PER_MILLION


def cost(usage: Usage, price: ModelPrice) -> CostBreakdown:
    """The cost of one call; the tier is chosen by the call's total input (fresh + cache)."""
    tier = price.tier_for(usage.context_tokens)
    rates = tier.rates if tier else price.rates
    parts = {
        "input_usd": _part(usage.input_tokens, rates.input),
        "cache_write_5m_usd": _part(usage.cache_write_5m_tokens, rates.cache_write_5m),
        "cache_write_1h_usd": _part(usage.cache_write_1h_tokens, rates.cache_write_1h),
        "cache_read_usd": _part(usage.cache_read_tokens, rates.cache_read),
        "output_usd": _part(usage.output_tokens, rates.output),
    }
    exact = sum(parts.values(), Decimal(0))
    return CostBreakdown(
        model=price.model, rates=rates, tier_above_tokens=tier.above_input_tokens if tier else None,
        reasoning_usd=_part(usage.reasoning_tokens, rates.output), exact_usd=exact,
        total_usd=exact.quantize(MICRO, rounding=ROUND_HALF_UP), **parts,
    )


def worst_case_cost(price: ModelPrice, input_tokens: int, max_output_tokens: int) -> Decimal:
    """Upper bound of a call before it is made: all input at the fresh input rate plus the full
    output allowance, at the tier its input size selects; rounded *up* to the micro-dollar."""
    rates = price.rates_for(input_tokens)
    exact = _part(input_tokens, rates.input) + _part(max(0, max_output_tokens), rates.output)
    return exact.quantize(MICRO, rounding=ROUND_CEILING)


def max_output_for_budget(price: ModelPrice, input_tokens: int, budget_usd: Decimal) -> int:
    """How many output tokens still fit in ``budget_usd`` after this call's input (0 if none)."""
    rates = price.rates_for(input_tokens)
    left = Decimal(budget_usd) - _part(input_tokens, rates.input)
    if left <= 0:
        return 0
    if rates.output == 0:
        return UNLIMITED_OUTPUT
    tokens = int((left * PER_MILLION / rates.output).to_integral_value(rounding=ROUND_FLOOR))
    # the worst case rounds up to the micro-dollar: step back until it fits the budget exactly
    while tokens > 0 and worst_case_cost(price, input_tokens, tokens) > budget_usd:
        tokens -= 1
    return min(tokens, UNLIMITED_OUTPUT)
