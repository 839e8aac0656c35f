"""`ci-guard what-if` over 30 days with 1,000,000 recorded calls, on SQLite and PostgreSQL.

    python bench/bench_whatif.py                                  # 1,000,000 calls, both backends
    python bench/bench_whatif.py --calls 100000 --backends sqlite
    python bench/bench_whatif.py --pg postgresql://postgres@127.0.0.1:5432/test --repeat 3

The data: 50,000 runs x 20 calls over 30 days, 50 repositories, 4 agents, 2 models, 3% denied,
2% retry storms (the same failing request again and again); every run carries the decision inputs
`ci-guard run` stores (context + budget statuses), decided by the bench policy itself, so an
unchanged policy takes the "decided as recorded" path. Bulk-loaded (executemany / COPY).

Each proposal is timed end to end (`what_if()`: load both policies, read the runs and calls,
replay, add up), the backends interleaved, ``--repeat`` times:

* ``unchanged``: the same policy (zero change; no call is replayed)
* ``max_turns``: every rule's max_turns lowered to 12 (every run's calls replayed)
* ``model``: the large model replaced by the small one (every call re-priced)
* ``deny``: a deny rule for one agent

Prints a table and writes bench/results/whatif.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ci_guard.context.model import RunContext  # noqa: E402
from ci_guard.ledger import open_ledger  # noqa: E402
from ci_guard.ledger.sqlstore import CALL_COLS, RUN_COLS  # noqa: E402
from ci_guard.policy.decide import evaluate  # noqa: E402
from ci_guard.policy.inputs import decision_inputs, dumps  # noqa: E402
from ci_guard.policy.loader import load_policy_file  # noqa: E402

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
DAYS = 30
CALLS_PER_RUN = 20
REPOS = [f"acme/repo-{i:02d}" for i in range(50)]
AGENTS = ["pr-review", "test-repair", "docs-bot", "triage"]
POLICY = """\
version: 1
models: {small: claude-haiku-4-5, large: claude-sonnet-4-5}
budgets:
  - {name: org-monthly, scope: org, period: month, limit_usd: 5000000, alert_at: ["50%", "80%"]}
  - {name: repo-daily, scope: repo, period: day, limit_usd: 100000}
defaults:
  model: small
  limits: {max_turns: TURNS, max_cost_usd: 50, max_runtime: 30m, max_identical_retries: 4}
rules:
DENY  - name: drafts
    when: {draft: true}
    decision: deny
  - name: review
    when: {agent: pr-review}
    decision: allow
    model: REVIEW_MODEL
  - name: repair
    when: {agent: test-repair}
    decision: allow
  - name: docs
    when: {agent: docs-bot}
    decision: allow
  - name: triage
    when: {agent: triage}
    decision: allow
"""


def policy_text(turns: str = "30", model: str = "large", deny: str = "") -> str:
    return POLICY.replace("TURNS", turns).replace("REVIEW_MODEL", model).replace("DENY", deny)


TOKENS = ("input_tokens", "cache_write_tokens", "cache_write_1h_tokens", "cache_read_tokens", "output_tokens",
          "reasoning_tokens")
_NOT_NULL_ZERO = {"turns", "tool_calls", "cost_micros", "web_searches", "context_saved_micros", "stream",
                  "context_tokens", "latency_ms", "is_turn", "estimated", *TOKENS}


def _row(cols: tuple[str, ...], values: dict) -> list:
    """A row in the ledger's column order; columns the bench does not set get their table default."""
    unknown = set(values) - set(cols)
    assert not unknown, unknown
    return [values.get(c, 0 if c in _NOT_NULL_ZERO else None) for c in cols]


