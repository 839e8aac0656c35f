"""`ci-guard explain`: every rule in order, each condition and whether it held."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from ci_guard.commands._color import color_option
from ci_guard.commands._decide_flags import decide_options, run_decision
from ci_guard.commands.options import context_options

EPILOG = """\b
Examples:
  ci-guard explain --policy policies/default.yml --trigger pull_request --agent pr-review \\
      --base-branch main --diff-lines 120 --changed-file src/app.py
  ci-guard explain --policy policy.yml --context run.json --budget-snapshot budgets.json --format json

\b
Legend: ✓ holds, ✗ does not hold, ? unknown (the run lacks that value; the rule cannot match).
Exit status: 0 allowed, 1 denied or skipped, 2 invalid input.
"""


@click.command(epilog=EPILOG)
@decide_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@color_option
@context_options
def explain(policy_path: str, budget_snapshot: str | None, ledger_url: str | None, now: datetime | None, fmt: str,
            color: str, **context: Any) -> int:
    """Show every rule in order with the conditions that held or failed, and the decision."""
    from ci_guard.commands._color import echo
    from ci_guard.policy.explain import render_text, trace_rules
    from ci_guard.secrets import redact

    policy, decision = run_decision(policy_path, budget_snapshot, ledger_url, now, context)
    traces = trace_rules(policy, decision)
    if fmt == "json":
        payload = {"decision": decision.as_json(), "rules": [t.as_json() for t in traces]}
        click.echo(redact(json.dumps(payload, indent=2)))
    else:
        echo("explain", redact(render_text(decision, traces)), color)
    return 0 if decision.allowed else 1
