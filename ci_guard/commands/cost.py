"""`ci-guard cost`: price one call from its token counts."""

from __future__ import annotations

import json

import click

from ci_guard.commands._ledger_common import catalog_for, format_option, table
from ci_guard.errors import InvalidInputError
from ci_guard.money import usd_json

EPILOG = """\b
Token classes are ci-guard's normalised ones (docs/pricing.md): --input is fresh input only,
not cache reads or writes (Anthropic's input_tokens; OpenAI's prompt_tokens minus cached_tokens).

\b
Examples:
  ci-guard cost --model claude-sonnet-4-5 --input 1200 --cache-write 1000 --cache-write-1h 2000 \\
      --cache-read 50000 --output 800
  ci-guard cost --model gpt-5 --input 4000 --cache-read 8000 --output 3000 --reasoning 2200 --format json
  ci-guard cost --model gpt-5.5 --input 10000 --output 1000 --service-tier priority
  ci-guard cost --model claude-opus-4-6 --input 1000 --output 100 --inference-geo us --web-searches 2
  ci-guard cost --model claude-opus-5 --input 20000 --output 2000 --speed fast
  ci-guard cost --model gpt-5.5 --input 10000 --output 1000 --service-tier flex

\b
--service-tier, --inference-geo and --web-searches are the ledger's service_tier, the provider's
inference_geo and web_searches columns: with them a ledger row can be re-priced by hand. An
Anthropic fast-mode call is recorded with service_tier "fast": --speed fast and --service-tier fast
price it the same. --inference-geo eu/us/... on a recent OpenAI model is the regional-processing
uplift of a data-residency endpoint (eu.api.openai.com).
"""


@click.command(epilog=EPILOG)
@click.option("--model", required=True, help="Model id (aliases, snapshots and provider prefixes resolve).")
@click.option("--input", "input_tokens", type=click.IntRange(min=0), default=0, help="Fresh input tokens.")
@click.option("--output", "output_tokens", type=click.IntRange(min=0), default=0,
              help="Output tokens, reasoning included.")
@click.option("--cache-read", type=click.IntRange(min=0), default=0, help="Tokens read from cache.")
@click.option("--cache-write", type=click.IntRange(min=0), default=0, help="Tokens written to a 5-minute cache.")
@click.option("--cache-write-1h", type=click.IntRange(min=0), default=0, help="Tokens written to a 1-hour cache.")
@click.option("--reasoning", type=click.IntRange(min=0), default=0,
              help="How many of the output tokens were reasoning (informational).")
@click.option("--service-tier", metavar="TIER",
              help="The tier that served the call: priority/fast (OpenAI priority rates), flex or batch "
                   "(half price), fast (Anthropic fast mode).")
@click.option("--speed", type=click.Choice(["standard", "fast"]),
              help="Anthropic fast mode (the request's speed / the response's usage.speed).")
@click.option("--inference-geo", metavar="GEO", help='Where the call ran (Anthropic: "us" is 1.1x on Opus 4.6+).')
@click.option("--web-searches", type=click.IntRange(min=0), default=0,
              help="Billed server-side web searches (a fee per search on top of the tokens).")
@click.option("--web-search-preview", is_flag=True,
              help="The searches came from OpenAI's web_search_preview tool ($25 / 1,000 on gpt-4o / gpt-4.1).")
@click.option("--policy", "policy_path", metavar="FILE", envvar="CI_GUARD_POLICY",
              help="Apply this policy's pricing: section.")
@format_option
def cost(model: str, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int,
         cache_write_1h: int, reasoning: int, service_tier: str | None, speed: str | None,
         inference_geo: str | None, web_searches: int, web_search_preview: bool, policy_path: str | None,
         fmt: str) -> int:
    """Price one call exactly (to the micro-dollar) from its token counts."""
    from ci_guard.pricing.cost import cost as price_call
    from ci_guard.pricing.usage import Usage

    if reasoning > output_tokens:
        raise InvalidInputError(f"--reasoning ({reasoning}) cannot exceed --output ({output_tokens}): "
                                "reasoning tokens are part of output")
    catalog = catalog_for(policy_path)
    resolution = catalog.resolve(model)
    if resolution.denied:
        click.echo(f"ci-guard: {resolution.warning}", err=True)
        return 1
    if resolution.warning:
        click.echo(f"ci-guard: warning: {resolution.warning}", err=True)
    usage = Usage(input_tokens=input_tokens, cache_write_tokens=cache_write + cache_write_1h,
                  cache_write_1h_tokens=cache_write_1h, cache_read_tokens=cache_read,
                  output_tokens=output_tokens, reasoning_tokens=reasoning)
    if speed == "fast":
        service_tier = "fast"  # as the proxy records an Anthropic fast-mode call
    price = resolution.price.for_call(service_tier, inference_geo)
    breakdown = price_call(usage, price)
    fee_each = catalog.web_search_fee(price.provider, price, web_search_preview)
    fees = fee_each * web_searches
    total = breakdown.total_usd + fees
    if fmt == "json":
        click.echo(json.dumps({"requested": model, "resolved_as": resolution.how, "warning": resolution.warning,
                               "service_tier": service_tier, "inference_geo": inference_geo,
                               "tokens": usage.as_json(), **breakdown.as_json(),
                               "tokens_usd": usd_json(breakdown.total_usd), "web_searches": web_searches,
                               "fees_usd": usd_json(fees), "total_usd": usd_json(total)}, indent=2))
        return 0
    rates = breakdown.rates.as_json()
    rows = [["input", usage.input_tokens, rates["input"], breakdown.input_usd],
            ["cache write 5m", usage.cache_write_5m_tokens, rates["cache_write_5m"], breakdown.cache_write_5m_usd],
            ["cache write 1h", usage.cache_write_1h_tokens, rates["cache_write_1h"], breakdown.cache_write_1h_usd],
            ["cache read", usage.cache_read_tokens, rates["cache_read"], breakdown.cache_read_usd],
            ["output", usage.output_tokens, rates["output"], breakdown.output_usd]]
    tier = (f"long-context tier (input above {breakdown.tier_above_tokens:,} tokens)"
            if breakdown.tier_above_tokens else "base rates")
    modifiers = "".join(f"; {label} {value}" for label, value in (("service tier", service_tier),
                                                                   ("inference geo", inference_geo)) if value)
    click.echo(f"model: {breakdown.model} ({resolution.how}; {tier}{modifiers})")
    click.echo(table(["class", "tokens", "USD/1M", "cost USD"],
                     [[r[0], f"{r[1]:,}", r[2], f"{r[3]:f}"] for r in rows], right=(1, 2, 3)))
    if reasoning:
        click.echo(f"of which reasoning: {reasoning:,} tokens, ${breakdown.reasoning_usd:f}")
    if web_searches:
        click.echo(f"web searches: {web_searches} x ${fee_each} = ${fees}")
    click.echo(f"total: ${total}")
    return 0
