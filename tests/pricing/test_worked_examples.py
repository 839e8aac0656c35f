"""The worked examples of docs/pricing.md: provider usage JSON -> Usage -> cost, checked exactly.

Every expected figure was computed by hand (tokens x USD per million / 1,000,000) and is written
out in docs/pricing.md.
"""

from __future__ import annotations

from decimal import Decimal

from ci_guard.pricing.catalog import load_catalog
from ci_guard.pricing.cost import cost
from ci_guard.pricing.normalize import from_anthropic, from_gemini, from_openai_chat, from_openai_responses
from ci_guard.pricing.usage import Usage

CATALOG = load_catalog()


def price(model: str):
    found = CATALOG.lookup(model)
    assert found is not None, model
    return found


def test_anthropic_cache_writes_5m_and_1h_cache_reads_and_thinking():
    usage = from_anthropic({
        "input_tokens": 1200, "cache_creation_input_tokens": 3000, "cache_read_input_tokens": 50000,
        "output_tokens": 800,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
        "output_tokens_details": {"thinking_tokens": 300},
    })
    assert usage == Usage(input_tokens=1200, cache_write_tokens=3000, cache_write_1h_tokens=2000,
                          cache_read_tokens=50000, output_tokens=800, reasoning_tokens=300)
    c = cost(usage, price("claude-sonnet-4-5-20250929"))
    assert c.tier_above_tokens is None  # 54,200 input tokens: base rates
    assert (c.input_usd, c.cache_write_5m_usd, c.cache_write_1h_usd, c.cache_read_usd, c.output_usd) == (
        Decimal("0.0036"), Decimal("0.00375"), Decimal("0.012"), Decimal("0.015"), Decimal("0.012"))
    assert c.reasoning_usd == Decimal("0.0045")  # informational, already inside output_usd
    assert c.total_usd == Decimal("0.046350")


def test_anthropic_long_context_tier_bills_every_token_at_the_tier():
    usage = from_anthropic({"input_tokens": 5000, "cache_read_input_tokens": 200000, "output_tokens": 2000})
    c = cost(usage, price("claude-sonnet-4-5"))
    assert c.tier_above_tokens == 200000  # 205,000 > 200,000
    assert (c.input_usd, c.cache_read_usd, c.output_usd) == (Decimal("0.03"), Decimal("0.12"), Decimal("0.045"))
    assert c.total_usd == Decimal("0.195000")
    # exactly 200,000 input tokens is not above the threshold
    at_limit = from_anthropic({"input_tokens": 5000, "cache_read_input_tokens": 195000, "output_tokens": 2000})
    assert cost(at_limit, price("claude-sonnet-4-5")).total_usd == Decimal("0.103500")
    # Sonnet 4.6 has the 1M window at standard prices
    assert cost(usage, price("claude-sonnet-4-6")).total_usd == Decimal("0.105000")


def test_anthropic_without_ttl_breakdown_counts_writes_as_5_minute():
    usage = from_anthropic({"input_tokens": 10, "cache_creation_input_tokens": 7345,
                            "cache_read_input_tokens": 7123, "output_tokens": 6039})
    assert usage.cache_write_1h_tokens == 0 and usage.cache_write_5m_tokens == 7345
    # Haiku 4.5: 10 x 1 + 7345 x 1.25 + 7123 x 0.10 + 6039 x 5 = 40,098.55 micro-dollars
    assert cost(usage, price("claude-haiku-4-5")).exact_usd == Decimal("0.04009855")
    assert cost(usage, price("claude-haiku-4-5")).total_usd == Decimal("0.040099")


