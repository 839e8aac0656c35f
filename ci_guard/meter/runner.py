"""`ci-guard run` as a library call: decide, reserve, meter the agent, settle, summarise.

    outcome = run_agent(RunRequest(policy_path="policy.yml", context=ctx, command=["claude", "-p", "..."]))
    outcome.exit_code, outcome.summary.cost_usd
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ci_guard.context.model import RunContext
from ci_guard.errors import EXIT_RUN_INFRASTRUCTURE, InvalidInputError
from ci_guard.files import scratch_parent
from ci_guard.meter import lifecycle, loop, owners
from ci_guard.meter.caps import CapGuard
from ci_guard.meter.hardening import make_undumpable
from ci_guard.meter.live_log import LiveLog
from ci_guard.meter.presets import agent_environment, apply_preset, check_preset, detect_preset
from ci_guard.meter.session import MeterSession, new_run_token
from ci_guard.meter.status import FinalStatus, final_status
from ci_guard.meter.supervisor import AgentExit, Supervisor, agent_exit_status
from ci_guard.meter.upstreams import Upstreams, missing_credentials, require_keys
from ci_guard.secrets import register

if TYPE_CHECKING:
    from ci_guard.meter.proxy import MeterProxy
    from ci_guard.meter.summary import RunSummary  # built when the run ends, not before the agent starts

# Documented exit codes of `ci-guard run` (besides the agent's own).
EXIT_POLICY_REFUSED = 80  # the policy denied or skipped the run, or its budget did not fit
EXIT_CAP_STOPPED = 81  # a cap stopped the agent
# ci-guard's infrastructure failed: the ledger (at start, or mid-run with on_ledger_error: deny), a missing
# provider key, an unreachable proxy; never a policy decision (80) or a cap (81).
EXIT_INFRASTRUCTURE = EXIT_RUN_INFRASTRUCTURE


@dataclass
class RunRequest:
    policy_path: str
    context: RunContext
    command: list[str]
    ledger_url: str | None = None
    budget_snapshot: str | None = None
    preset: str = "auto"
    upstreams: Upstreams = field(default_factory=Upstreams)
    summary_path: str | None = None
    quiet: bool = False
    environ: Mapping[str, str] | None = None
    cwd: str | None = None
    grace_s: float = 3.0
    kill_after_s: float = 5.0
    now: datetime | None = None
    strip_env: tuple[str, ...] = ()  # more variables to keep from the agent (forge tokens, say)


@dataclass
class RunOutcome:
    summary: RunSummary
    exit_code: int


def _check_command(command: list[str], env: dict[str, str], cwd: str | None) -> None:
    """Fail before deciding or reserving anything when the agent cannot even be started."""
    if not command:
        raise InvalidInputError("no agent command given: put it after `--`, e.g. `ci-guard run -- claude -p ...`")
    program = command[0]
    if os.sep in program:
        path = program if os.path.isabs(program) or cwd is None else os.path.join(cwd, program)
        found = os.path.isfile(path) and os.access(path, os.X_OK)
    else:
        found = shutil.which(program, path=env.get("PATH")) is not None
    if not found:
        raise InvalidInputError(f"agent command not found or not executable: {program!r}")


def _preset_for(req: RunRequest) -> str:
    return detect_preset(req.command) if req.preset == "auto" else req.preset


def run_agent(req: RunRequest) -> RunOutcome:
    env = dict(os.environ if req.environ is None else req.environ)
    _check_command(req.command, env, req.cwd)
    check_preset(_preset_for(req), env)
    make_undumpable()  # the agent, a child of ours, must not read our environment through /proc
    live = LiveLog(quiet=req.quiet)
    preset = detect_preset(req.command) if req.preset == "auto" else req.preset
    require_keys(req.upstreams, preset=preset)  # before anything is decided or reserved
    prepared = lifecycle.prepare_run(
        policy_path=req.policy_path, context=req.context, ledger_url=req.ledger_url,
        budget_snapshot=req.budget_snapshot, now=req.now, live=live,
        owner=owners.this_process(),  # recorded with the run: the next run closes it if this process is killed
    )
    if prepared.refused_summary is not None:
        summary = prepared.refused_summary
        lifecycle.write_summary(summary, req.summary_path)
        if summary.status == "error":  # the ledger, not the policy
            live.warn(summary.stop_detail or "the ledger could not be reached")
            return RunOutcome(summary, EXIT_INFRASTRUCTURE)
        return RunOutcome(summary, EXIT_POLICY_REFUSED)
    try:
        require_keys(req.upstreams, model=prepared.decision.model,
                     model_provider=prepared.pricer.provider_of(prepared.decision.model) if prepared.pricer else None)
    except BaseException:
        prepared.recorder.close()
        lifecycle.abandon_run(prepared.ledger_url, prepared.run_id)
        raise
    return loop.run(_run_async(req, prepared, env, live))


async def _run_async(req: RunRequest, prepared: lifecycle.PreparedRun, env: dict[str, str],
                     live: LiveLog) -> RunOutcome:
    decision = prepared.decision
    guard = CapGuard(decision.limits, on_cost_cap=decision.enforcement.on_cost_cap)
    session = MeterSession(
        run_id=prepared.run_id, token=new_run_token(), decision=decision, guard=guard,
        pricer=prepared.pricer, recorder=prepared.recorder, live=live, stop_event=asyncio.Event(),
    )
    register(session.token)
    session.watch_ledger(asyncio.get_running_loop())
    # The proxy's address is bound before the agent starts, and the proxy serves it once the agent
    # is started: its imports and start-up overlap the agent's own (an agent's first call waits in
    # the socket's backlog meanwhile; if the proxy cannot start, the agent is killed).
    listener = socket.create_server(("127.0.0.1", 0))
    proxy: MeterProxy | None = None

    async def serve() -> None:
        nonlocal proxy
        from ci_guard.meter.proxy import MeterProxy

        proxy = MeterProxy(session, req.upstreams, sock=listener)
        await proxy.start()

    async def close_proxy() -> None:
        if proxy is not None:
            await proxy.close()
        listener.close()

    try:
        exit_info = await _supervise(req, session, _url(listener), env, live, serve)
    except BaseException:
        # Whatever went wrong, the run must not stay "running" with its budget reserved.
        await close_proxy()
        failed = session.summary(status="error", agent_exit_code=None)
        lifecycle.finish_run(prepared, failed)
        lifecycle.write_summary(failed, req.summary_path)
        raise
    await close_proxy()
    code = agent_exit_status(exit_info.exit_code)
    final = final_status(stopped=guard.stopped, exit_code=code, forwarded_signal=exit_info.forwarded_signal,
                         calls=session.calls, turns=guard.turns, max_turns=guard.limits.max_turns)
    if guard.stop_reason == "ledger_error":
        # infrastructure, not a cap: the ledger failed and the policy said deny
        final = FinalStatus("error", "ledger_error", guard.stop_detail)
    summary = session.summary(status=final.status, agent_exit_code=code)
    if final.status != "stopped" or not guard.stopped:
        summary = summary.model_copy(update={"stop_reason": final.stop_reason, "stop_detail": final.detail})
    lifecycle.finish_run(prepared, summary)
    lifecycle.write_summary(summary, req.summary_path)
    live.info(f"run {session.run_id} {final.status}: {summary.turns} turns, {summary.tool_calls} tool calls, "
              f"${summary.cost_usd} in {summary.runtime_s:.1f}s"
              + (f" (stopped by {summary.stop_reason})" if final.status == "stopped" else ""))
    if final.status in ("failed", "no_calls"):
        live.warn(final.detail or final.status)
    if summary.context_savings:
        saved = summary.context_savings
        live.info(f"context policy saved ${saved['saved_usd']}, {saved['share_pct']}% of this run "
                  f"({saved['calls_changed']} calls changed; {saved['method']})")
    if guard.stop_reason == "ledger_error":
        return RunOutcome(summary, EXIT_INFRASTRUCTURE)
    return RunOutcome(summary, EXIT_CAP_STOPPED if final.status == "stopped" else code)



def _url(listener: socket.socket) -> str:
    host, port = listener.getsockname()[:2]
    return f"http://{host}:{port}"


async def _supervise(req: RunRequest, session: MeterSession, proxy_url: str, env: dict[str, str],
                     live: LiveLog, serve: Callable[[], Awaitable[None]]) -> AgentExit:
    decision = session.decision
    live.info(f"run {session.run_id}: {decision.model or 'any model'}, rule {decision.rule!r}, proxy {proxy_url}")
    for alert in decision.alerts:
        live.info(f"ALERT: {alert}")
    for provider in missing_credentials(req.upstreams):
        live.info(f"note: no key for {provider}; calls to it will be refused by the provider")
    agent_env = agent_environment(env, proxy_url=proxy_url, token=session.token, run_id=session.run_id,
                                  model=decision.model, max_turns=decision.limits.max_turns, strip=req.strip_env)
    preset = _preset_for(req)
    if preset != "none":
        live.info(f"preset {preset}: the agent's model, turn cap and provider come from its environment")
    # The codex preset writes a per-run CODEX_HOME; it lives exactly as long as the agent.
    with tempfile.TemporaryDirectory(prefix="ci-guard-agent-", dir=scratch_parent(env),
                                     ignore_cleanup_errors=True) as scratch:
        launch = apply_preset(preset, req.command, agent_env, proxy_url=proxy_url, token=session.token,
                              model=decision.model, max_turns=decision.limits.max_turns,
                              allowed_models=decision.enforcement.allowed_models, scratch=Path(scratch))
        supervisor = Supervisor(session, grace_s=req.grace_s, kill_after_s=req.kill_after_s)
        return await supervisor.run(launch.command, launch.env, cwd=req.cwd, started=serve)


__all__ = ["EXIT_CAP_STOPPED", "EXIT_INFRASTRUCTURE", "EXIT_POLICY_REFUSED", "RunOutcome", "RunRequest", "run_agent"]
