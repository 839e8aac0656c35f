"""Earlier agent runs of a PR/MR, read back from the ledger as run summaries."""

from __future__ import annotations

from datetime import datetime

from ci_guard.ledger.records import CallRecord, RunRecord
from ci_guard.ledger.store import Store
from ci_guard.meter.summary import RunSummary, call_summary, context_savings

MAX_RUNS = 200  # a PR with more agent runs than this is summarised from its newest 200


def summaries_for_pr(store: Store, repo: str, pr: int, *, limit: int = MAX_RUNS) -> list[RunSummary]:
    """Every recorded run of ``repo``'s PR/MR ``pr``, oldest first, with its calls."""
    runs = store.list_runs(repo=repo, pr=pr, limit=limit)
    summaries = [run_summary(run, store.list_calls(run.run_id)) for run in runs]
    return sorted(summaries, key=lambda s: (s.started_at or "", s.run_id))


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def run_summary(run: RunRecord, calls: list[CallRecord]) -> RunSummary:
    """A RunSummary rebuilt from ledger rows (the decision object holds what the ledger keeps)."""
    runtime = (run.ended_at - run.started_at).total_seconds() if run.ended_at else 0.0
    decision = {
        "decision": run.decision, "rule": run.rule, "reason": run.reason, "model": run.model,
        "limits": dict(run.limits or {}), "budgets": [], "hint": None,
        "context": {
            "platform": run.platform, "repo": run.repo, "org": run.org, "pr": run.pr, "trigger": run.trigger,
            "head_branch": run.branch, "actor": run.user, "team": run.team, "agent": run.agent,
            "workflow": run.workflow, "environment": run.environment, "cohort": run.cohort,
        },
    }
    return RunSummary(
        run_id=run.run_id, decision=decision, status=run.status, stop_reason=run.stop_reason,
        agent_exit_code=run.agent_exit_code, turns=run.turns, tool_calls=run.tool_calls,
        tokens=run.usage.as_json(), web_searches=run.web_searches, cost_usd=run.cost_usd, runtime_s=max(0.0, runtime),
        started_at=_iso(run.started_at), ended_at=_iso(run.ended_at), session_id=run.session_id,
        enforced=run.enforced, calls=[call_summary(c) for c in sorted(calls, key=lambda c: c.seq)],
        estimated_calls=sum(1 for c in calls if c.estimated),
        context_savings=context_savings(calls, run.cost_usd),
    )
