"""Ledger benchmark: budget checks and a month report over 1,000,000 recorded calls, and
reservation throughput under contention, on SQLite and PostgreSQL.

    python bench/bench_ledger.py                               # 1,000,000 calls, both backends
    python bench/bench_ledger.py --calls 100000 --backends sqlite
    python bench/bench_ledger.py --pg postgresql://postgres@127.0.0.1:5432/test
    python bench/bench_ledger.py --only-export --export-rounds 3 --with-old

Export: `ci-guard ledger export` of the month (the CLI, as a subprocess, to a file) against a
plain SQL dump of the same rows (the same join and columns, as CSV, by the database's own CLI:
`sqlite3 -csv` / psql's copy to CSV), and `ci-guard ledger dashboard` of the month, interleaved
over --export-rounds (wall and the child's CPU seconds, load average per round); --with-old also
times the row-by-row export this replaced (focus_rows over export_calls), once.

The data is one month of 50,000 runs x 20 calls over 50 repositories, bulk-loaded with
executemany (SQLite) and COPY (PostgreSQL) together with the rollups those calls imply, so the
load itself takes seconds, not the hours 1,000,000 record_call transactions would. Prints a table
and writes bench/results/ledger.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ci_guard.context.model import RunContext  # noqa: E402
from ci_guard.ledger import open_ledger  # noqa: E402
from ci_guard.ledger.budgets import budget_keys  # noqa: E402
from ci_guard.ledger.periods import period_bounds  # noqa: E402
from ci_guard.ledger.sqlstore import (  # noqa: E402
    CALL_COLS,
    EXPORT_CALL_COLS,
    EXPORT_ROW_RUN_COLS,
    RUN_COLS,
    TOKEN_COLS,
)

NOW = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
REPOS = [f"acme/repo-{i:02d}" for i in range(50)]
MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5", "gpt-5", "gpt-5-mini"]
CALLS_PER_RUN = 20
BUDGETS = [
    {"name": "org-monthly", "scope": "org", "period": "month", "limit_usd": "1000000"},
    {"name": "repo-daily", "scope": "repo", "period": "day", "limit_usd": "100000"},
    {"name": "agent-weekly", "scope": "agent", "period": "week", "limit_usd": "100000"},
]


def ts_sqlite(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _call_row(values: dict) -> list:
    """A calls row in CALL_COLS order; a column the bench does not set (added by a later schema) is NULL."""
    assert set(values) <= set(CALL_COLS), set(values) - set(CALL_COLS)
    return [values.get(c) for c in CALL_COLS]


def generate(n_calls: int):
    """Rows for runs, calls, run_budget_keys and rollups, spread over March 2026 up to NOW."""
    month_start, _ = period_bounds("month", "UTC", NOW)
    span = (NOW - month_start).total_seconds()
    n_runs = max(1, n_calls // CALLS_PER_RUN)
    runs, calls, run_keys, rollups = [], [], [], {}
    for r in range(n_runs):
        repo = REPOS[r % len(REPOS)]
        start = month_start + timedelta(seconds=span * r / n_runs)
        ctx = RunContext(org="acme", repo=repo, agent="pr-review")
        keys = budget_keys(BUDGETS, ctx, start)
        cost_run, tokens = 0, [0, 0, 0, 0, 0, 0]
        run_id = f"bench-{r:07d}"
        model = MODELS[r % len(MODELS)]
        for s in range(1, CALLS_PER_RUN + 1):
            at = start + timedelta(seconds=3 * s)
            usage = (1000 + s, 0, 0, 20000 + 100 * s, 300 + s, 50)
            micros = 12000 + 37 * s
            cost_run += micros
            tokens = [a + b for a, b in zip(tokens, usage, strict=True)]
            calls.append(_call_row({
                "run_id": run_id, "seq": s, "started_at": at, "ended_at": at, "provider": "anthropic",
                "endpoint": "messages", "model_requested": model, "model_served": model,
                **dict(zip(TOKEN_COLS, usage, strict=True)), "cost_micros": micros, "status": "ok", "http_status": 200,
                "stream": True, "tool_calls": 1, "context_tokens": sum(usage[:4]), "latency_ms": 850.0,
                "fingerprint": f"fp{s}", "is_turn": True, "web_searches": 0, "estimated": False,
                "context_saved_micros": 0}))
        runs.append([run_id, start, start + timedelta(minutes=2), "allow", "completed", "acme", None, repo, "alice",
                     "review.yml", "pr-review", None, "pull_request", r % 500, "feature", None, "github",
                     "protected-review", None, model, "{}", None, None, 0, None, True, None, CALLS_PER_RUN,
                     CALLS_PER_RUN, cost_run, *tokens, 0, 0, None])
        for k in keys:
            run_keys.append([run_id, k.budget, k.scope_key, k.period_start, k.period_end])
            bucket = rollups.setdefault((k.budget, k.scope_key, k.period_start),
                                        [k.period_end, int(k.limit_usd * 1_000_000), 0, 0, 0])
            bucket[2] += cost_run
            bucket[3] += CALLS_PER_RUN
            bucket[4] += 1
    rollup_rows = [[b, s, p, e, lim, spent, c, n, NOW] for (b, s, p), (e, lim, spent, c, n) in rollups.items()]
    return runs, calls, run_keys, rollup_rows


def load_sqlite(store, data) -> None:
    runs, calls, run_keys, rollups = data
    conn = store._conn  # the bench bypasses record_call on purpose: bulk load

    def conv(rows):
        return [[ts_sqlite(v) if isinstance(v, datetime) else (int(v) if isinstance(v, bool) else v) for v in row]
                for row in rows]

    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(f"INSERT INTO runs ({','.join(RUN_COLS)}) VALUES ({','.join('?' * len(RUN_COLS))})",
                     conv(runs))
    for i in range(0, len(calls), 100_000):
        conn.executemany(f"INSERT INTO calls ({','.join(CALL_COLS)}) VALUES ({','.join('?' * len(CALL_COLS))})",
                         conv(calls[i:i + 100_000]))
    conn.executemany("INSERT INTO run_budget_keys VALUES (?,?,?,?,?)", conv(run_keys))
    conn.executemany("INSERT INTO budget_rollups (budget, scope_key, period_start, period_end, limit_micros,"
                     " spent_micros, calls, runs, updated_at) VALUES (?,?,?,?,?,?,?,?,?)", conv(rollups))
    conn.execute("COMMIT")
    conn.execute("ANALYZE")


def load_postgres(store, data) -> None:
    runs, calls, run_keys, rollups = data
    conn = store._connection()
    with conn.transaction(), conn.cursor() as cur:
        for table, cols, rows in [("runs", RUN_COLS, runs), ("calls", CALL_COLS, calls),
                                  ("run_budget_keys", ("run_id", "budget", "scope_key", "period_start",
                                                       "period_end"), run_keys),
                                  ("budget_rollups", ("budget", "scope_key", "period_start", "period_end",
                                                      "limit_micros", "spent_micros", "calls", "runs",
                                                      "updated_at"), rollups)]:
            with cur.copy(f"COPY {table} ({','.join(cols)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    conn.execute("VACUUM ANALYZE")


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def contender(url: str, index: int, seconds: float, barrier, results) -> None:
    store = open_ledger(url)
    ctx = RunContext(org="acme", repo=REPOS[0], agent="pr-review")
    keys = budget_keys(BUDGETS, ctx, NOW)
    barrier.wait()
    done, t_end = 0, time.perf_counter() + seconds
    latencies = []
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        run_id = f"contender-{index}-{done}"
        store.reserve(run_id, keys, Decimal("0.50"), 600, NOW)
        store.settle(run_id)
        latencies.append((time.perf_counter() - t0) * 1000)
        done += 1
    store.close()
    results.put((done, latencies))


def contention(url: str, workers: int, seconds: float) -> dict:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    procs = [ctx.Process(target=contender, args=(url, i, seconds, barrier, results)) for i in range(workers)]
    for p in procs:
        p.start()
    got = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    total = sum(n for n, _ in got)
    lat = [x for _, ls in got for x in ls]
    return {"workers": workers, "seconds": seconds, "reserve_settle_pairs": total,
            "pairs_per_s": round(total / seconds, 1), "p50_ms": round(pct(lat, 0.5), 2),
            "p95_ms": round(pct(lat, 0.95), 2)}


def export_bench(name: str, url: str, store, rounds: int, with_old: bool) -> dict:
    """`ledger export` of the month against a plain SQL dump of the same rows, interleaved."""
    import subprocess

    from ci_guard.report.focus import focus_rows, write_focus_csv

    month_start, month_end = period_bounds("month", "UTC", NOW)
    cols = ", ".join([f"c.{c}" for c in EXPORT_CALL_COLS] + [f"r.{c}" for c in EXPORT_ROW_RUN_COLS])
    out = Path(tempfile.mkdtemp(prefix="cig-export-"))
    if name == "sqlite":
        where = f"c.started_at >= '{store._ts(month_start)}' AND c.started_at < '{store._ts(month_end)}'"
        sql = (f"SELECT {cols} FROM calls c JOIN runs r ON r.run_id = c.run_id WHERE {where}"
               " ORDER BY c.started_at, c.run_id, c.seq")
        dump = ["sqlite3", "-csv", store.path, sql]
    else:
        where = f"c.started_at >= '{month_start.isoformat()}' AND c.started_at < '{month_end.isoformat()}'"
        sql = (f"SELECT {cols} FROM {store.schema}.calls c JOIN {store.schema}.runs r ON r.run_id = c.run_id"
               f" WHERE {where} ORDER BY c.started_at, c.run_id, c.seq")
        dump = ["psql", store._conninfo, "-q", "-c", f"\\copy ({sql}) TO '{out / 'dump.csv'}' CSV"]
    times: dict[str, list[float]] = {"dump": [], "export": [], "dashboard": []}
    cpu: dict[str, list[float]] = {"dump": [], "export": [], "dashboard": []}  # user+sys of the child
    loads = []
    lines = {}
    dash = [sys.executable, "-m", "ci_guard", "ledger", "dashboard", "--ledger", url, "--month", f"{NOW:%Y-%m}",
            "-o", str(out / "dashboard.html")]
    for i in range(rounds):
        loads.append(round(os.getloadavg()[0], 1))
        for which in (("dump", "export", "dashboard") if i % 2 == 0 else ("export", "dump", "dashboard")):
            t0, c0 = time.perf_counter(), os.times()
            if which == "dump":
                with open(out / "dump.csv", "wb") as fh:
                    subprocess.run(dump, check=True, stdout=fh if name == "sqlite" else subprocess.DEVNULL)
            elif which == "export":
                subprocess.run([sys.executable, "-m", "ci_guard", "ledger", "export", "--ledger", url, "--month",
                                f"{NOW:%Y-%m}", "-o", str(out / "focus.csv")], check=True, capture_output=True)
            else:
                subprocess.run(dash, check=True, capture_output=True)
            times[which].append(time.perf_counter() - t0)
            c1 = os.times()
            cpu[which].append(round(c1.children_user - c0.children_user + c1.children_system - c0.children_system, 2))
    for f in ("dump.csv", "focus.csv"):
        with open(out / f, "rb") as fh:
            lines[f] = sum(1 for _ in fh)
    result = {"rounds": rounds, "load_avg_1m": loads, "dump_s": [round(t, 2) for t in times["dump"]],
              "export_s": [round(t, 2) for t in times["export"]],
              "dashboard_s": [round(t, 2) for t in times["dashboard"]], "cpu_s": cpu,
              "ratio_p50": round(statistics.median(times["export"]) / statistics.median(times["dump"]), 2),
              "cpu_ratio_p50": (round(statistics.median(cpu["export"]) / statistics.median(cpu["dump"]), 2)
                                if statistics.median(cpu["dump"]) > 0 else None),
              "rows_dump": lines["dump.csv"], "rows_export": lines["focus.csv"] - 1}
    if with_old:
        t0 = time.perf_counter()
        with open(out / "old.csv", "w") as fh:
            write_focus_csv(focus_rows(store.export_calls(month_start, month_end)), fh)
        result["old_export_s"] = round(time.perf_counter() - t0, 2)
        result["old_output_identical"] = (out / "old.csv").read_bytes() == (out / "focus.csv").read_bytes()
    shutil.rmtree(out, ignore_errors=True)
    return result


def bench_backend(name: str, url: str, n_calls: int, workers: int, seconds: float,
                  export_rounds: int = 0, with_old: bool = False, only_export: bool = False) -> dict:
    store = open_ledger(url)
    t0 = time.perf_counter()
    data = generate(n_calls)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    (load_sqlite if name == "sqlite" else load_postgres)(store, data)
    # every run here is finished: give it the rollup finish_run writes (what the dashboard reads)
    run_ids = [r[0] for r in data[0]]
    store._op(lambda tx: store._roll_up(tx, run_ids))
    load_s = time.perf_counter() - t0
    del data
    if only_export:
        result = {"backend": name, "calls": n_calls, "load_s": round(load_s, 1),
                  "export": export_bench(name, url, store, export_rounds, with_old)}
        store.close()
        return result
    ctx = RunContext(org="acme", repo=REPOS[7], agent="pr-review")
    status = store.budget_status(BUDGETS, ctx, NOW)
    assert status[0].spent_usd > 0, "the bench data did not land in the rollups"
    check = timed(lambda: store.budget_status(BUDGETS, ctx, NOW), 300)
    month_start, month_end = period_bounds("month", "UTC", NOW)
    report = timed(lambda: store.report(month_start, month_end, "repo"), 10)
    scan_sql = ("SELECT model_served, COUNT(*), SUM(cost_micros) FROM calls WHERE started_at >= ?"
                " AND started_at < ? GROUP BY model_served")
    scan = timed(lambda: store._op(lambda tx: tx.all(scan_sql, (store._ts(month_start), store._ts(month_end))),
                                   write=False), 3)
    store.close()
    return {
        "backend": name, "calls": n_calls, "generate_s": round(gen_s, 1),
        "load_s": round(load_s, 1),
        "budget_check_ms": {"p50": round(pct(check, 0.5), 3), "p95": round(pct(check, 0.95), 3),
                            "mean": round(statistics.mean(check), 3), "budgets": len(BUDGETS)},
        "month_report_ms": {"p50": round(pct(report, 0.5), 1), "max": round(max(report), 1)},
        "month_call_scan_ms": {"p50": round(pct(scan, 0.5), 1)},
        "contention": contention(url, workers, seconds),
        **({"export": export_bench(name, url, open_ledger(url), export_rounds, with_old)} if export_rounds else {}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--pg", default=os.environ.get("CI_GUARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--workers", type=int, default=8, help="processes racing for reservations")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of the contention run")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "ledger.json"))
    parser.add_argument("--export-rounds", type=int, default=3, help="rounds of export vs plain dump (0: none)")
    parser.add_argument("--with-old", action="store_true", help="also time the row-by-row export once")
    parser.add_argument("--only-export", action="store_true", help="load, then time only the export")
    args = parser.parse_args()
    extra = {"export_rounds": args.export_rounds, "with_old": args.with_old, "only_export": args.only_export}
    results = []
    for name in args.backends.split(","):
        if name == "sqlite":
            tmp = tempfile.mkdtemp(prefix="cig-bench-")
            try:
                results.append(bench_backend(name, f"sqlite:///{tmp}/ledger.db", args.calls, args.workers,
                                             args.seconds, **extra))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)  # the month's SQLite ledger (~290 MB)
        else:
            import psycopg

            schema = f"cig_bench_{os.getpid()}"
            try:
                results.append(bench_backend(name, f"{args.pg}?schema={schema}", args.calls, args.workers,
                                             args.seconds, **extra))
            finally:
                with psycopg.connect(args.pg, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    for r in results:
        if "export" in r:
            e = r["export"]
            print(f"{r['backend']}: ledger export of {e['rows_export']:,} calls "
                  f"{' / '.join(f'{t:.1f}' for t in e['export_s'])} s, plain SQL dump of the same rows "
                  f"{' / '.join(f'{t:.1f}' for t in e['dump_s'])} s ({e['rows_dump']:,} rows): "
                  f"ratio of medians {e['ratio_p50']} (CPU {e['cpu_ratio_p50']}); ledger dashboard "
                  f"{' / '.join(f'{t:.1f}' for t in e['dashboard_s'])} s; load {e['load_avg_1m']}"
                  + (f"; row-by-row export before: {e['old_export_s']} s (identical output: "
                     f"{e['old_output_identical']})" if "old_export_s" in e else ""))
    if args.only_export:
        results_only = {"command": " ".join(["python", "bench/bench_ledger.py", *sys.argv[1:]]),
                        "measured_at": datetime.now(UTC).isoformat(), "load_avg": os.getloadavg(), "results": results}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results_only, indent=2) + "\n")
        return 0
    print(f"{'backend':<9} {'calls':>9} {'load s':>7} {'check p50/p95 ms':>17} {'report ms':>10} "
          f"{'call scan ms':>13} {'reserve+settle/s':>17} {'p95 ms':>7}")
    for r in results:
        c = r["contention"]
        print(f"{r['backend']:<9} {r['calls']:>9,} {r['load_s']:>7} "
              f"{r['budget_check_ms']['p50']:>8}/{r['budget_check_ms']['p95']:<8} {r['month_report_ms']['p50']:>10} "
              f"{r['month_call_scan_ms']['p50']:>13} {c['pairs_per_s']:>11} ({c['workers']}p) {c['p95_ms']:>7}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    payload = {"command": " ".join(["python", "bench/bench_ledger.py", *sys.argv[1:]]),
               "measured_at": datetime.now(UTC).isoformat(), "load_avg": os.getloadavg(), "results": results}
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
