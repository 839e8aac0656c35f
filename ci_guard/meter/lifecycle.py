"""The parts of a metered run that come before and after the agent, shared by `run` and `start`/`stop`.

Before: load the policy, decide (budgets read from the ledger), reserve the run's worst case on
every budget that applies (all or none), record the run. After: wait for queued call rows, finish
the run, release the reservation, write the summary atomically.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_guard.context.model import RunContext
from ci_guard.errors import BudgetExceededError, LedgerError
from ci_guard.ledger.records import RunRecord
from ci_guard.ledger.store import RunOwner
from ci_guard.meter.live_log import LiveLog
from ci_guard.meter.pricer import CatalogPricer
from ci_guard.meter.recorder import LedgerRecorder, Recorder, open_recorder
from ci_guard.meter.session import new_run_id
from ci_guard.policy.decision import Decision
from ci_guard.policy.inputs import decision_inputs
from ci_guard.secrets import redact

if TYPE_CHECKING:  # ci_guard.meter.summary's models are built when a run ends (or is refused), not
    # before its agent starts: ~4 ms of a launch
    from ci_guard.meter.summary import RunSummary


def write_summary(summary: RunSummary, path: str | None) -> None:
    """:func:`ci_guard.meter.summary.write_summary` (callers use ``lifecycle.write_summary``)."""
    from ci_guard.meter.summary import write_summary as write

    write(summary, path)


def resolve_ledger_url(url: str | None, environ: dict[str, str] | None = None) -> str:
    """The ledger URL in force: the flag, ``$CI_GUARD_LEDGER``, else the default outside the checkout."""
    from ci_guard.ledger import default_url

    env = os.environ if environ is None else environ
    return url or env.get("CI_GUARD_LEDGER") or default_url(env)


@dataclass
class PreparedRun:
    run_id: str
    decision: Decision
    ledger_url: str | None
    pricer: CatalogPricer | None = None
    recorder: Recorder = field(default_factory=lambda: LedgerRecorder(None))
    reserved_usd: Decimal | None = None
    refused_summary: RunSummary | None = None
    policy: Any = None  # for alerts after the run


def prepare_run(*, policy_path: str, context: RunContext, ledger_url: str | None, budget_snapshot: str | None,
                now: datetime | None, live: LiveLog, run_id: str | None = None,
                owner: RunOwner | None = None) -> PreparedRun:
    """Decide; when allowed, reserve and record the run (owned by ``owner``, see ci_guard.meter.owners)
    in one ledger transaction."""
    from ci_guard.ledger import open_ledger
    from ci_guard.policy.decide import evaluate, load_policy
    from ci_guard.policy.snapshot import SnapshotBudgetSource

    now = now or datetime.now(UTC)
    run_id = run_id or new_run_id()
    policy = load_policy(policy_path)
    url = resolve_ledger_url(ledger_url)
    if not (ledger_url or os.environ.get("CI_GUARD_LEDGER")):
        live.info(f"no ledger configured (--ledger / CI_GUARD_LEDGER): using the local default {url} "
                  f"(budgets are shared only by jobs that use the same ledger)")
    store, ledger_problem = _open_store(open_ledger, url)
    handed: Any = None  # the store, once the recorder takes it over
    if store is not None:
        _replay_earlier_spills(store)
        close_dead_runs(store, now)
    try:
        source = SnapshotBudgetSource(budget_snapshot) if budget_snapshot else store
        decision = evaluate(policy, context, budget_source=source, now=now)
        if ledger_problem and decision.allowed:
            decision = _apply_ledger_error(decision, ledger_problem)
            if decision.allowed:  # on_ledger_error: allow -- say loudly that it was the ledger
                live.warn(f"the ledger could not be reached; the run goes on unrecorded "
                          f"(enforcement.on_ledger_error: allow): {ledger_problem}")
        if decision.allowed:
            _check_decided_model(policy, policy_path, decision, live)
        inputs = decision_inputs(context, decision, now)
        if not decision.allowed:
            summary = _refused(run_id, decision, now)
            if store is not None:
                _record_refused(store, summary, decision, now, inputs)
            if summary.status == "error":
                live.info(f"run not started: the ledger could not be reached and enforcement.on_ledger_error "
                          f"is deny: {ledger_problem or decision.reason or ''}")
            else:
                live.info(f"run refused by policy: {decision.decision} ({decision.rule}): {decision.reason or ''}")
            return PreparedRun(run_id, decision, url if store else None, refused_summary=summary)
        reserved = None
        if store is not None:
            decision, reserved = _reserve_and_start(store, policy, decision, run_id, now, inputs, owner, live)
            if not decision.allowed:
                summary = _refused(run_id, decision, now)
                _record_refused(store, summary, decision, now, inputs)
                return PreparedRun(run_id, decision, url, refused_summary=summary)
            # the run's recorder writes through this same connection: a second connect and schema
            # check per run would add ~10 ms to every launch (and a backend per run on PostgreSQL)
            handed = store
    finally:
        if store is not None and handed is None:
            store.close()
    try:
        pricer = CatalogPricer.from_policy(policy, policy_path, decision)
        recorder = open_recorder(url if store is not None else None, spill_path(run_id), store=handed)
    except BaseException:
        if handed is not None:
            with contextlib.suppress(Exception):
                handed.close()
        if store is not None:
            abandon_run(url, run_id)
        raise
    return PreparedRun(run_id, decision, url if store else None, pricer, recorder, reserved, policy=policy)


def _check_decided_model(policy: Any, policy_path: str, decision: Decision, live: LiveLog) -> None:
    """A decided model the catalog cannot price is invalid input (exit 2), as in `check`: the run
    would otherwise start and the proxy refuse every call. A retiring model is a warning."""
    from pathlib import Path

    from ci_guard.errors import PolicyError, Problem
    from ci_guard.policy.model_prices import decided_model_problem

    problem = decided_model_problem(policy, decision.model, Path(policy_path).parent)
    if problem and problem[0] == "error":
        raise PolicyError(f"{policy_path}: the decided model cannot be priced",
                          [Problem(problem[1], policy_path, field=f"rules.{decision.rule}.model")])
    if problem:
        live.warn(problem[1])


def abandon_run(ledger_url: str | None, run_id: str) -> None:
    """Mark a run that could not go on as an error and release its reservation (best effort)."""
    if not ledger_url:
        return
    from ci_guard.ledger import open_ledger

    try:
        store = open_ledger(ledger_url)
        try:
            store.finish_run(run_id, "error", None, datetime.now(UTC))
            store.settle(run_id)
        finally:
            store.close()
    except LedgerError as exc:
        LiveLog().info(f"warning: run {run_id} could not be closed in the ledger; its reservation expires "
                       f"on its own: {redact(exc.render())}")


def spill_dir(environ: dict[str, str] | None = None) -> Path:
    """Where a run's calls go when the ledger cannot take them (see recorder.py): next to the
    default ledger, never in the agent's working directory ($RUNNER_TEMP/ci-guard/spill on GitHub,
    else $XDG_STATE_HOME/ci-guard/spill). The agent runs as the same user and can still write
    there: a replayed row is checked, so it can only ever add spend (recorder._call_from_row)."""
    from ci_guard.ledger import default_ledger_path

    return default_ledger_path(environ).parent / "spill"


def spill_path(run_id: str, environ: dict[str, str] | None = None) -> str:
    return str(spill_dir(environ) / f"{run_id}.unrecorded.jsonl")


def _replay_earlier_spills(store: Any) -> None:
    """Calls earlier runs could not write (the ledger was down) reach the budgets before this run
    is decided; rows of runs this ledger does not know stay in their files."""
    from ci_guard.meter.recorder import replay_spill_files

    directory = spill_dir()
    if directory.is_dir():
        replay_spill_files(store, directory)


def journal_path(run_id: str, environ: dict[str, str] | None = None) -> str:
    """The run's journal of calls in flight (inflight.py), next to its spill file."""
    from ci_guard.meter.inflight import journal_path_for

    return journal_path_for(spill_path(run_id, environ))


