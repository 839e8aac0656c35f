"""`ci-guard import`: record the usage of an agent whose model calls cannot go through the proxy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from ci_guard.commands.options import build_context, context_options

EPILOG = """\b
Examples:
  ci-guard import --format claude-code-session ~/.claude/projects/-work-repo/SESSION.jsonl --agent pr-review
  ci-guard import --format codex-session ~/.codex/sessions/2026/12/04/rollout-...jsonl --agent test-repair
  claude -p "..." --output-format json > result.json
  ci-guard import --format claude-code-json result.json --policy .github/ci-guard.yml --agent pr-review
  ci-guard import --format codex-jsonl events.jsonl --model gpt-5-codex --agent test-repair
  ci-guard import --format csv cursor-usage.csv --since 2026-11-28T10:00:00Z --agent cursor-cli
  ci-guard import --format csv copilot-usage.csv --csv-user octocat --agent copilot-coding-agent

\b
The run is recorded with enforced = false: its calls were not metered, so no cap could stop them,
but its cost counts against the same budgets as a metered run with the same context. Prefer the
per-call formats (claude-code-session, codex-session): they are priced one request at a time, as
the proxy prices them; claude-code-json and codex-jsonl hold sums of calls.
"""


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"expected an ISO 8601 date or time, got {value!r}") from exc
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@click.command("import", epilog=EPILOG)
@click.argument("file", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["claude-code-session", "claude-code-json", "codex-session",
                                                    "codex-jsonl", "csv"]), required=True,
              help="claude-code-session: Claude Code's per-call session JSONL (a file, or a directory of them); "
                   "codex-session: Codex's per-call rollout JSONL (~/.codex/sessions); both exact per request. "
                   "claude-code-json: `claude -p --output-format json|stream-json` or claude-code-action's "
                   "execution file; codex-jsonl: `codex exec --json` (sums: a long-context tier is not applied "
                   "and the note gives the bound); csv: a vendor usage export.")
@click.option("--policy", "policy_path", metavar="FILE", help="Policy: pricing overrides, teams and budgets.")
@click.option("--ledger", "ledger_url", metavar="URL", help="Ledger URL (default: $CI_GUARD_LEDGER or local SQLite).")
@click.option("--model", metavar="MODEL", help="Model of the usage where the file does not name it (Codex).")
@click.option("--price-as", metavar="MODEL", help="Price models the catalog does not know as this one.")
@click.option("--since", metavar="TIME", help="CSV: only rows at or after this ISO 8601 time.")
@click.option("--csv-user", metavar="NAME", help="CSV: only rows of this user (the export's user column).")
@click.option("--summary", "summary_path", metavar="FILE", help="Write the run summary JSON (input of `comment`).")
@click.option("--output", "out_fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@context_options
def import_usage(file: str, fmt: str, policy_path: str | None, ledger_url: str | None, model: str | None,
                 price_as: str | None, since: str | None, csv_user: str | None, summary_path: str | None,
                 out_fmt: str, **context: Any) -> int:
    """Import usage of agents that cannot be proxied (Cursor CLI, Copilot coding agent, ...)."""
    import json

    from ci_guard.importers import parse_usage_file
    from ci_guard.importers.record import record_import
    from ci_guard.meter.lifecycle import write_summary
    from ci_guard.secrets import redact

    ctx = build_context(**context)
    policy = None
    if policy_path:
        from ci_guard.policy.decide import load_policy

        policy = load_policy(policy_path)
    imported = parse_usage_file(fmt, file, model=model, since=_since(since), user=csv_user)
    summary = record_import(imported, ctx=ctx, policy=policy, policy_path=policy_path, ledger_url=ledger_url,
                            price_as=price_as)
    write_summary(summary, summary_path)
    if out_fmt == "json":
        click.echo(redact(json.dumps(summary.to_json(), indent=2)))
    else:
        click.echo(redact(_line(summary, imported.reported_cost_usd)))
        for note in imported.notes:  # e.g. a sum of calls priced without a per-request tier: the bound
            click.echo(redact(f"note: {note}"))
    return 0


def _line(summary: Any, reported: Any) -> str:
    tokens = summary.tokens
    text = (f"imported run {summary.run_id} (not enforced): {len(summary.calls)} call(s), "
            f"{tokens['input']} input + {tokens['cache_write']} cache write + {tokens['cache_read']} cache read + "
            f"{tokens['output']} output tokens, ${summary.cost_usd}")
    if reported is not None:
        text += f" (the agent reported ${reported})"
    return text
