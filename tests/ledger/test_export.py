"""`ci-guard ledger export`: the ledger as FinOps FOCUS rows, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from ci_guard.errors import LedgerError
from ci_guard.ledger.sqlstore import SqlStore
from ci_guard.report import focus, focus_sql
from ci_guard.report.focus import COLUMNS
from tests.helpers import run_cli
from tests.ledger.factories import NOW, call, run

# FOCUS columns that must never be null (Mandatory, "Allows nulls: False" in the 1.2 specification)
NOT_NULL = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "BillingCurrency", "BillingAccountId",
            "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory",
            "ChargeFrequency", "InvoiceIssuerName", "ProviderName", "PublisherName", "ServiceProviderName",
            "HostProviderName", "ServiceName", "ServiceCategory")


def seed(store) -> list[Decimal]:
    """Two March runs (one with web searches on a priority tier), and one call in April."""
    store.start_run(run("r-a", team="payments", workflow="review.yml"))
    store.start_run(run("r-b", pr=None, agent="test-repair"))
    march = [
        call("r-a", 1, "0.123457", at=NOW),
        call("r-a", 2, "0.000001", at=NOW + timedelta(seconds=5), web_searches=2, service_tier="priority",
             provider="openai", endpoint="responses", model_served="gpt-5", model_requested="gpt-5"),
        call("r-b", 1, "1.5", at=NOW + timedelta(seconds=1)),
    ]
    for c in march:
        store.record_call(c)
    store.record_call(call("r-b", 2, "9", at=NOW.replace(month=4, day=2)))
    return [c.cost_usd for c in march]


def test_a_month_exports_as_focus_rows_with_exact_costs(store, ledger_url, tmp_path, capsys):
    costs = seed(store)
    target = tmp_path / "focus.csv"
    code, _, err = run_cli(capsys, "ledger", "export", "--ledger", ledger_url, "--month", "2026-03", "-o", str(target))
    assert code == 0 and "3 calls" in err
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert list(rows[0]) == list(COLUMNS)
    assert [(r["x_RunId"], r["x_CallSeq"]) for r in rows] == [("r-a", "1"), ("r-b", "1"), ("r-a", "2")]  # by time
    assert sum(Decimal(r["BilledCost"]) for r in rows) == sum(costs) == Decimal("1.623458")
    for row in rows:
        assert all(row[c] for c in NOT_NULL), [c for c in NOT_NULL if not row[c]]
        assert row["BillingPeriodStart"] == "2026-03-01T00:00:00Z" and row["BillingPeriodEnd"] == "2026-04-01T00:00:00Z"
        assert row["ChargePeriodEnd"] > row["ChargePeriodStart"]  # exclusive end, even for an instant call
        assert row["ChargeCategory"] == "Usage" and row["ServiceCategory"] == "AI and Machine Learning"
    first, _, searched = rows
    assert (first["ProviderName"], first["ServiceName"], first["SubAccountId"]) == ("Anthropic", "Claude API",
                                                                                    "acme/api")
    assert json.loads(first["Tags"])["ci-guard/team"] == "payments"
    assert first["ConsumedQuantity"] == "2150" and first["ConsumedUnit"] == "Tokens"  # 100 + 2,000 in, 50 out
    details = json.loads(searched["SkuPriceDetails"])
    assert (details["web_searches"], details["service_tier"]) == (2, "priority")
    assert searched["ProviderName"] == "OpenAI" and searched["SkuId"] == "gpt-5"


def test_jsonl_to_stdout_and_an_empty_month(store, ledger_url, capsys):
    seed(store)
    code, out, _ = run_cli(capsys, "ledger", "export", "--ledger", ledger_url, "--month", "2026-04",
                           "--format", "focus-jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [(r["x_RunId"], r["BilledCost"]) for r in rows] == [("r-b", "9.000000")]
    assert rows[0]["ListUnitPrice"] is None  # a null, not an empty string, in JSON
    code, out, _ = run_cli(capsys, "ledger", "export", "--ledger", ledger_url, "--month", "2026-05")
    assert code == 0 and out.strip() == ",".join(COLUMNS)  # a header and nothing else


def test_paging_reads_every_call_once_in_order(store):
    store.start_run(run("r-p"))
    for seq in range(1, 12):  # same start time for several calls: the keyset must not skip or repeat
        store.record_call(call("r-p", seq, "0.01", at=NOW + timedelta(seconds=seq // 3)))
    got = [(c.run_id, c.seq) for c, _ in SqlStore.export_calls(store, NOW, NOW + timedelta(days=1), page=2)]
    assert got == [("r-p", s) for s in range(1, 12)]


def test_a_failed_export_leaves_no_file_behind(store, ledger_url, tmp_path, capsys, monkeypatch):
    seed(store)
    target = tmp_path / "focus.csv"
    target.write_text("the previous export\n")

    def broken(rows, out):
        out.write("BilledCost\n0.1\n")
        raise LedgerError("the database went away mid-export")

    def broken_month(store, start, end, out):
        return broken(None, out)

    monkeypatch.setattr(focus_sql, "write_focus_csv_month", broken_month)
    code, _, err = run_cli(capsys, "ledger", "export", "--ledger", ledger_url, "--month", "2026-03",
                           "-o", str(target))
    assert code != 0 and "went away mid-export" in err and "Traceback" not in err
    assert target.read_text() == "the previous export\n"
    assert [p.name for p in Path(tmp_path).iterdir() if p.name.startswith(".")] == []


def test_a_bad_month_is_invalid_input(ledger_url, capsys):
    code, _, err = run_cli(capsys, "ledger", "export", "--ledger", ledger_url, "--month", "March")
    assert code == 2 and "YYYY-MM" in err


def test_the_bulk_writers_match_the_row_by_row_export_byte_for_byte(store, monkeypatch):
    """The month is formatted from plain tuples (Store.export_rows); nothing may differ from focus_row."""
    from ci_guard.pricing.usage import Usage

    store.start_run(run("r-1", team="pay,ments", workflow='a "quoted" name'))
    store.start_run(run("r-2", pr=None, agent=None, repo="acme/web\nnewline", outcome="merged"))
    store.start_run(run("r-3", repo=None, pr=None))
    odd = {"model_served": None, "model_requested": 'gpt,"5"', "provider": "mistral", "endpoint": "chat"}
    calls = [
        call("r-1", 1, "0.123457", at=NOW.replace(microsecond=0)),  # a whole second: its own end + 1 s
        call("r-1", 2, "12.000001", at=NOW + timedelta(microseconds=999_999), service_tier="priority",
             web_searches=3, usage=Usage(input_tokens=7, cache_write_tokens=5, cache_write_1h_tokens=2,
                                         cache_read_tokens=11, output_tokens=13, reasoning_tokens=1)),
        call("r-2", 1, "0", at=NOW + timedelta(seconds=1, microseconds=5), **odd),
        call("r-2", 2, "0.5", at=NOW + timedelta(seconds=2), context={"method": "estimated", "pruned_tokens": 40,
                                                                     "route": "cheap"},
             context_saved_usd=Decimal("0.012345")),
        call("r-3", 1, "3", at=NOW + timedelta(seconds=3), context={}, service_tier='fl"ex'),
        # a tier JSON must escape (backslash, control characters), a negative correction, non-ASCII names,
        # an end before the start, a call across midnight at the end of the month
        call("r-3", 2, "-0.25", at=NOW + timedelta(seconds=4), service_tier="a\\b\tc\x01", model_served="mödel ü",
             endpoint="x,y"),
        call("r-1", 3, "0.000001", at=NOW.replace(day=31, hour=23, minute=59, second=59, microsecond=500_000)),
        # the charge period's end where the minute turns: from the start (an end in the start's second),
        # from the end (rounded up), and an end on a whole second
        call("r-2", 3, "1", at=NOW.replace(minute=34, second=59, microsecond=250_000)),
        call("r-2", 4, "1", at=NOW.replace(minute=35, second=10)),
        call("r-2", 5, "1", at=NOW.replace(minute=40, second=0, microsecond=500_000)),
        # names CSV need not quote but PostgreSQL's COPY escapes (backslash, tab, vertical tab), non-ASCII;
        # a call in the next month (an export of two months)
        call("r-3", 3, "2", at=NOW + timedelta(seconds=5), model_served="mödel\\x\ty", model_requested="ü\x0b"),
        call("r-1", 4, "0.5", at=NOW.replace(month=4, day=2)),
    ]
    calls[1].ended_at = calls[1].started_at + timedelta(seconds=2, microseconds=1)
    calls[5].ended_at = calls[5].started_at - timedelta(seconds=3)
    calls[6].ended_at = calls[6].started_at + timedelta(microseconds=600_000)  # ends in April
    calls[8].ended_at = NOW.replace(minute=35, second=59, microsecond=500_000)
    calls[9].ended_at = NOW.replace(minute=40, second=2, microsecond=0)
    for c in calls:
        store.record_call(c)
    start, end = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0), NOW.replace(month=4, day=1, hour=0,
                                                                                          minute=0, second=0)
    want, got = io.StringIO(), io.StringIO()  # CSV: the lines the database builds (what the CLI writes)
    assert focus.write_focus_csv(focus.focus_rows(store.export_calls(start, end)), want) == 11
    assert focus_sql.write_focus_csv_month(store, start, end, got, page=2) == 11
    assert got.getvalue() == want.getvalue()
    monkeypatch.setattr(focus_sql, "ODD_MAX", 1)  # PostgreSQL: too many odd calls to hold, written as SQLite's
    got = io.StringIO()
    assert focus_sql.write_focus_csv_month(store, start, end, got, page=2) == 11
    assert got.getvalue() == want.getvalue()
    monkeypatch.undo()
    months = NOW.replace(month=5, day=1, hour=0, minute=0, second=0)
    want, got = io.StringIO(), io.StringIO()
    assert focus.write_focus_csv(focus.focus_rows(store.export_calls(start, months)), want) == 12
    assert focus_sql.write_focus_csv_month(store, start, months, got) == 12
    assert got.getvalue() == want.getvalue()
    want, got = io.StringIO(), io.StringIO()  # JSON lines: plain tuples formatted in bulk
    assert focus.write_focus_jsonl(focus.focus_rows(store.export_calls(start, end)), want) == 11
    assert focus.write_focus_jsonl_pages(store.export_rows(start, end, page=2), got) == 11
    assert got.getvalue() == want.getvalue()


def test_postgres_finds_the_odd_calls_through_their_partial_index(store):
    """Migration 0016's partial index must be the odd query's own condition (focus_sql.odd_sql), or the
    planner scans the month with regular expressions again: with sequential scans priced out, the plan
    uses the index only if its predicate is implied by the query's WHERE."""
    if store.backend != "postgres":
        return  # SQLite has no odd query
    seed(store)
    sql = (f"EXPLAIN SELECT c.seq FROM calls c WHERE {focus_sql.WHERE} AND ({focus_sql.odd_sql()})"
           f" LIMIT {focus_sql.ODD_MAX + 1}")
    period = (NOW - timedelta(days=1), NOW + timedelta(days=1))
    with store.export_snapshot() as snap:
        snap.all("SELECT set_config('enable_seqscan', 'off', true)")  # for this transaction only
        plan = "\n".join(row[0] for row in snap.all(sql, [snap.ts(t) for t in period]))
    assert "calls_export_odd" in plan, plan