def close_dead_runs(store: Any, now: datetime) -> None:
    """Runs whose ci-guard process died (SIGKILL, OOM) are closed and their holds released, after
    the calls they had in flight are charged at their worst case (inflight.py); then the journals
    of other runs that are no longer running (closed by a replayed ``finish`` row, by `stop`) are."""
    from ci_guard.meter.inflight import charge_inflight, replay_inflight_files
    from ci_guard.meter.owners import close_stale_runs

    close_stale_runs(store, now, lambda run_id: charge_inflight(store, journal_path(run_id), run_id))
    directory = spill_dir()
    if directory.is_dir():
        replay_inflight_files(store, directory)


def _open_store(open_ledger: Any, url: str) -> tuple[Any, str | None]:
    try:
        return open_ledger(url), None
    except LedgerError as exc:
        return None, redact(exc.render())


def _apply_ledger_error(decision: Decision, problem: str) -> Decision:
    if decision.enforcement.on_ledger_error == "allow":
        note = f"ledger unavailable, run not recorded: {problem}"
        return decision.model_copy(update={"notes": [*decision.notes, note]})
    return decision.model_copy(update={
        "decision": "deny", "rule": "on_ledger_error",
        "reason": f"the ledger could not be reached and the policy says deny: {problem}",
    })


