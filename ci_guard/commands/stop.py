"""`ci-guard stop`: stop the proxy started by `start`, settle the run and write its summary."""

from __future__ import annotations

import click


@click.command()
@click.option("--state", "state_path", metavar="FILE",
              help="State file written by `start` (default $CI_GUARD_STATE or $RUNNER_TEMP/ci-guard-state.json).")
@click.option("--summary", "summary_path", metavar="FILE", help="Also write the run summary JSON here.")
@click.option("--ledger", "ledger_url", metavar="URL", envvar="CI_GUARD_LEDGER",
              help="The ledger given to `start` (the state file names it without its password).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text", show_default=True,
              help="github: write step outputs and a step summary; json: print the summary.")
@click.option("--agent-exit-code", type=click.IntRange(0, 255), default=None,
              help="The agent step's exit code, when the workflow has it (the run is then failed on non-zero).")
@click.option("--agent-outcome", type=click.Choice(["success", "failure", "cancelled"]), default=None,
              help="The agent step's outcome (GitHub: steps.<id>.outcome): failure -> failed, cancelled -> "
                   "cancelled.")
@click.option("--stop-key", "stop_key", metavar="KEY", envvar="CI_GUARD_STOP_KEY",
              help="The stop key `start` gave (GitHub: its stop-key output). Prefer the env CI_GUARD_STOP_KEY "
                   "to this flag (a command line is visible to every process).")
def stop(state_path: str | None, summary_path: str | None, ledger_url: str | None, fmt: str,
         agent_exit_code: int | None, agent_outcome: str | None, stop_key: str | None) -> int:
    """Stop the metering proxy of a run started with `ci-guard start` and summarise the run.

    The proxy finishes calls in flight, writes every call to the ledger, releases the budget
    reservation and writes the run summary; `stop` then copies it to --summary and, with
    --format github, to the step outputs (cost-usd, stop-reason, ...) and step summary.

    With the stop key, nothing the agent could have written is trusted: only the proxy process the
    key names is signalled (while its start time matches, so a reused pid never is), and a state
    file or summary whose MAC does not verify is refused: the run is still stopped and reported
    from the ledger, and `stop` exits 2. Without the key (local use), the state file is checked
    against /proc and the summary against the ledger, with a warning.

    \b
    Exit codes: 0 stopped and summarised; 2 the state file or the run summary was changed after
    ci-guard wrote it (its MAC does not verify with the stop key), or other invalid input; 70
    internal error.

    \b
    Examples:
      CI_GUARD_STOP_KEY="$CI_GUARD_STOP_KEY" ci-guard stop --summary run.json
      ci-guard stop --format github --agent-outcome "${{ steps.agent.outcome }}"  # env: CI_GUARD_STOP_KEY
    """
    import json
    import os

    from ci_guard.meter import detached
    from ci_guard.meter.live_log import call_log_lines, collapsed, usd
    from ci_guard.meter.outputs import annotation, emit_github_run_outputs
    from ci_guard.meter.summary import write_summary

    path = state_path or os.environ.get("CI_GUARD_STATE") or detached.default_state_path()
    problems: list[str] = []
    summary = detached.stop(path, ledger_url=ledger_url, agent_exit_code=agent_exit_code,
                            agent_outcome=agent_outcome, stop_key=stop_key, problems=problems)
    write_summary(summary, summary_path)
    if summary.calls:
        # The proxy ran in the background, so its live log went nowhere the job shows: print the
        # per-call log now, folded, so a job that ran an action through start/stop shows its spend.
        title = f"ci-guard: {len(summary.calls)} model calls, {usd(summary.cost_usd)} (run {summary.run_id})"
        # color=True: GitLab's section markers are escape sequences that must reach the log as written.
        click.echo(collapsed(title, call_log_lines(summary), os.environ), err=True, color=True)
    if fmt == "github":
        emit_github_run_outputs(summary, summary_path or str(detached.summary_path_of(path)))
    elif fmt == "json":
        click.echo(json.dumps(summary.to_json(), indent=2))
    else:
        stop = f", stopped by {summary.stop_reason}" if summary.stop_reason else ""
        click.echo(f"ci-guard: run {summary.run_id} {summary.status}: {summary.turns} turns, "
                   f"{summary.tool_calls} tool calls, {usd(summary.cost_usd)}{stop}", err=True)
    for problem in problems:  # a forged file: the run is stopped and reported, and the step fails
        click.echo(f"ci-guard: error: {problem}", err=True)
        if fmt == "github":
            click.echo(f"::error title=ci-guard state forged::{annotation(problem)}")
    return 2 if problems else 0
