"""Compare the bundled catalog with LiteLLM's price map, field by field (a release maintenance check).

    python -m ci_guard.pricing.compare                      # the installed litellm package's map
    python -m ci_guard.pricing.compare --litellm FILE       # a model_prices_and_context_window.json
    python -m ci_guard.pricing.compare --suggest gpt-5.6    # a catalog entry drafted from LiteLLM
    ci-guard prices --compare-litellm FILE|installed        # the same report

Never touches the network: the map comes from a file or from the installed ``litellm`` package
(``litellm/model_prices_and_context_window_backup.json``). For every catalog model it prints each
field that differs (base rates, long-context tiers, priority rates, the US multiplier, the
retirement date) and every current Anthropic / OpenAI / Gemini chat model LiteLLM has and the
catalog cannot price. A difference the catalog explains (``litellm`` in its entry: field ->
why, and which source decides) is listed as explained; the exit status is 1 when a current catalog
model has an unexplained difference.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from ci_guard.errors import PricingError, Problem
from ci_guard.pricing import names
from ci_guard.pricing.catalog import Catalog, bundled_entries, load_catalog
from ci_guard.pricing.litellm import parse_litellm
from ci_guard.pricing.rates import RATE_FIELDS, ModelPrice, PriceTier, Rates, decimal_text

PROVIDERS = {"anthropic": "anthropic", "openai": "openai", "google": "gemini"}
LITELLM_PROVIDERS = ("anthropic", "openai", "gemini")
INSTALLED = "installed"


@dataclass(frozen=True)
class Difference:
    model: str
    field: str
    ours: str
    theirs: str
    explanation: str | None = None


@dataclass
class Report:
    source: str
    catalog_date: str | None
    compared: int = 0
    differences: list[Difference] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # LiteLLM models the catalog cannot price

    @property
    def unexplained(self) -> list[Difference]:
        return [d for d in self.differences if d.explanation is None]


def load_map(path: str | None) -> tuple[str, str]:
    """(text, where) of a LiteLLM map: ``path``, or the installed package's copy."""
    if path and path != INSTALLED:
        try:
            return Path(path).read_text(encoding="utf-8"), path
        except OSError as exc:
            raise PricingError("cannot read LiteLLM map", [Problem(str(exc.strerror or exc), file=path)]) from None
    try:
        import litellm  # noqa: F401  (only to find its data file; nothing is called)
    except ImportError:
        raise PricingError("the litellm package is not installed: pip install litellm, or pass --litellm FILE "
                           "(a model_prices_and_context_window.json)") from None
    where = resources.files("litellm").joinpath("model_prices_and_context_window_backup.json")
    return where.read_text(encoding="utf-8"), f"litellm {_litellm_version()} (installed)"


def _litellm_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("litellm")
    except PackageNotFoundError:
        return "?"


def litellm_name(price: ModelPrice, catalog: Catalog, index: Mapping[str, str]) -> str:
    """The LiteLLM key of a catalog model: its name (``gemini/`` for Google), an alias, or a dated
    snapshot of it (LiteLLM keeps only ``claude-sonnet-4-20250514`` for some retired models)."""
    prefix = "gemini/" if price.provider == "google" else ""
    for name in (price.model, *catalog.aliases_of(price.model)):
        if prefix + name in index.values() or prefix + name in index:
            return index.get(prefix + name, prefix + name)
    return index.get(prefix + price.model, prefix + price.model)


def _index(theirs: Mapping[str, ModelPrice]) -> dict[str, str]:
    """Every simplified spelling of each LiteLLM key -> the key (exact keys win over snapshots)."""
    index: dict[str, str] = {}
    for key, price in theirs.items():
        if price.provider not in LITELLM_PROVIDERS:
            continue
        index[key] = key
    for key, price in sorted(theirs.items()):
        if price.provider not in LITELLM_PROVIDERS:
            continue
        prefix = "gemini/" if key.startswith("gemini/") else ""
        for spelling in names.candidates(key)[1:]:
            index.setdefault(prefix + spelling if prefix and not spelling.startswith(prefix) else spelling, key)
    return index


def compare(catalog: Catalog, text: str, where: str) -> Report:
    raw = json.loads(text, parse_float=Decimal)
    theirs = parse_litellm(text, where)
    entries = bundled_entries()
    report = Report(source=where, catalog_date=catalog.as_of)
    index = _index(theirs)
    for ours in catalog.models():
        explained = dict(entries.get(ours.model, {}).get("litellm", {}))
        if ours.retires and ours.retires <= (catalog.as_of or ""):
            # a retired model stays priced for old ledgers and imports; LiteLLM may have dropped it
            explained = {f: explained.get(f, f"retired on {ours.retires}") for f in
                         (*RATE_FIELDS, "tiers", "priority", "inference_geo", "service_tiers", "retires",
                          "absent")}
        name = litellm_name(ours, catalog, index)
        other = theirs.get(name)
        report.compared += 1
        if other is None:
            report.differences.append(Difference(ours.model, "absent", "priced", f"no entry {name!r}",
                                                 explained.get("absent")))
            continue
        for diff_field, mine, their in _fields(ours, other, raw.get(name, {})):
            if mine != their:
                report.differences.append(Difference(ours.model, diff_field, mine, their, explained.get(diff_field)))
    report.missing = _missing(catalog, raw, theirs)
    return report


