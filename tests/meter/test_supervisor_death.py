"""Issue 12 #15: ci-guard killed with SIGKILL mid-run. The agent dies with it, and the next
ci-guard run on that ledger closes the dead run and releases its hold (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ci_guard.context.model import RunContext
from ci_guard.ledger import open_ledger
from ci_guard.policy.models import Budget
from ci_guard.simulator.server import run_simulator
from tests.helpers import pid_alive

KEY = "sk-ant-api03-supervisor-death-real-key-0123456789"
POLICY = textwrap.dedent("""
    version: 1
    budgets:
      - {name: repo-daily, scope: repo, period: day, limit_usd: 40}
    defaults:
      model: claude-haiku-4-5
      limits: {max_turns: 5, max_cost_usd: 2.00, max_runtime: 10m}
    rules:
      - {name: allow, decision: allow}
""")
# An agent that says who it is, then waits for a long time (as one busy with a long tool call).
SLEEPER = "import os, pathlib, time; pathlib.Path('agent.pid').write_text(str(os.getpid())); time.sleep(120)"


def _wait(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _reserved(url: str) -> tuple[object, object]:
    store = open_ledger(url)
    try:
        (status,) = store.budget_status([Budget(name="repo-daily", scope="repo", period="day", limit_usd=40)],
                                        RunContext(repo="acme/web"), datetime.now(UTC))
        runs = store.list_runs(repo="acme/web")
        return status.reserved_usd, {r.run_id: r.status for r in runs}
    finally:
        store.close()


@pytest.mark.parametrize("next_command", ["run", "check"])
def test_the_agent_dies_with_ci_guard_and_the_next_run_closes_the_dead_one(tmp_path: Path, any_ledger: str,
                                                                           next_command: str):
    (tmp_path / "policy.yml").write_text(POLICY)
    ci_guard = str(Path(sys.executable).parent / "ci-guard")
    with run_simulator("tool-loop", api_key=KEY) as sim:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "CI_GUARD_ANTHROPIC_UPSTREAM": sim.url,
               "CI_GUARD_LEDGER": any_ledger}
        args = [ci_guard, "run", "--policy", "policy.yml", "--repo", "acme/web", "--quiet", "--preset", "none", "--"]
        proc = subprocess.Popen([*args, sys.executable, "-c", SLEEPER], cwd=tmp_path, env=env)
        try:
            assert _wait(lambda: (tmp_path / "agent.pid").exists() and (tmp_path / "agent.pid").read_text())
            agent = int((tmp_path / "agent.pid").read_text())
            reserved, runs = _reserved(any_ledger)
            assert reserved == 2 and list(runs.values()) == ["running"]
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            assert _wait(lambda: not pid_alive(agent), 10)  # not left running, orphaned
        finally:
            if proc.poll() is None:
                proc.kill()
        (dead,) = runs
        assert _reserved(any_ledger) == (2, {dead: "running"})  # what the kill left behind
        # the next ci-guard command on that ledger: another run, or only a policy check
        command = [*args, sys.executable, "-c", "pass"] if next_command == "run" else \
            [ci_guard, "check", "--policy", "policy.yml", "--repo", "acme/web"]
        quick = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert quick.returncode == 0, quick.stderr
    reserved, runs = _reserved(any_ledger)
    assert runs[dead] == "error" and reserved == 0  # closed, and its hold released at once
    assert not (tmp_path / ".ci-guard").exists()  # nothing in the workspace: the owner is in the ledger


# An agent whose own child outlives it: a shell that starts a long `sleep` in the background and
# waits for it (as an agent's tool call that runs a test server). PDEATHSIG covers only the shell.
SPAWNER = ("import os, pathlib, subprocess; pathlib.Path('agent.pid').write_text(str(os.getpid())); "
           "subprocess.run(['sh', '-c', 'sleep 300 & echo $! > grandchild.pid; wait'])")


def test_the_agents_grandchildren_die_with_ci_guard(tmp_path: Path):
    (tmp_path / "policy.yml").write_text(POLICY)
    ci_guard = str(Path(sys.executable).parent / "ci-guard")
    with run_simulator("tool-loop", api_key=KEY) as sim:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "CI_GUARD_ANTHROPIC_UPSTREAM": sim.url,
               "CI_GUARD_LEDGER": f"sqlite:///{tmp_path / 'ledger.db'}"}
        args = [ci_guard, "run", "--policy", "policy.yml", "--repo", "acme/web", "--quiet", "--preset", "none", "--"]
        # its own session: the test kills ci-guard alone, as the OOM killer would, not its group
        proc = subprocess.Popen([*args, sys.executable, "-c", SPAWNER], cwd=tmp_path, env=env,
                                start_new_session=True)
        grandchild = None
        try:
            pid_file = tmp_path / "grandchild.pid"
            assert _wait(lambda: pid_file.exists() and pid_file.read_text().strip())
            grandchild = int(pid_file.read_text())
            agent = int((tmp_path / "agent.pid").read_text())
            assert pid_alive(grandchild) and pid_alive(agent)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            assert _wait(lambda: not pid_alive(agent), 5)
            assert _wait(lambda: not pid_alive(grandchild), 5)  # not re-parented and left running
        finally:
            if proc.poll() is None:
                proc.kill()
            if grandchild and pid_alive(grandchild):
                os.kill(grandchild, signal.SIGKILL)


def test_the_watchdog_holds_no_secret_and_kills_the_group_when_its_pipe_closes(monkeypatch):
    from ci_guard.meter.hardening import GroupWatchdog

    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)  # in ci-guard's environment, as in every run
    group = subprocess.Popen(["sh", "-c", "sleep 300 & wait"], start_new_session=True)
    watchdog = GroupWatchdog(group.pid)
    try:
        assert watchdog.pid is not None and pid_alive(watchdog.pid)
        # Between fork and exec the child still shows ci-guard's own argv and environment: wait for the exec
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(f"/proc/{watchdog.pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
            if argv[0] == b"/bin/sh":
                break
            time.sleep(0.01)
        assert argv[-2] == str(group.pid).encode()  # argv: only the group id
        with open(f"/proc/{watchdog.pid}/environ", "rb") as fh:  # readable by the agent: same user, dumpable
            assert fh.read() == b""
        time.sleep(0.2)
        assert group.poll() is None  # waits while ci-guard holds the pipe
        os.close(watchdog._write_end)  # what the kernel does when ci-guard dies, however it dies
        watchdog._write_end = -1
        assert group.wait(5) == -signal.SIGKILL
    finally:
        watchdog.close()
        if group.poll() is None:
            os.killpg(group.pid, signal.SIGKILL)
            group.wait()


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_forged_owner_never_closes_a_live_run(tmp_path: Path, any_ledger: str):
    """Issue 12: the owner of a run lived in `.ci-guard/<run_id>.owner`, which the agent can write: a
    file naming a dead pid made the next run close a live one. Owners are in the ledger now, and a
    run owned on another host (or in another pid namespace) is never judged from here."""
    (tmp_path / "policy.yml").write_text(POLICY)
    ci_guard = str(Path(sys.executable).parent / "ci-guard")
    with run_simulator("tool-loop", api_key=KEY) as sim:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "CI_GUARD_ANTHROPIC_UPSTREAM": sim.url,
               "CI_GUARD_LEDGER": any_ledger, "RUNNER_TEMP": str(tmp_path / "temp")}
        (tmp_path / "temp").mkdir()
        args = [ci_guard, "run", "--policy", "policy.yml", "--repo", "acme/web", "--quiet", "--preset", "none", "--"]
        live = subprocess.Popen([*args, sys.executable, "-c", SLEEPER], cwd=tmp_path, env=env)
        try:
            assert _wait(lambda: (tmp_path / "agent.pid").exists() and (tmp_path / "agent.pid").read_text())
            _, runs = _reserved(any_ledger)
            (run_id,) = runs
            # the hostile agent: owner files naming a dead pid, where ci-guard used to read them
            for directory in (tmp_path / ".ci-guard", tmp_path / "temp" / "ci-guard", tmp_path / "temp"):
                directory.mkdir(exist_ok=True)
                (directory / f"{run_id}.owner").write_text(f'{{"run_id": "{run_id}", "pid": {_dead_pid()}}}')
            quick = subprocess.run([*args, sys.executable, "-c", "pass"], cwd=tmp_path, env=env, capture_output=True,
                                   text=True, timeout=60)
            assert quick.returncode == 0, quick.stderr
            reserved, runs = _reserved(any_ledger)
            assert runs[run_id] == "running" and reserved == 2  # the live run and its hold are untouched

            # a run whose recorded owner is on another host: its pid means nothing here
            from ci_guard.meter.owners import host_id

            store = open_ledger(any_ledger)
            try:
                store.set_run_owner(run_id, _dead_pid(), None, "elsewhere/" + host_id())
            finally:
                store.close()
            quick = subprocess.run([*args, sys.executable, "-c", "pass"], cwd=tmp_path, env=env, capture_output=True,
                                   text=True, timeout=60)
            assert quick.returncode == 0, quick.stderr
            assert _reserved(any_ledger)[1][run_id] == "running"
        finally:
            live.send_signal(signal.SIGTERM)
            live.wait(30)
        reserved, runs = _reserved(any_ledger)
        assert runs[run_id] != "running" and reserved == 0  # it ended by itself, and settled


# An agent whose one call is a stream the upstream holds open: it says when the first bytes arrived
# (the call is then in flight through ci-guard), then waits for the rest, which never comes in time.
STREAMER = textwrap.dedent("""
    import os, pathlib, httpx
    pathlib.Path('agent.pid').write_text(str(os.getpid()))
    h = {"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"}
    body = {"model": "claude-haiku-4-5", "max_tokens": MAX_TOKENS, "stream": True,
            "messages": [{"role": "user", "content": "write the whole module"}]}
    with httpx.stream("POST", os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", headers=h, json=body,
                      timeout=300) as r:
        for chunk in r.iter_bytes():
            pathlib.Path('streaming').write_text('yes')
