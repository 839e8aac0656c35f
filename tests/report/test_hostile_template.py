"""A custom comment template that outputs untrusted values carelessly still cannot run a GitLab
quick action, ping anyone or inject markup."""

from __future__ import annotations

import re
from pathlib import Path

from ci_guard.report.render import render_comment
from tests.report import builders as b

# Every value a PR author or an agent controls, each placed at the start of a line, unfiltered,
# through filters that keep newlines (lower, replace, join), and through trusted filters.
HOSTILE_TEMPLATE = """\
{{ view.title }}
{{ view.head_branch }}
{{ view.title | lower }}
{{ view.title | replace("x", "\\n") }}
{{ [view.title, view.head_branch] | join("\\n") }}
{{ view.latest.decision.reason }}
{{ view.latest.decision.rule }}
{{ view.latest.agent }}
{{ view.latest.summary.stop_detail }}
{{ view.latest.summary.calls[0].error }}
{{ view.latest.summary.calls[0].model }}
{{ view.latest.decision.reason | md }}
{{ view.latest.decision.hint | md(20) }}
{{ none | usd(view.title) }}
{{ view.latest.decision.context }}
{{ view.runs | map(attribute="agent") | list }}
"""


def _hostile_run():
    ctx = b.context(title="/merge\n/close", head_branch="/approve", agent="/unassign @_admin")
    dec = b.decision("allow", rule="/label ~security", reason="/close\n/merge", hint="/assign @_admin",
                     context=ctx)
    return b.run(dec=dec, run_status="stopped", stop_reason="max_cost", stop_detail="/reopen",
                 error="/merge\n/approve", model="/lock")


def test_no_line_of_a_careless_template_starts_a_quick_action(tmp_path: Path) -> None:
    tpl = tmp_path / "careless.md.j2"
    tpl.write_text(HOSTILE_TEMPLATE)
    for platform in ("gitlab", "github"):
        body = render_comment([_hostile_run()], template=tpl, platform=platform).body
        quick = [line for line in body.splitlines() if re.match(r"\s*/", line)]
        assert quick == [], quick
        assert "@_admin" not in body.replace("\\", "")  # no mention survives rendering
        assert body.count("\\/") >= 10  # the values are there, escaped


def test_the_builtin_template_keeps_hostile_values_off_line_starts() -> None:
    body = render_comment([_hostile_run()], platform="gitlab").body
    assert not [line for line in body.splitlines() if re.match(r"\s*/", line)]
