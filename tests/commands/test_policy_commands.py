"""`explain`, `validate`, `test` and `schema`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.commands.conftest import POLICIES, Run

DEFAULT = str(POLICIES / "default.yml")


def test_explain_shows_every_rule(run: Run) -> None:
    code, out, _ = run("explain", "--policy", DEFAULT, "--repo", "acme/web", "--trigger", "pull_request",
                       "--agent", "pr-review", "--base-branch", "dev", "--no-draft", "--diff-lines", "10")
    assert code == 1
    for n, name in enumerate(["skip-drafts", "oversized-diff", "docs-only", "budget-nearly-spent",
                              "protected-review", "everything-else"], start=1):
        assert f"{n:>3}. {name}" in out
    assert "✗ base_branch is any of [main, release/*]; run has dev" in out
    assert "? every changed file matches any of [docs/**, **/*.md]; changed files unknown" in out
    assert "everything-else -> deny   [DECIDES]" in out


def test_explain_json(run: Run) -> None:
    code, out, _ = run("explain", "--policy", DEFAULT, "--format", "json", "--draft")
    data = json.loads(out)
    assert code == 1 and data["decision"]["rule"] == "skip-drafts"
    assert data["rules"][0]["deciding"] is True and data["rules"][1]["reached"] is False


def test_validate(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("validate", *(str(POLICIES / f"{n}.yml") for n in ("default", "pilot", "strict")))
    assert code == 0 and out.count(": ok (") == 3
    warn = tmp_path / "w.yml"
    warn.write_text("version: 1\nrules:\n  - {name: all, decision: deny}\n  - {name: late, decision: allow}\n")
    code, _, err = run("validate", str(warn))
    assert code == 0 and f"{warn}:4:5: warning: rules[1]: rule 'late' is unreachable" in err
    assert run("validate", "--strict", str(warn))[0] == 1
    bad = tmp_path / "b.yml"
    bad.write_text("version: 1\nrules:\n  - {name: a, decision: allow, model: medium}\n")
    code, _, err = run("validate", str(bad), DEFAULT)
    assert code == 2 and "model 'medium' is not a tier" in err


def test_policy_test_command(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("test", DEFAULT, str(POLICIES / "default.tests.yml"))
    assert code == 0 and "PASS: 19/19" in out
    failing = tmp_path / "t.yml"
    failing.write_text("cases:\n  - name: wrong\n    context: {draft: true}\n    expect: {decision: allow}\n")
    code, out, _ = run("test", DEFAULT, str(failing))
    assert code == 1 and "FAIL: wrong" in out and "decision: expected 'allow', got 'skip'" in out
    assert "FAIL: 1/1" in out
    failing.write_text("cases:\n  - name: x\n    expct: {}\n")
    code, _, err = run("test", DEFAULT, str(failing))
    assert code == 2 and "t.yml:3:5: cases[0].expct: unknown key" in err


def test_schema_command(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("schema")
    assert code == 0 and json.loads(out)["title"] == "ci-guard policy"
    target = tmp_path / "s.json"
    assert run("schema", "-o", str(target))[0] == 0
    assert json.loads(target.read_text()) == json.loads((POLICIES / "schema.json").read_text())


def test_help_has_examples(run: Run) -> None:
    for command in ("check", "explain", "validate", "test", "schema"):
        code, out, _ = run(command, "--help")
        assert code == 0 and "Examples:" in out and "ci-guard " + command in out


def test_validate_strict_warns_about_allow_rules_without_a_cost_cap(run: Run, tmp_path: Path) -> None:
    policy = tmp_path / "p.yml"
    policy.write_text("version: 1\nbudgets:\n  - {name: org, scope: org, period: month, limit_usd: 10}\n"
                      "defaults:\n  limits: {max_turns: 5}\nrules:\n"
                      "  - {name: capped, when: {agent: a}, decision: allow, limits: {max_cost_usd: 1}}\n"
                      "  - name: open\n    decision: allow\n    limits: {max_turns: 9}\n")
    code, _, err = run("validate", str(policy))
    assert code == 0 and "warning" not in err  # only --strict asks about cost caps
    code, _, err = run("validate", "--strict", str(policy))
    assert code == 1 and f"{policy}:10:5: warning: rules[1].limits: allow rule 'open' has no max_cost_usd" in err
    assert "'capped'" not in err and "everything its budgets have left" in err
    assert run("validate", "--strict", str(POLICIES / "default.yml"))[0] == 0  # every allow rule is capped
