"""A realistic pilot month written into a ledger (`ci-guard demo --pilot`, tests and benches).

Several teams, repositories, developers, workflows, agents and models; runs that completed, were
stopped by each cap, failed, were cancelled, denied or skipped; retry storms (the same request
again and again); PRs that were merged or closed; test-repair runs that fixed tests; usage
imported from a vendor export (not enforced). Every call is priced with the real catalog, and a
run's totals are the exact sum of its calls. Deterministic for a given seed and size.

Written in batches through :meth:`Store.load_history` (bulk inserts, COPY on PostgreSQL), so a
month of a million calls takes seconds, not the hours one transaction per call would.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ci_guard.ledger.records import CallRecord, RunRecord
from ci_guard.pricing.usage import Usage

TEAMS = {
    "platform": (["acme/api", "acme/infra", "acme/auth"], ["alice", "bob", "chen", "dana", "eli"]),
    "payments": (["acme/billing", "acme/ledger-svc"], ["fatima", "gus", "hana", "ivan"]),
    "mobile": (["acme/ios", "acme/android", "acme/mobile-shared"], ["jo", "kai", "lena", "mo", "nils", "omar"]),
    "data": (["acme/warehouse", "acme/pipelines"], ["priya", "quinn", "rosa"]),
}
# CI workflow -> (agent kind, [(model, weight)], mean calls per run, trigger); Claude models run
# Claude Code, OpenAI models Codex CLI
WORKFLOWS = {
    "ai-review": ("pr-review", [("claude-sonnet-4-5", 8), ("claude-haiku-4-5", 2)], 24, "pull_request"),
    "ai-test-repair": ("test-repair", [("claude-sonnet-4-5", 6), ("claude-opus-4-1", 1)], 60, "workflow_run"),
    "ai-triage": ("issue-triage", [("gpt-5-mini", 9), ("gpt-5", 1)], 10, "issues"),
    "ai-refactor": ("refactor", [("gpt-5", 1)], 80, "workflow_dispatch"),
}
WORKFLOW_WEIGHTS = {"ai-review": 50, "ai-test-repair": 25, "ai-triage": 15, "ai-refactor": 10}
# (status, stop_reason, weight); runs without calls: denied, skipped, no_calls
OUTCOMES = [("completed", None, 760), ("stopped", "max_turns", 40), ("stopped", "max_cost", 30),
            ("stopped", "max_context", 10), ("stopped", "retry_storm", 20), ("failed", None, 40),
            ("cancelled", None, 10), ("no_calls", None, 20), ("denied", None, 50), ("skipped", None, 20)]
IMPORTED_SHARE = 0.05
STORM_REPEATS = 6  # identical requests before the storm was stopped


@dataclass
class PilotSize:
    calls: int = 20_000  # roughly: the generator stops at the first run that reaches it
    seed: int = 15


@dataclass
class PilotSummary:
    runs: int = 0
    calls: int = 0
    cost_micros: int = 0
    prs: int = 0


def pilot_batches(month_start: datetime, days: int = 30, calls: int = 20_000, seed: int = 15,
                  batch_calls: int = 20_000) -> Iterator[tuple[list[RunRecord], list[CallRecord],
                                                               list[tuple[str, int, str]]]]:
    """Yield (runs, calls, PR outcomes (repo, pr, outcome)) in batches of about ``batch_calls`` calls."""
    from ci_guard.pricing.catalog import load_catalog
    from ci_guard.pricing.cost import cost

    rng = random.Random(seed)
    catalog = load_catalog()
    prices = {m: catalog.lookup(m) for wf in WORKFLOWS.values() for m, _ in wf[1]}
    missing = [m for m, p in prices.items() if p is None]
    if missing:  # the catalog is the source of truth; a pilot priced at $0 would prove nothing
        raise RuntimeError(f"pilot models missing from the price catalog: {missing}")
    statuses = [(s, r) for s, r, _ in OUTCOMES]
    status_weights = [w for _, _, w in OUTCOMES]
    workflows = list(WORKFLOW_WEIGHTS)
    workflow_weights = [WORKFLOW_WEIGHTS[w] for w in workflows]
    team_names = list(TEAMS)
    pr_numbers: dict[str, int] = {}
    runs: list[RunRecord] = []
    call_rows: list[CallRecord] = []
    outcomes: list[tuple[str, int, str]] = []
    written = 0
    n = 0
    while written < calls:
        n += 1
        team = rng.choice(team_names)
        repos, users = TEAMS[team]
        repo, user = rng.choice(repos), rng.choice(users)
        workflow = rng.choices(workflows, workflow_weights)[0]
        agent, models, mean_calls, trigger = WORKFLOWS[workflow]
        model = rng.choices([m for m, _ in models], [w for _, w in models])[0]
        status, stop_reason = rng.choices(statuses, status_weights)[0]
        imported = rng.random() < IMPORTED_SHARE
        if imported:  # a developer's local usage, imported from the vendor's export
            status, stop_reason, trigger = "completed", None, "import"
        day = rng.randrange(days)
        hour = rng.choice((8, 9, 10, 11, 13, 14, 15, 16, 17, 19, 22))
        started = month_start + timedelta(days=day, hours=hour, minutes=rng.randrange(60),
                                          seconds=rng.randrange(60), microseconds=rng.randrange(1_000_000))
        pr = None
        if agent in ("pr-review", "test-repair", "refactor") and not imported:
            # a new PR now and then, else another run on the repo's latest one
            if repo not in pr_numbers or rng.random() < 0.45:
                pr_numbers[repo] = pr_numbers.get(repo, 1_000 * seed) + 1  # distinct PRs per seed
                pr = pr_numbers[repo]
                roll = rng.random()
                if roll < 0.8:
                    outcomes.append((repo, pr, "merged" if roll < 0.62 else "closed"))
            pr = pr_numbers[repo]
        run = RunRecord(
            run_id=f"pilot-{seed}-{n:07d}", started_at=started, decision="allow", status=status,
            org="acme", team=team, repo=None if imported else repo, user=user, workflow=workflow, agent=agent,
            environment="ci" if not imported else "local", trigger=trigger, pr=pr,
            branch=f"feature/{n}" if pr else None, cohort="early" if team in ("platform", "data") else "wave-2",
            platform="import" if imported else ("gitlab" if team == "mobile" else "github"),
            rule=agent, model=model, enforced=not imported, stop_reason=stop_reason,
            run_url=None if imported else (f"https://gitlab.example.com/{repo}/-/jobs/{90_000 + n}" if team == "mobile"
                                           else f"https://github.com/{repo}/actions/runs/{7_000_000 + n}"),
        )
        if status in ("denied", "skipped"):
            run.decision = "deny" if status == "denied" else "skip"
            run.model = None
        if status in ("denied", "skipped", "no_calls"):
            run.ended_at = started
            runs.append(run)
            continue
        count = max(1, int(rng.expovariate(1 / mean_calls)) + 1)
        if status == "stopped" and stop_reason == "retry_storm":
            count = max(count, STORM_REPEATS + 2)
        made = _calls(rng, run, count, prices[model], cost)
        run.ended_at = made[-1].ended_at
        if status == "failed":
            run.agent_exit_code = 1
        elif status == "cancelled":
            run.agent_exit_code = 143
        if agent == "test-repair" and status == "completed" and rng.random() < 0.7:
            run.tests_fixed = rng.randint(1, 6)
        runs.append(run)
        call_rows.extend(made)
        written += len(made)
        if len(call_rows) >= batch_calls:
            yield runs, call_rows, outcomes
            runs, call_rows, outcomes = [], [], []
    if runs or outcomes:
        yield runs, call_rows, outcomes


def _calls(rng: random.Random, run: RunRecord, count: int, price: Any, cost: Any) -> list[CallRecord]:
    """A run's calls: context grows turn by turn, mostly read from the cache; storms repeat one request."""
    provider = "anthropic" if (run.model or "").startswith("claude") else "openai"
    endpoint = "messages" if provider == "anthropic" else "responses"
    context = rng.randint(6_000, 14_000)
    at = run.started_at
    storm_from = count - STORM_REPEATS if run.stop_reason == "retry_storm" else None
    out: list[CallRecord] = []
    for seq in range(1, count + 1):
        storming = storm_from is not None and seq > storm_from
        if not storming:
            context += rng.randint(600, 3_500)
        fresh = rng.randint(800, 6_000)
        written = rng.randint(0, 3_000) if provider == "anthropic" and seq % 5 == 1 else 0
        read = max(0, context - fresh - written)
        output = rng.randint(150, 2_500)
        usage = Usage(input_tokens=fresh, cache_write_tokens=written, cache_read_tokens=read,
                      output_tokens=output, reasoning_tokens=output // 3 if provider == "openai" else 0)
        took = timedelta(milliseconds=rng.randint(900, 25_000))
        priced = cost(usage, price).total_usd
        run.turns += 1
        tools = rng.randint(0, 3)
        run.tool_calls += tools
        run.cost_usd += priced
        run.usage = run.usage + usage
        out.append(CallRecord(
            run_id=run.run_id, seq=seq, started_at=at, ended_at=at + took, provider=provider, endpoint=endpoint,
            model_requested=run.model, model_served=run.model, usage=usage, cost_usd=priced, status="ok",
            http_status=200, stream=True, tool_calls=tools, context_tokens=usage.context_tokens,
            latency_ms=float(took.total_seconds() * 1000),
            fingerprint=f"{run.run_id}:storm" if storming else f"{run.run_id}:{seq}",
            session_id=run.run_id,
        ))
        at += took + timedelta(milliseconds=rng.randint(50, 3_000))
    return out


def write_pilot(store: Any, month_start: datetime, *, days: int = 30, calls: int = 20_000,
                seed: int = 15) -> PilotSummary:
    """Generate a pilot month and write it into ``store``; return what was written."""
    summary = PilotSummary()
    for runs, batch, outcomes in pilot_batches(month_start, days=days, calls=calls, seed=seed):
        store.load_history(runs, batch, outcomes, now=month_start + timedelta(days=days))
        summary.runs += len(runs)
        summary.calls += len(batch)
        summary.cost_micros += sum(int(c.cost_usd * 1_000_000) for c in batch)
        summary.prs += len(outcomes)
    return summary


def decimal_usd(micros: int) -> Decimal:
    return Decimal(micros) / Decimal(1_000_000)
