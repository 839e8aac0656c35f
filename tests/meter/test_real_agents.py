"""The real Claude Code and Codex CLIs (npm) run through `ci-guard run` against the simulator.

These prove the meter with the clients teams actually run: the ledger equals what the provider
served, exactly; ci-guard's cost equals Claude Code's own `total_cost_usd`; every cap stops a real
agent and is recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.ledger import open_ledger
from ci_guard.simulator import run_simulator
from tests.agents import CLAUDE, CODEX, require_claude, require_codex

pytestmark = pytest.mark.node

KEY = "sk-ant-api03-real-agent-test-key-000000000000"
POLICY = textwrap.dedent("""
    version: 1
    models: {small: claude-haiku-4-5, large: claude-sonnet-4-5}
    budgets:
      - {name: org-monthly, scope: org, period: month, limit_usd: 100}
    defaults:
      model: large
      limits: {max_turns: 10, max_cost_usd: 2.00, max_runtime: 5m, max_identical_retries: 2}
    rules:
      - {name: turns, when: {agent: turns}, decision: allow, limits: {max_turns: 2}}
      - {name: cost, when: {agent: cost}, decision: allow, limits: {max_cost_usd: 0.02}}
      - {name: tools, when: {agent: tools}, decision: allow, limits: {max_tool_calls: 1}}
      - {name: context, when: {agent: context}, decision: allow, limits: {max_context_tokens: 500}}
      - {name: runtime, when: {agent: runtime}, decision: allow, limits: {max_runtime: 3s}}
      - {name: codex, when: {agent: codex}, decision: allow, model: gpt-5, limits: {max_turns: 4}}
      - {name: default, decision: allow}
""")


def ci_guard_run(tmp: Path, agent: str, upstream: str, command: list[str], preset: str,
                 timeout: float = 240) -> tuple[subprocess.CompletedProcess[str], dict]:
    (tmp / "policy.yml").write_text(POLICY)
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", "DISABLE_AUTOUPDATER": "1",
           "ANTHROPIC_API_KEY": KEY, "OPENAI_API_KEY": KEY,
           "CI_GUARD_ANTHROPIC_UPSTREAM": upstream, "CI_GUARD_OPENAI_UPSTREAM": f"{upstream}/v1"}
    cmd = [sys.executable, "-m", "ci_guard", "run", "--policy", str(tmp / "policy.yml"), "--repo", "acme/web",
           "--agent", agent, "--ledger", f"sqlite:///{tmp / 'ledger.db'}", "--summary", str(tmp / "summary.json"),
           "--preset", preset, "--grace", "5", "--", *command]
    proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    summary = json.loads((tmp / "summary.json").read_text()) if (tmp / "summary.json").exists() else {}
    return proc, summary


def claude(prompt: str = "Say hi with bash") -> list[str]:
    return [str(CLAUDE), "-p", prompt, "--output-format", "json", "--allowedTools", "Bash"]


def ledger_calls(tmp: Path, run_id: str) -> list:
    store = open_ledger(f"sqlite:///{tmp / 'ledger.db'}")
    try:
        return store.list_calls(run_id), store.get_run(run_id)
    finally:
        store.close()


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


def test_claude_code_tool_loop_ledger_equals_served_and_cost_equals_claude_code(tmp):
    require_claude()
    with run_simulator("tool-loop", api_key=KEY) as sim:
        proc, summary = ci_guard_run(tmp, "review", sim.url, claude(), "claude-code")
        served = [r for r in sim.served if r["usage"]]
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["is_error"] is False and result["num_turns"] == 4
    calls, run = ledger_calls(tmp, summary["run_id"])
    assert len(calls) == len(served) == 4
    for call, rec in zip(calls, served, strict=True):
        u = rec["usage"]
        assert (call.usage.input_tokens, call.usage.cache_write_tokens, call.usage.cache_read_tokens,
                call.usage.output_tokens) == (u["input_tokens"], u["cache_creation_input_tokens"],
                                              u["cache_read_input_tokens"], u["output_tokens"])
    assert summary["tokens"]["cache_read"] > 0  # Claude Code's prompt caching is metered as cache reads
    # Claude Code prices the summed usage (in floats, printed to 6 decimals); ci-guard prices each
    # call exactly and rounds it to the micro-dollar (the ledger's unit), so the two totals may differ
    # by half a micro-dollar per call plus Claude Code's own rounding, and by nothing more.
    tolerance = Decimal("0.0000005") * (len(calls) + 1)
    assert abs(Decimal(summary["cost_usd"]) - Decimal(str(result["total_cost_usd"]))) <= tolerance
    assert run.session_id and run.session_id == result["session_id"]
    assert served[0]["model"] == "claude-sonnet-4-5"  # the preset passed the decided model


@pytest.mark.parametrize(("agent", "scenario", "reason"), [
    ("turns", "endless-loop", "max_turns"),
    ("cost", "growing-context", "max_cost"),
    ("tools", "endless-loop", "max_tool_calls"),
    ("context", "tool-loop", "max_context"),
    ("default", "retry-storm", "retry_storm"),
])
def test_each_cap_stops_claude_code(tmp, agent, scenario, reason):
    require_claude()
    with run_simulator(scenario, api_key=KEY) as sim:
        proc, summary = ci_guard_run(tmp, agent, sim.url, [*claude("loop forever"), "--max-turns", "50"],
                                     "claude-code")
    assert proc.returncode == 81, proc.stderr
    assert summary["status"] == "stopped" and summary["stop_reason"] == reason
    calls, run = ledger_calls(tmp, summary["run_id"])
    assert run.stop_reason == reason and run.status == "stopped"
    assert any(c.status == "refused" for c in calls) or reason in ("max_tool_calls", "max_cost")


def test_runtime_cap_stops_claude_code(tmp):
    require_claude()
    with run_simulator({"name": "slow-loop", "turns": None, "delay": {"first_byte": 1.0}}, api_key=KEY) as sim:
        proc, summary = ci_guard_run(tmp, "runtime", sim.url, claude("loop"), "claude-code")
    assert proc.returncode == 81 and summary["stop_reason"] == "max_runtime"
    assert summary["runtime_s"] < 30


def test_codex_through_the_proxy_ledger_equals_served(tmp):
    require_codex()
    with run_simulator({"name": "codex-loop", "turns": 2, "reasoning_tokens": 5}, api_key=KEY) as sim:
        proc, summary = ci_guard_run(tmp, "codex", sim.url, [str(CODEX), "exec", "--json",
                                                             "--skip-git-repo-check", "say hi"], "codex")
        served = [r for r in sim.served if r["usage"]]
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert any(e["type"] == "turn.completed" for e in events)
    calls, _ = ledger_calls(tmp, summary["run_id"])
    assert len(calls) == len(served) == 3
    assert [c.usage.output_tokens for c in calls] == [r["usage"]["output_tokens"] for r in served]
    assert sum(c.usage.reasoning_tokens for c in calls) == 15
    assert all(c.endpoint == "responses" and c.stream for c in calls)
    assert served[0]["model"] == "gpt-5"


def test_max_turns_stops_codex(tmp):
    require_codex()
    with run_simulator("endless-loop", api_key=KEY) as sim:
        proc, summary = ci_guard_run(tmp, "codex", sim.url, [str(CODEX), "exec", "--json", "--skip-git-repo-check",
                                                             "loop"], "codex")
        assert len([r for r in sim.served if r["usage"]]) == 4
    assert proc.returncode == 81 and summary["stop_reason"] == "max_turns"
