"""FinOps figures of a period, grouped by one or more dimensions (`ci-guard report`, the dashboard).

Input is one :class:`ci_guard.ledger.analytics.RunFacts` per run (the database has already summed
the calls); nothing here walks calls. Definitions (docs/finops.md repeats them):

* runs: every run attributed in the period, denied and skipped included; *metered runs* made at
  least one call, and turns per run and cost per run p50/p90 are over metered runs.
* percentiles are nearest-rank: the smallest value with at least q of the values at or below it.
* cache hit share = cache read / (fresh input + cache write + cache read).
* retry storms: runs stopped for ``retry_storm``; their spend is those runs' cost.
* active developer day: a (user, calendar day in the report's timezone) with at least one run.
* cost per merged PR = the group's whole cost / distinct merged PRs (wasted spend counts against
  the PRs that landed); cost per fixed test likewise over tests fixed.
* abandoned runs: the run's PR was closed unmerged (outcome ``closed``), or the agent failed.
* context growth: over metered runs, the median of the first, middle (by position) and last call's
  context tokens.
* change: cost against the same group in the previous period of the same length.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ci_guard.ledger.analytics import DIMENSIONS, TOKEN_CLASSES, RunFacts

MICROS = Decimal(1_000_000)
MICRO = Decimal("0.000001")
ABANDONED_OUTCOMES = ("closed", "abandoned")
ABANDONED_STATUSES = ("failed",)
MERGED = "merged"


def usd(micros: int | Decimal) -> Decimal:
    """Exact, as the ledger's other JSON shows money (1.75, not 1.750000)."""
    return Decimal(micros) / MICROS


def per(micros: int, count: int) -> Decimal | None:
    """``micros`` / ``count`` in USD rounded half-up to the micro-dollar; None when nothing to divide by."""
    if count <= 0:
        return None
    return (Decimal(micros) / count / MICROS).quantize(MICRO, rounding=ROUND_HALF_UP)


def nearest_rank(values: Sequence[Any], q: float) -> Any:
    """The nearest-rank percentile of already sorted ``values`` (None when empty)."""
    if not values:
        return None
    return values[max(0, math.ceil(q * len(values)) - 1)]


def median(values: Sequence[int]) -> int | None:
    return nearest_rank(sorted(values), 0.5)


@dataclass
class GroupFigures:
    key: tuple[str | None, ...]
    runs: int = 0
    metered_runs: int = 0
    calls: int = 0
    turns: int = 0
    cost_micros: int = 0
    tokens: list[int] = field(default_factory=lambda: [0] * len(TOKEN_CLASSES))
    models: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # served model -> micros
    run_costs: list[int] = field(default_factory=list)  # micros per metered run
    run_turns: list[int] = field(default_factory=list)
    stopped: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    statuses: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    storm_runs: int = 0
    storm_micros: int = 0
    dev_days: set[tuple[str, str]] = field(default_factory=set)
    merged_prs: set[tuple[str | None, int]] = field(default_factory=set)
    closed_prs: set[tuple[str | None, int]] = field(default_factory=set)
    tests_fixed: int = 0
    abandoned_runs: int = 0
    abandoned_micros: int = 0
    imported_runs: int = 0
    context: list[tuple[int, int, int]] = field(default_factory=list)
    previous_micros: int | None = None

    def add(self, run: RunFacts, day: str) -> None:
        self.runs += 1
        self.statuses[run.status] += 1
        self.cost_micros += run.cost_micros
        self.turns += run.turns
        self.calls += run.calls
        for i, n in enumerate(run.tokens):
            self.tokens[i] += n
        for model, (_, micros) in run.models.items():
            self.models[model] += micros
        if run.calls:
            self.metered_runs += 1
            self.run_costs.append(run.cost_micros)
            self.run_turns.append(run.turns)
        if run.context is not None:
            self.context.append(run.context)
        if run.status == "stopped" and run.stop_reason:
            self.stopped[run.stop_reason] += 1
        if run.stop_reason == "retry_storm":
            self.storm_runs += 1
            self.storm_micros += run.cost_micros
        user = run.dims.get("user")
        if user:
            self.dev_days.add((user, day))
        if run.pr is not None and run.outcome == MERGED:
            self.merged_prs.add((run.dims.get("repo"), run.pr))
        if run.pr is not None and run.outcome in ABANDONED_OUTCOMES:
            self.closed_prs.add((run.dims.get("repo"), run.pr))
        self.tests_fixed += run.tests_fixed
        if run.outcome in ABANDONED_OUTCOMES or run.status in ABANDONED_STATUSES:
            self.abandoned_runs += 1
            self.abandoned_micros += run.cost_micros
        if not run.enforced:
            self.imported_runs += 1

    # --- derived ------------------------------------------------------------------------------
    def cache_hit_share(self) -> Decimal | None:
        fresh, write, _, read = self.tokens[0], self.tokens[1], self.tokens[2], self.tokens[3]
        total = fresh + write + read
        return None if total == 0 else (Decimal(read) / total).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)

    def model_mix(self) -> dict[str, Decimal]:
        """Share of cost per served model, largest first."""
        if self.cost_micros <= 0:
            return {}
        items = sorted(self.models.items(), key=lambda kv: (-kv[1], kv[0]))
        return {m: (Decimal(v) / self.cost_micros).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
                for m, v in items}

    def as_json(self, dims: Sequence[str]) -> dict[str, Any]:
        costs, turns = sorted(self.run_costs), sorted(self.run_turns)
        ctx = self.context
        previous = self.previous_micros
        change = None
        if previous:
            change = ((Decimal(self.cost_micros) - previous) / previous).quantize(Decimal("0.0001"),
                                                                                  rounding=ROUND_HALF_UP)
        return {
            **{d: v for d, v in zip(dims, self.key, strict=True)},
            "cost_usd": usd(self.cost_micros),
            "runs": self.runs,
            "metered_runs": self.metered_runs,
            "calls": self.calls,
            "turns": self.turns,
            "tokens": dict(zip(TOKEN_CLASSES, self.tokens, strict=True)),
            "cache_hit_share": self.cache_hit_share(),
            "model_mix": self.model_mix(),
            "turns_per_run": (Decimal(self.turns) / self.metered_runs).quantize(Decimal("0.01"))
            if self.metered_runs else None,
            "turns_p90": nearest_rank(turns, 0.9),
            "cost_per_run_p50_usd": None if not costs else usd(nearest_rank(costs, 0.5)),
            "cost_per_run_p90_usd": None if not costs else usd(nearest_rank(costs, 0.9)),
            "stopped": dict(sorted(self.stopped.items())),
            "statuses": dict(sorted(self.statuses.items())),
            "retry_storms": self.storm_runs,
            "retry_storm_cost_usd": usd(self.storm_micros),
            "active_developer_days": len(self.dev_days),
            "cost_per_active_developer_day_usd": per(self.cost_micros, len(self.dev_days)),
            "merged_prs": len(self.merged_prs),
            "cost_per_merged_pr_usd": per(self.cost_micros, len(self.merged_prs)),
            "tests_fixed": self.tests_fixed,
            "cost_per_fixed_test_usd": per(self.cost_micros, self.tests_fixed),
            "abandoned_runs": self.abandoned_runs,
            "abandoned_cost_usd": usd(self.abandoned_micros),
            "imported_runs": self.imported_runs,
            "context_first": median([c[0] for c in ctx]),
            "context_median": median([c[1] for c in ctx]),
            "context_last": median([c[2] for c in ctx]),
            "previous_cost_usd": None if previous is None else usd(previous),
            "change": change,
        }


