"""`ci-guard run` end to end: policy, ledger, proxy, a real child process, summary and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.context.model import RunContext
from ci_guard.ledger import open_ledger
from ci_guard.meter.runner import EXIT_CAP_STOPPED, EXIT_POLICY_REFUSED, RunRequest, run_agent
from ci_guard.meter.upstreams import Upstreams
from ci_guard.simulator.server import run_simulator

KEY = "sk-ant-api03-runner-test-real-key-0123456789abcdef"
POLICY = textwrap.dedent("""
    version: 1
    models: {small: claude-haiku-4-5, large: claude-sonnet-4-5}
    budgets:
      - {name: repo-daily, scope: repo, period: day, limit_usd: 40}
    defaults:
      model: small
      limits: {max_turns: 6, max_cost_usd: 1.00, max_runtime: 10m, max_identical_retries: 3}
    rules:
      - name: drafts
        when: {draft: true}
        decision: skip
        reason: no drafts
      - name: tiny-budget
        when: {agent: penny}
        decision: allow
        limits: {max_cost_usd: 0.001, max_turns: 50}
      - name: slow
        when: {agent: slowpoke}
        decision: allow
        limits: {max_runtime: 2s}
      - name: tools
        when: {agent: toolish}
        decision: allow
        limits: {max_tool_calls: 2}
      - name: allow
        decision: allow
