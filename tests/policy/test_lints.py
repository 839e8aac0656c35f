"""Policy safety lints (docs/policy.md "Lints") and the `unknown:` rule option they point to."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ci_guard.context.model import RunContext
from ci_guard.errors import InvalidInputError, PolicyError
from ci_guard.policy.engine import decide
from ci_guard.policy.explain import render_text, trace_rules
from ci_guard.policy.lint import lint_policy
from ci_guard.policy.loader import policy_from_text
from ci_guard.policy.policy_tests import load_tests
from tests.helpers import run_cli

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _policy(rules: str, head: str = "") -> str:
    return "version: 1\n" + textwrap.dedent(head) + "rules:\n" + textwrap.indent(textwrap.dedent(rules), "  ")


DENY_FORKS = """\
- name: deny-forks
  when: {fork: true}
  decision: deny
- name: reviews
  when: {agent: pr-review}
  decision: allow
- name: rest
  decision: deny
"""


def _warnings(text: str) -> list[str]:
    return [f.message for f in lint_policy(policy_from_text(text)) if f.severity == "warning"]


def test_fail_open_names_the_rule_field_triggers_leak_and_fix() -> None:
    [message] = _warnings(_policy(DENY_FORKS))
    assert message.startswith("rule 'deny-forks' fails open on fork: on comment/other runs it can be unknown")
    assert "falls through to allow rule 'reviews'" in message
    assert "add fork: false to the allow rules below" in message and "`unknown: match`" in message


@pytest.mark.parametrize("fix", [
    # the allow rule reads fork itself: an unknown fork cannot match it either
    DENY_FORKS.replace("{agent: pr-review}", "{agent: pr-review, fork: false}"),
    # the deny rule decides on unknown too (fail closed), or says the fall-through is meant
    DENY_FORKS.replace("  decision: deny\n- name: reviews", "  unknown: match\n  decision: deny\n- name: reviews"),
    DENY_FORKS.replace("  decision: deny\n- name: reviews", "  unknown: no-match\n  decision: deny\n- name: reviews"),
    # the allow rule only applies where fork is always known
    DENY_FORKS.replace("{agent: pr-review}", "{agent: pr-review, trigger: pull_request}"),
    # the deny rule only applies to triggers where fork is known
    DENY_FORKS.replace("{fork: true}", "{fork: true, trigger: [pull_request, push]}"),
])
def test_fail_open_is_silenced_by_each_fix(fix: str) -> None:
    assert _warnings(_policy(fix)) == []


def test_fail_open_for_a_team_budget_and_unknown_paths() -> None:
    text = _policy("""\
        - name: team-spent
          when: {budget_remaining: {team-week: "< 5"}}
          decision: deny
        - name: secrets
          when: {paths: ["**/*.pem"]}
          decision: deny
        - name: ok
          decision: allow
        """, head="""\
        budgets:
          - {name: team-week, scope: team, period: week, limit_usd: 50}
          - {name: org-month, scope: org, period: month, limit_usd: 500}
        """)
    messages = _warnings(text)
    assert any("'team-spent' fails open on budget_remaining of team-week" in m and "no team" in m for m in messages)
    assert any("'secrets' fails open on paths" in m and "changed files" in m for m in messages)
    # an org budget always has its scope key: no finding
    assert not any("team-spent" in m for m in _warnings(text.replace('team-week: "< 5"', 'org-month: "< 5"')))


def test_shipped_policies_are_lint_clean_under_strict(capsys) -> None:
    code, _, err = run_cli(capsys, "validate", "--strict", *(str(POLICIES / f"{n}.yml") for n in
                                                                ("default", "pilot", "strict")))
    assert code == 0, err
    assert "warning" not in err


def test_strict_fails_on_a_fail_open_warning(tmp_path: Path, capsys) -> None:
    f = tmp_path / "p.yml"
    f.write_text(_policy(DENY_FORKS))
    code, _, err = run_cli(capsys, "validate", "--strict", str(f))
    assert code == 1
    assert f"{f}:3:5: warning: rules[0]: rule 'deny-forks' fails open on fork" in err


# unknown: match ------------------------------------------------------------------------------------

def _ctx(**kw) -> RunContext:
    base = dict(platform="github", repo="acme/web", trigger="comment", agent="pr-review")
    return RunContext(**{**base, **kw})


def test_unknown_match_decides_when_the_value_is_unknown_and_says_so() -> None:
    fail_open = policy_from_text(_policy(DENY_FORKS))
    closed = policy_from_text(_policy(DENY_FORKS.replace(
        "  decision: deny\n- name: reviews", "  unknown: match\n  decision: deny\n- name: reviews")))
    unknown = _ctx(fork=None)
    assert decide(fail_open, unknown, []).decision == "allow"
    d = decide(closed, unknown, [])
    assert (d.decision, d.rule) == ("deny", "deny-forks")
    assert "fork unknown: 'deny-forks' decided (unknown: match)" in d.notes
    # a known value still decides as before, both ways
    assert decide(closed, _ctx(fork=False), []).rule == "reviews"
    assert decide(closed, _ctx(fork=True), []).rule == "deny-forks"
    # explain shows the same deciding rule as the engine, and the limits/budget block check prints
    text = render_text(d, trace_rules(closed, d))
    assert "deny-forks -> deny   [DECIDES]" in text and "decision: deny (rule: deny-forks)" in text


def test_unknown_match_on_a_residual_condition() -> None:
    # diff_lines is not bitmask-indexed: the residual loop must honour unknown: match too
    p = policy_from_text(_policy("""\
        - name: big
          when: {diff_lines: "> 100"}
          unknown: match
          decision: deny
        - name: ok
          decision: allow
        """))
    assert decide(p, _ctx(diff_lines=None), []).rule == "big"
    assert decide(p, _ctx(diff_lines=5), []).rule == "ok"
    assert decide(p, _ctx(diff_lines=500), []).rule == "big"


def test_unknown_is_refused_on_allow_rules() -> None:
    with pytest.raises(PolicyError) as info:
        policy_from_text(_policy("- {name: a, decision: allow, unknown: match}\n"))
    assert "only deny and skip rules take unknown:" in info.value.render()


# agent / model mismatch ----------------------------------------------------------------------------

def test_codex_agent_on_a_claude_model_is_flagged() -> None:
    text = _policy("""\
        - name: repair
          when: {agent: codex-test-repair}
          decision: allow
          model: large
        - name: rest
          decision: deny
        """, head="models: {large: claude-sonnet-4-5}\n")
    [message] = _warnings(text)
    assert "decides claude-sonnet-4-5 (anthropic) for agent 'codex-test-repair', which calls openai models" in message
    assert _warnings(text.replace("claude-sonnet-4-5", "gpt-5")) == []


def test_reject_enforcement_without_the_small_model_is_flagged() -> None:
    text = _policy("""\
        - name: review
          when: {agent: pr-review}
          decision: allow
          model: claude-sonnet-4-5
        - name: rest
          decision: deny
        """, head="enforcement: {model_enforcement: reject}\n")
    [message] = _warnings(text)
    assert "Claude Code makes side calls" in message and "claude-sonnet-4-5" in message
    fixed = text.replace("{model_enforcement: reject}",
                         "{model_enforcement: reject, allowed_models: [claude-haiku-4-5]}")
    assert _warnings(fixed) == []
    assert _warnings(text.replace("reject", "rewrite")) == []


# messages -----------------------------------------------------------------------------------------

def test_messages_show_values_as_written_not_python_reprs(tmp_path: Path, capsys) -> None:
    f = tmp_path / "p.yml"
    f.write_text("version: 1\nbudgets:\n  - {name: b, scope: org, period: month, limit_usd: 10, alert_at: [-15.5]}\n"
                 "rules:\n  - {name: a, decision: allow}\n")
    code, _, err = run_cli(capsys, "validate", str(f))
    assert code == 2
    assert "got -15.5" in err and "Decimal" not in err


def test_unquoted_comparison_gets_a_quoting_hint(tmp_path: Path, capsys) -> None:
    f = tmp_path / "p.yml"
    f.write_text("version: 1\nrules:\n  - name: big\n    when:\n      diff_lines: > 3000\n    decision: deny\n")
    code, _, err = run_cli(capsys, "validate", str(f))
    assert code == 2
    assert f'{f}:5:' in err and 'must be quoted: diff_lines: "> 3000"' in err


def test_tests_file_reports_every_error_located(tmp_path: Path) -> None:
    f = tmp_path / "p.tests.yml"
    f.write_text(textwrap.dedent("""\
        defaults:
          context: {platform: github, trigger: pr}
        cases:
          - name: a
            context: {draf: true}
            expect: {decision: allow}
          - name: b
            context: {diff_lines: many}
            expect: {decison: allow}
        """))
    with pytest.raises(InvalidInputError) as info:
        load_tests(f)
    rendered = info.value.render().replace(str(tmp_path) + "/", "")
    assert "p.tests.yml:9:14: cases[1].expect.decison: unknown key 'decison' (did you mean 'decision'?)" in rendered
    # the schema error of case b stops before contexts are read: fix it, then both context errors show
    f.write_text(f.read_text().replace("decison", "decision"))
    with pytest.raises(InvalidInputError) as info:
        load_tests(f)
    rendered = info.value.render().replace(str(tmp_path) + "/", "")
    assert "p.tests.yml:5:15: cases[0].context.draf: unknown key 'draf' (did you mean 'draft'?)" in rendered
    assert "cases[1].context.diff_lines: expected a whole number (got 'many')" in rendered


def test_ci_guard_test_finds_the_sibling_tests_file(tmp_path: Path, capsys) -> None:
    code, out, err = run_cli(capsys, "test", "-q", str(POLICIES / "default.yml"))
    assert code == 0, err
    assert "default.tests.yml" in out and "PASS: 19/19" in out
    lone = tmp_path / "lone.yml"
    lone.write_text(_policy("- {name: a, decision: allow}\n"))
    code, _, err = run_cli(capsys, "test", str(lone))
    assert code == 2 and "lone.tests.yml" in err


# colour ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("flag", "env", "coloured"), [
    ([], {}, False),                          # auto: captured output is no terminal
    (["--color", "always"], {}, True),
    (["--color", "always"], {"NO_COLOR": "1"}, True),   # asked for explicitly wins
    ([], {"FORCE_COLOR": "1"}, True),
    (["--color", "never"], {"FORCE_COLOR": "1"}, False),
])
def test_colour_only_on_a_terminal_or_when_asked(capsys, monkeypatch, flag, env, coloured) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, out, _ = run_cli(capsys, "test", *flag, str(POLICIES / "pilot.yml"))
    assert code == 0
    assert ("\x1b[32mPASS\x1b[0m" in out) is coloured
    assert "PASS: 12/12" in out.replace("\x1b[32m", "").replace("\x1b[0m", "")


def test_a_handoff_whose_caps_are_never_set_is_flagged() -> None:
    rules = """\
    - name: review
      decision: allow
      limits: {max_turns: 5}
      handoff: {label: needs-human, on: [max_cost, retry_storm]}
    """
    (warning,) = [w for w in _warnings(_policy(rules)) if "handoff" in w]
    assert "handoff of rule 'review' never happens: none of its caps (max_cost, retry_storm)" in warning
    # a cap set in defaults.limits, or a budget (which caps each run's cost), makes it possible
    assert not [w for w in _warnings(_policy(rules, "defaults:\n  limits: {max_identical_retries: 3}\n"))
                if "handoff" in w]
    budget = "budgets:\n  - {name: m, scope: org, period: month, limit_usd: 100}\n"
    assert not [w for w in _warnings(_policy(rules, budget)) if "handoff" in w]
    # the default `on` (every cap) with a turn cap is fine
    assert not [w for w in _warnings(_policy(rules.replace(", on: [max_cost, retry_storm]", ""))) if "handoff" in w]
