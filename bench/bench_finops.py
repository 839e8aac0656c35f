"""FinOps benchmark: `ci-guard report`, `baseline` and `dashboard` over a pilot month of 1,000,000 calls,
on SQLite and PostgreSQL, with the per-call alternative (what the dashboard did before: one Python
object per call from ``export_calls``) measured in the same interleaved rounds.

    python bench/bench_finops.py                                   # 1,000,000 calls, both backends
    python bench/bench_finops.py --calls 100000 --backends sqlite
    python bench/bench_finops.py --pg postgresql://postgres@127.0.0.1:5432/test

The month is the pilot generator's (ci_guard/demo/pilot.py: teams, repos, users, workflows,
models, caps, storms, outcomes, imports), priced with the real catalog and bulk-loaded through
``Store.load_history`` (executemany on SQLite, COPY on PostgreSQL); generated once and written to
both backends batch by batch. Each figure is the wall time of what the command does after parsing
its flags: open the ledger, read, aggregate, render. Prints a table and writes
bench/results/finops.json.
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
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ci_guard.commands.report import load_report, render_text  # noqa: E402
from ci_guard.demo.pilot import pilot_batches  # noqa: E402
from ci_guard.ledger import open_ledger  # noqa: E402
from ci_guard.report.finops import Period  # noqa: E402

MARCH = datetime(2026, 3, 1, tzinfo=UTC)
APRIL = datetime(2026, 4, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 31, 18, tzinfo=UTC)
POLICY = """version: 1
rules:
  - name: all
    decision: allow
budgets:
  - {name: team-monthly, scope: team, period: month, limit_usd: 40000, alert_at: ["50%", "80%"]}
  - {name: repo-daily, scope: repo, period: day, limit_usd: 400}
"""


def load(urls: dict[str, str], calls: int) -> dict[str, float]:
    stores = {name: open_ledger(url) for name, url in urls.items()}
    spent = {name: 0.0 for name in urls}
    spent["generate"] = 0.0
    try:
        t0 = time.perf_counter()
        for runs, batch, outcomes in pilot_batches(MARCH, days=31, calls=calls, seed=15, batch_calls=50_000):
            spent["generate"] += time.perf_counter() - t0
            for name, store in stores.items():
                t1 = time.perf_counter()
                store.load_history(runs, batch, outcomes, now=APRIL)
                spent[name] += time.perf_counter() - t1
            t0 = time.perf_counter()
    finally:
        for store in stores.values():
            store.close()
    return spent


def report(url: str, dims: list[str]) -> str:
    store = open_ledger(url)
    try:
        return render_text(load_report(store, Period(MARCH, APRIL, "UTC", "2026-03"), dims))
    finally:
        store.close()


def dashboard(url: str, policy: object) -> str:
    from ci_guard.report.dashboard import build_dashboard, render_dashboard

    period = Period(MARCH, APRIL, "UTC", "2026-03")
    previous = period.previous()
    store = open_ledger(url)
    try:
        board = build_dashboard(store.period_runs(MARCH, APRIL),
                                store.period_runs(previous.start, previous.end, with_calls=False),
                                period, previous, policy=policy, now=NOW)
    finally:
        store.close()
    return render_dashboard(board)


def baseline(url: str) -> str | None:
    try:
        from ci_guard.report.baseline import render_baseline, suggest
    except ImportError:
        return None
    store = open_ledger(url)
    try:
        return render_baseline(suggest(store.period_runs(MARCH, APRIL), Period(MARCH, APRIL, "UTC", "2026-03")))
    finally:
        store.close()


def per_call(url: str) -> int:
    """The alternative: every call of the month as Python objects (the old dashboard's input)."""
    store = open_ledger(url)
    try:
        total = 0
        for call, _run in store.export_calls(MARCH, APRIL):
            total += int(call.cost_usd * 1_000_000)
        return total
    finally:
        store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--pg", default=os.environ.get("CI_GUARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-per-call", action="store_true", help="Skip the per-call alternative.")
    ap.add_argument("--per-call-rounds", type=int, default=1,
                    help="Rounds that also run the per-call alternative (it takes minutes at 1M calls).")
    args = ap.parse_args()

    from ci_guard.policy.loader import policy_from_text

    policy = policy_from_text(POLICY, "bench-policy.yml")
    workdir = Path(tempfile.mkdtemp(prefix="ci-guard-bench-finops-"))
    urls: dict[str, str] = {}
    schema = None
    for backend in args.backends.split(","):
        if backend == "sqlite":
            urls["sqlite"] = f"sqlite:///{workdir / 'ledger.db'}"
        elif backend == "postgres":
            schema = f"bench_finops_{secrets.token_hex(3)}"
            urls["postgres"] = f"{args.pg}?schema={schema}"
    print(f"generating and loading {args.calls:,} calls into {', '.join(urls)} ...", flush=True)
    loads = load(urls, args.calls)
    print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in loads.items()), flush=True)
    load1 = os.getloadavg()

    tasks = {
        "report --by team": lambda url: report(url, ["team"]),
        "report --by team,workflow": lambda url: report(url, ["team", "workflow"]),
        "baseline": baseline,
        "dashboard --policy": lambda url: dashboard(url, policy),
    }
    if not args.no_per_call:
        tasks["alternative: every call as an object (export_calls)"] = per_call
    times: dict[str, dict[str, list[float]]] = {t: {b: [] for b in urls} for t in tasks}
    round_loads = []
    for round_no in range(args.rounds):
        round_loads.append(round(os.getloadavg()[0], 1))
        for task, fn in tasks.items():  # interleaved: each round runs everything once per backend
            if fn is per_call and round_no >= args.per_call_rounds:
                continue
            for backend, url in urls.items():
                t0 = time.perf_counter()
                out = fn(url)
                elapsed = time.perf_counter() - t0
                if out is None:
                    times[task].pop(backend, None)
                    continue
                times[task][backend].append(elapsed)
    load2 = os.getloadavg()

    print(f"\n{args.calls:,} calls; {args.rounds} rounds; load average before {load1[0]:.1f}, after {load2[0]:.1f},"
          f" at the start of each round {round_loads}")
    header = f"{'what':<52}" + "".join(f"{b + ' median (min-max) s':>30}" for b in urls)
    print(header)
    print("-" * len(header))
    result: dict[str, object] = {"calls": args.calls, "rounds": args.rounds, "load": loads,
                                 "loadavg_before": load1, "loadavg_after": load2, "loadavg_rounds": round_loads,
                                 "results": {}}
    for task, per_backend in times.items():
        if not any(per_backend.values()):
            continue
        cells = []
        for backend in urls:
            samples = per_backend.get(backend) or []
            if samples:
                cells.append(f"{statistics.median(samples):.2f} ({min(samples):.2f}-{max(samples):.2f})")
            else:
                cells.append("-")
        print(f"{task:<52}" + "".join(f"{c:>30}" for c in cells))
        result["results"][task] = per_backend  # type: ignore[index]
    out = ROOT / "bench" / "results" / "finops.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {out}")
    if schema:
        import psycopg

        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    shutil.rmtree(workdir, ignore_errors=True)  # the month's SQLite ledger (~300 MB)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