def _fields(ours: ModelPrice, theirs: ModelPrice, raw: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    out = [(f, decimal_text(getattr(ours.rates, f)), decimal_text(getattr(theirs.rates, f))) for f in RATE_FIELDS]
    out.append(("tiers", _tiers(ours.tiers), _tiers(theirs.tiers)))
    out.append(("priority", _rates(ours.priority), _rates(theirs.priority)))
    out.append(("inference_geo", _geo(ours), _geo(theirs)))
    # fast mode always; batch and flex where LiteLLM's entry has rates for them (most entries do not)
    tiers = ("fast", *(t for t, _ in theirs.tier_multipliers if t != "fast"))
    out.append(("service_tiers", _tier_text(ours, tiers), _tier_text(theirs, tiers)))
    out.append(("retires", ours.retires or "-", str(raw.get("deprecation_date") or "-")))
    return out


def _rates(rates: Rates | None) -> str:
    if rates is None:
        return "-"
    return "/".join(decimal_text(getattr(rates, f)) for f in ("input", "cache_read", "output"))


def _tiers(tiers: Sequence[PriceTier]) -> str:
    return "; ".join(f">{t.above_input_tokens}: " + "/".join(decimal_text(getattr(t.rates, f)) for f in RATE_FIELDS)
                     for t in tiers) or "-"


def _tier_text(price: ModelPrice, tiers: Sequence[str]) -> str:
    return ", ".join(f"{t} x{decimal_text(f)}" for t, f in price.tier_multipliers if t in tiers) or "-"


def _geo(price: ModelPrice) -> str:
    return ", ".join(f"{g} x{decimal_text(f)}" for g, f in price.geo_multipliers) or "-"


def _missing(catalog: Catalog, raw: Mapping[str, Any], theirs: Mapping[str, ModelPrice]) -> list[str]:
    """Current chat models of the catalog's providers that LiteLLM prices and the catalog cannot."""
    out = []
    as_of = catalog.as_of or ""
    for name, price in theirs.items():
        entry = raw.get(name) or {}
        if price.provider not in LITELLM_PROVIDERS or name.startswith("ft:"):
            continue
        retires = str(entry.get("deprecation_date") or "")
        if retires and retires <= as_of:
            continue
        if catalog.find(name) is None:
            out.append(name)
    return sorted(out)


def render(report: Report) -> str:
    lines = [f"catalog {report.catalog_date} against {report.source}: {report.compared} models compared"]
    for title, rows in (("unexplained differences", report.unexplained),
                        ("explained differences", [d for d in report.differences if d.explanation])):
        lines.append(f"\n{title}: {len(rows)}")
        for d in rows:
            lines.append(f"  {d.model}  {d.field}: catalog {d.ours} | litellm {d.theirs}")
            if d.explanation:
                lines.append(f"      why: {d.explanation}")
    lines.append(f"\ncurrent models LiteLLM prices and the catalog cannot: {len(report.missing)}")
    lines.extend(f"  {name}" for name in report.missing)
    return "\n".join(lines)


def suggest(text: str, where: str, names: Sequence[str]) -> dict[str, Any]:
    """Draft catalog entries (USD per million) for ``names`` from the LiteLLM map; review before use."""
    raw = json.loads(text, parse_float=Decimal)
    theirs = parse_litellm(text, where)
    out: dict[str, Any] = {}
    for name in names:
        price = theirs.get(name.lower())
        if price is None:
            raise PricingError(f"{name!r} is not in {where}")
        entry: dict[str, Any] = {"provider": {v: k for k, v in PROVIDERS.items()}.get(price.provider or "",
                                                                                       price.provider),
                                 **price.rates.as_json()}
        if price.tiers:
            entry["tiers"] = [t.as_json() for t in price.tiers]
        if price.priority is not None:
            entry["priority"] = {k: v for k, v in price.priority.as_json().items()
                                 if k in ("input", "cache_read", "output", "cache_write_5m")}
            if price.priority_tiers:
                entry["priority"]["tiers"] = [t.as_json() for t in price.priority_tiers]
        if price.geo_multipliers:
            entry["inference_geo"] = {g: decimal_text(f) for g, f in price.geo_multipliers}
        if price.tier_multipliers:
            entry["service_tiers"] = {t: decimal_text(f) for t, f in price.tier_multipliers}
        source = raw[name.lower()].get("source")
        entry["source"] = f"litellm-{_litellm_version() if where.startswith('litellm') else 'file'}" + (
            f" ({source})" if source else "")
        if raw[name.lower()].get("deprecation_date"):
            entry["retires"] = str(raw[name.lower()]["deprecation_date"])
        out[name.split("/")[-1]] = entry
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ci_guard.pricing.compare", description=__doc__.split("\n")[0])
    parser.add_argument("--litellm", metavar="FILE", help="a LiteLLM model_prices_and_context_window.json "
                        "(default: the installed litellm package's copy)")
    parser.add_argument("--suggest", nargs="+", metavar="MODEL", help="print draft catalog entries instead")
    args = parser.parse_args(argv)
    try:
        text, where = load_map(args.litellm)
        if args.suggest:
            print(json.dumps(suggest(text, where, args.suggest), indent=2))
            return 0
        report = compare(load_catalog(), text, where)
    except PricingError as exc:
        print(f"ci-guard: {exc.render()}", file=sys.stderr)
        return 2
    print(render(report))
    return 1 if report.unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
