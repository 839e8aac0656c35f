"""The ledger recorder: calls written in order off the event loop, store errors, the spill file."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.errors import LedgerError
from ci_guard.ledger import open_ledger
from ci_guard.ledger.records import CallRecord, RunRecord
from ci_guard.meter.recorder import LedgerRecorder, open_recorder
from ci_guard.pricing.usage import Usage

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


def a_call(seq: int, run_id: str = "run-w") -> CallRecord:
    return CallRecord(run_id, seq, NOW, NOW, "anthropic", "messages", "claude-sonnet-4-5", "claude-sonnet-4-5",
                      Usage(input_tokens=10 * seq, output_tokens=seq), Decimal("0.000123"))


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/ledger.db"
    store = open_ledger(url)
    store.start_run(RunRecord(run_id="run-w", started_at=NOW, repo="acme/web"))
    store.close()
    return url


def test_calls_are_written_in_order_on_one_thread_then_the_run_is_finished(ledger, tmp_path):
    rec = open_recorder(ledger, str(tmp_path / "spill.jsonl"))
    caller = threading.get_ident()
    seen: list[tuple[int, int]] = []  # (thread, calls written by one store call)
    store = rec._writer.store
    one, many = store.record_call, store.record_calls

    def spy_one(call):
        seen.append((threading.get_ident(), 1))
        one(call)

    def spy_many(calls):
        seen.append((threading.get_ident(), len(calls)))
        many(calls)

    store.record_call, store.record_calls = spy_one, spy_many
    for seq in range(1, 101):
        rec.record_call(a_call(seq))  # returns at once
    rec.flush()
    threads = {t for t, _ in seen}
    assert sum(n for _, n in seen) == 100 and threads != {caller} and len(threads) == 1  # one thread, not ours
    rec.call("finish_run", "run-w", "completed", None, NOW)
    rec.close()
    assert rec.failures == 0 and not (tmp_path / "spill.jsonl").exists()
    store = open_ledger(ledger)
    try:
        assert [c.seq for c in store.list_calls("run-w")] == list(range(1, 101))
        run = store.get_run("run-w")
        assert (run.status, run.turns, run.cost_usd) == ("completed", 100, Decimal("0.0123"))
    finally:
        store.close()


def test_store_errors_reach_the_caller_of_call(ledger):
    rec = open_recorder(ledger, None)
    try:
        with pytest.raises(LedgerError, match="not in the ledger"):
            rec.call("finish_run", "no-such-run", "completed", None, NOW)
        assert rec.call("get_run", "run-w").repo == "acme/web"
    finally:
        rec.close()


def test_calls_the_ledger_refuses_go_to_the_spill_file_and_are_reported_once(ledger, tmp_path, caplog):
    spill = tmp_path / "spill.jsonl"
    rec = open_recorder(ledger, str(spill))
    rec.record_call(a_call(1))
    rec.flush()
    with caplog.at_level(logging.WARNING, logger="ci_guard.meter"):
        for seq in range(2, 12):
            rec.record_call(a_call(seq, run_id="not-started"))  # the store refuses these
        rec.close()
    assert [json.loads(line)["seq"] for line in spill.read_text().splitlines()] == list(range(2, 12))
    assert rec.failures == 10
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and "10 calls in all" in warnings[1]


def test_without_a_ledger_the_recorder_does_nothing():
    rec = open_recorder(None, None)
    assert not rec.enabled and rec.record_call(a_call(1)).done() and rec.call("finish_run") is None
    rec.flush()
    rec.close()
    assert isinstance(rec, LedgerRecorder)


def test_calls_queued_while_the_ledger_is_busy_share_one_transaction(ledger):
    rec = open_recorder(ledger, None)
    release = threading.Event()
    rec._pool.submit(release.wait)  # the ledger thread is busy (a slow commit, say)
    futures = [rec.record_call(a_call(seq)) for seq in range(1, 21)]
    assert len({id(f) for f in futures}) == 1  # all wait for the same write
    batches: list[int] = []
    store = rec._writer.store
    many = store.record_calls
    store.record_calls = lambda calls: (batches.append(len(calls)), many(calls))
    release.set()
    futures[-1].result(10)
    assert batches == [20]
    rec.close()
    store = open_ledger(ledger)
    try:
        assert [c.seq for c in store.list_calls("run-w")] == list(range(1, 21))
        assert store.get_run("run-w").turns == 20
    finally:
        store.close()


def test_one_bad_call_in_a_batch_does_not_take_the_others_down(ledger, tmp_path):
    spill = tmp_path / "spill.jsonl"
    rec = open_recorder(ledger, str(spill))
    release = threading.Event()
    rec._pool.submit(release.wait)
    rec.record_call(a_call(1))
    rec.record_call(a_call(2, run_id="not-started"))  # refused by the store: its run does not exist
    rec.record_call(a_call(3))
    release.set()
    rec.close()
    assert [json.loads(line)["seq"] for line in spill.read_text().splitlines()] == [2]
    store = open_ledger(ledger)
    try:
        assert [c.seq for c in store.list_calls("run-w")] == [1, 3]
    finally:
        store.close()
