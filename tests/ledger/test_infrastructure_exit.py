"""Infrastructure failures are not policy decisions (issue 10, item 5): their own exit codes.

`check` exits 3 and `run`/`start` exit 82 when the ledger cannot be reached (SQLite and
PostgreSQL), and say it was the ledger; a provider key the run needs fails before the agent starts.
Each test runs the CLI as a subprocess, as the Action and the GitLab component do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

POLICY = textwrap.dedent("""
    version: 1
    models: {small: claude-haiku-4-5, codexy: gpt-5}
    budgets:
      - {name: repo-daily, scope: repo, period: day, limit_usd: 40}
    defaults:
      model: small
      limits: {max_turns: 5, max_cost_usd: 1.00}
    rules:
      - {name: codex, when: {agent: codex-fix}, decision: allow, model: codexy}
      - {name: allow, decision: allow}
    enforcement: {on_ledger_error: ON_ERROR}
""")
KEYS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "OPENAI_API_KEY", "CI_GUARD_LEDGER",
        "CI_GUARD_ANTHROPIC_UPSTREAM", "CI_GUARD_OPENAI_UPSTREAM")


@pytest.fixture(params=["sqlite", "postgres"])
def broken_ledger(request, tmp_path) -> str:
    if request.param == "sqlite":
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("x")
        return f"sqlite:///{blocker}/ledger.db"  # the parent is a file: cannot be opened
    return "postgresql://ci:s3cret-pw@127.0.0.1:1/ledger?connect_timeout=2"  # nobody listens on port 1


def _cli(tmp_path: Path, *argv: str, on_error: str = "deny", **env_extra: str) -> subprocess.CompletedProcess:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY.replace("ON_ERROR", on_error))
    env = {k: v for k, v in os.environ.items() if k not in KEYS}
    env.update(GITHUB_OUTPUT=str(tmp_path / "out"), GITHUB_STEP_SUMMARY=str(tmp_path / "step.md"),
               RUNNER_TEMP=str(tmp_path / "runner"), **env_extra)
    cmd = [sys.executable, "-m", "ci_guard", argv[0], "--policy", str(policy), "--repo", "acme/web",
           "--no-draft", *argv[1:]]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90, cwd=tmp_path)


def test_an_unreachable_ledger_makes_check_exit_3_and_says_it_was_the_ledger(tmp_path, broken_ledger):
    proc = _cli(tmp_path, "check", "--ledger", broken_ledger, "--format", "github")
    assert proc.returncode == 3, proc.stderr
    assert "the ledger could not be reached" in proc.stderr and "not a policy decision" in proc.stderr
    assert "::error title=ci-guard ledger::" in proc.stdout
    assert "s3cret-pw" not in proc.stdout + proc.stderr


def test_an_unreachable_ledger_makes_run_exit_82_and_the_agent_never_starts(tmp_path, broken_ledger):
    marker = tmp_path / "ran"
    proc = _cli(tmp_path, "run", "--ledger", broken_ledger, "--format", "github", "--summary",
                str(tmp_path / "s.json"), "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')",
                ANTHROPIC_API_KEY="sk-ant-api03-infra-test-key-000000000000")
    assert proc.returncode == 82, proc.stderr
    assert not marker.exists()
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["status"] == "error" and summary["stop_reason"] == "ledger_error"
    assert "ledger could not be reached" in summary["stop_detail"]
    assert "::error title=ci-guard ledger::" in proc.stdout and "ledger could not be reached" in proc.stderr
    assert "status<<" in (tmp_path / "out").read_text() and "s3cret-pw" not in proc.stdout + proc.stderr


def test_start_exits_82_on_an_unreachable_ledger(tmp_path, broken_ledger):
    proc = _cli(tmp_path, "start", "--ledger", broken_ledger, "--format", "github",
                "--state", str(tmp_path / "state.json"), ANTHROPIC_API_KEY="sk-ant-api03-infra-test-key-000000000000")
    assert proc.returncode == 82, proc.stderr
    assert "::error title=ci-guard ledger::" in proc.stdout


def test_on_ledger_error_allow_runs_the_agent_and_says_the_ledger_failed(tmp_path, broken_ledger):
    marker = tmp_path / "ran"
    proc = _cli(tmp_path, "run", "--ledger", broken_ledger, "--quiet", "--", sys.executable, "-c",
                f"open({str(marker)!r}, 'w')", on_error="allow",
                ANTHROPIC_API_KEY="sk-ant-api03-infra-test-key-000000000000")
    assert marker.exists() and proc.returncode == 0, proc.stderr
    assert "the ledger could not be reached" in proc.stderr and "on_ledger_error: allow" in proc.stderr


@pytest.mark.parametrize(("agent", "argv", "needs"), [
    ("pr-review", [], "ANTHROPIC_API_KEY"),  # the decided model is Claude: Anthropic's key
    ("codex-fix", [], "OPENAI_API_KEY"),  # the decided model is gpt-5: OpenAI's key
    ("pr-review", ["--preset", "codex"], "OPENAI_API_KEY"),  # the preset's provider
])
def test_a_missing_provider_key_fails_before_the_agent_starts(tmp_path, agent, argv, needs):
    marker = tmp_path / "ran"
    other = {"OPENAI_API_KEY": "sk-proj-only-the-other-key-1234567890"} if needs == "ANTHROPIC_API_KEY" \
        else {"ANTHROPIC_API_KEY": "sk-ant-api03-only-the-other-key-12345678"}
    ledger = f"sqlite:///{tmp_path}/l.db"
    proc = _cli(tmp_path, "run", "--agent", agent, "--ledger", ledger, *argv, "--", sys.executable, "-c",
                f"open({str(marker)!r}, 'w')", **other)
    assert proc.returncode == 82, proc.stderr
    assert needs in proc.stderr and not marker.exists()
    assert next(iter(other.values())) not in proc.stderr
    from ci_guard.ledger import open_ledger

    store = open_ledger(ledger, create=False) if (tmp_path / "l.db").exists() else None
    if store is not None:  # the run (when it was recorded) is closed, its reservation released
        try:
            assert all(r.status == "error" for r in store.list_runs())
        finally:
            store.close()
