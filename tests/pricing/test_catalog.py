from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from ci_guard.errors import PricingError
from ci_guard.pricing.catalog import load_catalog
from ci_guard.pricing.cost import max_output_for_budget, worst_case_cost

REQUIRED = ["claude-opus-4", "claude-opus-4-1", "claude-opus-4-5", "claude-opus-4-6", "claude-sonnet-4",
            "claude-sonnet-4-5", "claude-sonnet-4-6", "claude-3-5-haiku", "claude-haiku-4-5", "gpt-5",
            "gpt-5-mini", "gpt-5-nano", "gpt-5-codex", "gpt-4.1", "gpt-4o", "o3", "o4-mini", "gpt-5.2",
            "gpt-5.4", "gpt-5.5", "gemini-2.5-pro", "gemini-2.5-flash"]


def test_bundled_catalog_is_dated_sourced_and_complete():
    catalog = load_catalog()
    assert catalog.as_of == "2026-12-04"
    assert "anthropic-pricing" in catalog.sources
    for name in REQUIRED:
        assert name in catalog.prices, name
        assert catalog.prices[name].source == "catalog"
    # every entry names where its figures come from, and that source is listed
    from ci_guard.pricing.catalog import bundled_entries

    for name, entry in bundled_entries().items():
        assert entry.get("source") in catalog.sources, name


def test_the_current_models_of_issue_11_are_priced():
    catalog = load_catalog()
    for name in ("gpt-5.1", "gpt-5.1-codex", "gpt-5.1-codex-mini", "gpt-5.4-nano", "gpt-5.6", "gpt-4.1-mini",
                 "gpt-4.1-nano", "gpt-4o-mini", "o3-mini", "claude-sonnet-5", "claude-opus-5", "claude-haiku-5-5",
                 "claude-sonnet-5-5", "claude-opus-5-5", "gemini-3.1-pro-preview", "gemini-3-flash-preview",
                 "gemini-3.5-flash", "gemini/gemini-3.1-flash-lite"):
        assert catalog.find(name) is not None, name


def test_anthropic_cache_prices_follow_the_published_multipliers():
    for price in load_catalog().models():
        if price.provider != "anthropic":
            continue
        for rates in [price.rates] + [t.rates for t in price.tiers]:
            assert rates.cache_write_5m == rates.input * Decimal("1.25"), price.model
            assert rates.cache_write_1h == rates.input * 2, price.model
            if price.model in ("claude-sonnet-5-5", "claude-opus-5-5", "claude-fable-5-1",
                               "claude-mythos-5-1"):
                # Claude 5.5 / 5.1 models read from cache at 0.05x / 0.025x input (LiteLLM 1.110.2)
                assert rates.cache_read < rates.input * Decimal("0.1"), price.model
            else:
                assert rates.cache_read == rates.input * Decimal("0.1"), price.model


def test_no_cached_or_written_token_is_cheaper_than_zero_or_free():
    for price in load_catalog().models():
        assert price.rates.input > 0 and price.rates.output > 0
        assert price.rates.cache_read > 0 and price.rates.cache_write_5m >= price.rates.input


def test_sonnet_long_context_tier():
    tier = load_catalog().lookup("claude-sonnet-4-5").tiers[0]
    assert tier.above_input_tokens == 200000
    assert (tier.rates.input, tier.rates.output) == (Decimal("6"), Decimal("22.50"))