""")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "policy.yml").write_text(POLICY)
    return tmp_path


def ctx(**kw) -> RunContext:
    base = dict(platform="local", repo="acme/web", org="acme", pr=9, trigger="pull_request", actor="alice",
                agent="pr-review", draft=False)
    base.update(kw)
    return RunContext(**base)


def request(workdir: Path, sim, command: list[str], **kw) -> RunRequest:
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "OPENAI_API_KEY": "sk-proj-openai-real-key-abcdefghijklmnop"}
    return RunRequest(
        policy_path=str(workdir / "policy.yml"), context=kw.pop("context", ctx()), command=command,
        ledger_url=f"sqlite:///{workdir / 'ledger.db'}", preset="none",
        upstreams=Upstreams(anthropic=sim.url, openai=sim.openai_url, anthropic_api_key=KEY, openai_api_key=KEY),
        summary_path=str(workdir / "summary.json"), quiet=True, environ=env, grace_s=0.5, kill_after_s=2, **kw)


AGENT = [sys.executable, "-m", "ci_guard.demo.agent"]


def test_completed_run_is_recorded_exactly_and_the_agent_exit_code_is_kept(workdir):
    with run_simulator("tool-loop", api_key=KEY) as sim:
        outcome = run_agent(request(workdir, sim, [*AGENT, "--stream"]))
        served = [r for r in sim.served if r["usage"]]
    s = outcome.summary
    assert outcome.exit_code == 0 and s.status == "completed" and s.stop_reason is None
    assert s.turns == len(served) == 4 and s.tool_calls == 3
    store = open_ledger(f"sqlite:///{workdir / 'ledger.db'}")
    try:
        run = store.get_run(s.run_id)
        calls = store.list_calls(s.run_id)
    finally:
        store.close()
    assert run.status == "completed" and run.agent_exit_code == 0 and run.repo == "acme/web" and run.pr == 9
    assert [c.usage.output_tokens for c in calls] == [r["usage"]["output_tokens"] for r in served]
    assert [c.usage.input_tokens for c in calls] == [r["usage"]["input_tokens"] for r in served]
    assert sum((c.cost_usd for c in calls), Decimal(0)) == s.cost_usd == run.cost_usd
    on_disk = json.loads((workdir / "summary.json").read_text())
    assert on_disk["run_id"] == s.run_id and on_disk["cost_usd"] == str(s.cost_usd)
    assert on_disk["tokens"]["output"] == sum(r["usage"]["output_tokens"] for r in served)


def test_agent_failure_exit_code_passes_through(workdir):
    with run_simulator("tool-loop", api_key=KEY) as sim:
        outcome = run_agent(request(workdir, sim, [sys.executable, "-c", "import sys; sys.exit(7)"]))
    assert outcome.exit_code == 7 and outcome.summary.agent_exit_code == 7


def test_max_turns_stops_a_runaway_agent(workdir):
    with run_simulator("endless-loop", api_key=KEY) as sim:
        outcome = run_agent(request(workdir, sim, AGENT))
        assert len(sim.served) == 6
    assert outcome.exit_code == EXIT_CAP_STOPPED
    assert outcome.summary.status == "stopped" and outcome.summary.stop_reason == "max_turns"


def test_max_cost_is_never_passed_the_output_cap_is_lowered_to_fit(workdir):
    with run_simulator("growing-context", api_key=KEY) as sim:
        outcome = run_agent(request(workdir, sim, AGENT, context=ctx(agent="penny")))
        served = sim.served
    s = outcome.summary
    assert s.cost_usd <= Decimal("0.001")
    assert served[0]["usage"]["output_tokens"] < 2048  # the agent asked for 2048; only what fits was allowed


def test_max_cost_stops_an_agent_that_keeps_calling(workdir):
    script = textwrap.dedent("""
        import os, httpx
        h = {"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"}
        for i in range(20):
            r = httpx.post(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", headers=h,
                           json={"model": "claude-haiku-4-5", "max_tokens": 2048,
                                 "messages": [{"role": "user", "content": "call %d" % i}]})
            if r.status_code != 200:
                raise SystemExit(3)
    """)
    with run_simulator("growing-context", api_key=KEY) as sim:
        outcome = run_agent(request(workdir, sim, [sys.executable, "-c", script], context=ctx(agent="penny")))
    s = outcome.summary
    assert s.stop_reason == "max_cost" and outcome.exit_code == EXIT_CAP_STOPPED
    assert s.cost_usd <= Decimal("0.001")


def test_max_tool_calls_stops_the_run(workdir):
    with run_simulator("endless-loop", api_key=KEY) as sim:
        outcome = run_agent(request(workdir, sim, AGENT, context=ctx(agent="toolish")))
    assert outcome.summary.stop_reason == "max_tool_calls" and outcome.summary.tool_calls == 3


def test_retry_storm_is_cut_early(workdir):
    with run_simulator("retry-storm", api_key=KEY) as sim:
        outcome = run_agent(request(workdir, sim, [*AGENT, "--retries", "100"]))
        assert len(sim.served) == 4  # 1 + max_identical_retries identical failures, then refused
    assert outcome.summary.stop_reason == "retry_storm"


def test_runtime_cap_kills_an_agent_that_does_not_call(workdir):
    with run_simulator("tool-loop", api_key=KEY) as sim:
        t0 = time.monotonic()
        outcome = run_agent(request(workdir, sim, [sys.executable, "-c", "import time; time.sleep(60)"],
                                    context=ctx(agent="slowpoke")))
        elapsed = time.monotonic() - t0
    assert outcome.summary.stop_reason == "max_runtime" and outcome.exit_code == EXIT_CAP_STOPPED
    assert elapsed < 10
    assert outcome.summary.agent_exit_code == 128 + signal.SIGTERM


def test_agent_ignoring_sigterm_is_killed_with_its_process_group(workdir):
    script = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); time.sleep(120)")
    with run_simulator("tool-loop", api_key=KEY) as sim:
        outcome = run_agent(request(workdir, sim, [sys.executable, "-c", script], context=ctx(agent="slowpoke")))
    assert outcome.summary.agent_exit_code == 128 + signal.SIGKILL
    leftover = subprocess.run(["pgrep", "-f", "time.sleep(120)"], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""


def test_denied_and_skipped_runs_do_not_start_the_agent(workdir):
    marker = workdir / "ran"
    with run_simulator("tool-loop", api_key=KEY) as sim:
        outcome = run_agent(request(workdir, sim, [sys.executable, "-c", f"open({str(marker)!r}, 'w')"],
                                    context=ctx(draft=True)))
    assert outcome.exit_code == EXIT_POLICY_REFUSED and outcome.summary.status == "skipped"
    assert not marker.exists()
    store = open_ledger(f"sqlite:///{workdir / 'ledger.db'}")
    try:
        assert store.get_run(outcome.summary.run_id).status == "skipped"
    finally:
        store.close()


def test_real_keys_never_reach_the_agent_summary_or_ledger(workdir):
    dump = workdir / "env.json"
    script = f"import json, os; json.dump(dict(os.environ), open({str(dump)!r}, 'w'))"
    with run_simulator("tool-loop", api_key=KEY) as sim:
        req = request(workdir, sim, [sys.executable, "-c", script], strip_env=("GITLAB_TOKEN",))
        req.environ.update(CI_GUARD_LEDGER="postgresql://ci:s3cret@db/ledger", PGPASSWORD="s3cret",
                           GITLAB_TOKEN="glpat-forge-token-abcdefghij", GITHUB_TOKEN="ghs_keptforthereviewagent0001")
        run_agent(req)
        outcome = run_agent(request(workdir, sim, [*AGENT, "--stream"]))
    env = json.loads(dump.read_text())
    assert KEY not in json.dumps(env) and "sk-proj-openai-real-key" not in json.dumps(env)
    assert "s3cret" not in json.dumps(env) and "GITLAB_TOKEN" not in env  # ledger URL, PGPASSWORD, --strip-env
    assert env["GITHUB_TOKEN"] == "ghs_keptforthereviewagent0001"  # review agents need their forge token
    assert env["ANTHROPIC_API_KEY"].startswith("cig_") and env["ANTHROPIC_BASE_URL"].endswith("/anthropic")
    assert env["OPENAI_BASE_URL"].endswith("/openai/v1") and env["CI_GUARD_MODEL"] == "claude-haiku-4-5"
    assert env["CI_GUARD_MAX_TURNS"] == "6" and env["CI_GUARD_RUN_ID"].startswith("run_")
    for blob in ((workdir / "summary.json").read_text(), (workdir / "ledger.db").read_bytes().decode("latin-1")):
        assert KEY not in blob and "sk-proj-openai-real-key" not in blob
    assert outcome.summary.status == "completed"


def test_agent_killed_with_sigkill_loses_no_call(workdir):
    # The agent makes calls, then kills itself with SIGKILL mid-run: every call it made is in the ledger.
    script = textwrap.dedent("""
        import os, signal, httpx
        h = {"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"}
        for i in range(3):
            httpx.post(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", headers=h,
                       json={"model": "claude-haiku-4-5", "max_tokens": 50,
                              "messages": [{"role": "user", "content": "call %d" % i}]})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    with run_simulator("tool-loop", api_key=KEY) as sim:
        outcome = run_agent(request(workdir, sim, [sys.executable, "-c", script]))
    assert outcome.summary.agent_exit_code == 128 + signal.SIGKILL
    store = open_ledger(f"sqlite:///{workdir / 'ledger.db'}")
    try:
        assert len(store.list_calls(outcome.summary.run_id)) == 3
    finally:
        store.close()


