"""Suggested limits and budgets from a pilot's ledger (`ci-guard baseline`).

From the runs of the pilot period (one row per run, aggregated by the database):

* per agent kind, a rule with ``max_cost_usd`` and ``max_turns`` at the p90 of its metered,
  enforced runs plus headroom (imported usage never went through a rule), and
  ``max_identical_retries: 3`` where retry storms were seen;
* ``repo-daily`` and ``team-daily`` budgets: the busiest key's p90 day plus headroom (a budget's
  limit applies to every key of its scope, so it must fit the busiest one on a normal day);
* ``team-monthly`` and ``org-monthly``: the busiest key's spend scaled to a 30-day month, plus
  headroom, with alerts at 50% and 80%.

The output is a YAML policy (``version: 1``, ``rules:``, ``budgets:``) whose sections paste into an
existing policy; the figures each suggestion came from are comments next to it. It is checked
with the same loader as any policy before it is printed. Names from the ledger are untrusted: rule
names are reduced to the policy's name alphabet and values are quoted.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from zoneinfo import ZoneInfo

from ci_guard.ledger.analytics import RunFacts
from ci_guard.report.finops import Period, nearest_rank, usd

MONTH_DAYS = 30


@dataclass
class RuleSuggestion:
    agent: str
    runs: int
    workflows: list[str]
    cost_p50: Decimal
    cost_p90: Decimal
    turns_p90: int
    storms: int
    max_cost_usd: Decimal
    max_turns: int


@dataclass
class BudgetSuggestion:
    name: str
    scope: str
    period: str
    limit_usd: Decimal
    basis: str  # the figures it came from
    alert_at: list[str] = field(default_factory=list)


@dataclass
class Baseline:
    period: Period
    headroom: Decimal
    runs: int
    cost: Decimal
    rules: list[RuleSuggestion]
    budgets: list[BudgetSuggestion]


def round_up_money(value: Decimal) -> Decimal:
    """Up to a step that reads well in a policy: $0.05 under $1, $0.50 under $10, $5 under $100, else $50."""
    if value < 1:
        step = Decimal("0.05")
    else:
        step = Decimal("0.5") if value < 10 else Decimal(5) if value < 100 else Decimal(50)
    return max(step, (value / step).to_integral_value(rounding=ROUND_CEILING) * step)


def suggest(runs: Iterable[RunFacts], period: Period, headroom: Decimal = Decimal("0.25")) -> Baseline:
    tz = ZoneInfo(period.tz)
    factor = 1 + headroom
    per_agent: dict[str, list[RunFacts]] = defaultdict(list)
    day_spend: dict[str, dict[tuple[str, str], int]] = {"repo": defaultdict(int), "team": defaultdict(int)}
    month_spend: dict[str, dict[str, int]] = {"team": defaultdict(int), "org": defaultdict(int)}
    total, count = 0, 0
    for run in runs:
        count += 1
        total += run.cost_micros
        if run.calls and run.enforced and run.dims.get("agent"):
            per_agent[run.dims["agent"]].append(run)  # type: ignore[index]
        day = run.started_at.astimezone(tz).date().isoformat()
        for scope in ("repo", "team"):
            if run.dims.get(scope):
                day_spend[scope][(run.dims[scope], day)] += run.cost_micros  # type: ignore[index]
        for scope in ("team", "org"):
            if run.dims.get(scope):
                month_spend[scope][run.dims[scope]] += run.cost_micros  # type: ignore[index]
    rules = []
    for agent, mine in sorted(per_agent.items()):
        costs = sorted(r.cost_micros for r in mine)
        turns = sorted(r.turns for r in mine)
        p90 = usd(nearest_rank(costs, 0.9))
        t90 = int(nearest_rank(turns, 0.9))
        rules.append(RuleSuggestion(
            agent=agent, runs=len(mine), workflows=sorted({r.dims.get("workflow") or "-" for r in mine}),
            cost_p50=usd(nearest_rank(costs, 0.5)), cost_p90=p90, turns_p90=t90,
            storms=sum(1 for r in mine if r.stop_reason == "retry_storm"),
            max_cost_usd=round_up_money(p90 * factor), max_turns=max(1, math.ceil(t90 * factor))))
    budgets = []
    days = max(1, math.ceil((period.end - period.start).total_seconds() / 86400))
    for scope in ("repo", "team"):
        per_key: dict[str, list[int]] = defaultdict(list)
        for (key, _day), micros in day_spend[scope].items():
            per_key[key].append(micros)
        if not per_key:
            continue
        # days without a run count as $0 days, so a key active twice a month is not taken as daily spend
        p90s = {k: nearest_rank(sorted(v + [0] * max(0, days - len(v))), 0.9) for k, v in per_key.items()}
        busiest = max(sorted(p90s), key=lambda k: p90s[k])
        budgets.append(BudgetSuggestion(
            f"{scope}-daily", scope, "day", round_up_money(usd(p90s[busiest]) * factor),
            f"busiest {scope} {json.dumps(busiest)}: p90 day {usd(p90s[busiest]):.2f} USD over {days} days; "
            f"{len(per_key)} {scope}s", ["80%"]))
    for scope in ("team", "org"):
        spend = month_spend[scope]
        if not spend:
            continue
        busiest = max(sorted(spend), key=lambda k: spend[k])
        monthly = usd(spend[busiest]) * MONTH_DAYS / days
        budgets.append(BudgetSuggestion(
            f"{scope}-monthly", scope, "month", round_up_money(monthly * factor),
            f"busiest {scope} {json.dumps(busiest)}: {usd(spend[busiest]):.2f} USD in {days} days "
            f"= {monthly:.2f} USD per {MONTH_DAYS} days", ["50%", "80%"]))
    return Baseline(period=period, headroom=headroom, runs=count, cost=usd(total), rules=rules, budgets=budgets)


def rule_name(agent: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", agent).strip("-.")[:60] or "agent"
    return f"baseline-{slug}"


def render_baseline(b: Baseline) -> str:
    """The suggestion as a policy YAML document, checked by the policy loader before it is returned."""
    from ci_guard.policy.loader import policy_from_text

    pct = f"{b.headroom * 100:.0f}%"
    lines = [
        f"# ci-guard baseline from {b.period.start:%Y-%m-%d %H:%M} to {b.period.end:%Y-%m-%d %H:%M} UTC "
        f"(days in {b.period.tz}): {b.runs:,} runs, {b.cost:.2f} USD; headroom {pct}.",
        "# Paste the rules above your catch-all rule and the budgets into your policy; then",
        "# `ci-guard validate` and `ci-guard explain` before you enforce them.",
        "version: 1",
        "rules:",
    ]
    for r in b.rules:
        lines += [
            f"  # {json.dumps(r.agent)}: {r.runs:,} metered runs (workflows {', '.join(map(json.dumps, r.workflows))});"
            f" cost per run p50 {r.cost_p50:.2f}, p90 {r.cost_p90:.2f} USD; turns p90 {r.turns_p90};"
            f" retry storms {r.storms}",
            f"  - name: {rule_name(r.agent)}",
            f"    when: {{agent: {json.dumps(r.agent)}}}",
            "    decision: allow",
            f"    limits: {{max_cost_usd: {r.max_cost_usd}, max_turns: {r.max_turns}"
            + (", max_identical_retries: 3" if r.storms else "") + "}",
        ]
    if not b.rules:
        lines += ["  # no metered runs in the period: nothing to base limits on",
                  "  - name: baseline-none", "    decision: allow"]
    lines.append("budgets:" if b.budgets else "budgets: []")
    for s in b.budgets:
        lines += [f"  # {s.basis}",
                  f"  - {{name: {s.name}, scope: {s.scope}, period: {s.period}, limit_usd: {s.limit_usd}, "
                  f"alert_at: [{', '.join(json.dumps(a) for a in s.alert_at)}]}}"]
    text = "\n".join(lines) + "\n"
    policy_from_text(text, "<baseline>")  # the same loader as a policy: an invalid suggestion is a bug, not output
    return text
