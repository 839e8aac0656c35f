"""`ci-guard what-if`: replay the ledger against a proposed policy (see ci_guard/preview)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import click

from ci_guard.commands._ledger_common import ledger_option, parse_moment

EPILOG = """\b
Examples:
  ci-guard what-if --policy new.yml --since 30d
  ci-guard what-if --policy head.yml --baseline base.yml --since 30d --format markdown --output preview.md
  ci-guard what-if --policy new.yml --fail-if-spend-increases-by 10% --fail-if-denies-more-than 20

\b
Without --baseline the proposal is compared with what the ledger recorded. Exit codes: 0 within the
thresholds, 1 when a --fail-if threshold is passed, 2 invalid input (a policy that does not validate:
file:line: field: what was expected; with --format markdown --output the errors are written as the
comment), 3 ledger unreachable.
"""
_THRESHOLD = re.compile(r"^\s*(?:(?P<pct>\d+(?:\.\d+)?)\s*%|\$?(?P<usd>\d+(?:\.\d+)?))\s*$")


def _threshold(ctx: click.Context | None, param: click.Parameter | None,
               value: str | None) -> tuple[str, Decimal] | None:
    if value is None:
        return None
    match = _THRESHOLD.match(value)
    if not match:
        raise click.BadParameter(f"expected a percentage (10%) or dollars ($50), got {value!r}")
    if match.group("pct") is not None:
        return "pct", Decimal(match.group("pct"))
    return "usd", Decimal(match.group("usd"))


@click.command(epilog=EPILOG)
@click.option("--policy", "policy_path", required=True, metavar="FILE", help="The proposed policy.")
@click.option("--baseline", "baseline_path", metavar="FILE",
              help="The policy to compare with (default: what the ledger recorded).")
@click.option("--since", callback=parse_moment, default="30d", show_default=True, metavar="TIME",
              help="Replay runs started from this time (ISO 8601 or 30d / 24h / 2w back from now).")
@click.option("--until", callback=parse_moment, metavar="TIME", help="...and before this time (default: now).")
@ledger_option
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
@click.option("--output", metavar="FILE", help="Write the result to FILE instead of standard output.")
@click.option("--fail-if-spend-increases-by", "spend_threshold", callback=_threshold, metavar="PCT|USD",
              help="Exit 1 when the spend grows by more than this (10% or $50).")
@click.option("--fail-if-denies-more-than", "deny_threshold", type=click.IntRange(min=0), metavar="N",
              help="Exit 1 when more than N runs the baseline allowed would be denied or skipped.")
def what_if(policy_path: str, baseline_path: str | None, since: datetime, until: datetime | None,
            ledger_url: str | None, fmt: str, output: str | None, spend_threshold: tuple[str, Decimal] | None,
            deny_threshold: int | None) -> int:
    """Replay the ledger against a proposed policy: decisions, caps, models and budgets that change."""
    from ci_guard.errors import InvalidInputError, PolicyError
    from ci_guard.ledger import open_ledger
    from ci_guard.preview.render import render_invalid, render_json, render_markdown, render_text
    from ci_guard.preview.whatif import load_policies
    from ci_guard.preview.whatif import what_if as run_what_if

    until = until or datetime.now(UTC) + timedelta(seconds=1)
    if since >= until:
        raise InvalidInputError(f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})")
    try:
        load_policies(policy_path, baseline_path)
    except PolicyError as exc:
        if fmt == "markdown" and output:
            from ci_guard.files import write_text_atomic
            from ci_guard.secrets import redact

            write_text_atomic(output, render_invalid(policy_path, redact(exc.render())))
        raise
    store = open_ledger(ledger_url, create=False)  # read-only: never creates one
    try:
        result = run_what_if(store, policy_path, baseline_path, since, until)
    finally:
        store.close()
    text = {"json": render_json, "markdown": render_markdown}.get(fmt, render_text)(result)
    if output:
        from ci_guard.files import write_text_atomic

        write_text_atomic(output, text)
    else:
        click.echo(text, nl=False)
    failures = []
    if spend_threshold is not None:
        kind, limit = spend_threshold
        grew = Decimal(result.delta_micros) / 1_000_000
        pct = result.delta_pct
        over_pct = grew > 0 if pct is None else pct > limit  # from nothing, any growth is infinite
        if (kind == "usd" and grew > limit) or (kind == "pct" and over_pct):
            failures.append(f"the spend would grow by ${grew} ({pct if pct is not None else '∞'} %), more than "
                            f"{limit}{'%' if kind == 'pct' else ' USD'}")
    if deny_threshold is not None and len(result.newly_refused) > deny_threshold:
        failures.append(f"{len(result.newly_refused)} runs would be denied or skipped, more than {deny_threshold}")
    for failure in failures:
        click.echo(f"ci-guard: what-if: {failure}", err=True)
    return 1 if failures else 0
