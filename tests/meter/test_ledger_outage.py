"""Issue 12 #8: a ledger outage mid-run. `on_ledger_error: deny` applies mid-run, spilled calls are
replayed into the budgets when the ledger is back (and at the next start), the run never stays
`running`. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.context.model import RunContext
from ci_guard.ledger import open_ledger
from ci_guard.ledger.sqlstore import SqlStore
from ci_guard.meter.lifecycle import spill_path
from ci_guard.meter.runner import EXIT_INFRASTRUCTURE, RunRequest, run_agent
from ci_guard.meter.upstreams import Upstreams
from ci_guard.policy.models import Budget
from ci_guard.simulator.server import Simulator, run_simulator

KEY = "sk-ant-api03-ledger-outage-real-key-0123456789"
POLICY = textwrap.dedent("""
    version: 1
    models: {small: claude-haiku-4-5}
    budgets:
      - {name: repo-daily, scope: repo, period: day, limit_usd: 40}
    defaults:
      model: small
      limits: {max_turns: 20, max_cost_usd: 1.00, max_runtime: 2m}
    enforcement: {on_ledger_error: ON_ERROR}
    rules:
      - {name: allow, decision: allow}
""")
AGENT = [sys.executable, "-m", "ci_guard.demo.agent"]
CTX = RunContext(platform="local", repo="acme/web", org="acme", pr=1, agent="pr-review")


class Outage:
    """Makes the ledger's writes fail: the next ``calls`` call writes, or every finish while ``down``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.failing_calls = 0
        self.down = False
        self.failed = threading.Event()  # a write has failed
        real_calls, real_finish = SqlStore.record_calls, SqlStore.finish_run

        def record_calls(store, calls):
            if self.down or self.failing_calls > 0:
                self.failing_calls -= 1
                self.failed.set()
                raise OSError("connection to the ledger lost")
            return real_calls(store, calls)

        def finish_run(store, *args, **kwargs):
            if self.down:
                raise OSError("connection to the ledger lost")
            return real_finish(store, *args, **kwargs)

        monkeypatch.setattr(SqlStore, "record_calls", record_calls)
        monkeypatch.setattr(SqlStore, "finish_run", finish_run)

    def hold_the_model_until_a_write_failed(self, monkeypatch: pytest.MonkeyPatch, after_call: int) -> None:
        """The model answers call ``after_call + 1`` only once a ledger write has failed.

        A failure is known once the ledger thread has tried the write; a model that answers in
        microseconds (the simulator, on a loaded CI machine) could otherwise serve every turn first.
        Real models take seconds per call, and this makes the test as deterministic as they are.
        """
        real_generate = Simulator._generate

        async def generate(sim, request, endpoint):
            if sim.calls >= after_call:
                await asyncio.get_running_loop().run_in_executor(None, self.failed.wait, 10)
            return await real_generate(sim, request, endpoint)

        monkeypatch.setattr(Simulator, "_generate", generate)


def _run(tmp_path: Path, url: str, sim, on_error: str, scenario_calls: int = 0) -> object:
    (tmp_path / "policy.yml").write_text(POLICY.replace("ON_ERROR", on_error))
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY}
    return run_agent(RunRequest(
        policy_path=str(tmp_path / "policy.yml"), context=CTX, command=AGENT, ledger_url=url, preset="none",
        upstreams=Upstreams(anthropic=sim.url, openai=sim.openai_url, anthropic_api_key=KEY, openai_api_key=KEY),
        summary_path=str(tmp_path / "summary.json"), quiet=True, environ=env, cwd=str(tmp_path),
        grace_s=0.5, kill_after_s=2))


def _spent(url: str) -> tuple[Decimal, Decimal]:
    store = open_ledger(url)
    try:
        (status,) = store.budget_status([Budget(name="repo-daily", scope="repo", period="day", limit_usd=40)],
                                        CTX, datetime.now(UTC))
        return status.spent_usd, status.reserved_usd
    finally:
        store.close()


def test_deny_stops_the_run_mid_way_and_the_spilled_call_reaches_the_budget(tmp_path, any_ledger, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNNER_TEMP", str(tmp_path))  # the spill directory: $RUNNER_TEMP/ci-guard/spill
    outage = Outage(monkeypatch)
    # the first two writes fail, then the ledger is back: whether the first calls were written one by
    # one or as a batch (which is retried call by call), the first call's own write fails
    outage.failing_calls = 2
    outage.hold_the_model_until_a_write_failed(monkeypatch, after_call=2)
    with run_simulator("endless-loop", api_key=KEY) as sim:
        outcome = _run(tmp_path, any_ledger, sim, "deny")
        served = len([r for r in sim.served if r["usage"]])
    summary = outcome.summary
    assert outcome.exit_code == EXIT_INFRASTRUCTURE and summary.stop_reason == "ledger_error"
    assert served < 20  # stopped by the outage (the failure is known once the call's row is written),
    # not left to run into max_turns
    store = open_ledger(any_ledger)
    try:
        run = store.get_run(summary.run_id)
        calls = store.list_calls(summary.run_id)
    finally:
        store.close()
    assert run.status == "error" and len([c for c in calls if c.status != "refused"]) == served  # replayed
    assert _spent(any_ledger) == (summary.cost_usd, 0) and summary.cost_usd > 0
    assert not Path(spill_path(summary.run_id)).exists()


def test_a_ledger_down_to_the_end_is_replayed_at_the_next_start(tmp_path, any_ledger, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNNER_TEMP", str(tmp_path))  # the spill directory: $RUNNER_TEMP/ci-guard/spill
    outage = Outage(monkeypatch)
    with run_simulator("tool-loop", api_key=KEY) as sim:
        outage.down = True  # the run starts fine, then every write fails until it has ended
        sim_first = _run_with_outage_after_start(tmp_path, any_ledger, sim, outage)
        first = sim_first.summary
        spill = Path(spill_path(first.run_id))
        assert spill.exists() and first.cost_usd > 0 and tmp_path in spill.parents
        store = open_ledger(any_ledger)
        try:
            assert store.get_run(first.run_id).status == "running"  # what the outage left behind
        finally:
            store.close()
        outage.down = False
        second = _run(tmp_path, any_ledger, sim, "allow").summary
    store = open_ledger(any_ledger)
    try:
        run = store.get_run(first.run_id)
        assert run.status == "completed" and run.cost_usd == first.cost_usd
        assert len(store.list_calls(first.run_id)) == len(first.calls)
    finally:
        store.close()
    assert _spent(any_ledger) == (first.cost_usd + second.cost_usd, 0)
    assert not spill.exists()


def _run_with_outage_after_start(tmp_path, url, sim, outage):
    # prepare_run writes the run row through start_run (not patched); calls and the finish fail.
    return _run(tmp_path, url, sim, "allow")
