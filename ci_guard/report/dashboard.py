"""A static HTML dashboard of a period of the ledger: one self-contained file, no scripts.

Built from one row per run (:meth:`Store.period_runs`: the database sums the calls), so a month
of a million calls renders in seconds. Spend is attributed to the day its run started, in the
dashboard's timezone -- the same attribution as budgets (a run counts against the bucket it
started in) and ``ci-guard report``. Every string from the ledger (repository, team, model names,
URLs) is untrusted: the template engine escapes it, charts escape their labels, and only http(s)
links built from known parts are emitted. The page loads nothing, so it can be published as a CI
artifact or a static page as it is, printed, or screenshotted (labels on the axes, not in
tooltips).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jinja2

from ci_guard.ledger.analytics import RunFacts
from ci_guard.money import format_usd
from ci_guard.report.finops import GroupFigures, Period, usd

TEMPLATE_DIR = Path(__file__).parent / "templates"
TOP_RUNS = 15
TOP_GROUPS = 20
TOP_STACK = 7  # stacked series; the rest is "other"
TOP_BUDGET_KEYS = 4
SAFE_REPO = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")
SCOPE_DIMS = {"org": "org", "team": "team", "repo": "repo", "user": "user", "workflow": "workflow",
              "agent": "agent"}


@dataclass
class Group:
    name: str
    cost_micros: int = 0
    runs: int = 0
    calls: int = 0
    previous_micros: int = 0

    @property
    def cost(self) -> Decimal:
        return usd(self.cost_micros)

    @property
    def change(self) -> str:
        if not self.previous_micros:
            return "new" if self.cost_micros else "—"
        pct = (Decimal(self.cost_micros - self.previous_micros) / self.previous_micros * 100)
        return f"{pct.quantize(Decimal(1), rounding=ROUND_HALF_UP):+}%"


@dataclass
class BudgetBurn:
    name: str
    scope: str
    period: str
    limit: Decimal
    chart: Any = None
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Dashboard:
    period: Period
    previous: Period
    generated_at: datetime
    total: GroupFigures
    days: list[date]
    stack_by: str
    stacks: dict[str, list[Decimal]]
    dev_day_cost: list[Decimal | None]
    weeks: list[dict[str, Any]]
    groups: dict[str, list[Group]]
    models: list[Group]
    top_runs: list[RunFacts]
    storms: list[RunFacts]
    budgets: list[BudgetBurn]
    cache_by_team: list[tuple[str, Decimal | None]]
    context_saved_micros: int = 0

    @property
    def start(self) -> datetime:
        return self.period.start

    @property
    def end(self) -> datetime:
        return self.period.end

    @property
    def total_usd(self) -> Decimal:
        return usd(self.total.cost_micros)

    @property
    def context_saved(self) -> Decimal:
        """What context policies saved in the period (not spent; not in the total)."""
        return usd(self.context_saved_micros)

    @property
    def calls(self) -> int:
        return self.total.calls

    @property
    def run_count(self) -> int:
        return self.total.runs

    def stop_reasons(self) -> list[tuple[str, int]]:
        return sorted(self.total.stopped.items(), key=lambda kv: (-kv[1], kv[0]))

    def figures(self) -> dict[str, Any]:
        return self.total.as_json([])


DIMENSIONS = (("repo", "Repository"), ("team", "Team"), ("workflow", "Workflow"), ("agent", "Agent"),
              ("user", "User"))


def build_dashboard(runs: Iterable[RunFacts], previous_runs: Iterable[RunFacts], period: Period,
                    previous: Period | None = None, *, stack_by: str = "team", policy: Any = None,
                    now: datetime | None = None) -> Dashboard:
    """Aggregate a period's runs into the dashboard's figures, exactly (integer micro-dollars)."""
    now = now or datetime.now(UTC)
    previous = previous or period.previous()
    tz = ZoneInfo(period.tz)
    first = period.start.astimezone(tz).date()
    last = (period.end - timedelta(microseconds=1)).astimezone(tz).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    index = {d: i for i, d in enumerate(days)}
    total = GroupFigures(key=())
    stack_micros: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
    day_micros = [0] * len(days)
    day_devs: list[set[str]] = [set() for _ in days]
    groups: dict[str, dict[str, Group]] = {dim: {} for dim, _ in DIMENSIONS}
    models: dict[str, Group] = {}
    weeks: dict[date, dict[str, Any]] = {}
    team_tokens: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    kept: list[RunFacts] = []
    saved = 0
    for run in runs:
        kept.append(run)
        saved += run.context_saved_micros
        day = run.started_at.astimezone(tz).date()
        total.add(run, day.isoformat())
        i = index.get(day)
        if i is not None:
            stack_micros[run.dims.get(stack_by) or "(unknown)"][i] += run.cost_micros
            day_micros[i] += run.cost_micros
            if run.dims.get("user"):
                day_devs[i].add(run.dims["user"])  # type: ignore[arg-type]
        week = weeks.setdefault(day - timedelta(days=day.weekday()),
                                {"micros": 0, "merged": set(), "devdays": set(), "runs": 0})
        week["micros"] += run.cost_micros
        week["runs"] += 1
        if run.pr is not None and run.outcome == "merged":
            week["merged"].add((run.dims.get("repo"), run.pr))
        if run.dims.get("user"):
            week["devdays"].add((run.dims["user"], day))
        for dim, _ in DIMENSIONS:
            name = run.dims.get(dim) or "(unknown)"
            g = groups[dim].get(name) or groups[dim].setdefault(name, Group(name))
            g.cost_micros += run.cost_micros
            g.runs += 1
            g.calls += run.calls
        for model, (calls, micros) in run.models.items():
            g = models.get(model) or models.setdefault(model, Group(model))
            g.cost_micros += micros
            g.calls += calls
            g.runs += 1
        tokens = team_tokens[run.dims.get("team") or "(unknown)"]
        tokens[0] += run.tokens[3]
        tokens[1] += run.tokens[0] + run.tokens[1] + run.tokens[3]
    for run in previous_runs:
        total.previous_micros = (total.previous_micros or 0) + run.cost_micros
        for dim, _ in DIMENSIONS:
            g = groups[dim].get(run.dims.get(dim) or "(unknown)")
            if g is not None:
                g.previous_micros += run.cost_micros
    if total.previous_micros is None:
        total.previous_micros = 0
    ranked = sorted(stack_micros.items(), key=lambda kv: (-sum(kv[1]), kv[0]))
    stacks = {name: [usd(v) for v in values] for name, values in ranked[:TOP_STACK]}
    if len(ranked) > TOP_STACK:
        rest = [sum(values[i] for _, values in ranked[TOP_STACK:]) for i in range(len(days))]
        stacks["other"] = [usd(v) for v in rest]
    return Dashboard(
        period=period, previous=previous, generated_at=now, total=total, days=days, stack_by=stack_by,
        stacks=stacks,
        dev_day_cost=[(usd(m) / len(devs)).quantize(Decimal("0.01")) if devs else None
                      for m, devs in zip(day_micros, day_devs, strict=True)],
        weeks=[{"week": w, "cost": usd(v["micros"]), "runs": v["runs"], "merged": len(v["merged"]),
                "per_pr": (usd(v["micros"]) / len(v["merged"])).quantize(Decimal("0.01")) if v["merged"] else None,
                "devdays": len(v["devdays"]),
                "per_devday": (usd(v["micros"]) / len(v["devdays"])).quantize(Decimal("0.01"))
                if v["devdays"] else None}
               for w, v in sorted(weeks.items())],
        groups={dim: sorted(g.values(), key=lambda x: (-x.cost_micros, x.name))[:TOP_GROUPS]
                for dim, g in groups.items()},
        models=sorted(models.values(), key=lambda x: (-x.cost_micros, x.name)),
        top_runs=sorted(kept, key=lambda r: (-r.cost_micros, r.run_id))[:TOP_RUNS],
        storms=sorted((r for r in kept if r.stop_reason == "retry_storm"),
                      key=lambda r: (-r.cost_micros, r.run_id))[:TOP_RUNS],
        budgets=_budgets(policy, kept, days, tz, period, now) if policy is not None else [],
        cache_by_team=sorted(((team, (Decimal(t[0]) / t[1]).quantize(Decimal("0.001")) if t[1] else None)
                              for team, t in team_tokens.items()), key=lambda kv: kv[0]),
        context_saved_micros=saved,
    )


def _budgets(policy: Any, runs: Sequence[RunFacts], days: list[date], tz: ZoneInfo, period: Period,
             now: datetime) -> list[BudgetBurn]:
    """Burn of every budget in the period: cumulative spend per scope key against its limit."""
    from ci_guard.report import charts

    out = []
    as_of = min(now, period.end)
    for budget in getattr(policy, "budgets", None) or []:
        dim = SCOPE_DIMS.get(budget.scope)
        if dim is None:
            continue
        burn = BudgetBurn(budget.name, budget.scope, budget.period, Decimal(budget.limit_usd))
        per_key: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
        index = {d: i for i, d in enumerate(days)}
        for run in runs:
            i = index.get(run.started_at.astimezone(tz).date())
            if i is not None:
                per_key[run.dims.get(dim) or "(unknown)"][i] += run.cost_micros
        ranked = sorted(per_key.items(), key=lambda kv: (-sum(kv[1]), kv[0]))[:TOP_BUDGET_KEYS]
        thresholds = budget.alert_thresholds_usd()
        if budget.period == "month" and len(days) >= 28:
            elapsed = max(1, sum(1 for d in days if d <= as_of.astimezone(tz).date()))
            actual, projected = {}, {}
            for key, values in ranked:
                cum, running = [], 0
                for i, v in enumerate(values):
                    running += v
                    cum.append(usd(running) if i < elapsed else None)
                so_far = usd(sum(values[:elapsed]))
                rate = so_far / elapsed
                projection = (so_far + rate * (len(days) - elapsed)).quantize(Decimal("0.01"))
                actual[key] = cum
                projected[key] = [None] * (elapsed - 1) + [(so_far + rate * (i - elapsed + 1)).quantize(Decimal("0.01"))
                                                           for i in range(elapsed - 1, len(days))]
                burn.rows.append({"key": key, "spent": so_far, "projected": projection,
                                  "share": (so_far / burn.limit * 100).quantize(Decimal(1)),
                                  "over": projection > burn.limit,
                                  "alerts": [format_usd(t) for t in thresholds if so_far >= t]})
            burn.chart = charts.lines(f"budget {budget.name}: cumulative spend per {budget.scope}", days, actual,
                                      "cumulative spend (USD)", limits={"limit": burn.limit},
                                      dashed=projected)
        else:
            # day and week budgets: the busiest bucket of each key against the limit
            for key, values in ranked:
                buckets: dict[date, int] = defaultdict(int)
                for day, v in zip(days, values, strict=True):
                    start = day if budget.period == "day" else day - timedelta(days=day.weekday())
                    buckets[start] += v
                peak = max(buckets.values(), default=0)
                over = sum(1 for v in buckets.values() if usd(v) >= burn.limit)
                burn.rows.append({"key": key, "spent": usd(sum(values)), "peak": usd(peak),
                                  "share": (usd(peak) / burn.limit * 100).quantize(Decimal(1)),
                                  "over_buckets": over, "buckets": len(buckets),
                                  "alerts": [format_usd(t) for t in thresholds if usd(peak) >= t]})
        out.append(burn)
    return out


def run_links(run: RunFacts) -> dict[str, str | None]:
    """Links of a run to its CI job and its PR/MR: http(s) only, built from known parts."""
    job = run.run_url if run.run_url and urlsplit(run.run_url).scheme in ("http", "https") else None
    repo = run.dims.get("repo")
    pr_link = None
    if run.pr is not None and repo and SAFE_REPO.match(repo):
        origin = "https://gitlab.com" if run.platform == "gitlab" else "https://github.com"
        if job:
            parts = urlsplit(job)
            origin = f"{parts.scheme}://{parts.netloc}"
        middle = "/-/merge_requests/" if run.platform == "gitlab" else "/pull/"
        pr_link = f"{origin}/{repo}{middle}{int(run.pr)}"
    return {"job": job, "pr": pr_link}


def render_dashboard(board: Dashboard) -> str:
    from ci_guard.report import charts

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["usd"] = lambda v: format_usd(v)
    env.filters["usd_precise"] = lambda v: format_usd(v, precise=True)
    env.filters["count"] = lambda v: f"{v:,}"
    env.filters["micros"] = usd
    env.filters["pct"] = lambda v: "—" if v is None else f"{Decimal(v) * 100:.0f}%"
    total = board.total_usd
    spend_chart = charts.stacked_days(f"spend per day by {board.stack_by}", board.days, board.stacks)
    dev_chart = charts.lines("cost per active developer day", board.days, {"cost per active developer day":
                             board.dev_day_cost}, "USD per developer day")
    mix = [(g.name, (g.cost / total) if total else Decimal(0),
            f"{format_usd(g.cost)} ({(g.cost / total * 100) if total else 0:.1f}%)") for g in board.models[:8]]
    return env.get_template("dashboard.html.j2").render(
        board=board, f=board.figures(), spend_chart=spend_chart, dev_chart=dev_chart,
        mix_chart=charts.hbars("model mix by cost", mix) if mix else None, dimensions=DIMENSIONS,
        links=run_links, palette=[charts.colour(i, n) for i, n in enumerate(board.stacks)],
    )
