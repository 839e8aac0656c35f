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
from ci_guard.pricing.rates import ModelPrice, PriceTier, Rates, to_decimal

PER_MILLION = Decimal(1_000_000)

# LiteLLM key -> our rate field
_BASE_KEYS = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write_5m",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
}
_TIER_KEY = re.compile(
    r"^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost"
    r"|cache_creation_input_token_cost|cache_creation_input_token_cost_above_1hr)_above_(\d+)(k?)_tokens$"
)
_CHAT_MODES = (None, "chat", "responses", "completion")


def load_litellm_file(path: str | Path) -> dict[str, ModelPrice]:
    """Parse a LiteLLM price file; return its token-priced chat models by lower-cased name."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PricingError("cannot read price file",
                           [Problem(f"cannot read: {exc.strerror or exc}", file=where)]) from None
    return parse_litellm(text, where)


def parse_litellm(text: str, where: str = "<litellm>") -> dict[str, ModelPrice]:
    try:
        data = json.loads(text, parse_float=Decimal)
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
    base = _rates(entry, "", name, where, None, provider)
    tiers = [PriceTier(t, _rates(fields, "", name, where, base, provider))
             for t, fields in sorted(_threshold_fields(entry).items())]
    tiers += _tiered_pricing(entry, name, where, base, provider)
    return ModelPrice(model=name.strip().lower(), provider=provider, rates=base,
                      tiers=tuple(sorted(tiers, key=lambda t: t.above_input_tokens)),
                      source=f"file:{where}")


def _rates(entry: Mapping[str, Any], suffix: str, name: str, where: str, base: Rates | None,
           provider: str | None) -> Rates:
    got: dict[str, Decimal] = {}
    for key, field in _BASE_KEYS.items():
        raw = entry.get(key + suffix)
        if raw is not None:
            got[field] = to_decimal(raw, where, f"{name}.{key}{suffix}") * PER_MILLION
    if base is not None:  # a tier: classes it does not mention keep the base rate
        return Rates(**{f: got.get(f, getattr(base, f)) for f in
                        ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output")})
    inp, out = got["input"], got["output"]
    w5 = got.get("cache_write_5m", inp)
    # Anthropic bills 1-hour writes at 2x input; a file without the key must not make them cheaper
    default_1h = max(w5, inp * 2) if provider == "anthropic" and "cache_write_1h" not in got else w5
    return Rates(input=inp, cache_write_5m=w5, cache_write_1h=got.get("cache_write_1h", default_1h),
                 cache_read=got.get("cache_read", inp), output=out)


def _threshold_fields(entry: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """``{200000: {"input_cost_per_token": ..., ...}}`` from the ``*_above_<N>[k]_tokens`` keys."""
    out: dict[int, dict[str, Any]] = {}
    for key, value in entry.items():
        match = _TIER_KEY.match(key)
        if match and value is not None:
            threshold = int(match.group(2)) * (1000 if match.group(3) else 1)
            out.setdefault(threshold, {})[match.group(1)] = value
    return out


def _tiered_pricing(entry: Mapping[str, Any], name: str, where: str, base: Rates,
                    provider: str | None) -> list[PriceTier]:
    """The alternative ``tiered_pricing: [{..., "range": [lo, hi]}]`` form (all-or-nothing per request)."""
    raw = entry.get("tiered_pricing")
    if not isinstance(raw, list):
        return []
    tiers = []
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        rng = item.get("range")
        low = int(rng[0]) if isinstance(rng, list) and rng else 0
        if low > 0:
            tiers.append(PriceTier(low, _rates(item, "", name, where, base, provider)))
    return tiers