""")
MAX_TOKENS = 4000
# first event at once, then one every 4 s: the stream is open for ~20 s (and the simulator, which
# waits for its handlers when it stops, notices the dead agent within 4 s)
HELD_OPEN = {"turns": 1, "delay": {"first_byte": 0, "per_event": 4}}


def _calls_and_spent(url: str, run_id: str) -> tuple[list, object]:
    store = open_ledger(url)
    try:
        (status,) = store.budget_status([Budget(name="repo-daily", scope="repo", period="day", limit_usd=40)],
                                        RunContext(repo="acme/web"), datetime.now(UTC))
        return store.list_calls(run_id), status
    finally:
        store.close()


@pytest.mark.parametrize("next_command", ["run", "check"])
def test_the_call_in_flight_at_sigkill_is_charged_at_its_worst_case(tmp_path: Path, any_ledger: str,
                                                                    next_command: str):
    """Issue 12 #15: the call in flight when ci-guard is killed was lost (its row is written when it
    ends) and closing the dead run released its hold, so what the upstream served escaped the ledger.
    It is journaled before it goes upstream and charged at its worst case when the run is closed."""
    from ci_guard.meter import lifecycle
    from ci_guard.meter.inflight import charge_inflight, replay_inflight_files
    from ci_guard.meter.pricer import CatalogPricer
    from ci_guard.pricing.catalog import load_catalog

    (tmp_path / "policy.yml").write_text(POLICY)
    (tmp_path / "temp").mkdir()
    ci_guard = str(Path(sys.executable).parent / "ci-guard")
    agent_script = STREAMER.replace("MAX_TOKENS", str(MAX_TOKENS))
    with run_simulator(HELD_OPEN, api_key=KEY) as sim:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "CI_GUARD_ANTHROPIC_UPSTREAM": sim.url,
               "CI_GUARD_LEDGER": any_ledger, "RUNNER_TEMP": str(tmp_path / "temp")}
        args = [ci_guard, "run", "--policy", "policy.yml", "--repo", "acme/web", "--quiet", "--preset", "none", "--"]
        proc = subprocess.Popen([*args, sys.executable, "-c", agent_script], cwd=tmp_path, env=env)
        try:
            assert _wait(lambda: (tmp_path / "streaming").exists(), 30)  # the stream is open, mid-way
            _, runs = _reserved(any_ledger)
            (dead,) = runs
            journal = Path(lifecycle.journal_path(dead, env))
            assert journal.exists()  # written before the call went upstream
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        saved = journal.read_text()  # to replay it again later
        assert json.loads(saved)["seq"] == 1
        calls, _ = _calls_and_spent(any_ledger, dead)
        assert calls == [] and _reserved(any_ledger) == (2, {dead: "running"})  # what the kill left: no row
        command = [*args, sys.executable, "-c", "pass"] if next_command == "run" else \
            [ci_guard, "check", "--policy", "policy.yml", "--repo", "acme/web"]
        quick = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert quick.returncode == 0, quick.stderr
    reserved, runs = _reserved(any_ledger)
    assert runs[dead] == "error" and reserved == 0  # closed, no hold left
    (call,), status = _calls_and_spent(any_ledger, dead)
    assert call.seq == 1 and call.status == "cut" and call.estimated and "worst case" in (call.error or "")
    assert call.usage.output_tokens == MAX_TOKENS  # the whole output cap: the upstream may have served it
    worst = CatalogPricer(load_catalog()).worst_case("claude-haiku-4-5", call.usage.input_tokens, MAX_TOKENS)
    assert worst is not None and call.cost_usd == worst > 0
    assert status.spent_usd == call.cost_usd  # in the budget rollup
    store = open_ledger(any_ledger)
    try:
        assert store.get_run(dead).cost_usd == call.cost_usd  # and in the run's total
    finally:
        store.close()
    assert not journal.exists()  # charged once, then gone

    # the same journal replayed twice more (a copy left behind, a retry), and a forged line for the
    # same call asking for more: still one row, nothing added
    forged = json.dumps({**json.loads(saved), "cost_usd": "5", "output_tokens": 10**6})
    store = open_ledger(any_ledger)
    try:
        for text in (saved, saved, forged + "\n"):
            journal.write_text(text)
            assert charge_inflight(store, journal, dead) == 0
            journal.write_text(text)
            assert replay_inflight_files(store, journal.parent) == 0
            assert not journal.exists()
    finally:
        store.close()
    (again,), status = _calls_and_spent(any_ledger, dead)
    assert again.cost_usd == call.cost_usd and status.spent_usd == call.cost_usd


def test_a_run_that_ends_leaves_no_journal_and_a_forged_one_never_lowers_spend(tmp_path: Path):
    from ci_guard.meter import lifecycle
    from ci_guard.meter.inflight import charge_inflight

    (tmp_path / "policy.yml").write_text(POLICY)
    (tmp_path / "temp").mkdir()
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    agent = textwrap.dedent("""
        import os, httpx
        h = {"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"}
        for stream in (False, True):
            httpx.post(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", headers=h,
                       json={"model": "claude-haiku-4-5", "max_tokens": 50, "stream": stream,
                             "messages": [{"role": "user", "content": "hi"}]}).raise_for_status()
    """)
    with run_simulator("tool-loop", api_key=KEY) as sim:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "CI_GUARD_ANTHROPIC_UPSTREAM": sim.url,
               "CI_GUARD_LEDGER": url, "RUNNER_TEMP": str(tmp_path / "temp")}
        done = subprocess.run([str(Path(sys.executable).parent / "ci-guard"), "run", "--policy", "policy.yml",
                               "--repo", "acme/web", "--quiet", "--preset", "none", "--", sys.executable, "-c", agent],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (run_id,) = _reserved(url)[1]
    calls, status = _calls_and_spent(url, run_id)
    assert [c.seq for c in calls] == [1, 2] and not any(c.estimated for c in calls)
    spill = lifecycle.spill_dir(env)
    assert spill.is_dir() and not list(spill.glob("*.inflight.jsonl"))  # written during the run, removed at its end

    # the agent (same user) writes lines into the journal: another run's, negative, malformed, a seq
    # that has a row with a lower cost. None lowers spend or touches another run; the run's total stays.
    journal = Path(lifecycle.journal_path(run_id, env))
    base = {"run_id": run_id, "started_at": calls[0].started_at.isoformat(), "provider": "anthropic",
            "endpoint": "messages", "model": "claude-haiku-4-5", "input_tokens": 1, "output_tokens": 1}
    lines = [{**base, "seq": 1, "cost_usd": "0"}, {**base, "seq": 7, "cost_usd": "-3"},
             {**base, "seq": 8, "cost_usd": "1", "run_id": "run_other"}, {**base, "seq": 9, "input_tokens": -5,
                                                                          "cost_usd": "1"}]
    journal.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    store = open_ledger(url)
    try:
        assert charge_inflight(store, journal, run_id) == 0
    finally:
        store.close()
    after, status_after = _calls_and_spent(url, run_id)
    assert [(c.seq, c.cost_usd) for c in after] == [(c.seq, c.cost_usd) for c in calls]
    assert status_after.spent_usd == status.spent_usd > 0 and not journal.exists()


def test_the_call_in_flight_when_a_detached_proxy_is_killed_is_charged_by_stop(tmp_path: Path, any_ledger: str):
    """`start`/`stop`: the detached proxy is killed mid-stream; `stop` closes the run and charges
    the call it had in flight at its worst case."""
    import shlex
    import threading

    import httpx

    from ci_guard.meter.pricer import CatalogPricer
    from ci_guard.pricing.catalog import load_catalog

    (tmp_path / "policy.yml").write_text(POLICY)
    with run_simulator(HELD_OPEN, api_key=KEY) as sim:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "CI_GUARD_ANTHROPIC_UPSTREAM": sim.url,
               "RUNNER_TEMP": str(tmp_path)}
        started = subprocess.run([sys.executable, "-m", "ci_guard", "start", "--policy", "policy.yml", "--repo",
                                  "acme/web", "--ledger", any_ledger, "--format", "shell"], env=env, cwd=tmp_path,
                                 capture_output=True, text=True, timeout=60)
        assert started.returncode == 0, started.stderr
        agent_env = dict(shlex.split(line[len("export "):])[0].split("=", 1)
                         for line in started.stdout.splitlines() if line.startswith("export "))
        state = json.loads((tmp_path / "ci-guard-state.json").read_text())
        first_bytes = threading.Event()

        def agent() -> None:
            body = {"model": "claude-haiku-4-5", "max_tokens": MAX_TOKENS, "stream": True,
                    "messages": [{"role": "user", "content": "write the whole module"}]}
            headers = {"x-api-key": agent_env["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"}
            try:
                with httpx.stream("POST", agent_env["ANTHROPIC_BASE_URL"] + "/v1/messages", json=body,
                                  headers=headers, timeout=60) as r:
                    for _ in r.iter_bytes():
                        first_bytes.set()
            except httpx.HTTPError:
                pass  # the proxy is killed under it

        thread = threading.Thread(target=agent, daemon=True)
        thread.start()
        assert first_bytes.wait(30)
        os.kill(state["pid"], signal.SIGKILL)
        thread.join(30)
        assert _wait(lambda: not pid_alive(state["pid"]), 10)
        (key,) = [shlex.split(line)[0].split("=", 1)[1] for line in started.stdout.splitlines()
                  if line.startswith("CI_GUARD_STOP_KEY=")]
        # the full ledger URL, as the workflow passes it (the state file keeps it redacted)
        stopped = subprocess.run([sys.executable, "-m", "ci_guard", "stop", "--format", "json", "--ledger",
                                  any_ledger], env={**env, "CI_GUARD_STOP_KEY": key}, cwd=tmp_path,
                                 capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    summary = json.loads(stopped.stdout)
    assert summary["status"] == "error" and len(summary["calls"]) == 1
    (call,), status = _calls_and_spent(any_ledger, state["run_id"])
    assert call.status == "cut" and call.estimated and call.usage.output_tokens == MAX_TOKENS
    worst = CatalogPricer(load_catalog()).worst_case("claude-haiku-4-5", call.usage.input_tokens, MAX_TOKENS)
    assert call.cost_usd == worst > 0 and status.spent_usd == worst and status.reserved_usd == 0
