"""`ci-guard ledger dashboard`: one month of the ledger as a static, self-contained HTML page."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser

from tests.helpers import run_cli
from tests.ledger.factories import NOW, call, run

HOSTILE = '<script>alert("x")</script>'


class Page(HTMLParser):
    """The parts of the page the tests read: element ids with their text, bars, scripts, links."""

    def __init__(self) -> None:
        super().__init__()
        self.text_by_id: dict[str, str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self.bars: list[str] = []
        self.loads: list[str] = []  # anything that would fetch or run something
        self._id: str | None = None
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "link", "img", "iframe") or a.get("src") or a.get("href"):
            self.loads.append(tag)
        if "day" in (a.get("class") or "").split():
            self.bars.append(a.get("title", ""))
        if tag == "table":
            self._table = a.get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif a.get("id"):
            self._id = a["id"]
            self.text_by_id[self._id] = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif self._id and tag in ("b", "p"):
            self._id = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        elif self._id:
            self.text_by_id[self._id] += data


def dashboard(capsys, ledger_url, tmp_path, month="2026-03") -> tuple[Page, str]:
    target = tmp_path / "d.html"
    code, _, err = run_cli(capsys, "ledger", "dashboard", "--ledger", ledger_url, "--month", month, "-o", str(target))
    assert code == 0, err
    html = target.read_text()
    page = Page()
    page.feed(html)
    return page, html


def test_the_month_adds_up_and_untrusted_names_are_escaped(store, ledger_url, tmp_path, capsys):
    store.start_run(run("r-big", repo=HOSTILE, team="payments"))
    store.start_run(run("r-small", repo="acme/web", agent="test-repair"))
    store.record_call(call("r-big", 1, "1.25", at=NOW))
    store.record_call(call("r-big", 2, "0.75", at=NOW + timedelta(days=2)))
    store.record_call(call("r-small", 1, "0.004", at=NOW + timedelta(days=2), model_served="claude-haiku-4-5"))
    store.finish_run("r-small", "stopped", "max_turns", NOW + timedelta(days=2))
    store.record_call(call("r-small", 2, "5", at=NOW.replace(month=4, day=1)))  # next month: not counted

    page, html = dashboard(capsys, ledger_url, tmp_path)
    assert page.text_by_id["total"] == "$2.00" and page.text_by_id["runs"] == "2"
    assert page.text_by_id["calls"] == "3" and page.text_by_id["stopped"] == "1"
    assert HOSTILE not in html and "&lt;script&gt;" in html  # the repo name is shown, as text
    assert page.loads == []  # self-contained: no script, stylesheet link or image to fetch
    assert len(page.bars) == 31  # one bar per day of March
    assert [b for b in page.bars if not b.endswith("$0.00")] == ["2026-03-14: $1.25", "2026-03-16: $0.754"]
    repos = page.tables["by-repo"][1:]
    assert [(r[0], r[3], r[4]) for r in repos] == [(HOSTILE, "$2.00", "99.8%"), ("acme/web", "$0.004", "0.2%")]
    assert page.tables["top-runs"][1][0] == "r-big" and page.tables["stop-reasons"][1] == ["max_turns", "1"]
    models = {r[0]: r[2] for r in page.tables["by-model"][1:]}
    assert models == {"claude-sonnet-4-5-20250929": "2", "claude-haiku-4-5": "1"}


def test_an_empty_month_says_so(store, ledger_url, tmp_path, capsys):
    page, _ = dashboard(capsys, ledger_url, tmp_path, month="2026-07")
    assert page.text_by_id["total"] == "$0.00" and "No model calls" in page.text_by_id["empty"]


def test_exact_money_not_floats(store, ledger_url, tmp_path, capsys):
    from ci_guard.ledger import open_ledger
    from ci_guard.ledger.periods import period_bounds
    from ci_guard.report.dashboard import build_dashboard

    store.start_run(run("r-1"))
    for seq in range(1, 11):
        store.record_call(call("r-1", seq, "0.1", at=NOW + timedelta(seconds=seq)))
    start, end = period_bounds("month", "UTC", NOW)
    reader = open_ledger(ledger_url)
    try:
        board = build_dashboard(reader.export_calls(start, end), start, end)
    finally:
        reader.close()
    assert board.total == Decimal("1.0") and isinstance(board.total, Decimal)  # 10 x 0.1, no float drift
