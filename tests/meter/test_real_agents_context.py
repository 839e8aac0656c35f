"""The real Claude Code CLI through `ci-guard run` with a context policy: pruning, routing and the
thinking clamp applied, and Claude Code still finishing its scripted task against the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.simulator import run_simulator
from tests.agents import CLAUDE, CODEX, require_claude, require_codex

pytestmark = pytest.mark.node

KEY = "sk-ant-api03-real-agent-context-test-0000000000"
POLICY = textwrap.dedent("""
    version: 1
    models: {small: claude-3-5-haiku, large: claude-sonnet-4-5}
    defaults:
      model: large
      limits: {max_turns: 10, max_cost_usd: 2.00, max_runtime: 5m}
    rules:
      - name: default
        decision: allow
        context:
          cache: auto
          prune_tool_results: {max_tokens: 1000, keep: {head_lines: 10, tail_lines: 20}}
          route:
            - {when: {agent_call: title}, model: small, name: titles}
          max_thinking_tokens: 4000
""")
# A test run printing about 14 kB (3,500 tokens): small enough that Claude Code sends it inline.
SCENARIO = textwrap.dedent("""
    name: long-test-log
    turns: 3
    text: "Done: the tests pass now."
    tool: {name: Bash, input: {command: "seq 100000 103000", description: "Run the tests"}}
""")


def test_claude_code_finishes_with_pruning_routing_and_the_thinking_clamp(tmp_path: Path) -> None:
    require_claude()
    (tmp_path / "policy.yml").write_text(POLICY)
    (tmp_path / "scenario.yml").write_text(SCENARIO)
    home = tmp_path / "home"
    home.mkdir()
    with run_simulator(str(tmp_path / "scenario.yml"), api_key=KEY) as sim:
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", "DISABLE_AUTOUPDATER": "1",
               "ANTHROPIC_API_KEY": KEY, "CI_GUARD_ANTHROPIC_UPSTREAM": sim.url,
               "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": ""}  # keep Claude Code's title side call
        cmd = [sys.executable, "-m", "ci_guard", "run", "--policy", str(tmp_path / "policy.yml"), "--repo",
               "acme/web", "--agent", "claude", "--ledger", f"sqlite:///{tmp_path / 'ledger.db'}", "--summary",
               str(tmp_path / "summary.json"), "--preset", "claude-code", "--grace", "5", "--",
               str(CLAUDE), "-p", "Make the tests pass", "--output-format", "json", "--max-turns", "8",
               "--allowedTools", "Bash"]
        proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240,
                              stdin=subprocess.DEVNULL)
        bodies, served = list(sim.bodies), list(sim.served)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["result"] == "Done: the tests pass now."
    summary = json.loads((tmp_path / "summary.json").read_text())
    calls = summary["calls"]

    # routing: Claude Code's title call went to the small tier, recorded with its rule
    titles = [c for c in calls if (c.get("context") or {}).get("route") == "titles"]
    assert len(titles) == 1 and titles[0]["model"] == "claude-3-5-haiku"
    assert titles[0]["model_requested"] != "claude-3-5-haiku"
    assert "claude-3-5-haiku" in [s["model"] for s in served]

    # pruning: on the last main call every earlier test log is cut (same cut each time), the newest is whole
    main = [b for b in bodies if b.get("tools")]
    last = main[-1]
    results = [blk for m in last["messages"] if isinstance(m.get("content"), list)
               for blk in m["content"] if blk.get("type") == "tool_result"]
    assert len(results) == 3
    texts = [json.dumps(r["content"]) for r in results]
    assert all("[ci-guard:" in t for t in texts[:-1]) and "[ci-guard:" not in texts[-1]
    assert "103000" in texts[-1] and "103000" in texts[0]  # the tail of a pruned log is kept
    assert texts[0] in json.dumps(main[-2]["messages"])  # cut the same way on the previous turn

    # thinking budget clamped, max_tokens still above it; Claude Code's own caching left alone and
    # the pruned conversation still read from the cache on later turns
    assert all(b["thinking"]["budget_tokens"] == 4000 < b["max_tokens"] for b in main if b.get("thinking"))
    main_calls = [c for c in calls if c.get("context") is None or not c["context"].get("route")]
    assert all(c["tokens"]["cache_read"] > 0 for c in main_calls[1:])
    pruned_calls = [c for c in calls if (c.get("context") or {}).get("pruned_results")]
    assert pruned_calls and all(c["context"]["agent_caches"] for c in pruned_calls)
    assert summary["context_savings"]["calls_changed"] >= 3
    assert Decimal(summary["context_savings"]["saved_usd"]) > 0


CODEX_POLICY = textwrap.dedent("""
    version: 1
    defaults:
      model: gpt-5
      limits: {max_turns: 10, max_cost_usd: 2.00, max_runtime: 5m}
    rules:
      - name: default
        decision: allow
        context:
          cache: auto
          prune_tool_results: {max_tokens: 1000, keep: {head_lines: 10, tail_lines: 20}}
