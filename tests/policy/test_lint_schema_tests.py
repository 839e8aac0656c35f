from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from ci_guard.errors import InvalidInputError
from ci_guard.policy.lint import lint_policy
from ci_guard.policy.loader import load_policy_file, policy_from_text
from ci_guard.policy.policy_tests import load_tests, run_tests
from ci_guard.policy.schema import schema_text
from ci_guard.policy.validate import validate_file

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def test_schema_json_is_in_sync() -> None:
    # Compared as JSON: the same schema whatever the layout; decimals are generated in one shape, so
    # any pydantic release within pyproject's bounds gives this file (the fresh-venv failure of 2.14).
    committed = json.loads((POLICIES / "schema.json").read_text())
    assert committed == json.loads(schema_text()), "run: ci-guard schema -o policies/schema.json"


def test_decimals_have_one_shape_whatever_pydantic_writes() -> None:
    schema = json.loads(schema_text())
    discount = schema["$defs"]["PriceOverride"]["properties"]["discount_pct"]["anyOf"]
    assert discount[0] == {"maximum": 100.0, "minimum": 0.0, "type": "number"}
    assert discount[1] == {"type": "string", "pattern": r"^(?!^[-+.]*$)[+-]?0*\d*\.?\d*$"}


def test_committed_schema_means_what_the_models_accept() -> None:
    """The file users point their editors at accepts the shipped policies and rejects what the loader rejects."""
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    committed = json.loads((POLICIES / "schema.json").read_text())
    for name in ("default", "pilot", "strict"):
        jsonschema.validate(yaml.safe_load((POLICIES / f"{name}.yml").read_text()), committed)
    rules = [{"name": "a", "decision": "allow"}]
    good = {"version": 1, "pricing": {"overrides": {"m": {"discount_pct": "12.5"}}}, "rules": rules}
    for bad in ({"version": 1, "rules": [{"name": "a", "decision": "allow", "whne": {}}]},
                {"version": 1, "pricing": {"overrides": {"m": {"discount_pct": "12,5"}}}, "rules": rules},
                {"version": 1, "pricing": {"overrides": {"m": {"discount_pct": 150}}}, "rules": rules}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, committed)
    jsonschema.validate(good, committed)


def test_schema_validates_shipped_policies_and_rejects_typos() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = json.loads(schema_text())
    for name in ("default", "pilot", "strict"):
        jsonschema.validate(yaml.safe_load((POLICIES / f"{name}.yml").read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": 1, "rules": [{"name": "a", "decision": "allow", "whne": {}}]}, schema)


@pytest.mark.parametrize("name", ["default", "pilot", "strict"])
def test_shipped_policies_pass_their_tests_and_lint_clean(name: str) -> None:
    policy = load_policy_file(POLICIES / f"{name}.yml")
    results = run_tests(policy, load_tests(POLICIES / f"{name}.tests.yml"))
    assert results and all(r.passed for r in results), [(r.name, r.failures) for r in results if not r.passed]
    assert lint_policy(policy) == []


def test_lint_warnings() -> None:
    policy = policy_from_text(textwrap.dedent("""\
        version: 1
        teams: {web: {members: [a]}}
        rules:
          - {name: one, decision: allow, when: {team: platform}}
          - {name: two, decision: allow, when: {team: platform}}
          - {name: all, decision: deny}
          - {name: late, decision: allow}
        """))
    messages = [(f.severity, f.path, f.message) for f in lint_policy(policy)]
    assert ("warning", ("rules", 3), "rule 'late' is unreachable: rule 'all' above matches every run") in messages
    assert ("warning", ("rules", 1, "when"),
            "rule 'two' never decides: rule 'one' above has the same conditions") in messages
    assert sum("team 'platform' is not defined" in m for _, _, m in messages) == 2


def test_validate_file_locates_lint_findings(tmp_path: Path) -> None:
    f = tmp_path / "p.yml"
    f.write_text("version: 1\nrules:\n  - {name: all, decision: deny}\n  - {name: late, decision: allow}\n")
    report = validate_file(f)
    assert report.errors == []
    assert [w.render() for w in report.warnings] == [
        f"{f}:4:5: rules[1]: rule 'late' is unreachable: rule 'all' above matches every run"]


def test_failing_case_reports_differences(tmp_path: Path) -> None:
    tests = tmp_path / "t.yml"
    tests.write_text(textwrap.dedent("""\
        cases:
          - name: wrong
            context: {trigger: pull_request, agent: pr-review, base_branch: main, draft: false,
                      changed_paths: [a.py], diff_lines: 3}
            expect: {decision: deny, model: small, limits: {max_turns: 31}}
        """))
    [result] = run_tests(load_policy_file(POLICIES / "default.yml"), load_tests(tests))
    assert not result.passed
    assert result.failures == ["decision: expected 'deny', got 'allow'",
                               "model: expected 'small', got 'claude-sonnet-4-6' (tier 'large')",
                               "limits.max_turns: expected 31, got 30"]


@pytest.mark.parametrize(("text", "expected"), [
    ("cases:\n  - name: a\n    expect: {decison: allow}\n", "t.yml:3:14: cases[0].expect.decison: unknown key"),
    ("cases:\n  - name: a\n    context: {trigger: pr}\n    expect: {}\n",
     "t.yml:3:24: cases[0].context.trigger: expected one of pull_request"),
    ("cases:\n  - name: a\n    budgets: {b: {spent_usd: lots}}\n    expect: {}\n",
     "t.yml:2:5: cases[0]: expected a non-negative amount"),
    ("cases: [\n", "t.yml:2:1: YAML syntax error"),
    ("cases:\n  - {name: a, expect: {}}\n  - {name: a, expect: {}}\n",
     "t.yml:3:12: cases[1].name: duplicate case name 'a' (also cases[0])"),
])
def test_invalid_tests_files(tmp_path: Path, text: str, expected: str) -> None:
    f = tmp_path / "t.yml"
    f.write_text(text)
    with pytest.raises(InvalidInputError) as info:
        load_tests(f)
    assert expected in info.value.render().replace(str(tmp_path) + "/", "")


def test_validate_skips_a_tests_file_with_a_note(capsys) -> None:
    from tests.helpers import run_cli

    code, out, err = run_cli(capsys, "validate", str(POLICIES / "default.yml"), str(POLICIES / "default.tests.yml"))
    assert code == 0, err
    assert f"default.tests.yml: policy tests file, skipped (run it with `ci-guard test {POLICIES / 'default.yml'}" \
        in out
    assert "default.yml: ok (6 rules)" in out