def _keys(policy: Any, context: RunContext, now: datetime) -> list[Any]:
    from ci_guard.ledger.budgets import budget_keys

    return budget_keys(policy.budgets, context, now)


def _reserve_and_start(store: Any, policy: Any, decision: Decision, run_id: str, now: datetime,
                       inputs: dict[str, Any], owner: RunOwner | None,
                       live: LiveLog) -> tuple[Decision, Decimal | None]:
    """Reserve the run's cost cap on every budget it charges, make the budgets part of that cap, and
    record the run as running (with its owner), in one transaction: a run is never started without
    its reservation, nor a reservation left behind by a run that could not be started.

    The reservation is the smaller of ``max_cost_usd`` and what the tightest budget has left, and
    the decided ``max_cost_usd`` becomes that amount, so the proxy's cost cap (clamp/refuse per
    call) holds every budget the run charges, with or without a ``max_cost_usd`` in the policy.
    A budget with nothing left denies the run (nothing is started). The keys are those of the
    decision's context: the team resolved from `teams:` (and any other derived scope key) is charged
    like a given one.
    """
    keys = _keys(policy, decision.context, now)
    if not keys:
        store.start_run(_run_record(run_id, decision, now, "running", inputs), [], owner=owner)
        return decision, None
    cap = decision.limits.max_cost_usd
    # Without a cost cap, ask for more than any budget can hold and take what the tightest one has left.
    amount = cap if cap is not None else max(k.limit_usd for k in keys)
    clamp = cap is None or decision.enforcement.on_budget_exceeded == "clamp"
    # A reservation must outlive the run it protects: never expire before the runtime cap (+10 min).
    ttl = max(decision.enforcement.reservation_ttl_s, (decision.limits.max_runtime_s or 0) + 600)
    try:
        reservation = store.reserve_and_start(
            run_id, keys, amount, ttl, now, clamp=clamp, owner=owner,
            run_for=lambda got: _run_record(run_id, _granted(decision, cap, got)[0], now, "running", inputs))
    except BudgetExceededError as exc:
        if cap is None or _left(exc) <= 0:
            reason = (f"budget {exc.budget} has nothing left: limit ${exc.limit_usd}, spent ${exc.spent_usd}, "
                      f"reserved by running jobs ${exc.reserved_usd}")
        else:
            reason = f"the run's worst case (max_cost_usd ${cap}) does not fit: {exc}"
        return decision.model_copy(update={"decision": "deny", "rule": f"budget:{exc.budget}",
                                           "reason": reason}), None
    got = reservation.amount_usd
    decision, line = _granted(decision, cap, got)
    if line:
        live.info(line)
    return decision, got


def _granted(decision: Decision, cap: Decimal | None, got: Decimal) -> tuple[Decision, str | None]:
    """The decision with ``got`` (what was reserved) as its cost cap when that is below ``cap`` (or there
    is no cap), and the line saying so (None: the decision is unchanged)."""
    if cap is not None and got >= cap:
        return decision, None
    tight = _tightest(decision)
    why = f"what budget {tight} has left" if tight else "what the budgets have left"
    if cap is None:
        line = f"no max_cost_usd: the run's cost cap is ${got}, {why}"
        note = f"max_cost_usd set to ${got} ({why}; the policy gives no cost cap)"
    else:
        line = f"budget nearly spent: max_cost_usd clamped from ${cap} to ${got} ({why})"
        note = f"max_cost_usd clamped to ${got} ({why})"
    limits = decision.limits.model_copy(update={"max_cost_usd": got})
    return decision.model_copy(update={"limits": limits, "notes": [*decision.notes, note]}), line


def _left(exc: BudgetExceededError) -> Decimal:
    try:
        return Decimal(str(exc.limit_usd)) - Decimal(str(exc.spent_usd)) - Decimal(str(exc.reserved_usd))
    except ArithmeticError:  # pragma: no cover - the store always passes Decimals
        return Decimal(0)