def test_cli_run_exit_codes_and_github_outputs(workdir, tmp_path):
    out, summary_md = tmp_path / "out.txt", tmp_path / "summary.md"
    with run_simulator("tool-loop", api_key=KEY) as sim:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "GITHUB_OUTPUT": str(out),
               "GITHUB_STEP_SUMMARY": str(summary_md), "CI_GUARD_ANTHROPIC_UPSTREAM": sim.url}
        cmd = [sys.executable, "-m", "ci_guard", "run", "--policy", str(workdir / "policy.yml"), "--repo", "acme/web",
               "--agent", "pr-review", "--no-draft", "--ledger", f"sqlite:///{workdir / 'l.db'}", "--format", "github",
               "--summary", str(workdir / "s.json"), "--quiet", "--", *AGENT]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "run-id<<" in text and "cost-usd<<" in text and "status<<" in text
    assert "completed" in text and KEY not in text
    assert "ci-guard: completed" in summary_md.read_text()
    assert KEY not in proc.stderr and KEY not in proc.stdout


def test_signals_to_ci_guard_are_forwarded_to_the_agent(workdir, tmp_path):
    marker, started = tmp_path / "got-sigterm", tmp_path / "started"
    script = (f"import signal, sys, time\n"
              f"def bye(*a):\n    open({str(marker)!r}, 'w').write('x'); sys.exit(42)\n"
              f"signal.signal(signal.SIGTERM, bye)\nopen({str(started)!r}, 'w').write('x')\ntime.sleep(60)\n")
    with run_simulator("tool-loop", api_key=KEY) as sim:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "CI_GUARD_ANTHROPIC_UPSTREAM": sim.url}
        cmd = [sys.executable, "-m", "ci_guard", "run", "--policy", str(workdir / "policy.yml"), "--repo", "acme/web",
               "--no-draft", "--ledger", f"sqlite:///{workdir / 'l.db'}", "--quiet", "--",
               sys.executable, "-c", script]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert marker.exists(), err
    assert proc.returncode == 42


