"""The price catalog: bundled list prices, plus the policy's overrides and price files.

``load_catalog(policy.pricing)`` builds one :class:`Catalog`; ``catalog.resolve(model)`` prices a
model or says, per the policy's ``on_unknown_model``, what to do about one it does not know. An
unknown model is never priced as zero.

The policy's ``pricing:`` section (plain data; a dict or the pydantic object, read defensively)::

    pricing:
      on_unknown_model: warn          # deny (default) | warn (price as fallback_model) | error
      fallback_model: claude-sonnet-4-5
      files: [prices/litellm.json]    # LiteLLM model_prices_and_context_window.json format
      overrides:
        claude-sonnet-4-5: {discount_pct: 12}            # negotiated discount
        acme-coder: {input: 0.40, output: 1.20}          # internal / self-hosted model
        acme-sonnet: {same_as: claude-sonnet-4-5}        # a custom name for a known model
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from ci_guard.errors import PricingError, Problem
from ci_guard.pricing import names
from ci_guard.pricing.litellm import load_litellm_file
from ci_guard.pricing.rates import ModelPrice, PriceTier, Rates, rates_from, tiers_from, to_decimal

UNKNOWN_POLICIES = ("deny", "warn", "error")
_OVERRIDE_KEYS = {"input", "output", "cache_write", "cache_write_5m", "cache_write_1h", "cache_read",
                  "discount_pct", "same_as", "provider", "tiers", "note", "priority", "inference_geo",
                  "service_tiers"}
POLICY_FILE = "<policy>"

Resolution = Literal["exact", "alias", "normalized", "fallback", "unpriced"]


@dataclass(frozen=True)
class PriceResolution:
    """How a model name was priced. ``price is None`` means unpriced: the caller must deny the call."""

    requested: str | None
    price: ModelPrice | None
    how: Resolution
    warning: str | None = None

    @property
    def denied(self) -> bool:
        return self.price is None


@dataclass
class Catalog:
    prices: dict[str, ModelPrice]  # lower-cased name -> price
    aliases: dict[str, str] = field(default_factory=dict)  # lower-cased alias -> key of prices
    as_of: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    on_unknown_model: str = "deny"
    fallback_model: str | None = None
    # USD per billed server-side web search, by provider (the catalog's "fees"); 0 where unknown
    web_search_usd: dict[str, Decimal] = field(default_factory=dict)
    # the same for OpenAI's older web_search_preview tool (models may charge more: their own fees)
    web_search_preview_usd: dict[str, Decimal] = field(default_factory=dict)

    def web_search_fee(self, provider: str | None, price: ModelPrice | None = None, preview: bool = False) -> Decimal:
        """USD per billed web search of a call to ``price``'s model (``preview``: the
        web_search_preview tool), the model's own fee first, then its provider's."""
        kind = "web_search_preview" if preview else "web_search"
        own = price.fee(kind) if price is not None else None
        if own is not None:
            return own
        by_provider = self.web_search_preview_usd if preview else self.web_search_usd
        return by_provider.get(provider or "", self.web_search_usd.get(provider or "", Decimal(0)))

    def find(self, model: str | None) -> tuple[ModelPrice, Resolution] | None:
        if not model:
            return None
        for i, name in enumerate(names.candidates(model)):
            if name in self.prices:
                return self.prices[name], ("exact" if i == 0 else "normalized")
            if name in self.aliases and self.aliases[name] in self.prices:
                return self.prices[self.aliases[name]], "alias"
        return None

    def lookup(self, model: str | None) -> ModelPrice | None:
        found = self.find(model)
        return found[0] if found else None

    def resolve(self, model: str | None) -> PriceResolution:
        """Price ``model``, applying ``on_unknown_model`` when the catalog does not know it.

        Raises :class:`PricingError` for ``error``; returns a denied resolution for ``deny``.
        """
        found = self.find(model)
        if found:
            return PriceResolution(model, found[0], found[1])
        if self.on_unknown_model == "error":
            raise PricingError(f"model {model!r} has no price (pricing.on_unknown_model: error); "
                               "add it under pricing.overrides or load a price file")
        if self.on_unknown_model == "warn" and self.fallback_model:
            fallback = self.lookup(self.fallback_model)
            if fallback is not None:
                return PriceResolution(model, fallback, "fallback",
                                       f"model {model!r} has no price; priced as {fallback.model}")
        return PriceResolution(model, None, "unpriced",
                               f"model {model!r} has no price (pricing.on_unknown_model: "
                               f"{self.on_unknown_model}): calls to it are denied")

    def models(self) -> list[ModelPrice]:
        return [self.prices[k] for k in sorted(self.prices)]

    def aliases_of(self, key: str) -> list[str]:
        return sorted(a for a, target in self.aliases.items() if target == key)


def load_catalog(pricing_config: Any = None, base_dir: str | Path | None = None) -> Catalog:
    """The bundled catalog with the policy's ``pricing:`` section applied (files, then overrides)."""
    bundled = _bundled()
    catalog = Catalog(prices=dict(bundled.prices), aliases=dict(bundled.aliases), as_of=bundled.as_of,
                      sources=dict(bundled.sources), web_search_usd=dict(bundled.web_search_usd),
                      web_search_preview_usd=dict(bundled.web_search_preview_usd))
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    for file in _as_list(_get(pricing_config, "files")) + _as_list(_get(pricing_config, "file")):
        path = Path(str(file))
        path = path if path.is_absolute() else base / path
        loaded = load_litellm_file(path)
        # merged against what the catalog knew before this file: a file entry changes what it names
        catalog.prices.update({name: merge_file_price(price, catalog.lookup(name))
                               for name, price in loaded.items()})
    overrides = _get(pricing_config, "overrides")
    for name, spec in _override_items(overrides):
        catalog.prices[name] = _apply_override(catalog, name, spec)
    _set_unknown_policy(catalog, pricing_config)
    return catalog


