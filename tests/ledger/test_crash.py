"""A call is durable once record_call returns, even if the process is SIGKILLed right after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

from ci_guard.ledger import open_ledger

ROOT = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent("""
    import sys, time
    from ci_guard.ledger import open_ledger
    from ci_guard.ledger.budgets import budget_keys
    from tests.ledger.factories import BUDGETS, CTX, NOW, call, run

    store = open_ledger(sys.argv[1])
    store.start_run(run("doomed"), budget_keys(BUDGETS, CTX, NOW))
    store.record_call(call("doomed", 1, "0.42"))
    print("written", flush=True)
    time.sleep(120)  # killed here, with the connection still open
""")


def test_call_survives_sigkill(ledger_url):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, ledger_url], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "written"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    store = open_ledger(ledger_url)
    calls = store.list_calls("doomed")
    assert [(c.seq, c.cost_usd) for c in calls] == [(1, Decimal("0.42"))]
    assert store.get_run("doomed").cost_usd == Decimal("0.42")
    store.close()
