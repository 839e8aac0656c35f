"""`ci-guard ledger export` on PostgreSQL fills each line's run columns with ``bytes % mapping``: a ``%``
or a parenthesis in the ledger's own values must come out as written (on SQLite alike)."""

from __future__ import annotations

import io
from datetime import timedelta

from ci_guard.report import focus, focus_sql
from tests.ledger.factories import NOW, call, run


def test_percent_signs_and_parentheses_are_written_as_they_are(store, tmp_path):
    store.start_run(run("r-(1", repo="acme/100%", workflow="%(hr-2)s"))  # an unbalanced parenthesis
    store.start_run(run("r-2", team="%s"))
    store.start_run(run("r-(3)"))
    calls = [
        call("r-(1", 1, "0.5", at=NOW),
        call("r-2", 1, "1", at=NOW + timedelta(seconds=1), model_served="m%(tr-2)s", status="ok%"),
        call("r-2", 2, "2", at=NOW + timedelta(seconds=2), service_tier="50%"),
        call("r-2", 4, "2", at=NOW + timedelta(seconds=2), endpoint="%%"),
        call("r-(3)", 1, "3", at=NOW + timedelta(seconds=3)),
        call("r-2", 3, "4", at=NOW + timedelta(seconds=4)),  # a plain line beside the odd ones
    ]
    for c in calls:
        store.record_call(c)
    start, end = NOW.replace(day=1, hour=0, minute=0, second=0), NOW.replace(month=4, day=1, hour=0, minute=0)
    want = io.StringIO()
    assert focus.write_focus_csv(focus.focus_rows(store.export_calls(start, end)), want) == 6
    got = io.StringIO()
    assert focus_sql.write_focus_csv_month(store, start, end, got, page=2) == 6
    assert got.getvalue() == want.getvalue()
    target = tmp_path / "focus.csv"  # a file: the lines written as bytes to its buffer
    with open(target, "w", encoding="utf-8", newline="") as out:
        assert focus_sql.write_focus_csv_month(store, start, end, out) == 6
    assert target.read_text(encoding="utf-8") == want.getvalue()