@dataclass
class Period:
    start: datetime
    end: datetime
    tz: str = "UTC"
    label: str = ""

    def previous(self) -> Period:
        """The period of the same kind just before: the previous calendar month, week or day, else same length."""
        from ci_guard.ledger.periods import period_bounds

        for kind in ("month", "week", "day"):
            if period_bounds(kind, self.tz, self.start) == (self.start, self.end):
                start, _ = period_bounds(kind, self.tz, self.start - timedelta(microseconds=1))
                return Period(start, self.start, self.tz)
        return Period(self.start - (self.end - self.start), self.start, self.tz)


@dataclass
class Report:
    period: Period
    dims: list[str]
    rows: list[GroupFigures]
    total: GroupFigures
    previous: Period

    def as_json(self) -> dict[str, Any]:
        return {"from": self.period.start.isoformat(), "to": self.period.end.isoformat(),
                "timezone": self.period.tz, "previous_from": self.previous.start.isoformat(),
                "by": self.dims, "rows": [r.as_json(self.dims) for r in self.rows],
                "total": self.total.as_json([])}


def check_dimensions(dims: Iterable[str]) -> list[str]:
    from ci_guard.errors import InvalidInputError

    out = [d.strip() for d in dims if d.strip()]
    unknown = [d for d in out if d not in DIMENSIONS]
    if unknown:
        raise InvalidInputError(f"cannot group by {', '.join(unknown)}; expected any of {', '.join(DIMENSIONS)}")
    return out


def build_report(runs: Iterable[RunFacts], previous_runs: Iterable[RunFacts], period: Period,
                 dims: Sequence[str], previous: Period | None = None) -> Report:
    """Group a period's runs by ``dims`` (in that order) and compute every figure."""
    dims = check_dimensions(dims)
    tz = ZoneInfo(period.tz)
    groups: dict[tuple[str | None, ...], GroupFigures] = {}
    total = GroupFigures(key=())
    for run in runs:
        key = tuple(run.dims.get(d) for d in dims)
        day = run.started_at.astimezone(tz).date().isoformat()
        group = groups.get(key)
        if group is None:
            group = groups[key] = GroupFigures(key=key)
        group.add(run, day)
        total.add(run, day)
    before: dict[tuple[str | None, ...], int] = defaultdict(int)
    before_total = 0
    for run in previous_runs:
        before[tuple(run.dims.get(d) for d in dims)] += run.cost_micros
        before_total += run.cost_micros
    for key, group in groups.items():
        group.previous_micros = before.get(key, 0)
    total.previous_micros = before_total
    rows = sorted(groups.values(), key=lambda g: (-g.cost_micros, tuple("" if k is None else k for k in g.key)))
    return Report(period=period, dims=list(dims), rows=rows, total=total, previous=previous or period.previous())
