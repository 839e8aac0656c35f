"""What a cost comment shows, computed from run summaries (no markup here; see render.py).

The comment covers every agent run on one PR/MR: the run(s) of this job plus earlier runs from
the ledger. Values stay raw (Decimals, ints, untrusted strings); the template formats and escapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ci_guard.meter.summary import CallSummary, RunSummary
from ci_guard.money import to_decimal
from ci_guard.report.marker import parse_time

BLOCKED = ("denied", "skipped")
CAP_LABELS = {
    "max_turns": "turn cap",
    "max_cost": "cost cap",
    "max_runtime": "runtime cap",
    "max_context": "context cap",
    "max_tool_calls": "tool-call cap",
    "retry_storm": "retry storm",
}
STATUS_EMOJI = {
    "completed": "✅",
    "capped": "⛔",
    "retry_storm": "🔁",
    "failed": "❌",
    "cancelled": "✋",
    "no_calls": "⚠️",
    "error": "❌",
    "denied": "🚫",
    "skipped": "⏭️",
    "running": "⏳",
}


@dataclass
class RunView:
    index: int
    summary: RunSummary
    is_current: bool
    shown_calls: list[CallSummary] = field(default_factory=list)
    omitted_calls: int = 0

    @property
    def decision(self) -> dict[str, Any]:
        return self.summary.decision or {}

    @property
    def context(self) -> dict[str, Any]:
        return self.decision.get("context") or {}

    @property
    def limits(self) -> dict[str, Any]:
        return self.decision.get("limits") or {}

    @property
    def agent(self) -> str | None:
        return self.context.get("agent")

    @property
    def model(self) -> str | None:
        served = [c.model for c in self.summary.calls if c.model]
        return served[-1] if served else self.decision.get("model")

    @property
    def kind(self) -> str:
        """completed | capped | retry_storm | failed | cancelled | no_calls | error | denied | skipped | running
        | <other status>."""
        status = self.summary.status
        if status == "stopped" or (self.summary.stop_reason in CAP_LABELS and status not in BLOCKED):
            return "retry_storm" if self.summary.stop_reason == "retry_storm" else "capped"
        return status

    @property
    def emoji(self) -> str:
        return STATUS_EMOJI.get(self.kind, "•")

    @property
    def blocked(self) -> bool:
        return self.kind in BLOCKED

    @property
    def stands_out(self) -> bool:
        return self.kind in ("capped", "retry_storm", "failed", "cancelled", "no_calls", "error")

    @property
    def stop_label(self) -> str | None:
        reason = self.summary.stop_reason
        return CAP_LABELS.get(reason, reason) if reason else None

    @property
    def max_cost(self) -> Decimal | None:
        return to_decimal(self.limits.get("max_cost_usd"))

    @property
    def started_at(self) -> datetime | None:
        return parse_time(self.summary.started_at)


@dataclass
class BudgetView:
    name: str
    scope: str
    scope_key: str | None
    period: str
    limit: Decimal
    spent: Decimal
    alert_at: tuple[Decimal, ...] = ()  # the policy's alert thresholds in USD, ascending

    @property
    def remaining(self) -> Decimal:
        return max(Decimal(0), self.limit - self.spent)

    @property
    def alert_pct(self) -> Decimal | None:
        """The highest alert threshold (as % of the limit) that the spend has reached."""
        crossed = [a for a in self.alert_at if self.spent >= a]
        if not crossed or self.limit <= 0:
            return None
        return (crossed[-1] * 100 / self.limit).quantize(Decimal("1"))


@dataclass
class CommentView:
    runs: list[RunView]
    budgets: list[BudgetView]
    valid_at: datetime
    repo: str | None = None
    pr: int | None = None
    title: str | None = None
    head_branch: str | None = None
    base_branch: str | None = None
    sha: str | None = None
    run_url: str | None = None
    repo_median: Decimal | None = None  # median spend of the repository's other PRs (ledger, 30 days)
    repo_prs: int = 0  # how many PRs that median is over

    @property
    def total_cost(self) -> Decimal:
        return sum((r.summary.cost_usd for r in self.runs), Decimal(0))

    @property
    def context_saved(self) -> Decimal | None:
        """What the context policy saved over these runs (None when it changed no call)."""
        saved = [to_decimal(r.summary.context_savings.get("saved_usd")) or Decimal(0)
                 for r in self.runs if r.summary.context_savings]
        return sum(saved, Decimal(0)) if saved else None

    @property
    def context_saved_pct(self) -> Decimal:
        """The saving out of what the runs would have cost as the agents sent their calls."""
        saved = self.context_saved or Decimal(0)
        would_have = self.total_cost + saved
        return (saved * 100 / would_have).quantize(Decimal("0.1")) if would_have > 0 else Decimal(0)

    @property
    def context_method(self) -> str:
        methods = {r.summary.context_savings.get("method") for r in self.runs if r.summary.context_savings}
        return "estimate" if "estimate" in methods else "provider-reported"

    @property
    def all_blocked(self) -> bool:
        return bool(self.runs) and all(r.blocked for r in self.runs)

    @property
    def latest(self) -> RunView | None:
        return self.runs[-1] if self.runs else None

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for run in self.runs:
            out[run.kind] = out.get(run.kind, 0) + 1
        return out

    @property
    def total_calls(self) -> int:
        return sum(len(r.summary.calls) for r in self.runs)

    @property
    def omitted_calls(self) -> int:
        return sum(r.omitted_calls for r in self.runs)

    @property
    def tokens(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for run in self.runs:
            for key, value in run.summary.tokens.items():
                total[key] = total.get(key, 0) + int(value or 0)
        return total


def merge_summaries(current: Sequence[RunSummary], history: Iterable[RunSummary]) -> list[RunSummary]:
    """Earlier runs plus this job's runs, oldest first; this job's copy wins on a duplicate run id."""
    by_id = {s.run_id: s for s in history}
    by_id.update({s.run_id: s for s in current})
    return sorted(by_id.values(), key=lambda s: (s.started_at or "", s.run_id))


def valid_at(current: Sequence[RunSummary], now: datetime | None = None) -> datetime:
    """The time the comment is valid at: the end (or start) of the newest run of this job."""
    times = [parse_time(s.ended_at) or parse_time(s.started_at) for s in current]
    known = [t for t in times if t is not None]
    return max(known) if known else (now or datetime.now(UTC))


def budgets_after(run: RunView | None) -> list[BudgetView]:
    """The budgets of ``run``'s decision, with the run's own spend added (the decision predates it)."""
    if run is None:
        return []
    views = []
    for raw in run.decision.get("budgets") or []:
        limit = to_decimal(raw.get("limit_usd"))
        if limit is None:
            continue
        spent = (to_decimal(raw.get("spent_usd")) or Decimal(0)) + run.summary.cost_usd
        alerts = tuple(sorted(a for a in (to_decimal(x) for x in raw.get("alert_at_usd") or []) if a is not None))
        views.append(BudgetView(
            name=str(raw.get("name") or "budget"), scope=str(raw.get("scope") or ""),
            scope_key=raw.get("scope_key"), period=str(raw.get("period") or ""),
            limit=limit, spent=spent, alert_at=alerts,
        ))
    return views


def allot_calls(runs: list[RunView], max_calls: int | None) -> None:
    """Choose which calls the per-call tables show: all, or the newest runs' calls first."""
    budget = max_calls
    for run in reversed(runs):
        calls = run.summary.calls
        keep = len(calls) if budget is None else max(0, min(len(calls), budget))
        run.shown_calls = list(calls[:keep])
        run.omitted_calls = len(calls) - keep
        if budget is not None:
            budget -= keep