# --- bundled data ---------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _bundled_data() -> dict[str, Any]:
    text = resources.files("ci_guard.pricing").joinpath("prices.json").read_text(encoding="utf-8")
    return json.loads(text, parse_float=Decimal)


def bundled_entries() -> dict[str, dict[str, Any]]:
    """The bundled catalog's raw model entries by lower-cased name (sources, notes, explanations)."""
    return {name.lower(): dict(entry) for name, entry in _bundled_data()["models"].items()}


@lru_cache(maxsize=1)
def _bundled() -> Catalog:
    where = "ci_guard/pricing/prices.json"
    data = _bundled_data()
    prices, aliases = {}, {}
    for name, entry in data["models"].items():
        key = name.lower()
        rates = rates_from(entry, where, f"models.{name}.")
        tiers = tiers_from(entry.get("tiers"), where, f"models.{name}.", rates)
        priority, priority_tiers = _priority(entry.get("priority"), where, f"models.{name}.priority.")
        prices[key] = ModelPrice(model=key, provider=entry.get("provider"), rates=rates, tiers=tiers,
                                 source="catalog", note=entry.get("note"), priority=priority,
                                 priority_tiers=priority_tiers,
                                 geo_multipliers=_geo(entry.get("inference_geo"), where, f"models.{name}."),
                                 fees=tuple((k, to_decimal(v, where, f"models.{name}.fees.{k}"))
                                            for k, v in sorted(entry.get("fees", {}).items())),
                                 retires=entry.get("retires"), successor=entry.get("successor"),
                                 searches_every_call=entry.get("searches_every_call") is True,
                                 tier_multipliers=_service_tiers(
                                     {**_provider_tiers(data, entry.get("provider")), **entry.get("service_tiers", {})},
                                     where, f"models.{name}."))
        for alias in entry.get("aliases", []):
            aliases[alias.lower()] = key
    fees = {provider: Decimal(str(entry["web_search"])) for provider, entry in data.get("fees", {}).items()
            if "web_search" in entry}
    preview = {provider: Decimal(str(entry["web_search_preview"])) for provider, entry
               in data.get("fees", {}).items() if "web_search_preview" in entry}
    return Catalog(prices=prices, aliases=aliases, as_of=data.get("as_of"), sources=data.get("sources", {}),
                   web_search_usd=fees, web_search_preview_usd=preview)


