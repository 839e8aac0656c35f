"""The ledger writer process: order, durability when either side dies, spills, secrets."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.errors import LedgerError, LedgerUnavailableError
from ci_guard.ledger import open_ledger
from ci_guard.ledger.records import CallRecord, RunRecord
from ci_guard.meter.recorder import LedgerRecorder, ProcessLedgerRecorder, open_recorder
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


def recorded(url: str) -> list[int]:
    store = open_ledger(url)
    try:
        return [c.seq for c in store.list_calls("run-w")]
    finally:
        store.close()


def wait_exit(rec: ProcessLedgerRecorder, timeout: float = 10.0) -> int | None:
    deadline = time.monotonic() + timeout
    while rec._proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return rec._proc.poll()


def test_calls_are_written_in_order_and_the_writer_exits_on_close(ledger, tmp_path):
    rec = ProcessLedgerRecorder(ledger, str(tmp_path / "spill.jsonl"))
    for seq in range(1, 101):
        rec.record_call(a_call(seq))
    rec.flush()
    assert recorded(ledger) == list(range(1, 101))  # flushed: all written, nothing held back
    rec.call("finish_run", "run-w", "completed", None, NOW)
    rec.close()
    assert rec._proc.returncode == 0 and rec.failures == 0 and not (tmp_path / "spill.jsonl").exists()
    store = open_ledger(ledger)
    try:
        run = store.get_run("run-w")
        assert (run.status, run.turns, run.cost_usd) == ("completed", 100, Decimal("0.0123"))
    finally:
        store.close()


def test_when_the_proxy_dies_the_writer_still_writes_what_it_received(ledger):
    rec = ProcessLedgerRecorder(ledger)
    for seq in range(1, 51):
        rec.record_call(a_call(seq))
    rec._conn.close()  # as if ci-guard were SIGKILLed: no close message, just end of file
    assert wait_exit(rec) == 0
    assert recorded(ledger) == list(range(1, 51))


def test_the_writer_outlives_a_sigterm_to_the_job(ledger):
    rec = ProcessLedgerRecorder(ledger)
    os.kill(rec._proc.pid, signal.SIGTERM)  # a cancelled CI job signals the whole process group
    os.kill(rec._proc.pid, signal.SIGINT)
    time.sleep(0.2)
    rec.record_call(a_call(1))
    rec.close()
    assert recorded(ledger) == [1]


def test_a_dead_writer_is_taken_over_without_losing_or_doubling_a_call(ledger, tmp_path, caplog):
    rec = ProcessLedgerRecorder(ledger, str(tmp_path / "spill.jsonl"))
    for seq in range(1, 6):
        rec.record_call(a_call(seq))
    rec._proc.kill()  # some of these may never have been written
    rec._proc.wait()
    with caplog.at_level(logging.WARNING, logger="ci_guard.meter"):
        for seq in range(6, 11):
            rec.record_call(a_call(seq))
        rec.call("finish_run", "run-w", "completed", None, NOW)
        rec.close()
    assert recorded(ledger) == list(range(1, 11))
    store = open_ledger(ledger)
    try:
        assert store.get_run("run-w").turns == 10  # the resent calls counted once
    finally:
        store.close()
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("exited unexpectedly" in w for w in warnings) == 1 and rec.failures == 0
    assert not (tmp_path / "spill.jsonl").exists()


def test_when_the_ledger_is_gone_too_calls_go_to_the_spill_file(ledger, tmp_path, caplog, monkeypatch):
    spill = tmp_path / "spill.jsonl"
    rec = ProcessLedgerRecorder(ledger, str(spill))
    rec.record_call(a_call(1))
    rec.flush()
    rec._proc.kill()
    rec._proc.wait()

    def unreachable(url=None, **kw):
        raise LedgerUnavailableError("the database went away")

    monkeypatch.setattr("ci_guard.ledger.open_ledger", unreachable)
    with caplog.at_level(logging.WARNING, logger="ci_guard.meter"):
        for seq in range(2, 12):
            rec.record_call(a_call(seq))
        with pytest.raises(LedgerError, match="unreachable"):
            rec.call("finish_run", "run-w", "completed", None, NOW)
        rec.close()
    monkeypatch.undo()
    assert recorded(ledger) == [1]
    assert [json.loads(line)["seq"] for line in spill.read_text().splitlines()] == list(range(2, 12))
    assert rec.failures == 10
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("exited unexpectedly" in w for w in warnings) == 1
    assert any("10 calls in all" in w for w in warnings)


def test_a_ledger_that_cannot_be_opened_fails_at_start_without_the_password(tmp_path):
    url = "postgresql://ci:s3cret-pass-word@127.0.0.1:1/nope"  # nothing listens on port 1
    with pytest.raises(LedgerUnavailableError) as info:
        ProcessLedgerRecorder(url)
    assert "s3cret-pass-word" not in info.value.render()


def test_the_url_is_not_on_the_writers_command_line(tmp_path):
    url = f"sqlite:///{tmp_path}/secret-name-ledger.db"
    rec = ProcessLedgerRecorder(url)
    try:
        cmdline = Path(f"/proc/{rec._proc.pid}/cmdline").read_bytes()
        assert b"secret-name-ledger" not in cmdline and b"ci_guard.meter.ledger_writer" in cmdline
    finally:
        rec.close()


def test_store_errors_come_back_as_ledger_errors(ledger):
    rec = ProcessLedgerRecorder(ledger)
    try:
        with pytest.raises(LedgerError, match="not in the ledger"):
            rec.call("finish_run", "no-such-run", "completed", None, NOW)
        assert rec.call("get_run", "run-w").repo == "acme/web"  # results come back whole
    finally:
        rec.close()


def test_open_recorder_picks_the_writer(ledger, monkeypatch):
    assert not open_recorder(None, None).enabled
    rec = open_recorder(ledger, None)
    assert isinstance(rec, ProcessLedgerRecorder)
    rec.close()
    monkeypatch.setenv("CI_GUARD_LEDGER_WRITER", "thread")
    rec = open_recorder(ledger, None)
    assert isinstance(rec, LedgerRecorder) and rec.enabled
    rec.close()
