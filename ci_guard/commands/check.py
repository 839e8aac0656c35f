"""`ci-guard check`: decide whether an agent may run, on which model, with which limits."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from ci_guard.commands._decide_flags import decide_options, run_decision
from ci_guard.commands.options import context_options
from ci_guard.errors import EXIT_UNAVAILABLE

EPILOG = """\b
Examples:
  ci-guard check --policy policies/default.yml
  ci-guard check --policy policies/default.yml --trigger pull_request --agent pr-review \\
      --base-branch main --diff-lines 120 --changed-file src/app.py --format json
  ci-guard check --policy policy.yml --budget-snapshot budgets.json --format github

\b
Exit status: 0 allowed, 1 denied or skipped, 2 invalid input (policy, flag or context file; an
allowed model the price catalog cannot price), 3 the ledger could not be reached and
enforcement.on_ledger_error is deny (infrastructure, not a decision).
"""


@click.command(epilog=EPILOG)
@decide_options
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text", show_default=True,
              help="github also writes step outputs to $GITHUB_OUTPUT and a table to $GITHUB_STEP_SUMMARY.")
@context_options
def check(policy_path: str, budget_snapshot: str | None, ledger_url: str | None, now: datetime | None, fmt: str,
          **context: Any) -> int:
    """Decide whether an agent may run, on which model and under which hard limits."""
    from ci_guard.policy.output import (
        append_file,
        format_outputs,
        github_annotations,
        render_text,
        step_outputs,
        summary_markdown,
    )
    from ci_guard.secrets import redact

    policy, decision = run_decision(policy_path, budget_snapshot, ledger_url, now, context)
    if decision.allowed and decision.model:
        # a decided model the catalog cannot price: the run would start and every call be refused
        from pathlib import Path

        from ci_guard.errors import PolicyError, Problem
        from ci_guard.policy.model_prices import decided_model_problem

        problem = decided_model_problem(policy, decision.model, Path(policy_path).parent)
        if problem and problem[0] == "error":
            raise PolicyError(f"{policy_path}: the decided model cannot be priced",
                              [Problem(problem[1], policy_path, field=f"rules.{decision.rule}.model")])
        if problem:
            click.echo(f"ci-guard: warning: {problem[1]}", err=True)
    if fmt == "json":
        click.echo(redact(json.dumps(decision.as_json(), indent=2)))
    else:
        click.echo(redact(render_text(decision)))
    if fmt == "github":
        click.echo(redact(github_annotations(decision)), nl=False)
        if not append_file("GITHUB_OUTPUT", redact(format_outputs(step_outputs(decision)))):
            click.echo("ci-guard: note: $GITHUB_OUTPUT is not set; step outputs not written", err=True)
        append_file("GITHUB_STEP_SUMMARY", redact(summary_markdown(decision)))
    if decision.rule == "on_ledger_error":
        # Infrastructure, not a policy decision: the ledger failed and on_ledger_error says deny.
        click.echo("ci-guard: error: the ledger could not be reached (enforcement.on_ledger_error: deny); "
                   "this is not a policy decision", err=True)
        if fmt == "github":
            from ci_guard.meter.outputs import annotation

            click.echo(f"::error title=ci-guard ledger::{annotation(decision.reason or 'the ledger failed')}")
        return EXIT_UNAVAILABLE
    return 0 if decision.allowed else 1

