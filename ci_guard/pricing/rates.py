"""Price records: rates per token class, long-context tiers, and parsing them from plain data.

All rates are ``Decimal`` USD per million tokens. Parsing never turns a missing cache rate into
zero: a provider (or a custom model) that has no cache pricing bills cached and written tokens at
the input rate, which is what an unknown rate must default to so nothing is ever free by accident.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from ci_guard.errors import PricingError, Problem

RATE_FIELDS = ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output")
# A priority call to a model without published priority rates is priced at the highest ratio any
# model's published priority rates have to its standard ones: gpt-5.5's $12.50 / $1.25 / $75 against
# $5 / $0.50 / $30 (2.5x; older models publish 1.7x to 2x). tests/pricing/test_priority.py checks that
# no catalog model has a higher ratio, so the fallback never under-counts.
PRIORITY_FALLBACK = Decimal("2.5")
# OpenAI renamed Priority processing "Fast mode" on 2026-07-30 and accepts (and may report) either
# service_tier spelling (https://developers.openai.com/api/docs/guides/fast-mode): both are priority.
OPENAI_PRIORITY_TIERS = ("priority", "fast")
# Providers whose `priority` tier is priced from published priority rates (else PRIORITY_FALLBACK):
# OpenAI, and Gemini (https://ai.google.dev/gemini-api/docs/priority-inference: service_tier
# "priority", 75% to 100% above standard per https://ai.google.dev/gemini-api/docs/optimization, so
# the 2.5x fallback never under-counts a Gemini model either).
PRIORITY_PROVIDERS = ("openai", "google")
# Anthropic fast mode (request ``speed: "fast"``, reported as ``usage.speed``) on a model without a
# published fast multiplier is priced at the highest one any model had: 6x (Opus 4.6 / 4.7 at launch,
# https://platform.claude.com/docs/en/build-with-claude/fast-mode); tests/pricing/test_service_tiers.py
# checks no catalog model has a higher one, so an unexpected fast call is never under-counted.
FAST_FALLBACK = Decimal("6")
# Tiers that make a call *cheaper* (OpenAI flex, every provider's batch): priced only when the provider
# says it served the call on them, never from the request alone (a flex request may be served standard).
DISCOUNT_TIERS = ("flex", "batch")


def normalize_tier(tier: str | None) -> str | None:
    """One spelling per tier: Gemini's API also takes (and SDKs send) the enum names
    ``SERVICE_TIER_PRIORITY`` / ``SERVICE_TIER_FLEX`` for ``priority`` / ``flex``."""
    if not tier:
        return tier
    low = tier.strip().lower()
    return low.removeprefix("service_tier_") or None


@dataclass(frozen=True)
class Rates:
    """USD per million tokens for each token class."""

    input: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal
    output: Decimal

    def scaled(self, factor: Decimal) -> Rates:
        return Rates(*(getattr(self, f) * factor for f in RATE_FIELDS))

    def as_json(self) -> dict[str, str]:
        return {f: decimal_text(getattr(self, f)) for f in RATE_FIELDS}


@dataclass(frozen=True)
class PriceTier:
    """Rates that apply to a whole request once its total input is above ``above_input_tokens``."""

    above_input_tokens: int
    rates: Rates

    def as_json(self) -> dict[str, Any]:
        return {"above_input_tokens": self.above_input_tokens, **self.rates.as_json()}


@dataclass(frozen=True)
class ModelPrice:
    model: str  # the catalog name
    provider: str | None
    rates: Rates
    tiers: tuple[PriceTier, ...] = ()  # sorted by threshold, ascending
    source: str = "catalog"  # catalog | override | file:<path>
    note: str | None = None
    priority: Rates | None = None  # OpenAI Priority processing rates, where published
    # published priority rates of long-context tiers (by threshold); a tier without them is priced
    # at PRIORITY_FALLBACK times its standard rates
    priority_tiers: tuple[PriceTier, ...] = ()
    # multipliers on every rate when the call ran in a given geography, e.g. (("us", Decimal("1.1")),)
    geo_multipliers: tuple[tuple[str, Decimal], ...] = ()
    # per-call fees of this model that differ from its provider's, e.g. (("web_search_preview", 0.025),)
    fees: tuple[tuple[str, Decimal], ...] = ()
    retires: str | None = None  # the provider's announced retirement (shutdown) date, YYYY-MM-DD
    successor: str | None = None  # what the provider says to move to
    # multipliers on every rate when a call is served on a tier priced as a ratio of the standard rates:
    # Anthropic fast mode (("fast", 2)), batch and OpenAI flex (("batch", 0.5), ("flex", 0.5))
    tier_multipliers: tuple[tuple[str, Decimal], ...] = ()
    # OpenAI's Chat Completions search models (gpt-5-search-api, gpt-4o-search-preview...) search the
    # web on every request: each answered call is billed one web search (the model's web_search fee)
    searches_every_call: bool = False

    def tier_multiplier(self, tier: str) -> Decimal | None:
        for name, factor in self.tier_multipliers:
            if name == tier:
                return factor
        return None

    def fee(self, name: str) -> Decimal | None:
        for key, usd in self.fees:
            if key == name:
                return usd
        return None

    def for_call(self, service_tier: str | None = None, inference_geo: str | None = None) -> ModelPrice:
        """The price of one call: its service tier, then its inference geography, applied."""
        price = self.for_service_tier(service_tier)
        if inference_geo:
            for geo, factor in self.geo_multipliers:
                if geo == inference_geo:
                    return price.scaled(factor)
        return price

    def for_service_tier(self, service_tier: str | None) -> ModelPrice:
        """The price of a call served on ``service_tier`` (what the provider reported).

        OpenAI's ``priority`` tier (also spelled ``fast``): the published priority rates where there are
        some (per long-context tier too), else PRIORITY_FALLBACK times the standard rates, so a
        priority call is never under-counted. A tier in ``tier_multipliers`` (Anthropic ``fast``,
        ``batch``, OpenAI ``flex``) scales every rate; Anthropic ``fast`` without a published
        multiplier is FAST_FALLBACK times the standard rates. Any other tier is the standard price.
        """
        service_tier = normalize_tier(service_tier)
        if not service_tier:
            return self
        if self.provider == "openai" and service_tier in OPENAI_PRIORITY_TIERS:
            return self._priority_price()
        if self.provider in PRIORITY_PROVIDERS and service_tier == "priority":
            return self._priority_price()
        factor = self.tier_multiplier(service_tier)
        if factor is None and service_tier == "fast" and self.provider == "anthropic":
            factor = FAST_FALLBACK
        if factor is None:
            return self
        return replace(self.scaled(factor), priority=None, priority_tiers=(), tier_multipliers=())

    def _priority_price(self) -> ModelPrice:
        if self.priority is None:
            return replace(self.scaled(PRIORITY_FALLBACK), priority=None, priority_tiers=(), tier_multipliers=())
        published = {t.above_input_tokens: t.rates for t in self.priority_tiers}
        tiers = tuple(PriceTier(t.above_input_tokens,
                                published.get(t.above_input_tokens) or t.rates.scaled(PRIORITY_FALLBACK))
                      for t in self.tiers)
        return replace(self, rates=self.priority, tiers=tiers, priority=None, priority_tiers=(), tier_multipliers=())

    def tier_for(self, context_tokens: int) -> PriceTier | None:
        """The highest tier whose threshold the request's total input is strictly above."""
        chosen = None
        for tier in self.tiers:
            if context_tokens > tier.above_input_tokens:
                chosen = tier
        return chosen

    def rates_for(self, context_tokens: int) -> Rates:
        tier = self.tier_for(context_tokens)
        return tier.rates if tier else self.rates

    def scaled(self, factor: Decimal) -> ModelPrice:
        """Every rate times ``factor`` (a discount, a regional uplift), priority rates included."""
        def tiers(items: tuple[PriceTier, ...]) -> tuple[PriceTier, ...]:
            return tuple(PriceTier(t.above_input_tokens, t.rates.scaled(factor)) for t in items)
        return replace(self, rates=self.rates.scaled(factor), tiers=tiers(self.tiers),
                       priority=self.priority.scaled(factor) if self.priority is not None else None,
                       priority_tiers=tiers(self.priority_tiers))

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "provider": self.provider,
            **self.rates.as_json(),
            "tiers": [t.as_json() for t in self.tiers],
            "source": self.source,
            "note": self.note,
            **({"priority": self.priority.as_json()} if self.priority is not None else {}),
            **({"priority_tiers": [t.as_json() for t in self.priority_tiers]} if self.priority_tiers else {}),
            **({"inference_geo": {g: decimal_text(f) for g, f in self.geo_multipliers}}
               if self.geo_multipliers else {}),
            **({"fees": {k: decimal_text(v) for k, v in self.fees}} if self.fees else {}),
            **({"service_tiers": {k: decimal_text(v) for k, v in self.tier_multipliers}}
               if self.tier_multipliers else {}),
            **({"searches_every_call": True} if self.searches_every_call else {}),
            **({"retires": self.retires} if self.retires else {}),
            **({"successor": self.successor} if self.successor else {}),
        }


