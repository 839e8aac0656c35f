"""Re-pricing in integer micro-dollars (preview/replay.py) gives exactly the catalog's Decimal cost."""

from __future__ import annotations

import random
from decimal import Decimal

from ci_guard.ledger.sqlstore import to_micros
from ci_guard.preview.replay import _IntegerPrice
from ci_guard.pricing.catalog import load_catalog
from ci_guard.pricing.cost import cost
from ci_guard.pricing.rates import ModelPrice, PriceTier, Rates
from ci_guard.pricing.usage import Usage


def _usages(rng: random.Random, thresholds: list[int]) -> list[tuple[int, ...]]:
    out = [(0, 0, 0, 0, 0, 0), (1, 0, 0, 0, 1, 0)]
    for _ in range(60):
        w1 = rng.randrange(0, 5000)
        out.append((rng.randrange(0, 400_000), w1 + rng.randrange(0, 50_000), w1, rng.randrange(0, 900_000),
                    rng.randrange(0, 60_000), rng.randrange(0, 100)))
    for above in thresholds:  # both sides of each long-context threshold
        out += [(above, 0, 0, 0, 7, 0), (above + 1, 0, 0, 0, 7, 0), (0, 0, 0, above + 1, 3, 0)]
    return out


def test_every_catalog_model_and_service_tier_prices_to_the_same_micro_dollar() -> None:
    catalog = load_catalog(None)
    rng = random.Random(16)
    checked = 0
    for name in catalog.prices:
        for service_tier in (None, "standard", "priority", "flex", "batch"):
            price = catalog.lookup(name).for_call(service_tier, None)  # type: ignore[union-attr]
            fast = _IntegerPrice(price)
            for tokens in _usages(rng, [t.above_input_tokens for t in price.tiers]):
                micros = fast.micros(*tokens)
                assert micros == to_micros(cost(Usage(*tokens), price).total_usd), (name, service_tier, tokens)
                checked += 1
    assert checked > 1000


def test_half_micro_rounds_up_and_odd_rates_stay_exact() -> None:
    # 0.5 USD per million tokens: one token costs half a micro-dollar, which rounds up (ROUND_HALF_UP)
    rates = Rates(Decimal("0.5"), Decimal("0.625"), Decimal("1.0000001"), Decimal("0.03"), Decimal("3.3"))
    price = ModelPrice("m", None, rates, tiers=(PriceTier(10, rates.scaled(Decimal("1.75"))),))
    fast = _IntegerPrice(price)
    for tokens in [(1, 0, 0, 0, 0, 0), (3, 0, 0, 0, 0, 0), (0, 8, 1, 0, 0, 0), (11, 0, 0, 0, 1, 0), (5, 2, 2, 9, 9, 0)]:
        assert fast.micros(*tokens) == to_micros(cost(Usage(*tokens), price).total_usd), tokens
    assert fast.micros(1, 0, 0, 0, 0, 0) == 1


def test_what_the_integer_path_cannot_do_exactly_is_left_to_the_decimal_path() -> None:
    rates = Rates(Decimal(1), Decimal(1), Decimal(1), Decimal(1), Decimal(1))
    fast = _IntegerPrice(ModelPrice("m", None, rates))
    assert fast.micros(0, 1, 2, 0, 0, 0) is None  # more 1-hour writes than writes: a negative 5-minute part
    assert fast.micros(10 ** 28, 0, 0, 0, 0, 0) is None  # past Decimal's precision
    third = Rates(Decimal(1) / 3, Decimal(1), Decimal(1), Decimal(1), Decimal(1))  # 28 significant digits
    assert _IntegerPrice(ModelPrice("m", None, third)).micros(3, 0, 0, 0, 0, 0) is None
