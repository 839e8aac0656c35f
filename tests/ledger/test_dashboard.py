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
    store.start_run(run("r-big", repo=HOSTILE, team="payments", run_url="javascript:alert(1)"))
    store.start_run(run("r-small", repo="acme/web", agent="test-repair", team="web",
                        run_url="https://github.com/acme/web/actions/runs/9", platform="github"))
    store.record_call(call("r-big", 1, "1.25", at=NOW))
    store.record_call(call("r-big", 2, "0.75", at=NOW + timedelta(days=2)))
    store.record_call(call("r-small", 1, "0.004", at=NOW + timedelta(days=2), model_served="claude-haiku-4-5"))
    store.finish_run("r-small", "stopped", "max_turns", NOW + timedelta(days=2))
    store.start_run(run("r-april", started_at=NOW.replace(month=4, day=1)))
    store.record_call(call("r-april", 1, "5", at=NOW.replace(month=4, day=1)))  # next month: not counted

    page, html = dashboard(capsys, ledger_url, tmp_path)
    assert page.text_by_id["total"] == "$2.00" and page.text_by_id["runs"] == "2"
    assert page.text_by_id["calls"] == "3" and page.text_by_id["stopped"] == "1"
    assert HOSTILE not in html and "&lt;script&gt;" in html  # the repo name is shown, as text
    assert "javascript:" not in html  # a run URL that is not http(s) is not linked
    assert page.loads == ["a", "a"]  # self-contained: only the PR and CI job links of r-small
    assert 'href="https://github.com/acme/web/pull/7"' in html
    assert 'href="https://github.com/acme/web/actions/runs/9"' in html
    # spend per day: a run counts on the day it started (as budgets count it), labelled per day
    assert "<title>2026-03-14: payments $2.00</title>" in html  # r-big's calls on the 14th and 16th
    assert ">Mar 01</text>" in html and ">Mar 31</text>" in html and "spend (USD)" in html  # a dated axis
    repos = page.tables["by-repo"][1:]
    assert [(r[0], r[3], r[4]) for r in repos] == [(HOSTILE, "$2.00", "99.8%"), ("acme/web", "$0.004", "0.2%")]
    assert page.tables["top-runs"][1][0] == "r-big" and page.tables["stop-reasons"][1] == ["max_turns", "1"]
    models = {r[0]: r[2] for r in page.tables["by-model"][1:]}
    assert models == {"claude-sonnet-4-5-20250929": "2", "claude-haiku-4-5": "1"}


def test_an_empty_month_says_so(store, ledger_url, tmp_path, capsys):
    page, _ = dashboard(capsys, ledger_url, tmp_path, month="2026-07")
    assert page.text_by_id["total"] == "$0.00" and "No agent runs" in page.text_by_id["empty"]


def test_exact_money_not_floats(store, ledger_url, tmp_path, capsys):
    from ci_guard.ledger import open_ledger
    from ci_guard.ledger.periods import period_bounds
    from ci_guard.report.dashboard import build_dashboard
    from ci_guard.report.finops import Period

    store.start_run(run("r-1"))
    for seq in range(1, 11):
        store.record_call(call("r-1", seq, "0.1", at=NOW + timedelta(seconds=seq)))
    start, end = period_bounds("month", "UTC", NOW)
    reader = open_ledger(ledger_url)
    try:
        board = build_dashboard(reader.period_runs(start, end), [], Period(start, end))
    finally:
        reader.close()
    assert board.total_usd == Decimal("1.0") and isinstance(board.total_usd, Decimal)  # 10 x 0.1, no float drift


def test_budget_burn_against_the_limit_with_projection(store, ledger_url, tmp_path, capsys):
    # payments spends $10 on March 2 and $20 on March 5; with the month seen up to March 10 the
    # projection is $30 / 10 days x 31 days = $93 > the $60 limit
    store.start_run(run("p-1", team="payments", started_at=NOW.replace(day=2)))
    store.record_call(call("p-1", 1, "10", at=NOW.replace(day=2)))
    store.start_run(run("p-2", team="payments", started_at=NOW.replace(day=5)))
    store.record_call(call("p-2", 1, "20", at=NOW.replace(day=5)))
    policy = tmp_path / "policy.yml"
    policy.write_text("version: 1\nrules:\n  - name: all\n    decision: allow\nbudgets:\n"
                      "  - {name: team-monthly, scope: team, period: month, limit_usd: 60, alert_at: ['40%', '80%']}\n"
                      "  - {name: team-daily, scope: team, period: day, limit_usd: 15}\n")
    from ci_guard.commands._ledger_common import load_policy
    from ci_guard.ledger import open_ledger
    from ci_guard.report.dashboard import build_dashboard, render_dashboard
    from ci_guard.report.finops import Period

    start = NOW.replace(day=1, hour=0, minute=0, second=0)
    end = start.replace(month=4)
    reader = open_ledger(ledger_url)
    try:
        board = build_dashboard(reader.period_runs(start, end), [], Period(start, end),
                                policy=load_policy(str(policy)), now=NOW.replace(day=10, hour=12))
    finally:
        reader.close()
    monthly, daily = board.budgets
    row = monthly.rows[0]
    assert (row["key"], row["spent"], row["projected"]) == ("payments", Decimal(30), Decimal("93.00"))
    assert row["over"]
    assert row["alerts"] == ["$24.00"] and row["share"] == Decimal(50)
    assert (daily.rows[0]["peak"], daily.rows[0]["over_buckets"]) == (Decimal(20), 1)
    html = render_dashboard(board)
    assert "limit $60.00" in html and "stroke-dasharray" in html
    # the same from the CLI
    target = tmp_path / "b.html"
    code, _, err = run_cli(capsys, "dashboard", "--ledger", ledger_url, "--month", "2026-03", "--policy", str(policy),
                           "-o", str(target))
    assert code == 0, err
    assert "Budget team-monthly" in target.read_text()