def decimal_text(value: Decimal) -> str:
    """A plain decimal string without exponent or trailing zeros ("3", "0.3", "22.5")."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def to_decimal(value: Any, where: str, field: str) -> Decimal:
    """A non-negative Decimal from a JSON/YAML scalar; floats go through ``str`` so 0.3 stays 0.3."""
    if isinstance(value, bool) or value is None:
        raise _bad(where, field, f"expected a non-negative number, got {value!r}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise _bad(where, field, f"expected a non-negative number, got {value!r}") from None
    if not number.is_finite() or number < 0:
        raise _bad(where, field, f"expected a non-negative number, got {value!r}")
    return number


def rates_from(data: Mapping[str, Any], where: str, prefix: str, base: Rates | None = None) -> Rates:
    """Rates from a mapping with RATE_FIELDS keys; missing ones come from ``base`` or the input rate.

    ``cache_write`` is accepted as a spelling of ``cache_write_5m``.
    """
    def get(field: str) -> Decimal | None:
        raw = data.get(field)
        if raw is None and field == "cache_write_5m":
            raw = data.get("cache_write")
        return None if raw is None else to_decimal(raw, where, f"{prefix}{field}")

    inp = get("input")
    out = get("output")
    if base is None and (inp is None or out is None):
        raise _bad(where, prefix.rstrip(".") or None, "a new model needs at least `input` and `output` "
                   "(USD per million tokens)")
    inp = inp if inp is not None else base.input  # type: ignore[union-attr]
    out = out if out is not None else base.output  # type: ignore[union-attr]
    w5 = get("cache_write_5m")
    w5 = w5 if w5 is not None else (base.cache_write_5m if base else inp)
    w1 = get("cache_write_1h")
    w1 = w1 if w1 is not None else (base.cache_write_1h if base else w5)
    rd = get("cache_read")
    rd = rd if rd is not None else (base.cache_read if base else inp)
    return Rates(input=inp, cache_write_5m=w5, cache_write_1h=w1, cache_read=rd, output=out)


def tiers_from(raw: Any, where: str, prefix: str, base: Rates) -> tuple[PriceTier, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _bad(where, f"{prefix}tiers", "expected a list of {above_input_tokens, input, output, ...}")
    tiers = []
    for i, item in enumerate(raw):
        field = f"{prefix}tiers[{i}]"
        if not isinstance(item, Mapping):
            raise _bad(where, field, "expected a mapping")
        threshold = item.get("above_input_tokens")
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold <= 0:
            raise _bad(where, f"{field}.above_input_tokens", "expected a positive integer")
        tiers.append(PriceTier(threshold, rates_from(item, where, f"{field}.", base)))
    return tuple(sorted(tiers, key=lambda t: t.above_input_tokens))


def _bad(where: str, field: str | None, message: str) -> PricingError:
    return PricingError("invalid price data", [Problem(message, file=where, field=field)])