def test_missing_agent_command_is_invalid_input_before_anything_is_reserved(workdir):
    from ci_guard.errors import InvalidInputError

    with run_simulator("tool-loop", api_key=KEY) as sim, pytest.raises(InvalidInputError, match="not found"):
        run_agent(request(workdir, sim, ["definitely-not-a-command-xyz"]))
    assert not (workdir / "ledger.db").exists() or not open_ledger(
        f"sqlite:///{workdir / 'ledger.db'}").list_runs()


def test_ci_guard_makes_itself_undumpable():
    code = ("import ctypes; from ci_guard.meter.hardening import make_undumpable; "
            "ok = make_undumpable(); libc = ctypes.CDLL(None); print(ok, libc.prctl(3, 0, 0, 0, 0))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "0"]  # PR_GET_DUMPABLE reads 0 afterwards


def test_a_ledger_that_fails_mid_run_is_reported_once_and_every_call_is_spilled(tmp_path, caplog):
    import logging
    from datetime import UTC, datetime

    from ci_guard.ledger.records import CallRecord
    from ci_guard.meter.recorder import LedgerRecorder
    from ci_guard.pricing.usage import Usage

    class Broken:
        def record_call(self, call):
            raise RuntimeError("database is gone")

        def record_calls(self, calls):
            raise RuntimeError("database is gone")

        def close(self):
            pass

    spill = tmp_path / "nested" / "spill.jsonl"  # the directory does not exist yet
    recorder = LedgerRecorder(lambda: Broken(), spill_path=str(spill))
    now = datetime.now(UTC)
    with caplog.at_level(logging.WARNING, logger="ci_guard.meter"):
        for seq in range(1, 51):
            recorder.record_call(CallRecord("run_x", seq, now, now, "anthropic", "messages", "m", "m",
                                            Usage(input_tokens=1), Decimal("0.000001")))
        recorder.flush()
        recorder.close()
    rows = [json.loads(line) for line in spill.read_text().splitlines()]
    assert [r["seq"] for r in rows] == list(range(1, 51))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and "50 calls in all" in messages[1]


def test_a_proxy_that_fails_to_start_after_the_spawn_kills_the_agent_and_closes_the_run(workdir, monkeypatch):
    """The agent starts while the proxy comes up on the bound socket; if the proxy fails, the agent
    (and its group) is killed, the run ends as an error and its hold is released."""
    from datetime import UTC, datetime

    from ci_guard.meter.proxy import MeterProxy
    from ci_guard.policy.models import Budget

    async def broken(self):
        raise OSError("the proxy could not start")

    monkeypatch.setattr(MeterProxy, "start", broken)
    pid_file = workdir / "agent.pid"
    sleeper = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    started = time.monotonic()
    with run_simulator("tool-loop", api_key=KEY) as sim, pytest.raises(OSError, match="could not start"):
        run_agent(request(workdir, sim, [sys.executable, "-c", sleeper]))
    assert time.monotonic() - started < 30  # not the agent's 60 s: it was killed
    if pid_file.exists():  # it got as far as writing it: it must be gone now
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid_file.read_text()), 0)
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["status"] == "error"
    store = open_ledger(f"sqlite:///{workdir / 'ledger.db'}")
    try:
        assert store.get_run(summary["run_id"]).status == "error"
        daily = Budget(name="repo-daily", scope="repo", period="day", limit_usd=40)
        assert store.budget_status([daily], ctx(), datetime.now(UTC))[0].reserved_usd == 0
    finally:
        store.close()
