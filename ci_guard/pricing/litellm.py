"""Read price files in LiteLLM's ``model_prices_and_context_window.json`` format.

Costs there are USD per *token* as JSON floats (``3e-06``). They are parsed straight to Decimal
(``json.loads(parse_float=Decimal)``) and scaled to per-million, so no binary float ever touches a
price. Context tiers (``*_above_200k_tokens``, ``*_above_272000_tokens``...) apply to every token
of a request above the threshold, as LiteLLM itself computes them. Missing cache keys default to
the input rate (LiteLLM defaults them to 0, which silently under-charges; see docs/pricing.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from ci_guard.errors import PricingError, Problem
from ci_guard.files import InputTooLarge, read_input_text
from ci_guard.pricing.rates import ModelPrice, PriceTier, Rates, to_decimal

PER_MILLION = Decimal(1_000_000)

# LiteLLM key -> our rate field
_BASE_KEYS = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write_5m",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
    # OpenAI GPT-5.6+: writes with a 12-hour minimum cache life (prompt_cache_options.ttl "12h"), 2.5x
    # input; ci-guard keeps them in the long-retention write class, as Anthropic's 1-hour writes
    "cache_creation_input_token_cost_above_12hr": "cache_write_1h",
}
_FIELDS = ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output")
# a rate key, optionally for a long-context tier (``_above_200k_tokens``) and/or the priority tier
_RATE_KEY = re.compile(
    r"^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost"
    r"|cache_creation_input_token_cost_above_1hr|cache_creation_input_token_cost_above_12hr"
    r"|cache_creation_input_token_cost)"
    r"(?:_above_(\d+)(k?)_tokens)?(_priority)?$"
)
_CHAT_MODES = (None, "chat", "responses", "completion")


def load_litellm_file(path: str | Path) -> dict[str, ModelPrice]:
    """Parse a LiteLLM price file; return its token-priced chat models by lower-cased name."""
    where = str(path)
    try:
        text = read_input_text(path)
    except OSError as exc:
        raise PricingError("cannot read price file",
                           [Problem(f"cannot read: {exc.strerror or exc}", file=where)]) from None
    except (UnicodeDecodeError, InputTooLarge) as exc:
        raise PricingError("cannot read price file", [Problem(f"not a UTF-8 JSON file: {exc}", file=where)]) from None
    return parse_litellm(text, where)


def parse_litellm(text: str, where: str = "<litellm>") -> dict[str, ModelPrice]:
    try:
        data = json.loads(text, parse_float=Decimal)
    except RecursionError:
        raise PricingError("invalid price file", [Problem("JSON nested too deeply", file=where)]) from None
    except json.JSONDecodeError as exc:
        raise PricingError("invalid price file", [
            Problem(f"invalid JSON: {exc.msg}", file=where, line=exc.lineno, column=exc.colno)
        ]) from None
    if not isinstance(data, Mapping):
        raise PricingError("invalid price file",
                           [Problem("expected a JSON object of model -> prices", file=where)])
    prices = {}
    for name, entry in data.items():
        if name == "sample_spec" or not isinstance(entry, Mapping):
            continue
        if entry.get("mode") not in _CHAT_MODES:
            continue  # embeddings, images, audio: not priced per token by ci-guard
        price = _entry_price(name, entry, where)
        if price is not None:
            prices[name.strip().lower()] = price
    return prices


def _entry_price(name: str, entry: Mapping[str, Any], where: str) -> ModelPrice | None:
    if entry.get("input_cost_per_token") is None or entry.get("output_cost_per_token") is None:
        return None
    provider = entry.get("litellm_provider")
    groups = _rate_groups(entry, name, where)
    claude = "claude" in name.lower() or provider == "anthropic"
    base = _base_rates(groups[(0, False)], claude)
    tiers = {t: _derive(fields, base, claude) for (t, prio), fields in groups.items() if t and not prio}
    tiers.update({t: _derive(fields, base, claude) for t, fields in _tiered_pricing(entry, name, where).items()})
    priority = _derive(groups[(0, True)], base, claude) if (0, True) in groups else None
    priority_tiers = []
    for (t, prio), fields in sorted(groups.items()):
        if t and prio:
            standard = tiers.get(t, base)
            priority_tiers.append(PriceTier(t, _derive(fields, priority or standard, claude)))
    return ModelPrice(model=name.strip().lower(), provider=provider, rates=base,
                      tiers=tuple(PriceTier(t, r) for t, r in sorted(tiers.items())),
                      source=f"file:{where}", priority=priority, priority_tiers=tuple(priority_tiers),
                      geo_multipliers=_geo(entry, name, where),
                      tier_multipliers=_service_tiers(entry, name, where))


def _rate_groups(entry: Mapping[str, Any], name: str, where: str) -> dict[tuple[int, bool], dict[str, Decimal]]:
    """Rates (USD per million) by (tier threshold or 0, priority?) from every rate key of the entry."""
    groups: dict[tuple[int, bool], dict[str, Decimal]] = {(0, False): {}}
    for key, value in entry.items():
        match = _RATE_KEY.match(key)
        if match is None or value is None:
            continue
        threshold = int(match.group(2)) * (1000 if match.group(3) else 1) if match.group(2) else 0
        rate = to_decimal(value, where, f"{name}.{key}") * PER_MILLION
        groups.setdefault((threshold, bool(match.group(4))), {})[_BASE_KEYS[match.group(1)]] = rate
    return groups


def _base_rates(got: Mapping[str, Decimal], claude: bool) -> Rates:
    """The standard rates; a missing cache rate never makes a token cheaper than it is billed.

    LiteLLM leaves missing cache keys at 0. Here a missing read or write rate is the input rate, and
    for Claude models (first-party, Bedrock, Vertex alike) writes are 1.25x (5 minutes) and 2x
    (1 hour) input, Anthropic's published multipliers, so a file that lacks the 1-hour key (most
    Bedrock and Vertex entries) does not bill 1-hour writes at the 5-minute rate.
    """
    inp, out = got["input"], got["output"]
    w5 = got.get("cache_write_5m", inp * Decimal("1.25") if claude else inp)
    default_1h = max(w5, inp * 2) if claude else w5
    return Rates(input=inp, cache_write_5m=w5, cache_write_1h=got.get("cache_write_1h", default_1h),
                 cache_read=got.get("cache_read", inp), output=out)


def _derive(got: Mapping[str, Decimal], base: Rates, claude: bool) -> Rates:
    """Rates of a tier (long context, priority) from the keys it names; cache classes it does not name
    keep their ratio to the input rate from ``base``: a tier that doubles input doubles its cache
    rates too (Anthropic's and OpenAI's published tiers all do), instead of keeping the base rate."""
    ratio = got["input"] / base.input if "input" in got and base.input else Decimal(1)
    rates = {f: got[f] if f in got else getattr(base, f) * ratio for f in _FIELDS}
    rates["output"] = got.get("output", base.output)  # output is not priced from input: as LiteLLM does
    if claude and "cache_write_1h" not in got:
        rates["cache_write_1h"] = max(rates["cache_write_1h"], rates["input"] * 2)
    return Rates(**rates)


_REGIONAL = re.compile(r"^regional_processing_uplift_multiplier_([a-z]{2})$")


def _number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _geo(entry: Mapping[str, Any], name: str, where: str) -> tuple[tuple[str, Decimal], ...]:
    """Multipliers by geography: ``provider_specific_entry: {"us": 1.1}`` (Anthropic's US-only
    inference) and ``regional_processing_uplift_multiplier_<region>`` (OpenAI's data-residency
    endpoints). Other keys of ``provider_specific_entry`` (``fast``, video settings...) are not
    geographies."""
    out = {}
    raw = entry.get("provider_specific_entry")
    if isinstance(raw, Mapping):
        for key, value in raw.items():
            if key in ("us", "eu") and _number(value):
                out[key] = to_decimal(value, where, f"{name}.provider_specific_entry.{key}")
    for key, value in entry.items():
        match = _REGIONAL.match(str(key))
        if match and _number(value):
            out[match.group(1)] = to_decimal(value, where, f"{name}.{key}")
    return tuple(sorted(out.items()))


# LiteLLM's per-tier rate keys (``input_cost_per_token_flex``, ``output_cost_per_token_batches``): a
# tier priced as a ratio of the standard rates (OpenAI flex and batch are half of them)
_TIER_SUFFIXES = {"flex": "flex", "batches": "batch"}


def _service_tiers(entry: Mapping[str, Any], name: str, where: str) -> tuple[tuple[str, Decimal], ...]:
    """Tier multipliers: ``provider_specific_entry: {"fast": 2}`` (Anthropic fast mode) and the flex /
    batch rates as a ratio of the standard ones (the larger of the input and output ratios, so a
    tier whose ratios differ is never under-counted)."""
    out: dict[str, Decimal] = {}
    raw = entry.get("provider_specific_entry")
    if isinstance(raw, Mapping) and _number(raw.get("fast")):
        out["fast"] = to_decimal(raw["fast"], where, f"{name}.provider_specific_entry.fast")
    for suffix, tier in _TIER_SUFFIXES.items():
        ratios = []
        for key in ("input_cost_per_token", "output_cost_per_token"):
            base, tiered = entry.get(key), entry.get(f"{key}_{suffix}")
            if _number(base) and _number(tiered) and base:
                ratios.append(to_decimal(tiered, where, f"{name}.{key}_{suffix}")
                              / to_decimal(base, where, f"{name}.{key}"))
        if ratios:
            out[tier] = max(ratios)
    return tuple(sorted(out.items()))


def _tiered_pricing(entry: Mapping[str, Any], name: str, where: str) -> dict[int, dict[str, Decimal]]:
    """The alternative ``tiered_pricing: [{..., "range": [lo, hi]}]`` form (all-or-nothing per request)."""
    raw = entry.get("tiered_pricing")
    if not isinstance(raw, list):
        return {}
    tiers: dict[int, dict[str, Decimal]] = {}
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        rng = item.get("range")
        low = int(rng[0]) if isinstance(rng, list) and rng else 0
        if low > 0:
            tiers[low] = {field: to_decimal(item[key], where, f"{name}.tiered_pricing.{key}") * PER_MILLION
                          for key, field in _BASE_KEYS.items() if item.get(key) is not None}
    return tiers