def test_openai_chat_cached_tokens_are_inside_prompt_tokens():
    usage = from_openai_chat({
        "prompt_tokens": 12000, "completion_tokens": 3000, "total_tokens": 15000,
        "prompt_tokens_details": {"cached_tokens": 8000, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 2200},
    })
    assert usage == Usage(input_tokens=4000, cache_read_tokens=8000, output_tokens=3000, reasoning_tokens=2200)
    c = cost(usage, price("gpt-5-2025-08-07"))
    assert (c.input_usd, c.cache_read_usd, c.output_usd) == (Decimal("0.005"), Decimal("0.001"), Decimal("0.03"))
    assert c.total_usd == Decimal("0.036000")


def test_openai_responses_rounds_half_up_to_the_micro_dollar():
    usage = from_openai_responses({
        "input_tokens": 45678, "input_tokens_details": {"cached_tokens": 40960},
        "output_tokens": 1234, "output_tokens_details": {"reasoning_tokens": 768}, "total_tokens": 46912,
    })
    assert usage == Usage(input_tokens=4718, cache_read_tokens=40960, output_tokens=1234, reasoning_tokens=768)
    c = cost(usage, price("openai/gpt-5-codex"))
    assert c.exact_usd == Decimal("0.0233575")  # 0.0058975 + 0.00512 + 0.01234
    assert c.total_usd == Decimal("0.023358")


def test_openai_cache_write_tokens_gpt_5_6():
    catalog = load_catalog()  # gpt-5.6: $4 input, $5 cache write, $0.40 cache read, $20 output (LiteLLM 1.110.2)
    usage = from_openai_responses({
        "input_tokens": 30000, "output_tokens": 2000,
        "input_tokens_details": {"cached_tokens": 10000, "cache_write_tokens": 15000},
    })
    assert usage == Usage(input_tokens=5000, cache_write_tokens=15000, cache_read_tokens=10000, output_tokens=2000)
    c = cost(usage, catalog.lookup("gpt-5.6"))
    assert (c.input_usd, c.cache_write_5m_usd, c.cache_read_usd, c.output_usd) == (
        Decimal("0.02"), Decimal("0.075"), Decimal("0.004"), Decimal("0.04"))
    assert c.total_usd == Decimal("0.139000")
    # before GPT-5.6 written tokens cost the plain input rate: never free, never a premium
    c = cost(usage, price("gpt-5"))
    assert c.cache_write_5m_usd == Decimal("0.01875")


def test_gemini_thoughts_are_output_and_the_tier_follows_prompt_size():
    usage = from_gemini({"promptTokenCount": 250000, "cachedContentTokenCount": 100000,
                         "candidatesTokenCount": 4000, "thoughtsTokenCount": 6000, "totalTokenCount": 260000})
    assert usage == Usage(input_tokens=150000, cache_read_tokens=100000, output_tokens=10000, reasoning_tokens=6000)
    c = cost(usage, price("models/gemini-2.5-pro"))
    assert c.tier_above_tokens == 200000
    assert (c.input_usd, c.cache_read_usd, c.output_usd) == (Decimal("0.375"), Decimal("0.025"), Decimal("0.15"))
    assert c.total_usd == Decimal("0.550000")
    small = from_gemini({"prompt_token_count": 1000, "candidates_token_count": 500, "thoughts_token_count": 1500})
    assert cost(small, price("gemini-2.5-flash")).total_usd == Decimal("0.005300")


def test_micro_dollar_rounding_is_half_up_and_only_at_the_end():
    haiku = price("claude-haiku-4-5")
    assert cost(Usage(cache_read_tokens=5), haiku).total_usd == Decimal("0.000001")  # 0.0000005 -> up
    assert cost(Usage(cache_read_tokens=4), haiku).total_usd == Decimal("0.000000")
    # three classes each below half a micro-dollar still add up before rounding
    c = cost(Usage(cache_read_tokens=4, input_tokens=0, output_tokens=0, cache_write_tokens=0), haiku)
    three = cost(Usage(cache_read_tokens=2, cache_write_tokens=1, input_tokens=0), price("claude-3-5-haiku"))
    assert three.exact_usd == Decimal("0.00000116") and three.total_usd == Decimal("0.000001")
    assert c.total_micros == 0
