"""`ci-guard run`: decide, then run the agent through the metering proxy."""

from __future__ import annotations

import os

import click

from ci_guard.commands.options import build_context, context_options


@click.command(context_settings={"ignore_unknown_options": False, "allow_interspersed_args": False})
@click.option("--policy", "policy_path", required=True, type=click.Path(dir_okay=False),
              envvar="CI_GUARD_POLICY", help="Policy file (YAML). Env: CI_GUARD_POLICY.")
@context_options
@click.option("--ledger", "ledger_url", metavar="URL", envvar="CI_GUARD_LEDGER",
              help="Ledger URL: /abs/path.db, sqlite:///path.db or postgresql://... (default: "
                   "$RUNNER_TEMP/ci-guard/ledger.db, else ~/.local/state/ci-guard/ledger.db).")
@click.option("--budget-snapshot", metavar="FILE", help="Read remaining budgets from a JSON snapshot (dry runs).")
@click.option("--preset", type=click.Choice(["auto", "claude-code", "codex", "none"]), default="auto",
              show_default=True, help="Configure a known agent CLI through its environment, never its argv, so "
              "it works through bash -c, make or a script (auto: from the program, a shell's -c script or npx).")
@click.option("--summary", "summary_path", metavar="FILE", help="Write the run summary JSON here.")
@click.option("--format", "fmt", type=click.Choice(["text", "github"]), default="text", show_default=True,
              help="github: also write step outputs and a step summary.")
@click.option("--anthropic-upstream", metavar="URL", help="Anthropic API base (env CI_GUARD_ANTHROPIC_UPSTREAM).")
@click.option("--openai-upstream", metavar="URL", help="OpenAI-compatible API base incl. /v1 "
              "(env CI_GUARD_OPENAI_UPSTREAM).")
@click.option("--grace", "grace_s", type=float, default=3.0, show_default=True,
              help="Seconds the agent gets to end by itself after a cap refused its call.")
@click.option("--strip-env", "strip_env", multiple=True, metavar="NAME",
              help="Also remove this variable from the agent's environment (repeatable), e.g. GITLAB_TOKEN. "
                   "Provider keys and CI_GUARD_LEDGER are always removed.")
@click.option("--quiet", is_flag=True, help="No live line per call.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(policy_path: str, ledger_url: str | None, budget_snapshot: str | None, preset: str,
        summary_path: str | None, fmt: str, anthropic_upstream: str | None, openai_upstream: str | None,
        grace_s: float, strip_env: tuple[str, ...], quiet: bool, command: tuple[str, ...],
        **context_flags: object) -> int:
    """Decide, then run COMMAND through the metering proxy with the decision's hard caps.

    The agent gets a per-run token instead of the real provider keys and talks to a local proxy
    (ANTHROPIC_BASE_URL / OPENAI_BASE_URL point at it). Every call is metered, priced and written
    to the ledger as it ends; when a cap is hit the call is refused and the agent is stopped.

    \b
    Exit codes: the agent's own; 80 when the policy (or a budget) denied or skipped the run; 81
    when a cap stopped the agent; 82 for an infrastructure failure (ledger unreachable or
    misconfigured, a required provider key missing); 2 for invalid input; 70 internal error.

    \b
    Examples:
      ci-guard run --policy policies/default.yml --agent pr-review -- claude -p "Review this PR"
      ci-guard run --policy ci-guard.yml --preset codex --summary run.json -- codex exec "fix the tests"
    """
    from ci_guard.meter.runner import RunRequest, run_agent
    from ci_guard.meter.upstreams import upstreams_from_env

    context = build_context(**context_flags)
    env = dict(os.environ)
    request = RunRequest(
        policy_path=policy_path, context=context, command=list(command), ledger_url=ledger_url,
        budget_snapshot=budget_snapshot, preset=preset, summary_path=summary_path, quiet=quiet,
        upstreams=upstreams_from_env(env, anthropic_upstream, openai_upstream), grace_s=grace_s,
        strip_env=strip_env,
    )
    from ci_guard.errors import EXIT_RUN_INFRASTRUCTURE, EXIT_UNAVAILABLE, CiGuardError

    try:
        outcome = run_agent(request)
    except CiGuardError as exc:
        if exc.exit_code == EXIT_UNAVAILABLE:  # infrastructure (ledger, missing key, proxy): its own code
            exc.exit_code = EXIT_RUN_INFRASTRUCTURE
            if fmt == "github":
                from ci_guard.meter.outputs import annotation

                click.echo(f"::error title=ci-guard infrastructure::{annotation(exc.render())}")
        raise
    if fmt == "github":
        from ci_guard.meter.outputs import emit_github_run_outputs

        emit_github_run_outputs(outcome.summary, summary_path)
    return outcome.exit_code
