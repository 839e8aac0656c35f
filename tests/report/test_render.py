from datetime import UTC, datetime
from pathlib import Path

import pytest

from ci_guard.errors import InvalidInputError
from ci_guard.report.marker import find_marker
from ci_guard.report.render import comment_length, render_comment
from tests.report import builders as b


def test_short_at_the_top_complete_below() -> None:
    body = render_comment([b.capped()]).body
    lines = body.splitlines()
    assert lines[0].startswith("[//]: <> (ci-guard-comment, valid-at=")
    assert lines[2].startswith("### 💸") and "$5.01" in lines[2]
    assert "⛔ 1 capped" in lines[4]
    assert body.index("<details>") > body.index("#### Budgets")


def test_valid_at_is_the_end_of_the_newest_current_run_not_the_clock() -> None:
    comment = render_comment([b.normal()], now=datetime(2030, 1, 1, tzinfo=UTC))
    assert comment.valid_at == datetime(2026, 3, 2, 10, 4, 12, tzinfo=UTC)
    marker = find_marker(comment.body, "ci-guard-comment")
    assert marker is not None and marker.valid_at == comment.valid_at


def test_per_call_table_is_cut_first_with_a_note() -> None:
    big = b.run("run-big", calls=400)
    full = render_comment([big], max_chars=10**7)
    assert full.omitted_calls == 0
    limit = comment_length(full.body) // 2
    cut = render_comment([big], max_chars=limit)
    assert comment_length(cut.body) <= limit
    assert 0 < cut.omitted_calls < 400
    assert f"{cut.omitted_calls} of 400 calls of this run were left out" in cut.body
    assert "#### Budgets" in cut.body and "</details>" in cut.body  # the rest is intact


def test_github_limit_is_the_default_and_a_huge_pr_fits() -> None:
    runs = [b.run(f"run-{i:03d}", calls=120, started=f"2026-03-02T{i:02d}:00:00Z") for i in range(8)]
    comment = render_comment(runs[-1:], runs[:-1])
    assert comment_length(comment.body) <= 65_536
    assert comment.omitted_calls > 0
    gitlab = render_comment(runs[-1:], runs[:-1], platform="gitlab")
    assert gitlab.omitted_calls == 0  # 1,000,000 characters is plenty


def test_hard_cut_when_even_no_calls_do_not_fit() -> None:
    comment = render_comment([b.normal()], max_chars=600)
    assert comment_length(comment.body) <= 600
    assert comment.body.startswith("[//]: <> (ci-guard-comment")
    assert "cut this comment" in comment.body


def test_template_override_can_extend_the_builtin(tmp_path: Path) -> None:
    tpl = tmp_path / "mine.md.j2"
    tpl.write_text('Custom header for {{ view.title }}\n{% include "builtin/comment.md.j2" %}')
    run = b.run(dec=b.decision(context=b.context(title="hi @octocat")))
    body = render_comment([run], template=tpl).body
    assert "Custom header for hi @\u200doctocat" in body  # finalize escaped the unfiltered title
    assert "### 💸" in body


def test_template_errors_are_invalid_input_with_a_line(tmp_path: Path) -> None:
    tpl = tmp_path / "bad.md.j2"
    tpl.write_text("ok\n{% if %}\n")
    with pytest.raises(InvalidInputError) as info:
        render_comment([b.normal()], template=tpl)
    assert f"{tpl}:2" in info.value.render()
    with pytest.raises(InvalidInputError):
        render_comment([b.normal()], template=tmp_path / "missing.j2")


def test_sandbox_blocks_attribute_escapes(tmp_path: Path) -> None:
    tpl = tmp_path / "evil.md.j2"
    tpl.write_text("{{ view.__class__.__init__.__globals__ }}")
    with pytest.raises(InvalidInputError):
        render_comment([b.normal()], template=tpl)


def test_the_comment_says_what_the_context_policy_saved() -> None:
    saved = b.run("run-ctx", total="0.40")
    saved.context_savings = {"saved_usd": "0.60", "share_pct": "60.0", "calls_changed": 3, "method": "estimate"}
    body = render_comment([saved]).body
    assert "Context policy saved $0.60, 60.0% of this run (estimate)." in body
    assert "Context policy saved" not in render_comment([b.normal()]).body