def build_view(
    current: Sequence[RunSummary], history: Iterable[RunSummary] = (), *,
    max_calls: int | None = None, now: datetime | None = None,
    repo_median: tuple[Decimal, int] | None = None,
) -> CommentView:
    """The comment's content for this job's summaries plus earlier runs of the same PR/MR."""
    current_ids = {s.run_id for s in current}
    summaries = merge_summaries(current, history)
    runs = [RunView(i + 1, s, s.run_id in current_ids) for i, s in enumerate(summaries)]
    allot_calls(runs, max_calls)
    with_budgets = [r for r in runs if r.decision.get("budgets")]
    newest_ctx = (current[-1].decision.get("context") if current else None) or (
        runs[-1].context if runs else {})
    return CommentView(
        runs=runs, budgets=budgets_after(with_budgets[-1] if with_budgets else None),
        valid_at=valid_at(current, now),
        repo=newest_ctx.get("repo"), pr=newest_ctx.get("pr"), title=newest_ctx.get("title"),
        head_branch=newest_ctx.get("head_branch"), base_branch=newest_ctx.get("base_branch"),
        sha=newest_ctx.get("sha"), run_url=newest_ctx.get("run_url"),
        repo_median=repo_median[0] if repo_median else None, repo_prs=repo_median[1] if repo_median else 0,
    )
