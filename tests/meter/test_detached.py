"""`ci-guard start` / `stop`: a detached proxy for agents that are CI actions."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from ci_guard.ledger import open_ledger
from ci_guard.meter.live_log import usd
from ci_guard.simulator import run_simulator
from tests.helpers import pid_alive

KEY = "sk-ant-api03-detached-test-real-key-0000000000"
POLICY = textwrap.dedent("""
    version: 1
    budgets:
      - {name: repo-daily, scope: repo, period: day, limit_usd: 40}
    defaults:
      model: claude-haiku-4-5
      limits: {max_turns: 3, max_cost_usd: 1.00, max_runtime: 10m}
    rules:
      - {name: drafts, when: {draft: true}, decision: skip, reason: no drafts}
      - {name: quick, when: {agent: quick}, decision: allow, limits: {max_runtime: 2s}}
      - {name: all, decision: allow}
""")


def cli(tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ci_guard", *args], env=env or os.environ.copy(), cwd=tmp,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(autouse=True)
def _no_proxy_left(tmp_path: Path):
    """A test that fails half-way must not leave its detached proxy running on a shared machine:
    after each test, kill every ci-guard proxy whose command line names this test's directory."""
    yield
    marker = str(tmp_path).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"ci_guard" in cmdline and b"proxy" in cmdline and marker in cmdline:
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture
def setup(tmp_path: Path):
    (tmp_path / "policy.yml").write_text(POLICY)
    with run_simulator("tool-loop", api_key=KEY) as sim:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "CI_GUARD_ANTHROPIC_UPSTREAM": sim.url,
               "RUNNER_TEMP": str(tmp_path)}
        yield tmp_path, sim, env


