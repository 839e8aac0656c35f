"""One run's ledger traffic for bench_fleet.py's writer rounds, without the proxy or the agent.

    python bench/fleet_writer.py LEDGER_URL RUN_ID CALLS GO_FILE MARK_FILE [BATCH]

Opens the ledger, reserves $50 on the org budget and starts the run (as `ci-guard run` does), waits
until GO_FILE exists (so every writer starts together), then records CALLS calls one transaction
each -- what the proxy's ledger thread does when calls do not queue up -- or BATCH calls a
transaction (what it does when they queue behind a commit), and settles. Writes wall times (go,
last commit, settled) and the CPU seconds the calls cost this process and, on PostgreSQL on this
machine, its server backend (from /proc) to MARK_FILE as JSON: the CPU per call does not depend on
how loaded the machine is, the wall times do. Run with PYTHONPATH=DIR to time another
version of ci_guard.
"""

import json
import os
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal

from ci_guard.context.model import RunContext
from ci_guard.ledger import open_ledger
from ci_guard.ledger.budgets import budget_keys
from ci_guard.ledger.records import CallRecord, RunRecord
from ci_guard.pricing.usage import Usage

BUDGETS = [{"name": "org-month", "scope": "org", "period": "month", "limit_usd": "1000000"}]


def main() -> None:
    url, run_id, calls, go, mark = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    batch = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    now = datetime.now(UTC)
    store = open_ledger(url)
    keys = budget_keys(BUDGETS, RunContext(org="fleet", repo="fleet/repo"), now)
    store.reserve(run_id, keys, Decimal(50), 3600, now)
    store.start_run(RunRecord(run_id=run_id, started_at=now, org="fleet", repo="fleet/repo"), keys)
    usage = Usage(input_tokens=300, output_tokens=64)
    with open(mark + ".ready", "w"):  # started: the parent says go once every writer is here
        pass
    while not os.path.exists(go):
        time.sleep(0.001)
    backend = _backend_cpu(store)
    times = {"go": time.time()}
    cpu = time.process_time()
    for first in range(1, calls + 1, batch):
        at = datetime.now(UTC)
        rows = [CallRecord(run_id=run_id, seq=seq, started_at=at, ended_at=at, provider="anthropic",
                           endpoint="messages", model_requested="claude-sonnet-4-5", model_served="claude-sonnet-4-5",
                           usage=usage, cost_usd=Decimal("0.00186"))
                for seq in range(first, min(first + batch, calls + 1))]
        if batch == 1:
            store.record_call(rows[0])
        else:
            store.record_calls(rows)
    times["last_commit"] = time.time()
    times["client_cpu_s"] = time.process_time() - cpu
    times["server_cpu_s"] = _backend_cpu(store) - backend if backend is not None else None
    store.settle(run_id)
    times["settled"] = time.time()
    store.close()
    with open(mark, "w") as fh:
        json.dump(times, fh)


def _backend_cpu(store) -> float | None:
    """CPU seconds used so far by the store's PostgreSQL backend process (a server on this machine)."""
    conn = getattr(store, "_conn", None)
    pid = getattr(getattr(conn, "info", None), "backend_pid", None)
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


if __name__ == "__main__":
    main()
