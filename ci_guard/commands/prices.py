"""`ci-guard prices`: show the price catalog (bundled list prices plus the policy's pricing)."""

from __future__ import annotations

import json
from typing import Any

import click

from ci_guard.commands._ledger_common import catalog_for, format_option, table
from ci_guard.pricing.rates import decimal_text

EPILOG = """\b
Examples:
  ci-guard prices                                  # every model, USD per million tokens
  ci-guard prices claude-sonnet-4-5-20250929       # one model (aliases and snapshots resolve)
  ci-guard prices --policy policy.yml --format json
  ci-guard prices --compare-litellm installed       # field-by-field diff with LiteLLM's map
  ci-guard prices --compare-litellm model_prices_and_context_window.json

\b
Exit status: 0 shown, 1 the model has no price (--compare-litellm: an unexplained difference),
2 invalid input.
"""


@click.command(epilog=EPILOG)
@click.argument("model", required=False)
@click.option("--policy", "policy_path", metavar="FILE", envvar="CI_GUARD_POLICY",
              help="Apply this policy's pricing: overrides, price files, on_unknown_model.")
@click.option("--compare-litellm", "litellm_map", metavar="FILE|installed",
              help="Compare the bundled catalog with LiteLLM's price map (a file, or the installed litellm "
                   "package's copy; never the network) and print every differing or missing model and field.")
@format_option
def prices(model: str | None, policy_path: str | None, litellm_map: str | None, fmt: str) -> int:
    """Show USD per million tokens for each model: input, cache writes (5m/1h), cache reads, output."""
    if litellm_map:
        from ci_guard.pricing.catalog import load_catalog
        from ci_guard.pricing.compare import compare, load_map, render

        text, where = load_map(litellm_map)
        report = compare(load_catalog(), text, where)
        click.echo(render(report))
        return 1 if report.unexplained else 0
    catalog = catalog_for(policy_path)
    if model:
        found = catalog.find(model)
        if found is None:
            click.echo(f"ci-guard: {model!r} is not in the catalog "
                       f"(pricing.on_unknown_model: {catalog.on_unknown_model})", err=True)
            return 1
        listed = [found[0]]
    else:
        listed = catalog.models()
    if fmt == "json":
        click.echo(json.dumps({
            "as_of": catalog.as_of, "currency": "USD", "unit": "per 1,000,000 tokens",
            "on_unknown_model": catalog.on_unknown_model, "fallback_model": catalog.fallback_model,
            "models": [{**p.as_json(), "aliases": catalog.aliases_of(p.model)} for p in listed],
            "fees": {provider: {"web_search_usd": str(fee)}
                     for provider, fee in sorted(catalog.web_search_usd.items())},
        }, indent=2))
        return 0
    rows = []
    for p in listed:
        r = p.rates.as_json()
        tiers = "; ".join(f">{t.above_input_tokens // 1000}k: {t.rates.as_json()['input']}/"
                          f"{t.rates.as_json()['output']}" for t in p.tiers)
        rows.append([p.model, p.provider, r["input"], r["cache_write_5m"], r["cache_write_1h"], r["cache_read"],
                     r["output"], tiers or "", p.source])
    click.echo(table(["model", "provider", "input", "write 5m", "write 1h", "read", "output",
                      "long context (in/out)", "source"], rows, right=range(2, 7)))
    if model:
        p = listed[0]
        if catalog.aliases_of(p.model):
            click.echo(f"aliases: {', '.join(catalog.aliases_of(p.model))}")
        if p.note:
            click.echo(f"note: {p.note}")
        modifiers = _modifiers(p)
        if modifiers:
            click.echo(f"modifiers: {modifiers}")
    click.echo(f"USD per million tokens; list prices as of {catalog.as_of}.")
    fees = ", ".join(f"{provider} ${fee}" for provider, fee in sorted(catalog.web_search_usd.items()))
    if fees:
        click.echo(f"Web search, per search, on top of tokens: {fees}.")
    return 0


def _modifiers(price: Any) -> str:
    """What changes one model's price per call: priority rates, tier and geography multipliers."""
    parts = []
    if price.priority is not None:
        r = price.priority.as_json()
        parts.append(f"priority/fast {r['input']}/{r['cache_read']}/{r['output']} (in/read/out)")
    parts += [f"{tier} x{decimal_text(f)}" for tier, f in price.tier_multipliers]
    parts += [f"{geo} x{decimal_text(f)}" for geo, f in price.geo_multipliers]
    return "; ".join(parts)