def test_the_read_ahead_thread_hands_over_pages_errors_and_stops_with_the_caller():
    """PostgreSQL's export reads pages on a thread (focus_sql._read_ahead): in order, its errors raised
    to the caller, and a caller that stops early stops the thread and closes the source (the COPY)."""
    import threading

    closed = threading.Event()

    def source(n, fail_at=None):
        try:
            for i in range(n):
                if i == fail_at:
                    raise LedgerError("the connection broke")
                yield i
        finally:
            closed.set()

    assert list(focus_sql._read_ahead(source(50), depth=2)) == list(range(50)) and closed.is_set()
    closed.clear()
    got = []
    try:
        for i in focus_sql._read_ahead(source(50, fail_at=7), depth=2):
            got.append(i)
    except LedgerError as exc:
        assert "broke" in str(exc)
    assert got == list(range(7)) and closed.is_set()
    closed.clear()
    pages = focus_sql._read_ahead(source(10**9), depth=2)
    assert next(pages) == 0
    pages.close()  # the caller failed (a full disk): the reader must not go on reading a billion pages
    assert closed.is_set()
    assert not any(t.name == "ci-guard-export-reader" for t in threading.enumerate())


def test_a_write_that_fails_mid_export_stops_the_reader_and_keeps_the_ledger_usable(store):
    seed(store)

    class Full(io.StringIO):  # the header and the first page fit, the second does not
        def write(self, text):
            if self.tell() and "r-" in self.getvalue():
                raise OSError(28, "No space left on device")
            return super().write(text)

    try:
        focus_sql.write_focus_csv_month(store, NOW.replace(day=1), NOW.replace(month=4, day=1), Full(), page=1)
    except OSError as exc:
        assert exc.errno == 28
    else:
        raise AssertionError("the full disk went unnoticed")
    import threading

    assert not any(t.name == "ci-guard-export-reader" for t in threading.enumerate())
    out = io.StringIO()
    assert focus_sql.write_focus_csv_month(store, NOW.replace(day=1), NOW.replace(month=4, day=1), out) == 3