@pytest.mark.parametrize("name,expected,how", [
    ("claude-sonnet-4-5", "claude-sonnet-4-5", "exact"),
    ("Claude-Sonnet-4-5", "claude-sonnet-4-5", "exact"),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5", "normalized"),
    ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5", "normalized"),
    ("claude-sonnet-4-5[1m]", "claude-sonnet-4-5", "normalized"),
    ("claude-sonnet-4.5", "claude-sonnet-4-5", "normalized"),
    ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5", "normalized"),
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5", "normalized"),
    ("claude-sonnet-4-0", "claude-sonnet-4", "alias"),
    ("claude-3-5-haiku-20241022", "claude-3-5-haiku", "normalized"),
    ("gpt-4o-2024-08-06", "gpt-4o", "normalized"),
    ("openai/gpt-5-mini", "gpt-5-mini", "normalized"),
    ("o3-2025-04-16", "o3", "normalized"),
    ("models/gemini-2.5-pro", "gemini-2.5-pro", "normalized"),
])
def test_names_aliases_and_snapshots(name, expected, how):
    found = load_catalog().find(name)
    assert found is not None and (found[0].model, found[1]) == (expected, how)


def test_unknown_model_policies():
    assert load_catalog().resolve("mystery-1").denied  # default: deny
    deny = load_catalog({"on_unknown_model": "deny"}).resolve("mystery-1")
    assert deny.price is None and deny.how == "unpriced" and "mystery-1" in deny.warning
    warn = load_catalog({"on_unknown_model": "warn", "fallback_model": "claude-opus-4-5"}).resolve("mystery-1")
    assert warn.price.model == "claude-opus-4-5" and warn.how == "fallback" and "mystery-1" in warn.warning
    with pytest.raises(PricingError, match="mystery-1"):
        load_catalog({"on_unknown_model": "error"}).resolve("mystery-1")
    assert load_catalog({"on_unknown_model": "error"}).resolve("gpt-5").price.model == "gpt-5"


@pytest.mark.parametrize("config,field", [
    ({"on_unknown_model": "warn"}, "pricing.fallback_model"),
    ({"on_unknown_model": "warn", "fallback_model": "nope"}, "pricing.fallback_model"),
    ({"on_unknown_model": "shrug"}, "pricing.on_unknown_model"),
    ({"overrides": {"x": {"input": 1}}}, "pricing.overrides.x"),
    ({"overrides": {"x": {"input": 1, "output": "cheap"}}}, "pricing.overrides.x.output"),
    ({"overrides": {"gpt-5": {"discount_pct": 120}}}, "pricing.overrides.gpt-5.discount_pct"),
    ({"overrides": {"gpt-5": {"inptu": 1}}}, "pricing.overrides.gpt-5.inptu"),
    ({"overrides": {"x": {"same_as": "nope"}}}, "pricing.overrides.x.same_as"),
])
def test_invalid_pricing_sections_name_the_field(config, field):
    with pytest.raises(PricingError) as info:
        load_catalog(config)
    assert f" {field}:" in info.value.render()


def test_discount_applies_to_every_rate_tier_and_snapshot():
    catalog = load_catalog({"overrides": {"claude-sonnet-4-5": {"discount_pct": 10}}})
    price = catalog.lookup("claude-sonnet-4-5-20250929")
    assert price.source == "override"
    assert (price.rates.input, price.rates.cache_read, price.rates.output) == (
        Decimal("2.7"), Decimal("0.27"), Decimal("13.5"))
    assert price.tiers[0].rates.output == Decimal("20.25")
    assert load_catalog().lookup("claude-sonnet-4-5").rates.input == 3  # the bundled data is untouched


def test_custom_model_defaults_cache_rates_to_input_never_zero():
    catalog = load_catalog({"overrides": {"acme-coder": {"input": 0.4, "output": 1.2}}})
    price = catalog.lookup("acme-coder")
    assert (price.rates.input, price.rates.cache_read, price.rates.cache_write_1h) == (
        Decimal("0.4"), Decimal("0.4"), Decimal("0.4"))


def test_same_as_and_list_form_and_object_config():
    config = SimpleNamespace(overrides=[{"model": "acme-sonnet", "same_as": "claude-sonnet-4-5", "output": 14}],
                             on_unknown_model="deny", fallback_model=None, files=None)
    price = load_catalog(config).lookup("acme-sonnet")
    assert (price.rates.input, price.rates.output, price.tiers[0].above_input_tokens) == (
        Decimal("3"), Decimal("14"), 200000)


