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


# The input size a call's tier is chosen from, relative to its estimate. The estimate is bytes/4
# (ci_guard.tokens.estimate.estimate_tokens); code, JSON and non-English text tokenise at ~3.2
# bytes a token, so the real input can be ~25% larger -- and a request whose real input is just past
# a long-context threshold is billed at that tier's rates for *all* of its tokens.
TIER_MARGIN = Decimal("1.25")


def worst_case_rates(price: ModelPrice, input_tokens: int, long_writes: bool = True) -> tuple[Decimal, Decimal]:
    """(USD per million input tokens, per million output tokens) of a call's worst case.

    Per input token the dearest way it can be billed: fresh, or written to the 5-minute or 1-hour
    cache (1.25x / 2x input for Anthropic); a cache read is always cheaper. The tier is the one the
    input would select if it were :data:`TIER_MARGIN` times the estimate. ``long_writes`` False: the
    request cannot write long-life entries (an OpenAI request without a 12-hour cache life), so its
    dearest write is the 5-minute / 30-minute one.
    """
    tier_input = int((Decimal(max(0, input_tokens)) * TIER_MARGIN).to_integral_value(rounding=ROUND_CEILING))
    rates = price.rates_for(tier_input)
    return max(rates.input, rates.cache_write_5m, rates.cache_write_1h if long_writes else 0), rates.output


def worst_case_cost(price: ModelPrice, input_tokens: int, max_output_tokens: int, long_writes: bool = True) -> Decimal:
    """Upper bound of a call before it is made: every input token at the dearest input rate (fresh
    or cache write) plus the full output allowance, at the tier of the input with a 25% margin;
    rounded *up* to the micro-dollar."""
    input_rate, output_rate = worst_case_rates(price, input_tokens, long_writes)
    exact = _part(max(0, input_tokens), input_rate) + _part(max(0, max_output_tokens), output_rate)
    return exact.quantize(MICRO, rounding=ROUND_CEILING)


def max_output_for_budget(price: ModelPrice, input_tokens: int, budget_usd: Decimal,
                          long_writes: bool = True) -> int:
    """The largest n with ``worst_case_cost(price, input_tokens, n) <= budget_usd`` (0 if none fits,
    :data:`UNLIMITED_OUTPUT` when output is free)."""
    input_rate, output_rate = worst_case_rates(price, input_tokens, long_writes)
    # The worst case is rounded up to the micro-dollar, so it fits exactly when the unrounded sum
    # fits the budget rounded down to the micro-dollar.
    budget = Decimal(budget_usd).quantize(MICRO, rounding=ROUND_FLOOR)
    left = budget - _part(max(0, input_tokens), input_rate)
    if left < 0:
        return 0
    if output_rate == 0:
        return UNLIMITED_OUTPUT
    tokens = int((left * PER_MILLION / output_rate).to_integral_value(rounding=ROUND_FLOOR))
    tokens = min(tokens, UNLIMITED_OUTPUT)
    # Defensive: Decimal division is inexact for some rates; never return an n that does not fit.
    while tokens > 0 and worst_case_cost(price, input_tokens, tokens, long_writes) > budget_usd:
        tokens -= 1
    return tokens
