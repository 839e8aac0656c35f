"""A static HTML dashboard of one month of the ledger: one self-contained file, no scripts.

It is built in one pass over the month's calls (:meth:`Store.export_calls`), so every figure adds
up to the same exact total as the FOCUS export. Every string from the ledger (repository, team,
model names) is untrusted and is HTML-escaped by the template engine's autoescape; the page loads
nothing from anywhere, so it can be published as a CI artifact or a static page as it is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import jinja2

from ci_guard.ledger.records import CallRecord, RunRecord
from ci_guard.report.money import format_usd

TEMPLATE_DIR = Path(__file__).parent / "templates"
TOP_RUNS = 15
TOP_GROUPS = 20


@dataclass
class Group:
    name: str
    cost: Decimal = Decimal(0)
    calls: int = 0
    runs: set[str] = field(default_factory=set)
    tokens: int = 0


@dataclass
class RunRow:
    run: RunRecord
    cost: Decimal = Decimal(0)
    calls: int = 0


@dataclass
class Dashboard:
    start: datetime
    end: datetime
    generated_at: datetime
    total: Decimal = Decimal(0)
    calls: int = 0
    tokens: int = 0
    web_searches: int = 0
    context_saved: Decimal = Decimal(0)  # what context policies saved (not spent; not in total)
    by_day: dict[str, Decimal] = field(default_factory=dict)
    groups: dict[str, dict[str, Group]] = field(default_factory=dict)
    runs: dict[str, RunRow] = field(default_factory=dict)

    @property
    def run_count(self) -> int:
        return len(self.runs)

    @property
    def stopped(self) -> int:
        return sum(1 for r in self.runs.values() if r.run.status == "stopped")

    def stop_reasons(self) -> list[tuple[str, int]]:
        counts: dict[str, int] = defaultdict(int)
        for row in self.runs.values():
            if row.run.stop_reason:
                counts[row.run.stop_reason] += 1
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def top(self, dimension: str) -> list[Group]:
        groups = self.groups.get(dimension, {})
        return sorted(groups.values(), key=lambda g: (-g.cost, g.name))[:TOP_GROUPS]

    def top_runs(self) -> list[RunRow]:
        return sorted(self.runs.values(), key=lambda r: (-r.cost, r.run.run_id))[:TOP_RUNS]

    def days(self) -> list[tuple[str, Decimal]]:
        out, day = [], self.start
        while day < self.end:
            key = day.strftime("%Y-%m-%d")
            out.append((key, self.by_day.get(key, Decimal(0))))
            day += timedelta(days=1)
        return out


DIMENSIONS = {
    "repo": lambda c, r: r.repo, "team": lambda c, r: r.team, "agent": lambda c, r: r.agent,
    "model": lambda c, r: c.model_served or c.model_requested, "user": lambda c, r: r.user,
}


def build_dashboard(pairs: Iterable[tuple[CallRecord, RunRecord]], start: datetime, end: datetime,
                    now: datetime | None = None) -> Dashboard:
    """Aggregate a month's calls (with their runs) into the dashboard's figures, exactly."""
    board = Dashboard(start=start, end=end, generated_at=now or datetime.now(UTC))
    by_day: dict[str, Decimal] = defaultdict(Decimal)
    for call, run in pairs:
        tokens = call.usage.context_tokens + call.usage.output_tokens
        board.total += call.cost_usd
        board.calls += 1
        board.tokens += tokens
        board.web_searches += call.web_searches
        board.context_saved += call.context_saved_usd
        by_day[call.started_at.astimezone(UTC).strftime("%Y-%m-%d")] += call.cost_usd
        row = board.runs.setdefault(run.run_id, RunRow(run))
        row.cost += call.cost_usd
        row.calls += 1
        for dimension, key_of in DIMENSIONS.items():
            name = key_of(call, run) or "(unknown)"
            group = board.groups.setdefault(dimension, {}).setdefault(name, Group(name))
            group.cost += call.cost_usd
            group.calls += 1
            group.runs.add(run.run_id)
            group.tokens += tokens
    board.by_day = dict(by_day)
    return board


def render_dashboard(board: Dashboard) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["usd"] = lambda v: format_usd(v)
    env.filters["usd_precise"] = lambda v: format_usd(v, precise=True)
    env.filters["count"] = lambda v: f"{v:,}"
    days = board.days()
    peak = max((cost for _, cost in days), default=Decimal(0))
    return env.get_template("dashboard.html.j2").render(
        board=board, days=days, peak=peak, bar=lambda cost: _bar(cost, peak),
        dimensions=[("repo", "Repository"), ("team", "Team"), ("agent", "Agent"), ("model", "Model"),
                    ("user", "User")],
    )


def _bar(cost: Decimal, peak: Decimal) -> float:
    """A bar's height in percent of the day with the highest spend (presentation only)."""
    if peak <= 0:
        return 0.0
    return round(float(cost / peak * 100), 2)
