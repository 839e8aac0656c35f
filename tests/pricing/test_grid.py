"""A grid: every catalog model x every usage shape, priced against published rates kept here.

The table below is typed from the providers' published prices as LiteLLM 1.110.2 records them
(its keys read directly, not through ci-guard's parser), with the figures LiteLLM lacks filled in
from the pricing pages (marked). The expected cost of each case is computed here with plain
Decimal arithmetic, independently of ci_guard.pricing, and compared to the micro-dollar.

Rules of the published prices this test encodes: a missing cache-write rate is the input rate
(OpenAI before GPT-5.6, Gemini: no write premium); a missing 1-hour write rate is 2x input for
Claude; a missing cache-read rate is the input rate; above a tier's threshold every token of the
request is at the tier's rates; OpenAI priority: published rates, else 2.5x (gpt-5.5's ratio, the
highest published), Gemini priority likewise; Anthropic US-only inference: 1.1x on the models marked
``us``; Anthropic fast mode, batch, OpenAI and Gemini flex, OpenAI regional processing: the tables
below the rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import pytest

from ci_guard.pricing.catalog import load_catalog
from ci_guard.pricing.cost import cost
from ci_guard.pricing.usage import Usage


@dataclass(frozen=True)
class R:
    input: str
    w5: str | None
    w1: str | None
    read: str | None
    output: str
    tier: tuple[int, R] | None = None
    priority: tuple[str, ...] | None = None  # (input, cache read or None, output[, cache write[, 1h/12h write]])
    ptier: R | None = None  # published priority rates of the tier
    us: bool = False


PUBLISHED: dict[str, R] = {
    "chatgpt-4o-latest": R("5", None, None, None, "15"),  # OpenAI pricing page
    "claude-3-5-haiku": R("0.8", "1", "1.6", "0.08", "4"),
    "claude-fable-5": R("10", "12.5", "20", "1", "50", us=True),
    "claude-fable-5-1": R("10", "12.5", "20", "0.25", "50", us=True),
    "claude-haiku-4-5": R("1", "1.25", "2", "0.1", "5"),
    "claude-haiku-5-5": R(
        "0.1", "0.125", "0.2", "0.01", "0.5", tier=(100000, R("0.5", "0.625", "1", "0.05", "2.5")), us=True
    ),
    "claude-mythos-5": R("10", "12.5", "20", "1", "50", us=True),
    "claude-mythos-5-1": R("10", "12.5", "20", "0.25", "50", us=True),
    "claude-opus-4": R("15", "18.75", "30", "1.5", "75"),
    "claude-opus-4-1": R("15", "18.75", "30", "1.5", "75"),
    "claude-opus-4-5": R("5", "6.25", "10", "0.5", "25"),
    "claude-opus-4-6": R("5", "6.25", "10", "0.5", "25", us=True),
    "claude-opus-4-7": R("5", "6.25", "10", "0.5", "25", us=True),
    "claude-opus-4-8": R("5", "6.25", "10", "0.5", "25", us=True),
    "claude-opus-5": R("5", "6.25", "10", "0.5", "25", us=True),
    "claude-opus-5-5": R("4", "5", "8", "0.2", "20", us=True),
    "claude-sonnet-4": R("3", "3.75", "6", "0.3", "15", tier=(200000, R("6", "7.5", "12", "0.6", "22.5"))),
    "claude-sonnet-4-5": R(
        "3", "3.75", "6", "0.3", "15", tier=(200000, R("6", "7.5", "12", "0.6", "22.5"))
    ),  # Anthropic page
    "claude-sonnet-4-6": R("3", "3.75", "6", "0.3", "15", us=True),
    "claude-sonnet-5": R("2", "2.5", "4", "0.2", "10", us=True),
    "claude-sonnet-5-5": R("2", "2.5", "4", "0.1", "10", us=True),
    "gemini-2.5-flash": R("0.3", None, None, "0.03", "2.5", priority=("0.54", "0.054", "4.5")),
    "gemini-2.5-flash-lite": R("0.1", None, None, "0.01", "0.4", priority=("0.18", "0.018", "0.72")),
    "gemini-2.5-pro": R(
        "1.25",
        None,
        None,
        "0.125",
        "10",
        tier=(200000, R("2.5", None, None, "0.25", "15")),
        priority=("2.25", "0.225", "18"),
        ptier=R("4.5", None, None, "0.45", "27"),  # LiteLLM 1.110.2 *_above_200k_tokens_priority
    ),
    "gemini-3-flash-preview": R("0.5", None, None, "0.05", "3", priority=("0.9", "0.09", "5.4")),
    "gemini-3.1-flash-lite": R("0.25", None, None, "0.025", "1.5", priority=("0.45", "0.045", "2.7")),
    "gemini-3.1-pro-preview": R(
        "2", None, None, "0.2", "12", tier=(200000, R("4", None, None, "0.4", "18")), priority=("3.6", "0.36", "21.6"),
        ptier=R("7.2", None, None, "0.72", "32.4"),  # LiteLLM 1.110.2 *_above_200k_tokens_priority
    ),
    "gemini-3.5-flash": R("1.5", None, None, "0.15", "9", priority=("2.7", "0.27", "16.2")),
    "gemini-3.5-flash-lite": R("0.3", None, None, "0.03", "2.5", priority=("0.54", "0.05", "4.5")),
    "gpt-4.1": R("2", None, None, "0.5", "8", priority=("3.5", "0.875", "14")),
    "gpt-4.1-mini": R("0.4", None, None, "0.1", "1.6", priority=("0.7", "0.175", "2.8")),
    "gpt-4.1-nano": R("0.1", None, None, "0.025", "0.4", priority=("0.2", "0.05", "0.8")),
    "gpt-4o": R("2.5", None, None, "1.25", "10", priority=("4.25", "2.125", "17")),
    "gpt-4o-2024-05-13": R("5", None, None, None, "15", priority=("8.75", None, "26.25")),
    # Chat Completions search models: LiteLLM 1.110.2 (gpt-5-search-api cites developers.openai.com/api/docs/pricing;
    # the 4o ones developers.openai.com/api/docs/models/gpt-4o(-mini)-search-preview). Their per-call
    # search fee is in SEARCH_FEES below.
    "gpt-5-search-api": R("1.25", None, None, "0.125", "10"),
    "gpt-4o-search-preview": R("2.5", None, None, "1.25", "10"),
    "gpt-4o-mini-search-preview": R("0.15", None, None, "0.075", "0.6"),
    "gpt-4o-mini": R("0.15", None, None, "0.075", "0.6", priority=("0.25", "0.125", "1")),
    "gpt-5": R("1.25", None, None, "0.125", "10", priority=("2.5", "0.25", "20")),
    "gpt-5-codex": R("1.25", None, None, "0.125", "10", priority=("2.5", "0.25", "20")),  # OpenAI page
    "gpt-5-mini": R("0.25", None, None, "0.025", "2", priority=("0.45", "0.045", "3.6")),
    "gpt-5-nano": R("0.05", None, None, "0.005", "0.4"),
    "gpt-5.1": R("1.25", None, None, "0.125", "10", priority=("2.5", "0.25", "20")),
    "gpt-5.1-codex": R("1.25", None, None, "0.125", "10"),
    "gpt-5.1-codex-max": R("1.25", None, None, "0.125", "10"),
    "gpt-5.1-codex-mini": R("0.25", None, None, "0.025", "2"),
    "gpt-5.2": R("1.75", None, None, "0.175", "14", priority=("3.5", "0.35", "28")),
    "gpt-5.2-codex": R("1.75", None, None, "0.175", "14"),
    "gpt-5.3-codex": R("1.75", None, None, "0.175", "14", priority=("3.5", "0.35", "28")),
    "gpt-5.4": R(
        "2.5", None, None, "0.25", "15", tier=(272000, R("5", None, None, "0.5", "22.5")), priority=("5", "0.5", "30")
    ),
    "gpt-5.4-mini": R("0.75", None, None, "0.075", "4.5", priority=("1.5", "0.15", "9")),
    "gpt-5.4-nano": R("0.2", None, None, "0.02", "1.25"),
    "gpt-5.5": R(
        "5", None, None, "0.5", "30", tier=(272000, R("10", None, None, "1", "45")), priority=("12.5", "1.25", "75")
    ),
    # GPT-5.6 and later: w5 = the default 30-minute write (1.25x input), w1 = a write with a 12-hour minimum
    # cache life (prompt_cache_options.ttl "12h"), 2.5x input: LiteLLM 1.110.2
    # cache_creation_input_token_cost_above_12hr (and _above_272k_tokens, _priority); OpenAI's
    # prompt-caching guide (a translated copy dated 2026-11-04: "30-minute writes 1.25x, 12-hour 2.5x,
    # reads unchanged by the TTL chosen").
    "gpt-5.6": R(
        "4",
        "5",
        "10",
        "0.4",
        "20",
        tier=(272000, R("8", "10", "20", "0.8", "30")),
        priority=("8", "0.8", "40", "10", "20"),
        ptier=R("16", "20", "40", "1.6", "60"),
    ),
    "gpt-6-astra": R(
        "10",
        "12.5",
        "25",
        "1",
        "50",
        tier=(272000, R("20", "25", "50", "2", "75")),
        priority=("20", "2", "100", "25", "50"),
        ptier=R("40", "50", "100", "4", "150"),
    ),
    "gpt-6-luna": R(
        "0.1",
        "0.125",
        "0.25",
        "0.01",
        "0.5",
        tier=(272000, R("0.2", "0.25", "0.5", "0.02", "0.75")),
        priority=("0.2", "0.02", "1", "0.25", "0.5"),
        ptier=R("0.4", "0.5", "1", "0.04", "1.5"),
    ),
    "gpt-6-sol": R(
        "2",
        "2.5",
        "5",
        "0.2",
        "10",
        tier=(272000, R("4", "5", "10", "0.4", "15")),
        priority=("4", "0.4", "20", "5", "10"),
        ptier=R("8", "10", "20", "0.8", "30"),
    ),
    "o3": R("2", None, None, "0.5", "8", priority=("3.5", "0.875", "14")),
    "o3-mini": R("1.1", None, None, "0.55", "4.4"),
    "o4-mini": R("1.1", None, None, "0.275", "4.4", priority=("2", "0.5", "8")),
}

PRIORITY_FALLBACK = Decimal("2.5")

# Anthropic fast mode (request speed "fast", usage.speed "fast"): a multiplier on every rate, cache
# rates included, across the whole context window. Opus 4.6 / 4.7: 6x ($30 / $150 up to 200K input,
# https://platform.claude.com/docs/en/build-with-claude/fast-mode at launch; OpenRouter's
# claude-opus-4.6-fast / -4.7-fast list $30 / $150). Opus 4.8, Opus 5, Opus 5.5: 2x (LiteLLM 1.110.2
# provider_specific_entry.fast; OpenRouter / Vercel list Opus 4.8 and Opus 5 fast at $10 / $50).
FAST = {"claude-opus-4-6": "6", "claude-opus-4-7": "6", "claude-opus-4-8": "2", "claude-opus-5": "2",
        "claude-opus-5-5": "2"}
FAST_FALLBACK = Decimal("6")  # any other Claude model served fast: the highest published multiplier
# Batch API: half of every rate (Anthropic pricing page: "50% discount on input and output", caching
# multipliers stack; OpenAI: Batch API 50%). OpenAI flex: "Tokens are priced at Batch API rates, with
# additional discounts from prompt caching" (developers.openai.com/api/docs/guides/flex-processing).
# Gemini (https://ai.google.dev/gemini-api/docs/optimization, the tier table: "Flex | 50% discount",
# "Batch | 50% discount", "Priority | 75% to 100% more than standard"; request service_tier "flex" /
# "priority", https://ai.google.dev/gemini-api/docs/flex-inference and /priority-inference). Gemini
# priority: each model's published *_priority rates (LiteLLM 1.110.2: 1.8x, inside Google's 75-100%).
HALF = {("anthropic", "batch"), ("openai", "batch"), ("openai", "flex"), ("google", "batch"), ("google", "flex")}
# OpenAI data residency: "Data residency endpoints are charged a 10% uplift for models released on or
# after March 5, 2026" (developers.openai.com/api/docs/guides/data-residency); LiteLLM 1.110.2
# regional_processing_uplift_multiplier_eu/_us = 1.1 on exactly these models.
REGIONAL = {"gpt-5.4", "gpt-5.4-mini", "gpt-5.4-nano", "gpt-5.5", "gpt-5.6", "gpt-6-astra", "gpt-6-luna", "gpt-6-sol"}
REGIONS = ("us", "eu", "au", "in", "jp")


def _rates(r: R, claude: bool) -> dict[str, Decimal]:
    inp = Decimal(r.input)
    w5 = Decimal(r.w5) if r.w5 else inp
    return {
        "input": inp,
        "w5": w5,
        "w1": Decimal(r.w1) if r.w1 else (inp * 2 if claude else w5),
        "read": Decimal(r.read) if r.read else inp,
        "output": Decimal(r.output),
    }


def expected(model: str, provider: str, u: Usage, tier: str | None = None, geo: str | None = None) -> Decimal:
    r = PUBLISHED[model]
    claude = provider == "anthropic"
    context = u.input_tokens + u.cache_write_tokens + u.cache_read_tokens
    above = r.tier is not None and context > r.tier[0]
    rates = _rates(r.tier[1] if above else r, claude)
    # OpenAI renamed Priority processing "Fast mode" on 2026-07-30; service_tier "priority" and "fast" are
    # the same tier (https://developers.openai.com/api/docs/guides/fast-mode)
    if (tier in ("priority", "fast") and provider == "openai") or (tier == "priority" and provider == "google"):
        if above:
            rates = _rates(r.ptier, claude) if r.ptier else {k: v * PRIORITY_FALLBACK for k, v in rates.items()}
        elif r.priority:
            p_in, p_read, p_out = (Decimal(x) if x else None for x in r.priority[:3])
            p_w = Decimal(r.priority[3]) if len(r.priority) > 3 else p_in
            p_w1 = Decimal(r.priority[4]) if len(r.priority) > 4 else p_w
            rates = {"input": p_in, "w5": p_w, "w1": p_w1, "read": p_read or p_in, "output": p_out}
        else:
            rates = {k: v * PRIORITY_FALLBACK for k, v in rates.items()}
    if tier == "fast" and claude:
        factor = Decimal(FAST[model]) if model in FAST else FAST_FALLBACK
        rates = {k: v * factor for k, v in rates.items()}
    if (provider, tier) in HALF:
        rates = {k: v / 2 for k, v in rates.items()}
    if (geo == "us" and r.us and claude) or (geo in REGIONS and model in REGIONAL):
        rates = {k: v * Decimal("1.1") for k, v in rates.items()}
    total = (
        u.input_tokens * rates["input"]
        + (u.cache_write_tokens - u.cache_write_1h_tokens) * rates["w5"]
        + u.cache_write_1h_tokens * rates["w1"]
        + u.cache_read_tokens * rates["read"]
        + u.output_tokens * rates["output"]
    ) / 1_000_000
    return total.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


SHAPES = {
    "small": Usage(input_tokens=1_000, output_tokens=200),
    "cache-heavy": Usage(input_tokens=500, cache_write_tokens=2_000, cache_read_tokens=50_000, output_tokens=300),
    "5m+1h writes": Usage(input_tokens=1_000, cache_write_tokens=7_000, cache_write_1h_tokens=4_000, output_tokens=500),
    "reasoning": Usage(input_tokens=1_000, output_tokens=5_000, reasoning_tokens=4_000),
}
CATALOG = load_catalog()


def test_the_table_covers_every_catalog_model():
    assert set(PUBLISHED) == {p.model for p in CATALOG.models()}


def _threshold_shapes(model: str) -> dict[str, Usage]:
    r = PUBLISHED[model]
    t = r.tier[0] if r.tier else 200_000
    return {
        "at threshold": Usage(input_tokens=t - 10_000, cache_read_tokens=10_000, output_tokens=1_000),
        "above threshold": Usage(
            input_tokens=t - 10_000, cache_read_tokens=10_001, cache_write_tokens=0, output_tokens=1_000
        ),
        "above, with writes": Usage(
            input_tokens=t, cache_write_tokens=3_000, cache_write_1h_tokens=1_000, output_tokens=1_000
        ),
    }


@pytest.mark.parametrize("model", sorted(PUBLISHED))
def test_every_model_every_shape_to_the_micro_dollar(model: str):
    price = CATALOG.lookup(model)
    shapes = {**SHAPES, **_threshold_shapes(model)}
    cases = [(name, u, None, None) for name, u in shapes.items()]
    cases += [(f"priority {name}", u, "priority", None) for name, u in shapes.items()]
    cases += [(f"us {name}", u, None, "us") for name, u in shapes.items()]
    for tier, geo in (("fast", None), ("fast", "us"), ("batch", None), ("flex", None), (None, "eu"), (None, "jp"),
                      ("priority", "eu"), ("flex", "us")):
        cases += [(f"{tier} {geo} {name}", u, tier, geo) for name, u in shapes.items()]
    for name, usage, tier, geo in cases:
        want = expected(model, price.provider, usage, tier, geo)
        got = cost(usage, price.for_call(tier, geo)).total_usd
        assert got == want, (model, name, str(got), str(want))


# A search model searches on every Chat Completions request and is billed one web search per call:
# LiteLLM 1.110.2 search_context_cost_per_query (the same at low / medium / high search_context_size):
# gpt-5-search-api $0.01 ($10 per 1,000, the web search rate), gpt-4o(-mini)-search-preview $0.025
# ($25 per 1,000: OpenAI's pricing page, "Web search preview (non-reasoning models)").
SEARCH_FEES = {"gpt-5-search-api": Decimal("0.01"), "gpt-4o-search-preview": Decimal("0.025"),
               "gpt-4o-mini-search-preview": Decimal("0.025")}


def test_search_models_charge_one_search_per_call_at_their_published_fee():
    searching = {p.model for p in CATALOG.models() if p.searches_every_call}
    assert searching == set(SEARCH_FEES)
    for model, fee in SEARCH_FEES.items():
        assert CATALOG.web_search_fee("openai", CATALOG.lookup(model)) == fee
    # a dated snapshot resolves to its model and keeps the per-call search
    assert CATALOG.lookup("gpt-4o-search-preview-2025-03-11").searches_every_call
