"""Does the catalog price every model a policy can decide? (`validate`, `check`, `run`)

A policy that decides a model the catalog cannot price would let a run start whose every call the
proxy then refuses. That is an error here, with a did-you-mean; a warning when
``pricing.on_unknown_model: warn`` prices such models as the fallback. A model with an announced
retirement date is a warning naming the date (and the successor the provider names).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ci_guard.errors import PricingError
from ci_guard.policy.models import Policy

PathT = tuple[Any, ...]


def _decided(policy: Policy) -> Iterator[tuple[PathT, str]]:
    """(path, concrete model id) of every model the policy can send calls to: its tiers, then every
    model reference (defaults, rules, escalations, context routes, allowed models) not naming a tier."""
    from ci_guard.policy.lint import _model_refs

    for tier, model in policy.models.items():
        yield ("models", tier), model
    for path, name in _model_refs(policy):
        if name and name not in policy.models:  # tiers are checked once, where they are defined
            yield path, name


def model_price_findings(policy: Policy, base_dir: str | Path | None,
                         today: str | None = None) -> list[tuple[str, PathT, str]]:
    """(severity, path, message) for every decided model without a price, or retiring."""
    try:
        catalog = _catalog(policy, base_dir)
    except PricingError as exc:
        return [("error", ("pricing",), exc.render())]
    out: list[tuple[str, PathT, str]] = []
    seen: set[str] = set()
    for path, model in _decided(policy):
        if model in seen:
            continue
        seen.add(model)
        found = model_problem(catalog, model, today)
        if found:
            out.append((found[0], path, found[1]))
    return out


def decided_model_problem(policy: Policy, model: str | None, base_dir: str | Path | None,
                          today: str | None = None) -> tuple[str, str] | None:
    """(severity, message) about the one model a decision sends calls to, or None."""
    if not model:
        return None
    try:
        catalog = _catalog(policy, base_dir)
    except PricingError as exc:
        return "error", exc.render()
    return model_problem(catalog, model, today)


def _catalog(policy: Policy, base_dir: str | Path | None) -> Any:
    from ci_guard.pricing.catalog import load_catalog

    return load_catalog(policy.pricing, base_dir)


def model_problem(catalog: Any, model: str, today: str | None = None) -> tuple[str, str] | None:
    found = catalog.find(model)
    if found is None:
        known = sorted({*catalog.prices, *catalog.aliases})
        guess = difflib.get_close_matches(model.lower(), known, n=1, cutoff=0.6)
        hint = f"; did you mean {guess[0]!r}?" if guess else ""
        if catalog.on_unknown_model == "warn":
            return "warning", (f"model {model!r} has no price in the catalog: its calls are priced as "
                               f"{catalog.fallback_model} (pricing.on_unknown_model: warn){hint}")
        return "error", (f"model {model!r} has no price in the catalog, so every call to it would be refused "
                         f"(pricing.on_unknown_model: {catalog.on_unknown_model}){hint}; add it under "
                         "pricing.overrides or load a price file")
    price = found[0]
    if not price.retires:
        return None
    today = today or datetime.now(UTC).date().isoformat()
    when = "retired on" if price.retires <= today else "retires on"
    successor = f"; the provider names {price.successor} as its successor" if price.successor else ""
    return "warning", f"model {model!r} {when} {price.retires}{successor}"
