from __future__ import annotations

import json
from decimal import Decimal

import pytest

from ci_guard.errors import PricingError
from ci_guard.pricing.catalog import load_catalog
from ci_guard.pricing.cost import cost
from ci_guard.pricing.litellm import parse_litellm
from ci_guard.pricing.usage import Usage

# the claude-sonnet-4-5 entry of LiteLLM's file, as quoted in the notes (gateways.md section 4)
SONNET = """{
  "sample_spec": {"input_cost_per_token": 0, "output_cost_per_token": 0},
  "claude-sonnet-4-5": {
    "litellm_provider": "anthropic", "mode": "chat",
    "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
    "cache_read_input_token_cost": 3e-07, "cache_creation_input_token_cost": 3.75e-06,
    "cache_creation_input_token_cost_above_1hr": 6e-06,
    "input_cost_per_token_above_200k_tokens": 6e-06, "output_cost_per_token_above_200k_tokens": 2.25e-05,
    "cache_read_input_token_cost_above_200k_tokens": 6e-07,
    "cache_creation_input_token_cost_above_200k_tokens": 7.5e-06,
    "cache_creation_input_token_cost_above_1hr_above_200k_tokens": 1.2e-05
  },
  "text-embedding-3-small": {"mode": "embedding", "input_cost_per_token": 2e-08, "output_cost_per_token": 0}
}"""


def test_floats_become_exact_decimals_per_million():
    prices = parse_litellm(SONNET)
    assert set(prices) == {"claude-sonnet-4-5"}  # sample_spec and embeddings skipped
    price = prices["claude-sonnet-4-5"]
    assert price.rates.input == Decimal("3") and price.rates.cache_read == Decimal("0.3")
    assert price.rates.cache_write_1h == Decimal("6")
    tier = price.tiers[0]
    assert tier.above_input_tokens == 200000
    assert (tier.rates.input, tier.rates.output, tier.rates.cache_write_1h) == (
        Decimal("6"), Decimal("22.5"), Decimal("12"))


def test_file_prices_match_the_bundled_catalog_to_the_micro_dollar():
    usage = Usage(input_tokens=5000, cache_write_tokens=3000, cache_write_1h_tokens=1000,
                  cache_read_tokens=210000, output_tokens=1777)
    ours = cost(usage, load_catalog().lookup("claude-sonnet-4-5"))
    theirs = cost(usage, parse_litellm(SONNET)["claude-sonnet-4-5"])
    assert ours.exact_usd == theirs.exact_usd and ours.tier_above_tokens == 200000


def test_missing_cache_keys_never_make_tokens_free():
    text = json.dumps({"my-anthropic": {"litellm_provider": "anthropic", "input_cost_per_token": 1e-06,
                                        "output_cost_per_token": 5e-06, "cache_creation_input_token_cost": 1.25e-06},
                       "vllm-local": {"input_cost_per_token": 1e-07, "output_cost_per_token": 2e-07,
                                      "input_cost_per_token_above_128k_tokens": 2e-07}})
    prices = parse_litellm(text)
    anth = prices["my-anthropic"].rates
    assert (anth.cache_read, anth.cache_write_1h) == (Decimal("1"), Decimal("2"))  # input; 2x input
    local = prices["vllm-local"]
    assert local.rates.cache_read == Decimal("0.1") and local.tiers[0].above_input_tokens == 128000
    assert local.tiers[0].rates.output == Decimal("0.2")  # not given for the tier: base rate


def test_tiered_pricing_form():
    text = json.dumps({"dashscope/qwen": {"input_cost_per_token": 1e-06, "output_cost_per_token": 4e-06,
                                          "tiered_pricing": [
                                              {"range": [0, 32000], "input_cost_per_token": 1e-06,
                                               "output_cost_per_token": 4e-06},
                                              {"range": [32000, 128000], "input_cost_per_token": 1.8e-06,
                                               "output_cost_per_token": 7.2e-06}]}})
    price = parse_litellm(text)["dashscope/qwen"]
    assert [(t.above_input_tokens, t.rates.input) for t in price.tiers] == [(32000, Decimal("1.8"))]


def test_policy_loads_files_relative_to_the_policy_and_overrides_win(tmp_path):
    (tmp_path / "prices").mkdir()
    (tmp_path / "prices" / "litellm.json").write_text(SONNET.replace("3e-06", "2.5e-06", 1))
    catalog = load_catalog({"files": ["prices/litellm.json"],
                            "overrides": {"claude-sonnet-4-5": {"discount_pct": 20}}}, base_dir=tmp_path)
    price = catalog.lookup("anthropic/claude-sonnet-4-5-20250929")
    assert price.rates.input == Decimal("2.0") and price.source == "override"


def test_bad_files_are_located():
    with pytest.raises(PricingError) as info:
        parse_litellm('{"m": {"input_cost_per_token": 1e-06,\n "output_cost_per_token": }}', "prices.json")
    assert "prices.json:2:" in info.value.render()
    with pytest.raises(PricingError) as info:
        parse_litellm('{"m": {"input_cost_per_token": "cheap", "output_cost_per_token": 1}}', "p.json")
    assert "m.input_cost_per_token" in info.value.render()
    with pytest.raises(PricingError) as info:
        load_catalog({"files": ["missing.json"]}, base_dir="/nonexistent")
    assert "missing.json" in info.value.render()