def generate(n_calls: int, policy_path: Path) -> tuple[list[list], list[list]]:
    policy = load_policy_file(policy_path)
    start = NOW - timedelta(days=DAYS)
    # enough runs that the allowed ones (denied runs make no calls) record at least n_calls calls
    n_runs = max(1, -(-n_calls * 33 // (32 * CALLS_PER_RUN)))
    runs: list[list] = []
    calls: list[list] = []
    decisions: dict[tuple, object] = {}
    org_spent = 0
    for r in range(n_runs):
        at = start + timedelta(seconds=DAYS * 86400 * r / n_runs)
        repo, agent, draft = REPOS[r % len(REPOS)], AGENTS[r % len(AGENTS)], r % 33 == 0
        ctx = RunContext(platform="github", repo=repo, org="acme", pr=r % 900, trigger="pull_request",
                         base_branch="main", head_branch=f"feature/{r}", actor=f"dev{r % 40}", labels=["ai"],
                         draft=draft, fork=False, diff_lines=10 + r % 500, diff_files=1 + r % 20,
                         changed_paths=[f"src/mod{r % 7}.py", "tests/test_x.py"], agent=agent,
                         workflow=f"{agent}.yml", title=f"Change number {r}")
        key = (repo, agent, draft)
        if key not in decisions:
            decisions[key] = evaluate(policy, ctx, now=at)
        d = decisions[key]
        d = d.model_copy(update={"context": ctx})  # type: ignore[attr-defined]
        inputs = decision_inputs(ctx, d, at)  # type: ignore[arg-type]
        for b in inputs["budgets"]:
            if b["name"] == "org-monthly":
                b["spent_usd"] = str(org_spent / 1_000_000)
        run_id = f"wi-{r:07d}"
        allowed = d.decision == "allow"  # type: ignore[attr-defined]
        storm = allowed and r % 50 == 7
        cost = 0
        tokens = [0] * 6
        n = CALLS_PER_RUN if allowed else 0
        for s in range(1, n + 1):
            t = at + timedelta(seconds=4 * s)
            usage = (800 + 10 * s, 0, 0, 15000 + 900 * s, 250 + s, 0)
            err = storm and s > 3
            micros = 0 if err else 9000 + 400 * s
            cost += micros
            tokens = [a + b for a, b in zip(tokens, usage, strict=True)]
            calls.append(_row(CALL_COLS, {
                "run_id": run_id, "seq": s, "started_at": t, "ended_at": t, "provider": "anthropic",
                "endpoint": "messages", "model_requested": d.model, "model_served": d.model,  # type: ignore[attr-defined]
                **dict(zip(TOKENS, (0,) * 6 if err else usage, strict=True)), "cost_micros": micros,
                "status": "error" if err else "ok", "http_status": 529 if err else 200, "stream": True,
                "tool_calls": 0 if err else 1, "context_tokens": 0 if err else sum(usage[:4]), "latency_ms": 900.0,
                "fingerprint": f"fp-{run_id}-{3 if err else s}", "error": "overloaded_error" if err else None,
                "is_turn": True, "service_tier": "standard", "estimated": False}))
        org_spent += cost
        status = "completed" if allowed else "denied"
        runs.append(_row(RUN_COLS, {
            "run_id": run_id, "started_at": at, "ended_at": at + timedelta(minutes=2),
            "decision": d.decision, "status": status, "org": "acme", "repo": repo, "actor": ctx.actor,  # type: ignore[attr-defined]
            "workflow": ctx.workflow, "agent": agent, "trigger_name": "pull_request", "pr": ctx.pr,
            "branch": ctx.head_branch, "platform": "github", "rule": d.rule, "reason": d.reason,  # type: ignore[attr-defined]
            "model": d.model, "limits_json": json.dumps(d.as_json()["limits"], sort_keys=True),  # type: ignore[attr-defined]
            "agent_exit_code": 0 if allowed else None, "enforced": True, "turns": n, "tool_calls": n,
            "cost_micros": cost, **dict(zip(TOKENS, tokens, strict=True)), "decision_inputs_json": dumps(inputs)}))
    return runs, calls


def load_sqlite(url: str, data) -> None:
    runs, calls = data
    store = open_ledger(url)
    conn = store._conn  # type: ignore[attr-defined]  # bulk load on purpose

    def conv(rows):
        return [[v.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if isinstance(v, datetime) else
                 (int(v) if isinstance(v, bool) else v) for v in row] for row in rows]

    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(f"INSERT INTO runs ({','.join(RUN_COLS)}) VALUES ({','.join('?' * len(RUN_COLS))})", conv(runs))
    for i in range(0, len(calls), 100_000):
        conn.executemany(f"INSERT INTO calls ({','.join(CALL_COLS)}) VALUES ({','.join('?' * len(CALL_COLS))})",
                         conv(calls[i:i + 100_000]))
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    store.close()


def load_postgres(url: str, data) -> None:
    runs, calls = data
    store = open_ledger(url)
    conn = store._connection()  # type: ignore[attr-defined]
    with conn.transaction(), conn.cursor() as cur:
        for table, cols, rows in (("runs", RUN_COLS, runs), ("calls", CALL_COLS, calls)):
            with cur.copy(f"COPY {table} ({','.join(cols)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    conn.execute("VACUUM ANALYZE")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--pg", default=os.environ.get("CI_GUARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from ci_guard.preview.whatif import what_if

    tmp = Path(tempfile.mkdtemp(prefix="bench-whatif-"))
    base = tmp / "base.yml"
    base.write_text(policy_text(), encoding="utf-8")
    proposals = {
        "unchanged": base,
        "max_turns": tmp / "turns.yml",
        "model": tmp / "model.yml",
        "deny": tmp / "deny.yml",
    }
    proposals["max_turns"].write_text(policy_text(turns="12"), encoding="utf-8")
    proposals["model"].write_text(policy_text(model="small"), encoding="utf-8")
    proposals["deny"].write_text(policy_text(deny="  - name: no-triage\n    when: {agent: triage}\n"
                                                  "    decision: deny\n"), encoding="utf-8")
    t0 = time.perf_counter()
    data = generate(args.calls, base)
    print(f"generated {len(data[0]):,} runs / {len(data[1]):,} calls in {time.perf_counter() - t0:.1f} s", flush=True)
    urls: dict[str, str] = {}
    schema = None
    for backend in args.backends.split(","):
        t0 = time.perf_counter()
        if backend == "sqlite":
            urls[backend] = f"sqlite:///{tmp}/ledger.db"
            load_sqlite(urls[backend], data)
        else:
            schema = f"bench_whatif_{secrets.token_hex(3)}"
            urls[backend] = f"{args.pg}?schema={schema}"
            load_postgres(urls[backend], data)
        print(f"loaded {backend} in {time.perf_counter() - t0:.1f} s", flush=True)
    del data
    since, until = NOW - timedelta(days=DAYS), NOW + timedelta(seconds=1)
    times: dict[tuple[str, str], list[float]] = {}
    # CPU seconds of this process too: on a shared, loaded machine wall time mostly measures the
    # wait for a core (for PostgreSQL the server's own work is not in it)
    cpu: dict[tuple[str, str], list[float]] = {}
    results: dict[tuple[str, str], dict] = {}
    round_loads: list[float] = []  # load average at the start of each round
    try:
        for _ in range(args.repeat):
            round_loads.append(round(os.getloadavg()[0], 1))
            for name, path in proposals.items():
                for backend, url in urls.items():  # interleaved
                    store = open_ledger(url)  # the schema stays dropped-on-exit even if this fails
                    t0, c0 = time.perf_counter(), time.process_time()
                    result = what_if(store, str(path), str(base), since, until)
                    times.setdefault((name, backend), []).append(time.perf_counter() - t0)
                    cpu.setdefault((name, backend), []).append(time.process_time() - c0)
                    store.close()
                    out = result.as_json()
                    print(f"  {name}/{backend}: {times[(name, backend)][-1]:.1f} s wall, "
                          f"{cpu[(name, backend)][-1]:.1f} s CPU", flush=True)
                    results[(name, backend)] = {"runs": out["runs"], "spend": out["spend"],
                                                "newly_refused": out["decisions"]["newly_refused"],
                                                "stopped": out["caps"]["stopped_earlier"],
                                                "repriced": out["models"]["repriced_runs"]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the SQLite ledger of 1M calls (~370 MB) and the policies
        if schema is not None:
            import psycopg

            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    print(f"\nwhat-if over {DAYS} days, {args.calls:,} calls; wall seconds, median (min-max) of {args.repeat}, "
          f"[CPU seconds of ci-guard's process]; load {os.getloadavg()[0]:.1f} (per round: {round_loads})")
    print(f"{'proposal':<12}" + "".join(f"{b:>30}" for b in urls) + "   result")
    for name in proposals:
        cells = []
        for backend in urls:
            t = times[(name, backend)]
            c = statistics.median(cpu[(name, backend)])
            cells.append(f"{statistics.median(t):6.1f} ({min(t):.1f}-{max(t):.1f}) [{c:.1f}]")
        r = results[(name, next(iter(urls)))]
        agree = all(results[(name, b)] == r for b in urls)
        print(f"{name:<12}" + "".join(f"{c:>30}" for c in cells)
              + f"   {r['spend']['change_usd']} USD, {r['newly_refused']} refused, {r['stopped']} stopped, "
                f"{r['repriced']} repriced; backends agree: {agree}")
    out = ROOT / "bench" / "results" / "whatif.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "calls": args.calls, "days": DAYS, "repeat": args.repeat, "loadavg": os.getloadavg(),
        "loadavg_rounds": round_loads,
        "seconds": {f"{n}/{b}": t for (n, b), t in times.items()},
        "cpu_seconds": {f"{n}/{b}": t for (n, b), t in cpu.items()},
        "results": {f"{n}/{b}": r for (n, b), r in results.items()},
    }, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