""")


def test_codex_finishes_with_its_responses_tool_outputs_pruned(tmp_path: Path) -> None:
    require_codex()
    (tmp_path / "policy.yml").write_text(CODEX_POLICY)
    home = tmp_path / "home"
    home.mkdir()
    scenario = {"name": "codex-log", "turns": 3, "text": "Done: fixed.",
                "tool": {"name": "exec_command", "input": {"cmd": "seq 100000 103000"}}}
    with run_simulator(scenario, api_key=KEY) as sim:
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", "OPENAI_API_KEY": KEY,
               "CI_GUARD_OPENAI_UPSTREAM": f"{sim.url}/v1"}
        cmd = [sys.executable, "-m", "ci_guard", "run", "--policy", str(tmp_path / "policy.yml"), "--repo",
               "acme/web", "--agent", "codex", "--ledger", f"sqlite:///{tmp_path / 'ledger.db'}", "--summary",
               str(tmp_path / "summary.json"), "--preset", "codex", "--grace", "5", "--",
               str(CODEX), "exec", "--json", "--skip-git-repo-check", "fix the tests"]
        proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240,
                              stdin=subprocess.DEVNULL)
        bodies = list(sim.bodies)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert any(json.loads(line).get("item", {}).get("text") == "Done: fixed."
               for line in proc.stdout.splitlines() if line.startswith("{"))
    outputs = [[it["output"] for it in b["input"] if isinstance(it, dict) and it.get("type") == "function_call_output"]
               for b in bodies]
    last = outputs[-1]
    assert len(last) == 3
    assert all("[ci-guard:" in json.dumps(o) for o in last[:-1]) and "[ci-guard:" not in json.dumps(last[-1])
    assert outputs[-2][0] == last[0]  # the same cut on every later turn
    assert "cache_control" not in json.dumps(bodies)  # nothing added for OpenAI's automatic caching
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["context_savings"]["pruned_results"] == 3  # 1 on the third call, 2 on the fourth


CLEAR_POLICY = textwrap.dedent("""
    version: 1
    defaults:
      model: claude-sonnet-4-5
      limits: {max_turns: 10, max_cost_usd: 2.00, max_runtime: 5m}
    rules:
      - name: default
        decision: allow
        context:
          clear_old_tool_results: {trigger_tokens: 2000, keep_last: 1}
          clear_old_thinking: {keep_turns: 1}
""")


def test_claude_code_keeps_its_own_context_edit_and_gets_server_side_tool_clearing(tmp_path: Path) -> None:
    """Claude Code sends its own context_management (a thinking edit, keep all): the policy's
    tool-clearing edit is added after it, its thinking choice is kept, the provider's applied_edits
    are recorded, and Claude Code finishes its task."""
    require_claude()
    (tmp_path / "policy.yml").write_text(CLEAR_POLICY)
    (tmp_path / "scenario.yml").write_text(SCENARIO)
    home = tmp_path / "home"
    home.mkdir()
    with run_simulator(str(tmp_path / "scenario.yml"), api_key=KEY) as sim:
        sim.keep_raw = True
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", "DISABLE_AUTOUPDATER": "1",
               "ANTHROPIC_API_KEY": KEY, "CI_GUARD_ANTHROPIC_UPSTREAM": sim.url}
        cmd = [sys.executable, "-m", "ci_guard", "run", "--policy", str(tmp_path / "policy.yml"), "--repo",
               "acme/web", "--agent", "claude", "--ledger", f"sqlite:///{tmp_path / 'ledger.db'}", "--summary",
               str(tmp_path / "summary.json"), "--preset", "claude-code", "--grace", "5", "--",
               str(CLAUDE), "-p", "Make the tests pass", "--output-format", "json", "--max-turns", "8",
               "--allowedTools", "Bash"]
        proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240,
                              stdin=subprocess.DEVNULL)
        sent, served = [json.loads(r) for r in sim.raw], list(sim.served)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["result"] == "Done: the tests pass now."
    main = [b for b in sent if b.get("tools")]
    for body in main:  # Claude Code's own edit first and untouched, the policy's appended
        edits = body["context_management"]["edits"]
        assert edits[0] == {"type": "clear_thinking_20251015", "keep": "all"}
        assert [e["type"] for e in edits] == ["clear_thinking_20251015", "clear_tool_uses_20250919"]
        assert edits[1]["keep"] == {"type": "tool_uses", "value": 1}
    calls = json.loads((tmp_path / "summary.json").read_text())["calls"]
    cleared = [(s["applied_edits"], c["context"]) for s, c in zip(served, calls, strict=True) if s["applied_edits"]]
    assert cleared  # the later turns: all but the newest result cleared by the provider
    for applied, context in cleared:
        assert context["cleared_by"] == "provider" and context["context_edit"]
        assert context["cleared_results"] == sum(e.get("cleared_tool_uses", 0) for e in applied) >= 1
        assert "thinking_edit" not in context  # Claude Code's keep-all choice was kept
        assert Decimal(context["saved_usd"]) > 0 and context["method"] == "provider-reported"
