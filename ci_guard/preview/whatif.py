"""`ci-guard what-if`: compare a proposed policy with the baseline over a period of the ledger.

The baseline is either what the ledger recorded (no ``--baseline``) or another policy replayed the
same way (the policy pull request: base branch's file against the head's). Both sides go through
:mod:`ci_guard.preview.replay`; this module adds them up: decisions that change (by rule), caps
that would have stopped runs (and the spend after the stop), re-priced models, budgets against
their limits, and the figures per rule and per workflow. Money stays in integer micro-dollars
until it is shown.
"""

from __future__ import annotations

import gc
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ci_guard.ledger.periods import period_bounds
from ci_guard.ledger.records import RunRecord
from ci_guard.ledger.sqlstore import from_micros
from ci_guard.preview.replay import Outcome, Replayer, recorded_outcome, run_context, snapshot_micros

RECORDED = "recorded history"
MAX_LISTED = 50  # runs listed per section of the details


@dataclass
class RunChange:
    run: RunRecord
    before: Outcome
    after: Outcome


@dataclass
class WhatIf:
    """The figures of one comparison (see :meth:`as_json` for the stable shape)."""

    proposal: str
    baseline: str
    since: datetime
    until: datetime
    runs: int = 0
    approximated: int = 0  # decided from ledger columns, not the stored decision inputs
    before_micros: int = 0
    after_micros: int = 0
    newly_refused: list[RunChange] = field(default_factory=list)
    newly_allowed: list[RunChange] = field(default_factory=list)
    stopped: list[RunChange] = field(default_factory=list)  # a cap stops it earlier (or spends less)
    continued: list[RunChange] = field(default_factory=list)  # a stop no longer made: rest unknown
    repriced: list[RunChange] = field(default_factory=list)
    other_changes: list[RunChange] = field(default_factory=list)  # spends more (looser clamp, pricier model)
    by_rule: dict[str, dict[str, int]] = field(default_factory=dict)
    by_workflow: dict[str, dict[str, int]] = field(default_factory=dict)
    transitions: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    budgets: list[dict[str, Any]] = field(default_factory=list)

    @property
    def delta_micros(self) -> int:
        return self.after_micros - self.before_micros

    @property
    def delta_pct(self) -> Decimal | None:
        if self.before_micros == 0:
            return None if self.delta_micros else Decimal(0)
        return (Decimal(self.delta_micros) * 100 / Decimal(self.before_micros)).quantize(Decimal("0.1"))

    @property
    def unchanged(self) -> bool:
        return not (self.delta_micros or self.newly_refused or self.newly_allowed or self.stopped
                    or self.continued or self.repriced or self.other_changes or self.transitions)

    def as_json(self) -> dict[str, Any]:
        def usd(m: int) -> str:
            return str(from_micros(m))

        def run_row(c: RunChange) -> dict[str, Any]:
            return {"run_id": c.run.run_id, "started_at": c.run.started_at.isoformat(), "repo": c.run.repo,
                    "workflow": c.run.workflow, "agent": c.run.agent, "pr": c.run.pr,
                    "before": _outcome_json(c.before), "after": _outcome_json(c.after),
                    "saving_usd": usd(c.before.cost_micros - c.after.cost_micros)}

        return {
            "proposal": self.proposal, "baseline": self.baseline,
            "since": self.since.isoformat(), "until": self.until.isoformat(),
            "runs": self.runs, "approximated_runs": self.approximated,
            "spend": {"before_usd": usd(self.before_micros), "after_usd": usd(self.after_micros),
                      "change_usd": usd(self.delta_micros),
                      "change_pct": str(self.delta_pct) if self.delta_pct is not None else None},
            "decisions": {
                "newly_refused": len(self.newly_refused),
                "newly_refused_spend_usd": usd(sum(c.before.cost_micros for c in self.newly_refused)),
                "newly_allowed": len(self.newly_allowed),
                "newly_allowed_worst_case_usd": usd(sum(c.after.unknown_micros for c in self.newly_allowed)),
                "changes": [{"from": f, "from_rule": fr, "to": t, "to_rule": tr, "runs": n}
                            for (f, fr, t, tr), n in sorted(self.transitions.items(), key=_transition_order)],
            },
            "caps": {
                "stopped_earlier": len(self.stopped),
                "saving_usd": usd(sum(c.before.cost_micros - c.after.cost_micros for c in self.stopped)),
                "by_cap": dict(sorted(Counter(c.after.stop_reason or "max_cost" for c in self.stopped).items())),
                "continued_unknown": len(self.continued),
            },
            "models": {
                "repriced_runs": len(self.repriced), "estimate": True,
                "change_usd": usd(sum(c.after.cost_micros - c.before.cost_micros for c in self.repriced)),
            },
            "budgets": [{**b, "limit_usd": str(b["limit_usd"]), "before_usd": usd(b["before_micros"]),
                         "after_usd": usd(b["after_micros"]),
                         "alerts_before": [str(a) for a in b["alerts_before"]],
                         "alerts_after": [str(a) for a in b["alerts_after"]],
                         "over_limit_after": b["after_micros"] > _micros(b["limit_usd"])}
                        for b in ({k: v for k, v in row.items() if k not in ("alerts",)} for row in self.budgets)],
            "by_rule": _groups_json(self.by_rule), "by_workflow": _groups_json(self.by_workflow),
            "runs_detail": {
                "newly_refused": [run_row(c) for c in self.newly_refused[:MAX_LISTED]],
                "newly_allowed": [run_row(c) for c in self.newly_allowed[:MAX_LISTED]],
                "stopped_earlier": [run_row(c) for c in self.stopped[:MAX_LISTED]],
                "continued_unknown": [run_row(c) for c in self.continued[:MAX_LISTED]],
                "repriced": [run_row(c) for c in self.repriced[:MAX_LISTED]],
                "other": [run_row(c) for c in self.other_changes[:MAX_LISTED]],
            },
        }


