"""The real agents' own per-call records, imported, agree with the proxy to the micro-dollar.

Claude Code and Codex run through `ci-guard run` against the simulator; the session files they wrote
(Claude Code's ~/.claude/projects/.../SESSION.jsonl, Codex's ~/.codex/sessions/.../rollout-*.jsonl)
are then imported with `ci-guard import` into the same ledger. Both ledgers must hold the same calls
with the same tokens and the same cost, call by call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.simulator import run_simulator
from tests.agents import CODEX, require_claude, require_codex
from tests.meter.test_real_agents import KEY, ci_guard_run, claude, ledger_calls

pytestmark = pytest.mark.node


def ci_guard_import(tmp: Path, fmt: str, path: Path, *extra: str) -> dict:
    cmd = [sys.executable, "-m", "ci_guard", "import", "--format", fmt, str(path), "--repo", "acme/web",
           "--agent", "imported", "--ledger", f"sqlite:///{tmp / 'ledger.db'}", "--output", "json", *extra]
    proc = subprocess.run(cmd, env={**os.environ, "HOME": str(tmp / "home")}, cwd=tmp, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def assert_same_calls(proxied: list, imported: list) -> None:
    assert len(proxied) == len(imported) > 0
    for a, b in zip(proxied, imported, strict=True):
        assert a.usage == b.usage, (a.seq, a.usage, b.usage)
        assert (a.model_served or a.model_requested) == b.model_served
        assert a.cost_usd == b.cost_usd, (a.seq, a.cost_usd, b.cost_usd)


GENEROUS = """
version: 1
defaults:
  model: claude-sonnet-4-5
  limits: {max_turns: 12, max_cost_usd: 20.00, max_runtime: 5m}
rules:
  - {name: default, decision: allow}
"""


def test_claude_code_session_import_equals_the_proxys_ledger(tmp_path: Path, monkeypatch):
    require_claude()
    import tests.meter.test_real_agents as real

    monkeypatch.setattr(real, "POLICY", GENEROUS)
    # a growing context (5K more output each turn), with tool calls, cache writes and reads
    scenario = {"name": "grow", "turns": 3, "grow_tokens": 5_000}
    with run_simulator(scenario, api_key=KEY) as sim:
        proc, summary = ci_guard_run(tmp_path, "review", sim.url, claude(), "claude-code")
    assert proc.returncode == 0, proc.stderr
    sessions = list((tmp_path / "home" / ".claude" / "projects").rglob("*.jsonl"))
    assert len(sessions) == 1
    imported = ci_guard_import(tmp_path, "claude-code-session", sessions[0])
    proxied_calls, proxied_run = ledger_calls(tmp_path, summary["run_id"])
    imported_calls, imported_run = ledger_calls(tmp_path, imported["run_id"])
    assert_same_calls(proxied_calls, imported_calls)
    assert proxied_run.cost_usd == imported_run.cost_usd == Decimal(imported["cost_usd"])
    print(f"{len(proxied_calls)} calls, ${proxied_run.cost_usd} both ways")
    assert imported_run.enforced is False and imported_run.session_id == proxied_run.session_id
    assert len(proxied_calls) == 4 and sum(c.tool_calls for c in imported_calls) == 3


def test_codex_session_import_equals_the_proxys_ledger(tmp_path: Path):
    require_codex()
    with run_simulator({"name": "codex-loop", "turns": 2, "reasoning_tokens": 5}, api_key=KEY) as sim:
        proc, summary = ci_guard_run(tmp_path, "codex", sim.url, [str(CODEX), "exec", "--json",
                                                                  "--skip-git-repo-check", "say hi"], "codex")
    assert proc.returncode == 0, proc.stderr
    rollouts = list((tmp_path / "home" / ".codex" / "sessions").rglob("rollout-*.jsonl"))
    assert len(rollouts) == 1
    imported = ci_guard_import(tmp_path, "codex-session", rollouts[0])
    proxied_calls, proxied_run = ledger_calls(tmp_path, summary["run_id"])
    imported_calls, imported_run = ledger_calls(tmp_path, imported["run_id"])
    assert_same_calls(proxied_calls, imported_calls)
    assert proxied_run.cost_usd == imported_run.cost_usd
