"""The worst case of a call before it is made: dearest input rate, tier with a 25% margin."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from ci_guard.pricing.catalog import load_catalog
from ci_guard.pricing.cost import cost, max_output_for_budget, worst_case_cost
from ci_guard.pricing.usage import Usage

CATALOG = load_catalog()
SONNET = CATALOG.lookup("claude-sonnet-4-5")  # $3 in, $3.75 5m write, $6 1h write, $15 out; >200K: x2, $22.50 out
GPT5 = CATALOG.lookup("gpt-5")  # no cache-write price: writes bill at the input rate


def test_input_is_priced_at_the_dearest_cache_write_rate() -> None:
    assert worst_case_cost(SONNET, 10_000, 0) == Decimal("0.060000")  # 10K x $6/M, not x $3/M
    assert worst_case_cost(GPT5, 10_000, 1_000) == Decimal("0.022500")  # no cache premium: input rate


def test_no_split_of_the_input_costs_more_than_the_worst_case() -> None:
    rng = random.Random(3)
    for _ in range(300):
        total, output = rng.randint(0, 150_000), rng.randint(0, 8_000)
        write = rng.randint(0, total)
        write_1h = rng.randint(0, write)
        read = rng.randint(0, total - write)
        usage = Usage(input_tokens=total - write - read, cache_write_tokens=write,
                      cache_write_1h_tokens=write_1h, cache_read_tokens=read, output_tokens=output)
        assert cost(usage, SONNET).total_usd <= worst_case_cost(SONNET, total, output), usage


@pytest.mark.parametrize("estimate, tier_applies", [
    (150_000, False), (160_000, False),  # x1.25 = 200,000: not above the threshold
    (160_001, True), (170_000, True), (200_001, True),
])
def test_tier_is_chosen_as_if_the_input_were_25_percent_larger(estimate: int, tier_applies: bool) -> None:
    rate = Decimal(12 if tier_applies else 6)
    assert worst_case_cost(SONNET, estimate, 0) == (estimate * rate / 1_000_000).quantize(Decimal("0.000001"))
    # what it guards against: an input estimated at 170K that really is 201K is billed at the tier
    real = Usage(input_tokens=201_000, output_tokens=1_000)
    assert cost(real, SONNET).tier_above_tokens == 200_000


def test_max_output_for_budget_is_the_largest_output_that_fits() -> None:
    rng = random.Random(5)
    prices = [SONNET, GPT5, CATALOG.lookup("gpt-5-nano"), CATALOG.lookup("claude-opus-4-1")]
    for _ in range(400):
        price = rng.choice(prices)
        tokens = rng.choice([0, 1, rng.randint(0, 400_000), 160_000, 160_001])
        budget = Decimal(rng.randint(0, 5_000_000_000)) / Decimal(1_000_000_000)  # sub-micro budgets too
        n = max_output_for_budget(price, tokens, budget)
        if n == 0:
            assert worst_case_cost(price, tokens, 1) > budget
        else:
            assert worst_case_cost(price, tokens, n) <= budget < worst_case_cost(price, tokens, n + 1)


def test_max_output_for_budget_edges() -> None:
    assert max_output_for_budget(SONNET, 10_000, Decimal("0.06")) == 0  # the input alone fills it
    assert max_output_for_budget(SONNET, 10_000, Decimal("0.060015")) == 1
    assert max_output_for_budget(SONNET, 170_000, Decimal("2.04")) == 0  # tier 1h rate: 170K x $12/M
    free_output = load_catalog({"overrides": {"local": {"input": 1, "output": 0}}}).lookup("local")
    assert max_output_for_budget(free_output, 1_000, Decimal("0.001")) == 2**31 - 1
    assert max_output_for_budget(free_output, 1_000, Decimal("0.000999")) == 0