def start(tmp: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return cli(tmp, "start", "--policy", "policy.yml", "--repo", "acme/web", "--no-draft",
               "--ledger", f"sqlite:///{tmp / 'ledger.db'}", "--format", "shell", *extra, env=env)


def exported(out: str) -> dict[str, str]:
    pairs = [shlex.split(line[len("export "):])[0].split("=", 1) for line in out.splitlines()
             if line.startswith("export ")]
    return dict(pairs)


def stop_key(out: str) -> str:
    """The stop key `start --format shell` gives the CI step: a shell variable, never exported."""
    (line,) = [line for line in out.splitlines() if line.startswith("CI_GUARD_STOP_KEY=")]
    return shlex.split(line)[0].split("=", 1)[1]


def call(agent_env: dict[str, str], text: str) -> httpx.Response:
    return httpx.post(agent_env["ANTHROPIC_BASE_URL"] + "/v1/messages",
                      headers={"x-api-key": agent_env["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"},
                      json={"model": "claude-haiku-4-5", "max_tokens": 50,
                            "messages": [{"role": "user", "content": text}]}, timeout=30)


def test_start_meter_stop_settles_and_summarises(setup):
    tmp, sim, env = setup
    started = start(tmp, env)
    assert started.returncode == 0, started.stderr
    agent_env = exported(started.stdout)
    assert agent_env["ANTHROPIC_API_KEY"].startswith("cig_") and KEY not in started.stdout
    key = stop_key(started.stdout)
    assert key not in agent_env.values() and "CI_GUARD_STOP_KEY" not in agent_env
    state = json.loads((tmp / "ci-guard-state.json").read_text())
    assert oct((tmp / "ci-guard-state.json").stat().st_mode & 0o777) == "0o600" and KEY not in json.dumps(state)
    assert key not in (tmp / "ci-guard-state.json").read_text()
    assert [call(agent_env, f"q{i}").status_code for i in range(4)] == [200, 200, 200, 400]  # max_turns 3
    stopped = cli(tmp, "stop", "--summary", "run.json", "--format", "json", env={**env, "CI_GUARD_STOP_KEY": key})
    assert stopped.returncode == 0, stopped.stderr
    summary = json.loads((tmp / "run.json").read_text())
    assert summary["status"] == "stopped" and summary["stop_reason"] == "max_turns" and summary["turns"] == 3
    assert summary["tokens"]["output"] == sum(r["usage"]["output_tokens"] for r in sim.served)
    store = open_ledger(f"sqlite:///{tmp / 'ledger.db'}")
    try:
        run = store.get_run(summary["run_id"])
        assert run.status == "stopped" and str(run.cost_usd) == summary["cost_usd"]
        bucket = store.bucket_rows("repo-daily", run.started_at.replace(hour=0, minute=0, second=0, microsecond=0),
                                   run.started_at)
        assert sum(b["reserved_usd"] for b in bucket) == 0  # the reservation was released
    finally:
        store.close()
    assert not pid_alive(state["pid"])


@pytest.mark.parametrize("forge", ["github", "gitlab", "local"])
def test_stop_prints_the_per_call_log_folded(setup, forge):
    tmp, _, env = setup
    env = {k: v for k, v in env.items() if k not in ("GITHUB_ACTIONS", "GITLAB_CI")}
    if forge != "local":
        env["GITHUB_ACTIONS" if forge == "github" else "GITLAB_CI"] = "true"
    agent_env = exported(start(tmp, env).stdout)
    assert [call(agent_env, f"q{i}").status_code for i in range(2)] == [200, 200]
    stopped = subprocess.run([sys.executable, "-m", "ci_guard", "stop", "--summary", "run.json"], env=env, cwd=tmp,
                             capture_output=True, timeout=60)  # bytes: GitLab's markers hold \r and escapes
    assert stopped.returncode == 0, stopped.stderr
    summary = json.loads((tmp / "run.json").read_text())
    stderr = stopped.stderr.decode()
    lines = stderr.split("\n")
    title = next(i for i, line in enumerate(lines) if "ci-guard: 2 model calls" in line)
    calls = [line for line in lines if line.startswith(("#1 ", "#2 "))]
    assert len(calls) == 2 and all("claude-haiku-4-5" in c and " out " in c for c in calls)
    assert calls[1].endswith(f"(run {usd(summary['cost_usd'])})")  # the running total ends at the run's cost
    if forge == "github":
        assert lines[title].startswith("::group::") and "::endgroup::" in lines[title + 3]
    elif forge == "gitlab":
        assert lines[title].startswith("\x1b[0Ksection_start:") and "[collapsed=true]\r\x1b[0K" in lines[title]
        assert lines[title + 3].startswith("\x1b[0Ksection_end:")
    else:
        assert "::group::" not in stderr and "section_start" not in stderr


@pytest.mark.parametrize(("flags", "status", "reason", "code"), [
    (["--agent-exit-code", "3"], "failed", "agent_exit", 3),
    (["--agent-outcome", "failure"], "failed", "agent_exit", None),
    (["--agent-outcome", "cancelled"], "cancelled", "step_cancelled", None),
    (["--agent-outcome", "success", "--agent-exit-code", "0"], "completed", None, 0),
])
def test_stop_takes_the_agent_steps_outcome(setup, flags, status, reason, code):
    # start/stop mode: the agent is a workflow step, not ci-guard's child; the workflow tells `stop`.
    tmp, _, env = setup
    started = start(tmp, env)
    agent_env = exported(started.stdout)
    assert call(agent_env, "q").status_code == 200
    keyed = {**env, "CI_GUARD_STOP_KEY": stop_key(started.stdout)}
    stopped = cli(tmp, "stop", "--summary", "run.json", *flags, env=keyed)
    assert "count only with the stop key" not in stopped.stderr
    assert stopped.returncode == 0, stopped.stderr
    summary = json.loads((tmp / "run.json").read_text())
    assert (summary["status"], summary["stop_reason"], summary["agent_exit_code"]) == (status, reason, code)
    store = open_ledger(f"sqlite:///{tmp / 'ledger.db'}")
    try:
        assert store.get_run(summary["run_id"]).status == status
    finally:
        store.close()


def test_runtime_cap_refuses_calls_after_the_deadline(setup):
    tmp, _, env = setup
    started = cli(tmp, "start", "--policy", "policy.yml", "--repo", "acme/web", "--agent", "quick",
                  "--ledger", f"sqlite:///{tmp / 'ledger.db'}", "--format", "shell", env=env)
    agent_env = exported(started.stdout)
    assert call(agent_env, "early").status_code == 200
    time.sleep(2.2)
    late = call(agent_env, "late")
    assert late.status_code == 400 and "max_runtime" in late.json()["error"]["message"]
    summary = json.loads(cli(tmp, "stop", "--format", "json", env=env).stdout)
    assert summary["stop_reason"] == "max_runtime"


def test_denied_run_starts_no_proxy(setup):
    tmp, _, env = setup
    started = cli(tmp, "start", "--policy", "policy.yml", "--repo", "acme/web", "--draft",
                  "--ledger", f"sqlite:///{tmp / 'ledger.db'}", env=env)
    assert started.returncode == 80 and "skip" in started.stderr
    summary = json.loads(cli(tmp, "stop", "--format", "json", env=env).stdout)
    assert summary["status"] == "skipped"


def test_stop_recovers_a_proxy_that_was_killed(setup):
    tmp, _, env = setup
    agent_env = exported(start(tmp, env).stdout)
    assert call(agent_env, "one").status_code == 200
    state = json.loads((tmp / "ci-guard-state.json").read_text())
    # the call is committed by the ledger thread just after its last byte went out
    for _ in range(100):
        store = open_ledger(f"sqlite:///{tmp / 'ledger.db'}")
        try:
            recorded = store.list_calls(state["run_id"])
        finally:
            store.close()
        if recorded:
            break
        time.sleep(0.05)
    os.kill(state["pid"], signal.SIGKILL)
    for _ in range(100):
        if not pid_alive(state["pid"]):
            break
        time.sleep(0.05)
    stopped = cli(tmp, "stop", "--format", "json", env=env)
    assert stopped.returncode == 0, stopped.stderr
    summary = json.loads(stopped.stdout)
    assert summary["status"] == "error" and len(summary["calls"]) == 1  # the metered call survived


def test_github_format_exports_env_and_masks_the_token(setup):
    tmp, _, env = setup
    github_env, outputs = tmp / "github_env", tmp / "github_output"
    env = {**env, "GITHUB_ENV": str(github_env), "GITHUB_OUTPUT": str(outputs)}
    started = cli(tmp, "start", "--policy", "policy.yml", "--repo", "acme/web", "--no-draft",
                  "--ledger", f"sqlite:///{tmp / 'ledger.db'}", "--format", "github", env=env)
    assert started.returncode == 0, started.stderr
    lines = dict(line.split("=", 1) for line in github_env.read_text().splitlines())
    assert started.stdout.startswith(f"::add-mask::{lines['ANTHROPIC_API_KEY']}")
    assert lines["ANTHROPIC_BASE_URL"].endswith("/anthropic") and "CI_GUARD_STATE" in lines
    assert "run-id<<" in outputs.read_text()
    from tests.actions.github_runner import parse_command_file

    key = parse_command_file(outputs)["stop-key"]  # a masked step output, never in GITHUB_ENV
    assert key.startswith("cig_stop_") and f"::add-mask::{key}" in started.stdout
    assert key not in github_env.read_text() and key not in started.stderr
    assert cli(tmp, "stop", env={**env, "CI_GUARD_STOP_KEY": key}).returncode == 0


# A container's PID 1 that never reaps: it adopts the orphaned proxy (as a child subreaper) and
# keeps it as a zombie after it exits. `ci-guard start` runs under it.
NON_REAPING_INIT = textwrap.dedent("""
    import ctypes, subprocess, sys, time
    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    sys.stdout.write(done.stdout)
    sys.stdout.write("\\n--started--\\n")
    sys.stdout.flush()
    time.sleep(120)  # never waits for the proxy
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="child subreapers are Linux-only")
def test_stop_is_quick_when_nobody_reaps_the_exited_proxy(setup):
    tmp, _, env = setup
    init = subprocess.Popen(
        [sys.executable, "-c", NON_REAPING_INIT, sys.executable, "-m", "ci_guard", "start", "--policy", "policy.yml",
         "--repo", "acme/web", "--no-draft", "--ledger", f"sqlite:///{tmp / 'ledger.db'}", "--format", "shell"],
        cwd=tmp, env=env, stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        assert init.stdout is not None
        for line in init.stdout:
            if line.strip() == "--started--":
                break
            lines.append(line)
        agent_env = exported("".join(lines))
        assert call(agent_env, "one").status_code == 200
        pid = json.loads((tmp / "ci-guard-state.json").read_text())["pid"]
        t0 = time.monotonic()
        stopped = cli(tmp, "stop", "--format", "json", env=env)
        elapsed = time.monotonic() - t0
        assert stopped.returncode == 0, stopped.stderr
        summary = json.loads(stopped.stdout)
        assert summary["status"] == "completed" and len(summary["calls"]) == 1
        # the proxy exited and stays a zombie: stop saw that instead of waiting out its 30 s
        assert Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        assert elapsed < 10, elapsed
    finally:
        init.kill()
        init.wait()


def test_start_preset_codex_home_is_removed_by_stop_and_nothing_the_state_file_names(setup):
    """`start --preset codex` exports a CODEX_HOME next to the state file; `stop` removes it. The
    agent can write the state file, so a directory named there is never what `stop` deletes."""
    tmp, _, env = setup
    home = tmp / "home"
    home.mkdir()
    started = start(tmp, {**env, "HOME": str(home)}, "--preset", "codex")
    assert started.returncode == 0, started.stderr
    codex_home = Path(exported(started.stdout)["CODEX_HOME"])
    assert (codex_home / "config.toml").is_file() and codex_home.parent == tmp / "ci-guard-state.agent"
    victim = tmp / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("x")
    state_file = tmp / "ci-guard-state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "agent_dir": str(victim)}))
    stopped = cli(tmp, "stop", "--format", "json", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert not codex_home.exists() and (victim / "keep.txt").is_file()


def test_stop_without_the_key_says_the_outcome_does_not_count(setup):
    tmp, _, env = setup
    agent_env = exported(start(tmp, env).stdout)
    assert call(agent_env, "q").status_code == 200
    stopped = cli(tmp, "stop", "--summary", "run.json", "--agent-outcome", "cancelled", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert "count only with the stop key" in stopped.stderr
    assert json.loads((tmp / "run.json").read_text())["status"] == "completed"  # what the proxy saw