def _tightest(decision: Decision) -> str | None:
    """The charged budget with the least left when the run was decided, named for the log and notes."""
    charged = [b for b in decision.budgets if b.scope_key is not None]
    if not charged:
        return None
    tight = min(charged, key=lambda b: b.remaining_usd)
    return f"{tight.name}[{tight.scope_key}]"


def _run_record(run_id: str, decision: Decision, now: datetime, status: str,
                inputs: dict[str, Any] | None = None) -> RunRecord:
    ctx = decision.context
    return RunRecord(
        run_id=run_id, started_at=now, decision=decision.decision, status=status,
        org=ctx.org, team=ctx.team, repo=ctx.repo, user=ctx.actor, workflow=ctx.workflow, agent=ctx.agent,
        environment=ctx.environment, trigger=ctx.trigger, pr=ctx.pr, branch=ctx.head_branch, cohort=ctx.cohort,
        platform=ctx.platform, rule=decision.rule, reason=decision.reason, model=decision.model,
        limits=decision.as_json()["limits"], run_url=ctx.run_url, inputs=inputs,
    )


def _refused(run_id: str, decision: Decision, now: datetime) -> RunSummary:
    from ci_guard.meter.summary import RunSummary

    if decision.rule == "on_ledger_error":
        # Infrastructure, not policy: the ledger failed and enforcement.on_ledger_error says deny.
        return RunSummary(run_id=run_id, decision=decision.as_json(), status="error", stop_reason="ledger_error",
                          stop_detail=f"the ledger could not be reached: {decision.reason or ''}",
                          started_at=now.isoformat(), ended_at=now.isoformat())
    status = "skipped" if decision.decision == "skip" else "denied"
    return RunSummary(run_id=run_id, decision=decision.as_json(), status=status,
                      started_at=now.isoformat(), ended_at=now.isoformat())


def _record_refused(store: Any, summary: RunSummary, decision: Decision, now: datetime,
                    inputs: dict[str, Any] | None = None) -> None:
    try:
        store.start_run(_run_record(summary.run_id, decision, now, summary.status, inputs), [])
        store.finish_run(summary.run_id, summary.status, None, now)
    except LedgerError:
        pass  # a refused run costs nothing; not recording it must not turn a deny into a crash


def finish_run(prepared: PreparedRun, summary: RunSummary) -> None:
    recorder = prepared.recorder
    if recorder.enabled:
        recorder.flush()
        ended = datetime.fromisoformat(summary.ended_at) if summary.ended_at else datetime.now(UTC)
        # Each step on its own: a run that cannot be finished must still release its hold, and no
        # ledger failure (of any kind) may keep the summary from being written.
        if recorder.failures:
            recorder.replay()  # the ledger may be back: spilled calls reach the budgets before the end
        finished = False
        try:
            recorder.call("finish_run", summary.run_id, summary.status, summary.stop_reason, ended,
                          agent_exit_code=summary.agent_exit_code, session_id=summary.session_id)
            recorder.call("settle", summary.run_id)
            finished = True
        except Exception as exc:
            LiveLog().info(f"warning: could not finish the run in the ledger: {_describe(exc)}")
            with contextlib.suppress(Exception):
                recorder.call("settle", summary.run_id)
        if not finished:
            # The next run on this machine replays it (and its spilled calls) into the ledger, so
            # the run does not stay `running` with its reservation held.
            recorder.spill_row({"kind": "finish", "run_id": summary.run_id, "status": summary.status,
                                "stop_reason": summary.stop_reason, "ended_at": ended.isoformat()})
    try:
        recorder.close()
    except Exception as exc:
        LiveLog().info(f"warning: closing the ledger failed: {_describe(exc)}")
    _alerts(prepared, summary)


def _alerts(prepared: PreparedRun, summary: RunSummary) -> None:
    """Budget, cap and storm alerts of the settled run (once each; never fails the run)."""
    config = getattr(prepared.policy, "alerts", None)
    if config is None or not prepared.ledger_url:
        return
    from ci_guard.alerts import send_run_alerts

    send_run_alerts(config, prepared.ledger_url, prepared.policy.budgets, prepared.decision.context, summary,
                    log=LiveLog())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, LedgerError):
        return redact(exc.render())
    return redact(f"{type(exc).__name__}: {exc}")


