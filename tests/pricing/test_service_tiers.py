"""Service tiers and regions in the catalog, price files, overrides, `ci-guard cost` and imports:
Anthropic fast mode, batch, OpenAI flex and fast, OpenAI regional processing (issue 11, "tiers,
priority/flex/batch, fast modes, regional multipliers"). Published figures: tests/pricing/test_grid.py."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.importers import parse_usage_file
from ci_guard.importers.record import price_calls
from ci_guard.pricing.catalog import load_catalog
from ci_guard.pricing.cost import cost, worst_case_cost
from ci_guard.pricing.litellm import parse_litellm
from ci_guard.pricing.rates import FAST_FALLBACK
from ci_guard.pricing.usage import Usage
from tests.helpers import run_cli

CATALOG = load_catalog()
CALL = Usage(input_tokens=1_000, cache_write_tokens=2_000, cache_write_1h_tokens=1_000, cache_read_tokens=10_000,
             output_tokens=100)


def test_no_catalog_model_has_a_fast_multiplier_above_the_fallback():
    published = [f for p in CATALOG.models() for t, f in p.tier_multipliers if t == "fast"]
    assert published and max(published) == FAST_FALLBACK


def test_fast_mode_on_a_model_without_a_published_multiplier_is_never_priced_as_standard():
    sonnet = CATALOG.lookup("claude-sonnet-4-6")
    # 1,000 x 3 + 1,000 x 3.75 + 1,000 x 6 + 10,000 x 0.30 + 100 x 15 = 17,250 / 1M; x6 = $0.1035
    assert cost(CALL, sonnet).total_usd == Decimal("0.01725")
    assert cost(CALL, sonnet.for_service_tier("fast")).total_usd == Decimal("0.1035")
    # an OpenAI model has no "fast mode" of Anthropic's kind: "fast" is its priority tier
    assert CATALOG.lookup("gpt-5.5").for_service_tier("fast") == CATALOG.lookup("gpt-5.5").for_service_tier("priority")


def test_fast_mode_scales_the_worst_case_too():
    opus = CATALOG.lookup("claude-opus-5")
    # worst case: input at the 1-hour write rate ($10; fast: $20), output $25 (fast: $50)
    assert worst_case_cost(opus, 1_000, 1_000) == Decimal("0.035")
    assert worst_case_cost(opus.for_call("fast"), 1_000, 1_000) == Decimal("0.07")


LITELLM = {
    "claude-opus-5": {"litellm_provider": "anthropic", "mode": "chat", "input_cost_per_token": 5e-06,
                      "output_cost_per_token": 2.5e-05, "cache_read_input_token_cost": 5e-07,
                      "provider_specific_entry": {"fast": 2.0, "us": 1.1}},
    "gpt-5.5": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 5e-06,
                "output_cost_per_token": 3e-05, "regional_processing_uplift_multiplier_eu": 1.1,
                "regional_processing_uplift_multiplier_us": 1.1},
}


def test_litellm_fast_and_regional_keys_are_read():
    prices = parse_litellm(json.dumps(LITELLM))
    assert prices["claude-opus-5"].tier_multipliers == (("fast", Decimal("2.0")),)
    assert prices["claude-opus-5"].geo_multipliers == (("us", Decimal("1.1")),)
    assert prices["gpt-5.5"].geo_multipliers == (("eu", Decimal("1.1")), ("us", Decimal("1.1")))
    # 1,000 x 5 + 100 x 30 = $0.008; x 1.1 on a regional endpoint
    assert cost(Usage(input_tokens=1_000, output_tokens=100), prices["gpt-5.5"].for_call(None, "eu")).total_usd \
        == Decimal("0.0088")


def test_a_price_file_and_an_override_keep_the_fast_multiplier_and_the_provider_discounts(tmp_path: Path):
    data = {"claude-opus-5": {k: v for k, v in LITELLM["claude-opus-5"].items() if k != "provider_specific_entry"}}
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(data))
    catalog = load_catalog({"files": [str(path)], "overrides": {"claude-opus-5-5": {"discount_pct": 10},
                                                                 "acme-opus": {"same_as": "claude-opus-5",
                                                                               "service_tiers": {"fast": 3}}}})
    assert dict(catalog.lookup("claude-opus-5").tier_multipliers) == {"batch": Decimal("0.5"), "fast": Decimal("2")}
    usage = Usage(input_tokens=1_000, output_tokens=100)
    # Opus 5.5 ($4 / $20) with 10% off, then fast 2x: (4,000 + 2,000) x 0.9 x 2 / 1M
    assert cost(usage, catalog.lookup("claude-opus-5-5").for_call("fast")).total_usd == Decimal("0.0108")
    assert cost(usage, catalog.lookup("acme-opus").for_call("fast")).total_usd == Decimal("0.0225")


def test_an_unknown_service_tier_value_is_a_clear_error(tmp_path: Path):
    from ci_guard.errors import PricingError
    with pytest.raises(PricingError) as exc:
        load_catalog({"overrides": {"claude-opus-5": {"service_tiers": {"fast": "twice"}}}})
    assert "service_tiers.fast" in exc.value.render()


@pytest.mark.parametrize(("args", "total"), [
    # Opus 5: 20,000 x $5 + 2,000 x $25 = $0.15; fast 2x
    (["--model", "claude-opus-5", "--speed", "fast"], "0.300000"),
    (["--model", "claude-opus-5", "--service-tier", "fast"], "0.300000"),
    (["--model", "claude-opus-5", "--speed", "fast", "--inference-geo", "us"], "0.330000"),
    (["--model", "claude-opus-5", "--service-tier", "batch"], "0.075000"),
    # gpt-5.5: 20,000 x $5 + 2,000 x $30 = $0.16; flex and batch half; fast = priority ($12.50 / $75)
    (["--model", "gpt-5.5", "--service-tier", "flex"], "0.080000"),
    (["--model", "gpt-5.5", "--service-tier", "batch"], "0.080000"),
    (["--model", "gpt-5.5", "--service-tier", "fast"], "0.400000"),
    (["--model", "gpt-5.5", "--inference-geo", "eu"], "0.176000"),
    (["--model", "gpt-5", "--inference-geo", "eu"], "0.045000"),  # released before 2026-03-05: no uplift
    # gemini-3.5-flash: 20,000 x $1.50 + 2,000 x $9 = $0.048; flex and batch half (Google's optimization
    # page: 50% discount); priority at the published $2.70 / $16.20 (LiteLLM 1.110.2 *_priority)
    (["--model", "gemini-3.5-flash"], "0.048000"),
    (["--model", "gemini-3.5-flash", "--service-tier", "flex"], "0.024000"),
    (["--model", "gemini-3.5-flash", "--service-tier", "batch"], "0.024000"),
    (["--model", "gemini-3.5-flash", "--service-tier", "priority"], "0.086400"),
    (["--model", "gemini-3.5-flash", "--service-tier", "SERVICE_TIER_PRIORITY"], "0.086400"),  # the enum spelling
    (["--model", "gemini-3.5-flash", "--service-tier", "standard"], "0.048000"),
    # a Chat search model's row (web_searches 1): 20,000 x $1.25 + 2,000 x $10 = $0.045, + $0.01 search
    (["--model", "gpt-5-search-api", "--web-searches", "1"], "0.055000"),
    # gpt-5.6 writes with a 12-hour minimum cache life (the ledger's cache_write_1h): 2.5x input, $10;
    # 20,000 x $4 + 2,000 x $20 = $0.12, + 10,000 x $10 = $0.22 (30-minute writes: $0.05 -> $0.17)
    (["--model", "gpt-5.6", "--cache-write-1h", "10000"], "0.220000"),
    (["--model", "gpt-5.6", "--cache-write", "10000"], "0.170000"),
    (["--model", "gpt-4o-search-preview-2025-03-11", "--web-searches", "1"], "0.095000"),  # $0.07 + $0.025
])
def test_cost_prices_every_tier_and_region(capsys, args, total):
    code, out, _ = run_cli(capsys, "cost", *args, "--input", "20000", "--output", "2000", "--format", "json")
    assert code == 0
    assert json.loads(out)["total_usd"] == total


def test_a_claude_code_session_fast_mode_call_is_imported_at_fast_rates(tmp_path: Path):
    def line(req: str, usage: dict) -> str:
        return json.dumps({"type": "assistant", "requestId": req, "sessionId": "s", "timestamp": "2026-12-04T10:00:00Z",
                           "message": {"id": req, "model": "claude-opus-5", "usage": usage, "content": []}})

    path = tmp_path / "s.jsonl"
    path.write_text("\n".join([
        line("r1", {"input_tokens": 1000, "output_tokens": 100, "service_tier": "standard", "speed": "fast"}),
        line("r2", {"input_tokens": 1000, "output_tokens": 100, "service_tier": "standard", "speed": "standard"}),
        line("r3", {"input_tokens": 1000, "output_tokens": 100, "service_tier": "batch"}),
    ]))
    imported = parse_usage_file("claude-code-session", str(path))
    assert [c.service_tier for c in imported.calls] == ["fast", "standard", "batch"]
    # $0.0075 standard; fast 2x; batch half
    assert [c.cost_usd for c in price_calls(imported, CATALOG)] == [Decimal("0.015"), Decimal("0.0075"),
                                                                    Decimal("0.00375")]


def test_litellm_flex_and_batch_rates_become_multipliers_and_are_compared(tmp_path: Path, capsys):
    # LiteLLM's keys for OpenAI flex / Batch API rates (half of gpt-5.5's $5 / $30)
    entry = {**LITELLM["gpt-5.5"], "input_cost_per_token_flex": 2.5e-06, "output_cost_per_token_flex": 1.5e-05,
             "input_cost_per_token_batches": 2.5e-06, "output_cost_per_token_batches": 1.8e-05}
    price = parse_litellm(json.dumps({"gpt-5.5": entry}))["gpt-5.5"]
    # batch output 18 / 30 = 0.6 > input 0.5: the larger ratio, never under-counted
    assert dict(price.tier_multipliers) == {"flex": Decimal("0.5"), "batch": Decimal("0.6")}
    pinned_path = Path(__file__).parent.parent / "fixtures" / "litellm" / "model_prices_pinned.json"
    pinned = json.loads(pinned_path.read_text())
    pinned["gpt-5.5"].update({k: v for k, v in entry.items() if k.endswith(("_flex", "_batches"))})
    changed = tmp_path / "litellm.json"
    changed.write_text(json.dumps(pinned))
    code, out, _ = run_cli(capsys, "prices", "--compare-litellm", str(changed))
    assert code == 1
    assert "gpt-5.5  service_tiers: catalog batch x0.5, flex x0.5 | litellm batch x0.6, flex x0.5" in out


def test_prices_shows_a_models_modifiers(capsys):
    code, out, _ = run_cli(capsys, "prices", "claude-opus-5")
    assert code == 0 and "modifiers: batch x0.5; fast x2; us x1.1" in out
    code, out, _ = run_cli(capsys, "prices", "gpt-5.5")
    assert "modifiers: priority/fast 12.5/1.25/75 (in/read/out); batch x0.5; flex x0.5; au x1.1" in out


def test_claude_code_json_prices_the_main_loop_fast_and_its_side_calls_standard(tmp_path: Path):
    result = {
        "type": "result", "subtype": "success", "is_error": False, "num_turns": 1, "session_id": "s",
        "usage": {"input_tokens": 1000, "output_tokens": 100, "service_tier": "standard", "speed": "fast"},
        "modelUsage": {"claude-opus-5": {"inputTokens": 1000, "outputTokens": 100},
                       "claude-haiku-4-5": {"inputTokens": 1000, "outputTokens": 100}},
    }
    path = tmp_path / "r.json"
    # stream-json: the init message names the main loop's model
    path.write_text(json.dumps([{"type": "system", "subtype": "init", "model": "claude-opus-5"}, result]))
    imported = parse_usage_file("claude-code-json", str(path))
    priced = {p.call.model: p.cost_usd for p in price_calls(imported, CATALOG)}
    # Opus 5 fast: (5,000 + 2,500) / 1M x 2; Haiku 4.5 (a side call, never fast): 1,000 + 500 per million
    assert priced == {"claude-opus-5": Decimal("0.015"), "claude-haiku-4-5": Decimal("0.0015")}
    # without the init message the main loop is unknown: every entry stays fast (never under-counted)
    path.write_text(json.dumps(result))
    priced = {p.call.model: p.cost_usd for p in price_calls(parse_usage_file("claude-code-json", str(path)), CATALOG)}
    assert priced == {"claude-opus-5": Decimal("0.015"), "claude-haiku-4-5": Decimal("0.009")}


def test_gemini_priority_above_200k_uses_the_published_priority_tier():
    # gemini-2.5-pro, 250,000 input + 1,000 output on priority: above 200K the published priority tier
    # ($4.50 / $27, LiteLLM 1.110.2 *_above_200k_tokens_priority) -- not 2.5x the standard tier ($6.25)
    price = load_catalog().lookup("gemini-2.5-pro")
    usage = Usage(input_tokens=250_000, output_tokens=1_000)
    assert cost(usage, price.for_call("priority")).total_usd == Decimal("1.152000")  # 1.125 + 0.027
    assert cost(usage, price.for_call("flex")).total_usd == Decimal("0.320000")  # (0.625 + 0.015) / 2
    assert cost(usage, price.for_call("SERVICE_TIER_FLEX")).total_usd == Decimal("0.320000")
