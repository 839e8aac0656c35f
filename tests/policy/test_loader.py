"""Broken policies give every problem at once, each with file:line:column, field and expectation."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.errors import PolicyError
from ci_guard.policy.loader import load_policy_file, policy_from_text

ROOT = Path(__file__).resolve().parents[2]


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        policy_from_text(textwrap.dedent(text), "p.yml")
    assert info.value.exit_code == 2
    return [p.render() for p in info.value.problems]


def test_shipped_policies_load() -> None:
    for name in ("default", "pilot", "strict"):
        policy = load_policy_file(ROOT / "policies" / f"{name}.yml")
        assert policy.rules and policy.source is not None


def test_money_is_exact_decimal() -> None:
    policy = load_policy_file(ROOT / "policies" / "default.yml")
    assert policy.defaults.limits.max_cost_usd == Decimal("2.00")
    assert str(policy.defaults.limits.max_cost_usd) == "2.00"
    assert policy.budgets[0].limit_usd == Decimal(2000)
    assert policy.defaults.limits.max_runtime == 900


def test_yaml_syntax_error_is_located() -> None:
    out = problems("""\
        version: 1
        rules:
          - name: a
            decision: allow
            when: {draft: true
        """)
    assert len(out) == 1
    assert out[0].startswith("p.yml:6:1: YAML syntax error:")
    assert "flow mapping" in out[0]


def test_bad_indentation_is_a_syntax_error() -> None:
    out = problems("version: 1\nrules:\n  - name: a\n   decision: allow\n")
    assert out[0].startswith("p.yml:4:")
    assert "YAML syntax error" in out[0]


def test_many_errors_at_once_with_lines_fields_and_expectations() -> None:
    out = problems("""\
        version: 1
        models: {small: claude-haiku-4-5}
        defaults:
          limits: {max_turns: many, max_runtime: 15 minutes, max_cost_usd: -1}
        rules:
          - name: a
            whne: {draft: true}
            decision: allow
          - name: b
            when: {diff_lines: 5000, base_branch: "docs**", trigger: pull-request}
            decision: maybe
          - name: c
            when: {draft: "yes", labels: []}
            decision: deny
            model: small
        """)
    text = "\n".join(out)
    assert "p.yml:4:23: defaults.limits.max_turns: expected a whole number" in text
    assert "p.yml:4:42: defaults.limits.max_runtime: expected a duration such as 90s" in text
    assert "p.yml:4:68: defaults.limits.max_cost_usd: Input should be greater than or equal to 0" in text
    assert "p.yml:7:5: rules[0].whne: unknown key 'whne' (did you mean 'when'?)" in text
    assert "p.yml:10:24: rules[1].when.diff_lines: expected a quoted comparison such as \"> 5000\"" in text
    assert "p.yml:10:43: rules[1].when.base_branch: glob 'docs**': ** must be a whole path segment" in text
    assert "p.yml:10:62: rules[1].when.trigger: Input should be 'pull_request', 'push'" in text
    assert "p.yml:11:15: rules[1].decision: Input should be 'allow', 'deny' or 'skip' (got 'maybe')" in text
    assert "p.yml:13:19: rules[2].when.draft: expected true or false" in text
    assert "rules[2].when.labels: expected at least one value" in text
    assert "p.yml:15:12: rules[2].model: only allow rules choose model (this rule is deny)" in text
    assert len(out) == 11
    lines = [int(p.split(":")[1]) for p in out]
    assert lines == sorted(lines)


def test_unknown_key_lists_the_keys_expected() -> None:
    out = problems("""\
        version: 1
        rules:
          - name: a
            decision: allow
            limits: {max_turn: 3}
        """)
    assert out == [
        "p.yml:5:14: rules[0].limits.max_turn: unknown key 'max_turn' (did you mean 'max_turns'?); expected "
        "one of: max_turns, max_cost_usd, max_runtime, max_context_tokens, max_tool_calls, max_identical_retries"
    ]


def test_unknown_key_inside_not_uses_the_alias() -> None:
    out = problems("""\
        version: 1
        rules:
          - name: a
            decision: allow
            when: {not: {lables: [x]}}
        """)
    assert len(out) == 1
    assert "rules[0].when.not.lables: unknown key 'lables' (did you mean 'labels'?)" in out[0]
    assert out[0].startswith("p.yml:5:")


def test_duplicate_keys_are_errors() -> None:
    out = problems("""\
        version: 1
        rules:
          - name: a
            decision: allow
            decision: deny
        """)
    assert out == ["p.yml:5:5: rules[0].decision: duplicate key 'decision' (first defined on line 4)"]


def test_duplicate_rule_names_and_undefined_budget() -> None:
    out = problems("""\
        version: 1
        budgets:
          - {name: org-monthly, scope: org, period: month, limit_usd: 100}
        rules:
          - name: a
            decision: allow
            when: {budget_remaining: {org-montly: "< 20%"}}
          - name: a
            decision: deny
        """)
    assert "p.yml:7:31: rules[0].when.budget_remaining.org-montly: budget 'org-montly' is not defined in " \
           "budgets: (expected one of: org-monthly)" in out
    assert "p.yml:8:5: rules[1].name: duplicate rule name 'a' (also rules[0])" in out


def test_bad_budget_fields() -> None:
    out = problems("""\
        version: 1
        budgets:
          - name: x
            scope: galaxy
            period: fortnight
            limit_usd: 0
            alert_at: ["150", "abc%", 0]
            timezone: Mars/Olympus
        rules:
          - {name: a, decision: deny}
        """)
    text = "\n".join(out)
    assert "p.yml:4:12: budgets[0].scope: Input should be 'org', 'team', 'repo', 'user', 'workflow' or 'agent'" in text
    assert "p.yml:5:13: budgets[0].period: Input should be 'day', 'week' or 'month'" in text
    assert "p.yml:6:16: budgets[0].limit_usd: Input should be greater than 0" in text
    assert "budgets[0].alert_at[1]: expected a percentage such as \"80%\"" in text
    assert "budgets[0].alert_at[2]: expected a positive amount in USD" in text
    assert "p.yml:8:15: budgets[0].timezone: expected an IANA time zone" in text


def test_missing_required_keys() -> None:
    out = problems("version: 2\nrules:\n  - name: a\n")
    assert "p.yml:1:10: version: Input should be 1 (got 2)" in out
    assert "p.yml:3:5: rules[0].decision: this key is required" in out


def test_rules_must_not_be_empty_and_top_level_must_be_mapping() -> None:
    assert problems("version: 1\nrules: []\n") == [
        "p.yml:2:8: rules: List should have at least 1 item after validation, not 0"]
    assert problems("- a\n- b\n") == ["p.yml:1:1: expected a mapping with version: 1 and rules:"]
    assert problems("") == ["p.yml:1:1: the file is empty; expected a mapping with version: 1 and rules:"]


def test_undefined_tier_is_an_error_concrete_ids_are_fine() -> None:
    out = problems("""\
        version: 1
        models: {small: claude-haiku-4-5}
        rules:
          - {name: a, decision: allow, model: medium}
          - {name: b, decision: allow, model: gpt-5-mini}
        """)
    assert out == ["p.yml:4:32: rules[0].model: model 'medium' is not a tier defined in models: (small) and "
                   "does not look like a concrete model id"]


def test_bad_escalation_and_pricing() -> None:
    out = problems("""\
        version: 1
        pricing:
          on_unknown_model: ignore
          overrides:
            my-model: {input: "3.00", outptu: 15}
        rules:
          - name: a
            decision: allow
            escalation: {model: large}
        """)
    text = "\n".join(out)
    assert "p.yml:3:21: pricing.on_unknown_model: Input should be 'deny', 'warn' or 'error'" in text
    assert "pricing.overrides.my-model.outptu: unknown key 'outptu' (did you mean 'output'?)" in text
    assert "p.yml:9:17: rules[0].escalation.label: this key is required" in text


def test_missing_file_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not found"):
        load_policy_file(tmp_path / "nope.yml")
    bad = tmp_path / "bin.yml"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy_file(bad)


def test_anchors_and_merge_keys_work() -> None:
    policy = policy_from_text(textwrap.dedent("""\
        version: 1
        defaults:
          limits: &base {max_turns: 3, max_cost_usd: 1}
        rules:
          - name: a
            decision: allow
            limits: {<<: *base, max_turns: 5}
        """), "p.yml")
    assert policy.rules[0].limits is not None
    assert policy.rules[0].limits.max_turns == 5
    assert policy.rules[0].limits.max_cost_usd == 1


def test_policy_timezone_is_the_budget_default() -> None:
    policy = policy_from_text(textwrap.dedent("""\
        version: 1
        timezone: Europe/Berlin
        budgets:
          - {name: a, scope: org, period: day, limit_usd: 5}
          - {name: b, scope: org, period: day, limit_usd: 5, timezone: UTC}
        rules: [{name: r, decision: deny}]
        """), "p.yml")
    assert [b.timezone for b in policy.budgets] == ["Europe/Berlin", "UTC"]
    assert policy.budgets[0].alert_thresholds_usd() == []
