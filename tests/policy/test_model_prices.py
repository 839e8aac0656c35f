"""`validate` and `check` know the models: unpriced is an error with a did-you-mean, retiring a warning."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.helpers import run_cli

POLICY = """\
version: 1
models: {{small: claude-haiku-4-5, large: {large}}}
defaults:
  model: small
  limits: {{max_turns: 5, max_cost_usd: 1}}
{pricing}rules:
  - name: big
    when: {{agent: big}}
    decision: allow
    model: large
  - name: rest
    decision: allow
"""


def write(tmp_path: Path, large: str, pricing: str = "") -> str:
    path = tmp_path / "policy.yml"
    path.write_text(POLICY.format(large=large, pricing=textwrap.indent(pricing, "")))
    return str(path)


def test_validate_rejects_an_unpriced_model_with_a_did_you_mean(tmp_path: Path, capsys):
    path = write(tmp_path, "claude-sonet-4-6")
    code, _, err = run_cli(capsys, "validate", path)
    assert code == 2
    assert f"{path}:2:" in err and "models.large" in err
    assert "'claude-sonet-4-6' has no price" in err and "did you mean 'claude-sonnet-4-6'?" in err


def test_validate_warns_when_on_unknown_model_allows_it(tmp_path: Path, capsys):
    pricing = "pricing: {on_unknown_model: warn, fallback_model: claude-sonnet-4-6}\n"
    path = write(tmp_path, "acme-coder-2", pricing)
    code, _, err = run_cli(capsys, "validate", path)
    assert code == 0 and "warning" in err and "priced as claude-sonnet-4-6" in err


def test_validate_warns_about_a_retiring_model_with_its_date(tmp_path: Path, capsys):
    path = write(tmp_path, "claude-sonnet-4-5")
    code, _, err = run_cli(capsys, "validate", path)
    assert code == 0
    assert "warning" in err and "'claude-sonnet-4-5' retired on 2026-11-30" in err and "claude-sonnet-5-5" in err


def test_an_override_prices_a_custom_model(tmp_path: Path, capsys):
    pricing = "pricing:\n  overrides:\n    acme-coder-2: {input: 1, output: 2}\n"
    code, _, err = run_cli(capsys, "validate", write(tmp_path, "acme-coder-2", pricing))
    assert code == 0 and "acme-coder-2" not in err


def test_check_refuses_to_allow_an_unpriced_model(tmp_path: Path, capsys):
    path = write(tmp_path, "gpt-5.7-turbo")
    code, _, err = run_cli(capsys, "check", "--policy", path, "--agent", "big")
    assert code == 2 and "'gpt-5.7-turbo' has no price" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "check", "--policy", path, "--agent", "other")  # decides the small one
    assert code == 0


def test_check_warns_about_a_retiring_decided_model(tmp_path: Path, capsys):
    code, _, err = run_cli(capsys, "check", "--policy", write(tmp_path, "gpt-5-codex"), "--agent", "big")
    assert code == 0 and "warning: model 'gpt-5-codex' retired on 2026-07-23" in err


def test_the_shipped_policies_decide_current_priced_models(capsys):
    root = Path(__file__).resolve().parents[2]
    for policy in ("policies/default.yml", "policies/strict.yml", "policies/pilot.yml", "ci_guard/demo/policy.yml"):
        code, _, err = run_cli(capsys, "validate", str(root / policy))
        assert code == 0 and "retire" not in err and "no price" not in err, (policy, err)


def test_a_context_route_to_an_unpriced_model_is_an_error(tmp_path: Path, capsys):
    path = tmp_path / "policy.yml"
    path.write_text(textwrap.dedent("""\
        version: 1
        models: {small: claude-haiku-4-5}
        defaults:
          model: small
          limits: {max_turns: 5, max_cost_usd: 1}
          context:
            route:
              - {when: {tools: none}, model: claude-haiku-4-6, name: side-calls}
        rules:
          - {name: all, decision: allow}
        """))
    code, _, err = run_cli(capsys, "validate", str(path))
    assert code == 2 and "defaults.context.route[0].model" in err and "'claude-haiku-4-6' has no price" in err


def test_run_does_not_start_an_agent_on_an_unpriced_model(tmp_path: Path, capsys):
    path = write(tmp_path, "gpt-5.7-turbo")
    marker = tmp_path / "started"
    code, _, err = run_cli(capsys, "run", "--policy", path, "--agent", "big", "--ledger",
                           f"sqlite:///{tmp_path / 'l.db'}", "--", "touch", str(marker))
    assert code == 2 and "'gpt-5.7-turbo' has no price" in err and not marker.exists()