def _micros(amount: Decimal) -> int:
    from ci_guard.ledger.sqlstore import to_micros

    return to_micros(amount)


def _transition_order(item: tuple[tuple[str, str, str, str], int]) -> tuple[int, tuple[str, ...]]:
    return -item[1], item[0]


def _outcome_json(o: Outcome) -> dict[str, Any]:
    return {"decision": o.decision, "rule": o.rule, "model": o.model, "cost_usd": str(from_micros(o.cost_micros)),
            "calls": o.calls, "stop_reason": o.stop_reason, "stopped_after_calls": o.stopped_after,
            "continued": o.continued, "repriced_estimate": o.repriced,
            "worst_case_usd": str(from_micros(o.unknown_micros)) if o.unknown_micros else None}


def _groups_json(groups: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    rows = sorted(groups.items(), key=lambda kv: (kv[1]["after"] - kv[1]["before"], kv[0]))
    return [{"name": name, "runs": g["runs"], "refused": g["refused"], "stopped": g["stopped"],
             "before_usd": str(from_micros(g["before"])), "after_usd": str(from_micros(g["after"])),
             "change_usd": str(from_micros(g["after"] - g["before"]))} for name, g in rows]


def load_policies(proposal: str, baseline: str | None) -> tuple[Any, Any | None]:
    """Load and validate both policies (PolicyError with file:line on the first that is invalid)."""
    from ci_guard.policy.loader import load_policy_file

    return load_policy_file(proposal), load_policy_file(baseline) if baseline else None


def _replayer(policy: Any, path: str) -> Replayer:
    from ci_guard.pricing.catalog import load_catalog

    return Replayer(policy, load_catalog(policy.pricing, base_dir=Path(path).resolve().parent))


def _load_from(policies: list[Any], since: datetime) -> datetime:
    """Where the budget periods that contain ``since`` start: runs from there count against budgets."""
    start = since
    for policy in policies:
        for b in policy.budgets:
            start = min(start, period_bounds(b.period, b.timezone, since)[0])
    return start


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The cyclic garbage collector paused while a month is read and replayed.

    A month is ~50,000 run records and up to a million call tuples made in bulk and kept to the end;
    none of them form cycles, but each allocation burst makes the collector walk the whole growing
    heap again (measured: ~30% of the CPU of reading the runs and the calls). Reference counting
    still frees everything as usual; cycles made meanwhile wait until it is back on.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def what_if(store: Any, proposal_path: str, baseline_path: str | None, since: datetime,
            until: datetime) -> WhatIf:
    proposal, baseline = load_policies(proposal_path, baseline_path)
    with _no_cycle_collection():
        return _what_if(store, proposal_path, proposal, baseline_path, baseline, since, until)


def _what_if(store: Any, proposal_path: str, proposal: Any, baseline_path: str | None, baseline: Any | None,
             since: datetime, until: datetime) -> WhatIf:
    policies = [p for p in (proposal, baseline) if p is not None]
    runs = store.runs_between(_load_from(policies, since), until)
    after = _replayer(proposal, proposal_path)
    before = _replayer(baseline, baseline_path) if baseline is not None and baseline_path else None
    replayers = [r for r in (after, before) if r is not None]
    report = WhatIf(proposal_path, baseline_path or RECORDED, since, until)
    contexts = {run.run_id: run_context(run) for run in runs}
    window = [run for run in runs if run.started_at >= since]
    # Read only the calls a replay needs: all of the period's in one query when most runs need
    # them, else those runs' by primary key (measured on SQLite: ~1.3x the CPU per run of the one
    # scan, so the scan pays only past ~3/4 of the runs); a run found to need them later reads its own.
    needed = [run.run_id for run in window if any(r.needs_calls(run, contexts[run.run_id][0]) for r in replayers)]
    tokens = any(r.reprices for r in replayers)  # token columns only when some call is re-priced
    if len(needed) * 4 > len(window) * 3:
        calls = store.replay_calls(since, until, tokens=tokens)
    else:
        calls = store.replay_calls_of(needed, tokens=tokens) if needed else {}
    needed_set = set(needed)

    def fetch(run_id: str) -> list[tuple[Any, ...]]:
        if run_id not in calls:
            calls.update(store.replay_calls_of([run_id]))
            calls.setdefault(run_id, [])
        return calls[run_id]

    for run in runs:
        ctx, exact = contexts[run.run_id]
        if run.started_at < since:
            for r in replayers:
                r.before_window(run, ctx)
            continue
        run_calls = calls.get(run.run_id, [] if run.run_id in needed_set else None)
        snapshot = snapshot_micros(run)
        old = (before.replay(run, ctx, snapshot, run_calls, fetch) if before is not None
               else recorded_outcome(run, run_calls))
        new = after.replay(run, ctx, snapshot, calls.get(run.run_id, run_calls), fetch)
        _count(report, run, exact, old, new)
    report.budgets = _budgets(after, before)
    return report


def _count(report: WhatIf, run: RunRecord, exact: bool, old: Outcome, new: Outcome) -> None:
    report.runs += 1
    if not exact:
        report.approximated += 1
    report.before_micros += old.cost_micros
    report.after_micros += new.cost_micros
    change = RunChange(run, old, new)
    refused = old.allowed and not new.allowed
    stopped = False
    if (old.decision, old.rule) != (new.decision, new.rule):
        report.transitions[(old.decision, old.rule or "-", new.decision, new.rule or "-")] += 1
    if refused:
        report.newly_refused.append(change)
    elif new.allowed and not old.allowed:
        report.newly_allowed.append(change)
    elif new.allowed:
        if new.repriced or (old.model != new.model and old.allowed):
            report.repriced.append(change)
        if new.continued:
            report.continued.append(change)
        elif new.stop_reason and (new.calls < old.calls or new.stop_reason != old.stop_reason):
            report.stopped.append(change)
            stopped = True
        elif new.cost_micros != old.cost_micros and not new.repriced:
            report.other_changes.append(change)
    for groups, name in ((report.by_rule, new.rule or old.rule or "-"), (report.by_workflow, run.workflow or "-")):
        g = groups.setdefault(name, {"runs": 0, "refused": 0, "stopped": 0, "before": 0, "after": 0})
        g["runs"] += 1
        g["refused"] += int(refused)
        g["stopped"] += int(stopped)
        g["before"] += old.cost_micros
        g["after"] += new.cost_micros


def _budgets(after: Replayer, before: Replayer | None) -> list[dict[str, Any]]:
    old = {(b["budget"], b["scope_key"], b["period_start"]): b["spent_micros"]
           for b in (before.buckets() if before is not None else [])}
    rows = []
    recorded: defaultdict[tuple[Any, ...], int] = defaultdict(int)
    if before is None:  # the recorded spend of the proposal's buckets
        for key, micros in after.recorded_spend.items():
            recorded[key] = micros
    for b in after.buckets():
        key = (b["budget"], b["scope_key"], b["period_start"])
        before_micros = old.get(key, recorded.get(key, 0))
        alerts = b["alerts"]
        rows.append({"budget": b["budget"], "scope_key": b["scope_key"], "period_start": b["period_start"],
                     "period_end": b["period_end"], "limit_usd": b["limit_usd"], "before_micros": before_micros,
                     "after_micros": b["spent_micros"],
                     "alerts_before": [a for a in alerts if from_micros(before_micros) >= a],
                     "alerts_after": [a for a in alerts if from_micros(b["spent_micros"]) >= a],
                     "alerts": alerts})
    return rows
