"""Budget alerts (`alert_at` in the policy) in decisions, check output and the PR comment."""

from decimal import Decimal

from ci_guard.context.model import RunContext
from ci_guard.policy.decision import BudgetStatus, Decision
from ci_guard.policy.output import github_annotations, render_text
from ci_guard.report.render import render_comment
from tests.report import builders


def status(spent: str, alerts: list[str]) -> BudgetStatus:
    return BudgetStatus(name="org-monthly", scope="org", scope_key="acme", period="month",
                        limit_usd=Decimal(2000), spent_usd=Decimal(spent), alert_at_usd=[Decimal(a) for a in alerts])


def test_the_highest_crossed_threshold_is_reported():
    assert status("999", ["1000", "1600"]).alert_crossed_usd is None
    assert status("1000", ["1000", "1600"]).alert_crossed_usd == Decimal(1000)
    assert status("1700", ["1000", "1600"]).alert_crossed_usd == Decimal(1600)
    assert "past its 80% alert" in status("1700", ["1000", "1600"]).alert_message()


def test_check_text_and_github_annotation_show_alerts():
    d = Decision(decision="allow", rule="r", budgets=[status("1700", ["1000", "1600"])], context=RunContext())
    assert d.alerts and "ALERT:" in render_text(d)
    line = github_annotations(d)
    assert line.startswith("::warning title=ci-guard budget alert::") and "85%25" in line  # % escaped
    assert d.as_json()["alerts"] == d.alerts


def test_comment_marks_a_budget_past_its_alert_after_this_runs_spend():
    dec = builders.decision()
    dec["budgets"][0].update(spent_usd="1595", alert_at_usd=["1000", "1600"])  # this run's spend crosses 80%
    body = render_comment([builders.run(dec=dec, total="10")]).markdown
    row = next(line for line in body.splitlines() if line.startswith("| `org-monthly`"))
    assert "⚠️ past 80% alert" in row
    other = next(line for line in body.splitlines() if line.startswith("| `repo-daily`"))
    assert "alert" not in other
