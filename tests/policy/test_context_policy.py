"""The `context:` block: validation with line numbers, merging over defaults, resolution, outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ci_guard.context.model import RunContext
from ci_guard.policy.engine import decide
from ci_guard.policy.loader import policy_from_text as load_policy_text
from tests.helpers import run_cli

POLICY = """\
version: 1
models: {small: claude-haiku-4-5}
defaults:
  model: claude-sonnet-4-5
  context:
    cache: auto
    prune_tool_results:
      max_tokens: 4000
      keep: {head_lines: 10, tail_lines: 20}
      exclude_tools: Read
rules:
  - name: plain
    when: {agent: plain}
    decision: allow
  - name: no-prune
    when: {agent: no-prune}
    decision: allow
    context:
      prune_tool_results: null
      route:
        - {when: {tools: none, max_output_tokens: "<= 512"}, model: small, name: side-calls}
      max_thinking_tokens: 8000
  - name: rest
    decision: allow
    context: {cache: "off"}
"""


def _decide(agent: str):
    policy = load_policy_text(POLICY, "policy.yml")
    return decide(policy, RunContext(agent=agent), [])


def test_defaults_apply_when_the_rule_names_no_context() -> None:
    cp = _decide("plain").context_policy
    assert cp.cache == "auto"
    assert cp.prune_tool_results is not None and cp.prune_tool_results.max_tokens == 4000
    assert cp.prune_tool_results.exclude_tools == ["Read"]
    assert cp.route == [] and cp.max_thinking_tokens is None


def test_rule_keys_replace_default_keys_and_null_removes_one() -> None:
    cp = _decide("no-prune").context_policy
    assert cp.cache == "auto"  # kept from defaults
    assert cp.prune_tool_results is None  # removed by null
    assert [(r.name, r.model, r.tier) for r in cp.route] == [("side-calls", "claude-haiku-4-5", "small")]
    assert cp.max_thinking_tokens == 8000


def test_cache_off_and_nothing_else_is_inactive_only_without_defaults() -> None:
    cp = _decide("other").context_policy
    assert cp.cache == "off" and cp.prune_tool_results is not None  # prune still inherited
    bare = load_policy_text("version: 1\nrules: [{name: a, decision: allow}]\n", "p.yml")
    assert not decide(bare, RunContext(), []).context_policy.active


def test_check_json_shows_the_resolved_context_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text(POLICY)
    out = subprocess.run([sys.executable, "-m", "ci_guard", "check", "--policy", str(path), "--agent",
                          "no-prune", "--format", "json"], capture_output=True, text=True, check=True).stdout
    cp = json.loads(out)["context_policy"]
    assert cp["route"][0] == {"name": "side-calls", "when": {"tools": "none", "max_output_tokens": "<= 512"},
                              "model": "claude-haiku-4-5", "tier": "small"}
    assert cp["prune_tool_results"] is None and cp["cache"] == "auto"


@pytest.mark.parametrize(("snippet", "expected"), [
    ("cache: maybe", ":4:23: rules[0].context.cache: Input should be 'auto' or 'off'"),
    ("prune_tool_results: {max_tokens: 0}", "rules[0].context.prune_tool_results.max_tokens"),
    ("prune_tool_results: {max_tokens: 1e20}", "rules[0].context.prune_tool_results.max_tokens"),
    ("prune_tool_results: {max_tokens: 100, keep: {head_lines: 5000000}}",
     "rules[0].context.prune_tool_results.keep.head_lines: Input should be less than or equal to 1000000"),
    ("clear_old_tool_results: {keep_last: 2}", "rules[0].context.clear_old_tool_results.trigger_tokens"),
    ("route: [{when: {tools: some}, model: x}]", "rules[0].context.route[0].when.tools"),
    ("route: [{when: {max_output_tokens: lots}, model: x}]", 'expected a comparison such as "> 5000"'),
    ("max_thinking_tokens: 100", "rules[0].context.max_thinking_tokens: Input should be greater than or equal to 1024"),
    ("clear_old_thinking: {keep_turns: 0}", "rules[0].context.clear_old_thinking.keep_turns: Input should be greater"),
    ("clear_old_thinking: {keep: 2}", "rules[0].context.clear_old_thinking.keep: unknown key 'keep'"),
    ("max_reasoning_effort: xhigh", "rules[0].context.max_reasoning_effort: Input should be 'low', 'medium' or 'high'"),
    ("prune: {}", "rules[0].context.prune: unknown key 'prune'"),
])
def test_invalid_blocks_exit_2_with_file_line_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        snippet: str, expected: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(f"version: 1\nrules:\n  - {{name: a, decision: allow,\n     context: {{{snippet}}}}}\n")
    code, _, err = run_cli(capsys, "validate", str(path))
    assert code == 2
    assert expected in err
    assert f"{path}:4:" in err


def test_deny_rules_cannot_carry_a_context_block() -> None:
    from ci_guard.errors import CiGuardError

    with pytest.raises(CiGuardError) as info:
        load_policy_text("version: 1\nrules: [{name: d, decision: deny, context: {cache: auto}}]\n", "p.yml")
    assert "only allow rules choose context" in info.value.render()


def test_validate_warns_about_context_blocks_that_mislead(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yml"
    path.write_text("version: 1\nmodels: {small: claude-haiku-4-5}\ndefaults:\n  context:\n"
                    "    route: [{when: {}, model: small}]\n"
                    "    clear_old_tool_results: {trigger_tokens: 1000, clear_at_least: 5000}\n"
                    "rules: [{name: a, decision: allow}]\n")
    code, out, err = run_cli(capsys, "validate", str(path))
    text = out + err
    assert code == 0
    assert "defaults.context.route[0].when" in text and "every call of the run" in text
    assert "clear_at_least is not below trigger_tokens" in text


def test_an_undefined_tier_in_a_route_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yml"
    path.write_text("version: 1\nrules:\n  - name: a\n    decision: allow\n"
                    "    context: {route: [{when: {tools: none}, model: tiny}]}\n")
    code, _, err = run_cli(capsys, "validate", str(path))
    assert code == 2 and "rules[0].context.route[0].model" in err and "'tiny' is not a tier" in err


def test_thinking_clearing_and_reasoning_effort_resolve_and_show(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "policy.yml"
    path.write_text("version: 1\ndefaults:\n  model: claude-sonnet-4-5\n  context:\n"
                    "    clear_old_thinking: {keep_turns: 2}\n    max_reasoning_effort: medium\n"
                    "rules:\n  - {name: b, decision: allow, when: {agent: b},\n"
                    "     context: {clear_old_thinking: null}}\n  - {name: a, decision: allow}\n")
    assert run_cli(capsys, "validate", str(path))[0] == 0
    out = subprocess.run([sys.executable, "-m", "ci_guard", "check", "--policy", str(path), "--format", "json"],
                         capture_output=True, text=True, check=True).stdout
    cp = json.loads(out)["context_policy"]
    assert cp["clear_old_thinking"] == {"keep_turns": 2} and cp["max_reasoning_effort"] == "medium"
    code, text, _ = run_cli(capsys, "explain", "--policy", str(path))
    assert code == 0
    assert "clear old thinking (keep last 2 turns)" in text and "max_reasoning_effort=medium" in text
    policy = load_policy_text(path.read_text(), str(path))
    b = decide(policy, RunContext(agent="b"), []).context_policy
    assert b.clear_old_thinking is None and b.max_reasoning_effort == "medium" and b.active
