"""Issue 11's pricing defects, each with the exact micro-dollar figure of the published price.

Every expected figure is worked out by hand from the provider's published per-million rates in the
comment next to it; none is computed with the code under test.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.pricing.catalog import load_catalog
from ci_guard.pricing.cost import cost
from ci_guard.pricing.rates import PRIORITY_FALLBACK
from ci_guard.pricing.usage import Usage

PINNED = Path(__file__).parent.parent / "fixtures" / "litellm" / "model_prices_pinned.json"
SMALL = Usage(input_tokens=10_000, output_tokens=1_000)


def usd(usage: Usage, model: str, *, tier: str | None = None, geo: str | None = None, catalog=None) -> Decimal:
    price = (catalog or load_catalog()).lookup(model)
    assert price is not None, model
    return cost(usage, price.for_call(tier, geo)).total_usd


# -- 2. priority: published rates, else the highest published ratio --------------------------------

def test_gpt_5_5_priority_uses_its_published_rates():
    # $12.50 / $75 per million: 10,000 x 12.50 + 1,000 x 75 = 0.125 + 0.075
    assert usd(SMALL, "gpt-5.5", tier="priority") == Decimal("0.200000")
    # cached input at $1.25: 100,000 cached + 1,000 fresh + 1,000 out = 0.125 + 0.0125 + 0.075
    cached = Usage(input_tokens=1_000, cache_read_tokens=100_000, output_tokens=1_000)
    assert usd(cached, "gpt-5.5", tier="priority") == Decimal("0.212500")


def test_a_model_without_published_priority_rates_gets_the_highest_published_ratio():
    # gpt-5-nano standard $0.05 / $0.40; x2.5 -> 10,000 x 0.125 + 1,000 x 1.00
    assert usd(SMALL, "gpt-5-nano", tier="priority") == Decimal("0.002250")
    # no catalog model publishes a higher ratio than the fallback (else it would under-count)
    for price in load_catalog().models():
        if price.priority is None:
            continue
        for field in ("input", "cache_read", "output"):
            standard = getattr(price.rates, field)
            if standard:
                assert getattr(price.priority, field) / standard <= PRIORITY_FALLBACK, (price.model, field)


# -- 4. snapshots and aliases with a price of their own ----------------------------------------------

@pytest.mark.parametrize("model", ["gpt-4o-2024-05-13", "chatgpt-4o-latest"])
def test_snapshots_with_their_own_price_are_not_priced_as_the_base_model(model: str):
    # $5 / $15 per million: 1M in + 1M out = $20 (gpt-4o would be 2.50 + 10 = $12.50)
    assert usd(Usage(input_tokens=1_000_000, output_tokens=1_000_000), model) == Decimal("20.000000")


def test_a_snapshot_without_a_price_of_its_own_still_falls_back_to_its_model():
    assert usd(Usage(input_tokens=1_000_000, output_tokens=1_000_000), "gpt-4o-2024-08-06") == Decimal("12.500000")


# -- 5. US-only inference on Sonnet 4.6 --------------------------------------------------------------

def test_sonnet_4_6_us_inference_costs_ten_percent_more():
    # (10,000 x 3 + 1,000 x 15) x 1.1 = 0.045 x 1.1
    assert usd(SMALL, "claude-sonnet-4-6", geo="us") == Decimal("0.049500")
    assert usd(SMALL, "claude-sonnet-4-6") == Decimal("0.045000")


# -- 6. overrides and price files change what they name and keep the rest ----------------------------

def test_a_discount_override_keeps_the_us_multiplier_the_priority_rates_and_the_tiers():
    catalog = load_catalog({"overrides": {"claude-opus-4-6": {"discount_pct": 10},
                                          "claude-sonnet-4-5": {"discount_pct": 10},
                                          "gpt-5.5": {"discount_pct": 10}}})
    # Opus 4.6 US: (1,000 x 5 + 100 x 25) x 1.1 x 0.9 = 0.00825 x 0.9
    assert usd(Usage(input_tokens=1_000, output_tokens=100), "claude-opus-4-6", geo="us",
               catalog=catalog) == Decimal("0.007425")
    # Sonnet 4.5 above 200K: 205,000 x 6 x 0.9
    assert usd(Usage(input_tokens=205_000), "claude-sonnet-4-5", catalog=catalog) == Decimal("1.107000")
    # gpt-5.5 priority: 0.200 x 0.9
    assert usd(SMALL, "gpt-5.5", tier="priority", catalog=catalog) == Decimal("0.180000")


def test_an_override_naming_only_the_input_rate_keeps_the_other_rates():
    catalog = load_catalog({"overrides": {"claude-opus-4-6": {"input": 4}}})
    # 1,000 x 4 + 100 x 25 = 0.0065, x 1.1 for US
    assert usd(Usage(input_tokens=1_000, output_tokens=100), "claude-opus-4-6", geo="us",
               catalog=catalog) == Decimal("0.007150")


def test_litellms_own_file_keeps_the_surcharges_it_lacks_and_reads_those_it_has():
    catalog = load_catalog({"files": [str(PINNED)]})
    # LiteLLM has no Sonnet 4.5 >200K tier; the catalog's stays: 205,000 x 6
    assert usd(Usage(input_tokens=205_000), "claude-sonnet-4-5", catalog=catalog) == Decimal("1.230000")
    # provider_specific_entry {"us": 1.1}: (1,000 x 5 + 100 x 25) x 1.1
    assert usd(Usage(input_tokens=1_000, output_tokens=100), "claude-opus-4-6", geo="us",
               catalog=catalog) == Decimal("0.008250")
    # *_priority keys: gpt-5.5 at 12.50 / 75
    assert usd(SMALL, "gpt-5.5", tier="priority", catalog=catalog) == Decimal("0.200000")
    # gpt-4o-2024-05-13 has priority rates of its own (8.75 / 26.25), not gpt-4o's (4.25 / 17)
    assert usd(SMALL, "gpt-4o-2024-05-13", tier="priority", catalog=catalog) == Decimal("0.113750")


# -- 7. Bedrock / Vertex Claude: 1-hour writes, and tiers' 1-hour rates --------------------------------

def test_bedrock_claude_one_hour_writes_are_twice_input_not_the_five_minute_rate():
    catalog = load_catalog({"files": [str(PINNED)]})
    model = "anthropic.claude-sonnet-4-20250514-v1:0"
    # 100,000 one-hour writes at $6 (2 x $3), not $3.75
    one_hour = Usage(cache_write_tokens=100_000, cache_write_1h_tokens=100_000)
    assert usd(one_hour, model, catalog=catalog) == Decimal("0.600000")
    # above 200K: 200,000 fresh x 6 + 10,000 one-hour writes x 12 (2 x the tier's $6)
    tiered = Usage(input_tokens=200_000, cache_write_tokens=10_000, cache_write_1h_tokens=10_000)
    assert usd(tiered, model, catalog=catalog) == Decimal("1.320000")


# -- 9. OpenAI web search by tool and model family ----------------------------------------------------

def test_web_search_preview_on_non_reasoning_models_costs_25_per_thousand():
    from ci_guard.meter.pricer import CatalogPricer

    pricer = CatalogPricer(load_catalog())
    assert pricer.fees("openai", 3, "gpt-4o", preview=True) == Decimal("0.075")
    assert pricer.fees("openai", 3, "gpt-4.1", preview=True) == Decimal("0.075")
    assert pricer.fees("openai", 3, "gpt-4o") == Decimal("0.03")  # the web_search tool: $10 / 1,000
    assert pricer.fees("openai", 3, "gpt-5", preview=True) == Decimal("0.03")  # reasoning models: $10 / 1,000
    assert pricer.fees("anthropic", 3, "claude-sonnet-4-5") == Decimal("0.03")


def test_the_request_says_which_search_tool_it_offers():
    from ci_guard.meter.providers.registry import adapter_for

    adapter = adapter_for("openai", "/v1/responses")
    assert adapter.inspect({"model": "gpt-4o", "input": "x", "tools": [{"type": "web_search_preview"}]}
                           ).web_search_preview
    assert not adapter.inspect({"model": "gpt-4o", "input": "x", "tools": [{"type": "web_search"}]}
                               ).web_search_preview


# -- 12. one-hour writes in the JSON outputs ------------------------------------------------------------

def test_usage_json_carries_one_hour_writes():
    tokens = Usage(cache_write_tokens=300, cache_write_1h_tokens=200).as_json()
    assert tokens["cache_write"] == 300 and tokens["cache_write_1h"] == 200


def test_pinned_litellm_copy_is_the_file_the_tests_say():
    data = json.loads(PINNED.read_text())
    assert "1.110.2" in data["_comment"] and "gpt-5.5" in data