def _priority(raw: Any, where: str, prefix: str) -> tuple[Rates | None, tuple[PriceTier, ...]]:
    """Published priority rates and their long-context tiers (``priority: {input, ..., tiers: [...]}``)."""
    if raw is None:
        return None, ()
    if not isinstance(raw, Mapping):
        raise _bad(prefix.rstrip("."), "expected a mapping of priority rates")
    # input and output are required (rates_from says so); a missing cache rate is the priority input
    # rate, never the cheaper standard one
    rates = rates_from(raw, where, prefix)
    return rates, tiers_from(raw.get("tiers"), where, prefix, rates)


def _provider_tiers(data: Mapping[str, Any], provider: str | None) -> dict[str, Any]:
    """The provider's tier multipliers (``service_tiers.<provider>``: batch, flex), without its notes."""
    raw = data.get("service_tiers", {}).get(provider or "", {})
    return {k: v for k, v in raw.items() if k not in ("source", "note")}


def _service_tiers(raw: Any, where: str, prefix: str) -> tuple[tuple[str, Decimal], ...]:
    """``service_tiers: {fast: 2, batch: 0.5, flex: 0.5}``: multipliers on every rate of a call served on that
    tier (Anthropic fast mode, batch, OpenAI flex)."""
    if not raw:
        return ()
    if not isinstance(raw, Mapping):
        raise _bad(prefix + "service_tiers", "expected a mapping of tier -> multiplier, e.g. {fast: 2}")
    return tuple((str(tier), to_decimal(factor, where, f"{prefix}service_tiers.{tier}"))
                 for tier, factor in sorted(raw.items()))


