"""`ci-guard start`: decide, reserve and start a detached metering proxy for an agent action."""

from __future__ import annotations

import os

import click

from ci_guard.commands.options import build_context, context_options


@click.command()
@click.option("--policy", "policy_path", required=True, type=click.Path(dir_okay=False),
              envvar="CI_GUARD_POLICY", help="Policy file (YAML). Env: CI_GUARD_POLICY.")
@context_options
@click.option("--ledger", "ledger_url", metavar="URL", envvar="CI_GUARD_LEDGER", help="Ledger URL.")
@click.option("--budget-snapshot", metavar="FILE", help="Read remaining budgets from a JSON snapshot.")
@click.option("--state", "state_path", metavar="FILE",
              help="State file shared with `stop` (default $RUNNER_TEMP/ci-guard-state.json, else "
                   "$XDG_STATE_HOME/ci-guard/ci-guard-state.json).")
@click.option("--format", "fmt", type=click.Choice(["text", "github", "shell"]), default="text", show_default=True,
              help="github: export the agent's environment via $GITHUB_ENV and write step outputs; "
                   "shell: print `export` lines for eval.")
@click.option("--anthropic-upstream", metavar="URL", help="Anthropic API base (env CI_GUARD_ANTHROPIC_UPSTREAM).")
@click.option("--openai-upstream", metavar="URL", help="OpenAI-compatible API base (env CI_GUARD_OPENAI_UPSTREAM).")
@click.option("--preset", type=click.Choice(["claude-code", "codex", "none"]), default="none", show_default=True,
              help="Also export the agent's configuration: claude-code sets ANTHROPIC_MODEL, the model aliases "
                   "and CLAUDE_CODE_MAX_TURNS; codex a per-run CODEX_HOME with the proxy as model provider.")
@click.option("--quiet", is_flag=True, help="No live line per call in the proxy log.")
def start(policy_path: str, ledger_url: str | None, budget_snapshot: str | None, state_path: str | None, fmt: str,
          anthropic_upstream: str | None, openai_upstream: str | None, preset: str, quiet: bool,
          **context_flags: object) -> int:
    """Decide and start a detached metering proxy, for agents that run as CI actions.

    Use it when the agent is not a command ci-guard can wrap (anthropics/claude-code-action,
    openai/codex-action): `start` before the agent step, `stop` after it. Calls past a cap are
    refused at the proxy; the runtime cap refuses calls after the deadline.

    \b
    The stop key authenticates the state and summary files for `stop` (the agent can write them):
    --format github gives it as the masked step output stop-key, --format shell as the shell
    variable CI_GUARD_STOP_KEY (not exported, so the agent does not inherit it). Pass it to `stop`
    through CI_GUARD_STOP_KEY; never put it in $GITHUB_ENV or the agent's environment.

    \b
    Exit codes: 0 allowed and started; 80 denied or skipped by policy or budget; 82 infrastructure
    failure (ledger unreachable or misconfigured, required provider key missing); 2 invalid input.

    \b
    Examples:
      ci-guard start --policy ci-guard.yml --agent pr-review --preset claude-code --format github
      eval "$(ci-guard start --policy ci-guard.yml --format shell)"; claude -p "..."
      CI_GUARD_STOP_KEY="$CI_GUARD_STOP_KEY" ci-guard stop
    """
    from ci_guard.errors import EXIT_RUN_INFRASTRUCTURE, EXIT_UNAVAILABLE, CiGuardError
    from ci_guard.meter import detached
    from ci_guard.meter.outputs import annotation, append_github_env, write_github_outputs
    from ci_guard.meter.runner import EXIT_POLICY_REFUSED
    from ci_guard.meter.upstreams import upstreams_from_env

    context = build_context(**context_flags)
    try:
        started = detached.start(
            policy_path=policy_path, context=context, ledger_url=ledger_url, budget_snapshot=budget_snapshot,
            upstreams=upstreams_from_env(dict(os.environ), anthropic_upstream, openai_upstream),
            state_path=state_path or detached.default_state_path(), quiet=quiet, preset=preset,
        )
    except CiGuardError as exc:
        if exc.exit_code == EXIT_UNAVAILABLE:  # infrastructure (ledger, missing key, proxy): 82, as for `run`
            exc.exit_code = EXIT_RUN_INFRASTRUCTURE
            if fmt == "github":
                click.echo(f"::error title=ci-guard infrastructure::{annotation(exc.render())}")
        raise
    d = started.decision
    env = started.agent_env()
    if fmt == "github":
        if started.token:
            click.echo(f"::add-mask::{started.token}")
        if started.stop_key:
            click.echo(f"::add-mask::{started.stop_key}")
        append_github_env(env)  # the agent's environment: never the stop key
        write_github_outputs({
            "run-id": started.run_id, "decision": d.decision, "rule": d.rule, "reason": d.reason or "",
            "model": d.model,
            "max-turns": d.limits.max_turns, "max-cost-usd": d.limits.max_cost_usd,
            "proxy-url": started.proxy_url or "", "state-path": started.state_path,
        }, secret={"stop-key": started.stop_key or ""})  # later steps see it only where the workflow passes it
    elif fmt == "shell":
        import shlex

        for name, value in env.items():
            click.echo(f"export {name}={shlex.quote(value)}")
        if started.stop_key:
            # a shell variable, not exported: the agent started from this shell does not inherit it
            click.echo(f"CI_GUARD_STOP_KEY={shlex.quote(started.stop_key)}")
    if started.refused_summary is not None:
        if started.refused_summary.status == "error":  # the ledger, not the policy
            detail = started.refused_summary.stop_detail or ""
            click.echo(f"ci-guard: error: {detail}", err=True)
            if fmt == "github":
                click.echo(f"::error title=ci-guard ledger::{annotation(detail)}")
            return EXIT_RUN_INFRASTRUCTURE
        click.echo(f"ci-guard: {d.decision} by rule {d.rule!r}: {d.reason or ''}", err=True)
        return EXIT_POLICY_REFUSED
    if fmt == "text":
        click.echo(f"ci-guard: proxy {started.proxy_url} for run {started.run_id}; state {started.state_path}",
                   err=True)
    return 0