def test_worst_case_and_max_output():
    sonnet = load_catalog().lookup("claude-sonnet-4-5")
    # input at the 1-hour cache-write rate ($6 = 2x input), output at $15
    assert worst_case_cost(sonnet, 10000, 4000) == Decimal("0.120000")
    assert worst_case_cost(sonnet, 250000, 4000) == Decimal("3.090000")  # the tier ($12 / $22.50) applies to all
    assert max_output_for_budget(sonnet, 10000, Decimal("0.12")) == 4000
    assert max_output_for_budget(sonnet, 10000, Decimal("0.119999")) == 3999
    assert max_output_for_budget(sonnet, 10000, Decimal("0.06")) == 0
    assert max_output_for_budget(sonnet, 10000, Decimal("0.03")) == 0
    nano = load_catalog().lookup("gpt-5-nano")
    n = max_output_for_budget(nano, 0, Decimal("0.000001"))
    assert n == 2 and worst_case_cost(nano, 0, n) <= Decimal("0.000001") < worst_case_cost(nano, 0, n + 1)
    free = load_catalog({"overrides": {"local": {"input": 0, "output": 0}}}).lookup("local")
    assert max_output_for_budget(free, 1000, Decimal("0.01")) == 2**31 - 1


def test_openai_priority_tier_uses_published_rates_or_the_highest_published_ratio():
    from ci_guard.pricing.cost import cost
    from ci_guard.pricing.usage import Usage

    catalog = load_catalog()
    usage = Usage(input_tokens=1000, cache_read_tokens=4000, output_tokens=500)
    gpt5 = catalog.lookup("gpt-5")
    # standard: 1,000 x 1.25 + 4,000 x 0.125 + 500 x 10 per million
    assert cost(usage, gpt5).total_usd == Decimal("0.00675")
    # priority (published): 1,000 x 2.50 + 4,000 x 0.25 + 500 x 20 per million
    assert cost(usage, gpt5.for_service_tier("priority")).total_usd == Decimal("0.0135")
    assert gpt5.for_service_tier("default") is gpt5
    # flex is billed at Batch API rates: half of every rate (tests/pricing/test_service_tiers.py)
    assert cost(usage, gpt5.for_service_tier("flex")).total_usd == Decimal("0.003375")
    mini = catalog.lookup("gpt-4.1")  # published at 1.75x: the published rates win over the 2x bound
    assert mini.for_service_tier("priority").rates.output == Decimal("14.00")
    nano = catalog.lookup("gpt-5-nano")  # no published priority rates: 2.5x, gpt-5.5's published ratio
    assert nano.for_service_tier("priority").rates.output == Decimal("1.000")
    tiered = catalog.lookup("gpt-5.5")  # published base priority rates; the >272K tier has none: 2.5x
    fast = tiered.for_service_tier("priority")
    assert (fast.rates.input, fast.rates.cache_read, fast.rates.output) == (Decimal("12.50"), Decimal("1.25"),
                                                                          Decimal("75.00"))
    assert [t.rates.output for t in fast.tiers] == [Decimal("112.5")]
    sonnet = catalog.lookup("claude-sonnet-4-5")  # Anthropic's service_tier does not change the price here
    assert sonnet.for_service_tier("priority") is sonnet


def test_us_only_inference_costs_ten_percent_more_on_opus_4_6_and_later():
    catalog = load_catalog()
    opus = catalog.lookup("claude-opus-4-6")
    us = opus.for_call(inference_geo="us")
    assert (us.rates.input, us.rates.output, us.rates.cache_read) == (Decimal("5.5"), Decimal("27.5"),
                                                                      Decimal("0.55"))
    assert opus.for_call(inference_geo="global") is opus and opus.for_call() is opus
    older = catalog.lookup("claude-opus-4-5")  # before 4.6: no surcharge
    assert older.for_call(inference_geo="us") is older