def _geo(raw: Any, where: str, prefix: str) -> tuple[tuple[str, Decimal], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise _bad(prefix + "inference_geo", "expected a mapping of geography -> multiplier, e.g. {us: 1.1}")
    return tuple((str(geo), to_decimal(factor, where, f"{prefix}inference_geo.{geo}"))
                 for geo, factor in sorted(raw.items()))


def merge_file_price(loaded: ModelPrice, known: ModelPrice | None) -> ModelPrice:
    """A price-file entry merged with the catalog's price of the same model: what the file names wins,
    what it does not (long-context tiers, priority rates, the US multiplier, per-model fees) is kept.

    Kept only when the file's base input and output rates equal the known ones, or the names are
    the same: a snapshot with a price of its own (gpt-4o-2024-05-13) must not inherit the priority
    rates of the model it is a snapshot of.
    """
    if known is None:
        return loaded
    same = loaded.model == known.model or (loaded.rates.input, loaded.rates.output) == (known.rates.input,
                                                                                         known.rates.output)
    if not same:
        return loaded
    return replace(
        loaded,
        tiers=loaded.tiers or known.tiers,
        priority=loaded.priority if loaded.priority is not None else known.priority,
        priority_tiers=loaded.priority_tiers or (known.priority_tiers if loaded.priority is None else ()),
        geo_multipliers=loaded.geo_multipliers or known.geo_multipliers,
        fees=loaded.fees or known.fees,
        tier_multipliers=tuple(sorted({**dict(known.tier_multipliers), **dict(loaded.tier_multipliers)}.items())),
        note=loaded.note or known.note,
        retires=loaded.retires or known.retires,
        successor=loaded.successor or known.successor,
        searches_every_call=loaded.searches_every_call or known.searches_every_call,
    )


# --- the policy's pricing section -----------------------------------------------------------------

def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _as_mapping(obj: Any) -> Mapping[str, Any]:
    if isinstance(obj, Mapping):
        return obj
    if hasattr(obj, "model_dump"):
        return obj.model_dump(exclude_none=True)
    return {k: v for k, v in vars(obj).items() if v is not None and not k.startswith("_")}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _override_items(overrides: Any) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """Overrides as ``{model: {...}}`` or ``[{model: name, ...}]``."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [(str(k).strip().lower(), _as_mapping(v)) for k, v in overrides.items()]
    items = []
    for i, item in enumerate(_as_list(overrides)):
        spec = dict(_as_mapping(item))
        name = spec.pop("model", None)
        if not name:
            raise _bad(f"pricing.overrides[{i}].model", "expected the model name")
        items.append((str(name).strip().lower(), spec))
    return items


def _apply_override(catalog: Catalog, name: str, spec: Mapping[str, Any]) -> ModelPrice:
    prefix = f"pricing.overrides.{name}."
    unknown = sorted(set(spec) - _OVERRIDE_KEYS)
    if unknown:
        raise _bad(prefix + unknown[0], f"unknown key; expected one of {', '.join(sorted(_OVERRIDE_KEYS))}")
    template = spec.get("same_as")
    base = catalog.lookup(str(template)) if template else catalog.lookup(name)
    if template and base is None:
        raise _bad(prefix + "same_as", f"model {template!r} is not in the catalog")
    rates = rates_from(spec, POLICY_FILE, prefix, base.rates if base else None)
    tiers = (tiers_from(spec["tiers"], POLICY_FILE, prefix, rates) if "tiers" in spec
             else (base.tiers if base else ()))
    # An override changes what it names and keeps the rest of the known price: the US multiplier,
    # priority rates, long-context tiers and per-model fees survive a discount or a new input rate.
    if "priority" in spec:
        priority, priority_tiers = _priority(spec["priority"], POLICY_FILE, prefix + "priority.")
    else:
        priority, priority_tiers = (base.priority, base.priority_tiers) if base else (None, ())
    geo = _geo(spec["inference_geo"], POLICY_FILE, prefix) if "inference_geo" in spec else \
        (base.geo_multipliers if base else ())
    tier_multipliers = dict(base.tier_multipliers) if base else {}
    tier_multipliers.update(_service_tiers(spec.get("service_tiers"), POLICY_FILE, prefix))
    price = ModelPrice(model=name, provider=spec.get("provider") or (base.provider if base else None),
                       rates=rates, tiers=tiers, source="override", note=spec.get("note"), priority=priority,
                       priority_tiers=priority_tiers, geo_multipliers=geo, fees=base.fees if base else (),
                       retires=base.retires if base else None, successor=base.successor if base else None,
                       tier_multipliers=tuple(sorted(tier_multipliers.items())),
                       searches_every_call=base.searches_every_call if base else False)
    if spec.get("discount_pct") is not None:
        pct = to_decimal(spec["discount_pct"], POLICY_FILE, prefix + "discount_pct")
        if pct > 100:
            raise _bad(prefix + "discount_pct", "expected a percentage between 0 and 100")
        price = replace(price.scaled(1 - pct / 100), note=price.note or f"{pct}% discount")
    return price


def _set_unknown_policy(catalog: Catalog, cfg: Any) -> None:
    policy = _get(cfg, "on_unknown_model") or "deny"
    if policy not in UNKNOWN_POLICIES:
        raise _bad("pricing.on_unknown_model", f"expected one of {', '.join(UNKNOWN_POLICIES)}, got {policy!r}")
    fallback = _get(cfg, "fallback_model")
    if policy == "warn" and not fallback:
        raise _bad("pricing.fallback_model", "on_unknown_model: warn needs a fallback_model to price with")
    if fallback and catalog.lookup(str(fallback)) is None:
        raise _bad("pricing.fallback_model", f"model {fallback!r} is not in the catalog")
    catalog.on_unknown_model = policy
    catalog.fallback_model = str(fallback) if fallback else None


def _bad(field: str, message: str) -> PricingError:
    return PricingError("invalid pricing section", [Problem(message, file=POLICY_FILE, field=field)])
