"""Policy engine speed: microseconds per decision on a generated 500-rule policy.

Run: python bench/bench_engine.py [--rules 500] [--contexts 1000] [--repeat 5]
Prints a table and writes bench/results/engine.json. Target: <= 100 µs per decision.

The policy mixes what real policies contain: per-repo rules (literal names and globs), branch
globs, label gates, draft/fork flags, diff-size comparisons, path globs, budget conditions,
`not:` blocks, escalations, and a catch-all deny at the end; contexts vary repos, branches, labels,
sizes and paths so most decisions scan deep into the rule list.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from ci_guard.context.model import RunContext
from ci_guard.policy.compiled import Facts
from ci_guard.policy.decision import BudgetStatus
from ci_guard.policy.engine import compile_policy, decide, first_match
from ci_guard.policy.models import Policy

RESULTS = Path(__file__).resolve().parent / "results"


def make_policy(n: int, rng: random.Random) -> Policy:
    rules = []
    for i in range(n - 1):
        when: dict[str, object] = {}
        kind = i % 5
        if kind == 0:
            when["repo"] = f"acme/svc-{i}"
        elif kind == 1:
            when["repo"] = f"acme/team{i % 40}-*"
        elif kind == 2:
            when["labels"] = [f"area/{i % 30}", f"prio/{i % 7}"]
        elif kind == 3:
            when["base_branch"] = ["main", f"release/{i % 9}.*"]
            when["agent"] = rng.choice(["pr-review", "test-repair"])
        else:
            when["actor"] = [f"user{i}", f"bot{i % 11}[bot]"]
        if rng.random() < 0.3:
            when["diff_lines"] = rng.choice(["> 2000", "<= 300"])
        if rng.random() < 0.2:
            when["paths_only"] = ["docs/**", "**/*.md"]
        if rng.random() < 0.1:
            when["budget_remaining"] = {"org-monthly": "< 20%"}
        if rng.random() < 0.1:
            when["not"] = {"labels": "ai:skip"}
        if rng.random() < 0.2:
            when["draft"] = False
        rule: dict[str, object] = {"name": f"rule-{i}", "when": when,
                                   "decision": rng.choice(["allow", "allow", "deny", "skip"])}
        if rule["decision"] == "allow":
            rule["limits"] = {"max_turns": rng.randint(5, 40)}
            if rng.random() < 0.2:
                rule["escalation"] = {"label": "ai:escalate", "model": "large"}
        rules.append(rule)
    rules.append({"name": "everything-else", "decision": "deny"})
    return Policy.model_validate({
        "version": 1, "models": {"small": "claude-haiku-4-5", "large": "claude-sonnet-4-5"},
        "budgets": [{"name": "org-monthly", "scope": "org", "period": "month", "limit_usd": 2000}],
        "defaults": {"model": "small", "limits": {"max_turns": 20, "max_cost_usd": 2, "max_runtime": "15m"}},
        "rules": rules,
    })


def make_contexts(n: int, rng: random.Random) -> list[RunContext]:
    out = []
    for _ in range(n):
        out.append(RunContext(
            platform="github", org="acme", trigger="pull_request", agent=rng.choice(["pr-review", "test-repair"]),
            repo=rng.choice([f"acme/svc-{rng.randint(0, 600)}", f"acme/team{rng.randint(0, 60)}-x", "acme/other"]),
            base_branch=rng.choice(["main", "dev", f"release/{rng.randint(0, 12)}.1"]),
            actor=rng.choice([f"user{rng.randint(0, 600)}", "someone", "bot3[bot]"]),
            labels=rng.sample([f"area/{k}" for k in range(40)] + ["ai:escalate", "ai:skip"], rng.randint(0, 3)),
            draft=rng.choice([False, False, True]), diff_lines=rng.randint(0, 4000), diff_files=rng.randint(1, 50),
            changed_paths=rng.choice([["src/a.py", "docs/x.md"], ["docs/a.md"], None]),
        ))
    return out


def measure(fn, items, repeat: int) -> list[float]:
    """Per-item microseconds for each repetition over all items."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for item in items:
            fn(item)
        runs.append((time.perf_counter() - start) / len(items) * 1e6)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=int, default=500)
    parser.add_argument("--contexts", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(2025)
    policy = make_policy(args.rules, rng)
    contexts = make_contexts(args.contexts, rng)
    now = datetime(2025, 6, 15, tzinfo=UTC)
    budgets = [BudgetStatus(name="org-monthly", scope="org", scope_key="acme", period="month",
                            limit_usd=Decimal(2000), spent_usd=Decimal(1500))]

    start = time.perf_counter()
    cp = compile_policy(policy)
    compile_ms = (time.perf_counter() - start) * 1000
    policy._compiled = cp
    by_budget = {b.name: b for b in budgets}
    match_us = measure(lambda c: first_match(cp, Facts(c, by_budget)), contexts, args.repeat)
    decide_us = measure(lambda c: decide(policy, c, budgets, now), contexts, args.repeat)
    decisions = [decide(policy, c, budgets, now) for c in contexts]
    depth = statistics.mean(policy.rules.index(next(r for r in policy.rules if r.name == d.rule))
                            for d in decisions if d.rule)
    kinds = {k: sum(d.decision == k for d in decisions) for k in ("allow", "deny", "skip")}
    result = {
        "rules": args.rules, "contexts": args.contexts, "repeat": args.repeat,
        "compile_ms": round(compile_ms, 2),
        "first_match_us_median": round(statistics.median(match_us), 2),
        "decide_us_median": round(statistics.median(decide_us), 2),
        "decide_us_best": round(min(decide_us), 2),
        "mean_deciding_rule_index": round(depth, 1), "decisions": kinds, "target_us": 100,
    }
    print(f"{'metric':<34}{'value':>12}")
    for key in ("rules", "contexts", "compile_ms", "first_match_us_median", "decide_us_median", "decide_us_best",
                "mean_deciding_rule_index"):
        print(f"{key:<34}{result[key]:>12}")
    print(f"{'decisions (allow/deny/skip)':<34}{'/'.join(str(v) for v in kinds.values()):>12}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "engine.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
