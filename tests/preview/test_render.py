"""The policy preview comment: headline wording, and hostile ledger strings made inert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ci_guard.ledger.records import RunRecord
from ci_guard.preview.render import headline, render_invalid, render_json, render_markdown, render_text
from ci_guard.preview.replay import Outcome
from ci_guard.preview.whatif import RunChange, WhatIf

NOW = datetime(2026, 3, 31, tzinfo=UTC)
HOSTILE = "@admin <img src=x onerror=alert(1)> [x](http://evil) | /merge"


def _report() -> WhatIf:
    r = WhatIf("policy.yml", "base.yml", NOW - timedelta(days=30), NOW)
    run = RunRecord(run_id="run-1", started_at=NOW - timedelta(days=1), repo=HOSTILE, workflow=HOSTILE,
                    agent="pr-review")
    before = Outcome("allow", "review", "claude-sonnet-4-5", 412_000_000, 9)
    after = Outcome("deny", "no-reviews", None, 0, 0)
    r.runs, r.before_micros, r.after_micros = 912, 2_288_000_000, 1_876_000_000
    r.newly_refused = [RunChange(run, before, after)] * 34
    r.transitions[("allow", "review", "deny", "no-reviews")] = 34
    r.by_workflow[HOSTILE] = {"runs": 34, "refused": 34, "stopped": 0, "before": 412_000_000, "after": 0}
    r.by_rule["no-reviews"] = {"runs": 34, "refused": 34, "stopped": 0, "before": 412_000_000, "after": 0}
    return r


def test_headline_reads_like_the_issue_example() -> None:
    assert headline(_report()) == ("this change would have denied 34 of 912 runs and cut the spend by $412.00 "
                                   "(−18.0 %) over 30 days (912 runs)")
    same = WhatIf("p.yml", "b.yml", NOW - timedelta(days=7), NOW, runs=3, before_micros=5, after_micros=5)
    assert headline(same) == "this change would not have changed any decision or the spend over 7 days (3 runs)"


def test_hostile_strings_are_inert_in_the_comment() -> None:
    body = render_markdown(_report())
    assert "<img" not in body and "[x](http" not in body and "\n/merge" not in body
    assert "@admin" not in body  # a zero-width joiner after the @: nobody is pinged
    assert body.count("| ") > 4 and "<details>" in body
    for text in (render_text(_report()), render_json(_report())):
        assert "912" in text


def test_invalid_policy_comment_keeps_errors_inside_its_fence() -> None:
    errors = "p.yml:3:5: rules[0].x: unknown key\n```\n@admin /merge\n```"
    body = render_invalid("p.yml", errors)
    assert body.count("```") == 2 and "p.yml:3:5" in body
