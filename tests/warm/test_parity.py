"""A run through the warm launcher is the run a cold `ci-guard run` is: exit code, output, stdin,
cwd, environment, ledger and metering; only where it starts (and what the client imports) differ."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.ledger import open_ledger
from ci_guard.simulator.server import run_simulator
from tests.warm.conftest import CLI, CONSOLE, KEY, POLICY, RUN, TIMEOUT, Warm, base_env, ledger_runs

REPO_ROOT = Path(__file__).resolve().parents[2]
FLEET_AGENT = REPO_ROOT / "bench" / "fleet_agent.py"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "policy.yml").write_text(POLICY)
    return tmp_path


def run(exe: list[str], env: dict[str, str], cwd: Path, *agent: str, input: str | None = None,
        extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*exe, *RUN, *extra, "--", *agent], env=env, cwd=cwd, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=TIMEOUT)


def cold_env(**extra: str) -> dict[str, str]:
    return base_env(ANTHROPIC_API_KEY=KEY, **extra)


def test_a_warm_run_fails_exactly_as_a_cold_one(module_warm: Warm, workdir: Path):
    ledger = f"sqlite:///{workdir / 'ledger.db'}"
    agent = ("sh", "-c", "echo out; echo err >&2; exit 3")
    # the console script, as a user runs it, through the launcher
    warm = run([CONSOLE], module_warm.env(CI_GUARD_LEDGER=ledger), workdir, *agent)
    assert warm.returncode == 3, warm.stderr
    assert "out" in warm.stdout.splitlines()
    assert "err" in warm.stderr.splitlines()
    assert "warning: failed: the agent exited with code 3" in warm.stderr
    assert "starting cold" not in warm.stderr  # it did go through the launcher
    (warm_run,) = ledger_runs(ledger)

    cold = run(CLI, cold_env(CI_GUARD_LEDGER=ledger), workdir, *agent)
    assert cold.returncode == warm.returncode == 3
    assert cold.stdout == warm.stdout
    assert "warning: failed: the agent exited with code 3" in cold.stderr
    runs = ledger_runs(ledger)
    assert len(runs) == 2 and runs[warm_run] == "failed" and set(runs.values()) == {"failed"}


# The agent names its parent (the run) and its parent's parent (the run's parent).
LINEAGE = textwrap.dedent("""
    import os
    ppid = os.getppid()
    with open(f"/proc/{ppid}/status") as fh:
        grand = next(int(line.split()[1]) for line in fh if line.startswith("PPid:"))
    print(ppid, grand)
""")


def test_the_run_is_forked_from_the_launcher(module_warm: Warm, workdir: Path):
    ledger = f"sqlite:///{workdir / 'ledger.db'}"
    warm = run(CLI, module_warm.env(CI_GUARD_LEDGER=ledger), workdir, sys.executable, "-c", LINEAGE)
    assert warm.returncode == 0, warm.stderr
    run_pid, grand = map(int, warm.stdout.split())
    assert grand == module_warm.pid and run_pid != module_warm.pid
    # the same agent cold: the run is a child of this test's client process, not of the launcher
    cold = subprocess.Popen([*CLI, *RUN, "--", sys.executable, "-c", LINEAGE], env=cold_env(CI_GUARD_LEDGER=ledger),
                            cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    out, err = cold.communicate(timeout=TIMEOUT)
    assert cold.returncode == 0, err
    assert list(map(int, out.split())) == [cold.pid, os.getpid()]


IDENTITY = textwrap.dedent("""
    import json, os, sys
    print(json.dumps({"stdin": sys.stdin.readline().strip(), "cwd": os.getcwd(),
                      "only_here": os.environ.get("WARM_ONLY_IN_CLIENT"),
                      "key": os.environ.get("ANTHROPIC_API_KEY"),
                      "base_url": os.environ.get("ANTHROPIC_BASE_URL"),
                      "values": list(os.environ.values())}))
""")


def test_stdin_cwd_and_environment_are_the_clients(module_warm: Warm, workdir: Path):
    sub = workdir / "deeper"
    sub.mkdir()
    ledger = f"sqlite:///{workdir / 'ledger.db'}"
    env = module_warm.env(CI_GUARD_LEDGER=ledger, WARM_ONLY_IN_CLIENT="from-the-client")
    args = ["run", "--policy", str(workdir / "policy.yml"), "--repo", "acme/web", "--preset", "none", "--quiet", "--"]

    piped = subprocess.run([*CLI, *args, "sh", "-c", "read x; echo got-$x"], input="hello\n", env=env, cwd=sub,
                           capture_output=True, text=True, timeout=TIMEOUT)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == "got-hello\n"

    seen = subprocess.run([*CLI, *args, sys.executable, "-c", IDENTITY], input="line one\n", env=env, cwd=sub,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert seen.returncode == 0, seen.stderr
    agent = json.loads(seen.stdout)
    assert agent["stdin"] == "line one"
    assert agent["cwd"] == str(sub)  # the launcher itself runs in /
    assert agent["only_here"] == "from-the-client"
    assert agent["key"].startswith("cig_") and agent["key"] != KEY  # the run token, never the real key
    assert not any(KEY in value for value in agent["values"])
    assert agent["base_url"].startswith("http://127.0.0.1:")
    assert "starting cold" not in seen.stderr


def test_metering_through_the_launcher_is_unchanged(module_warm: Warm, workdir: Path, any_ledger: str):
    with run_simulator("tool-loop", api_key=KEY) as sim:
        marks = []
        for mode, env in (("warm", module_warm.env), ("cold", cold_env)):
            mark = workdir / f"{mode}.json"
            done = run(CLI, env(CI_GUARD_LEDGER=any_ledger, CI_GUARD_ANTHROPIC_UPSTREAM=sim.url), workdir,
                       sys.executable, str(FLEET_AGENT), "3", str(mark), extra=("--quiet",))
            assert done.returncode == 0, done.stderr
            assert "starting cold" not in done.stderr
            marks.append(json.loads(mark.read_text()))
    assert all(m["last_answer"] >= m["first_sent"] for m in marks)
    store = open_ledger(any_ledger)
    try:
        runs = sorted(store.list_runs(repo="acme/web"), key=lambda r: r.started_at)
        assert len(runs) == 2
        totals = []
        for r in runs:
            calls = store.list_calls(r.run_id)
            assert r.status == "completed" and len(calls) == 3
            assert all(c.cost_usd > 0 and (c.model_requested or "").startswith("claude-sonnet-4-5") for c in calls)
            assert sum((c.cost_usd for c in calls), Decimal(0)) == r.cost_usd
            totals.append(r.cost_usd)
    finally:
        store.close()
    assert totals[0] == totals[1]  # the same three calls cost the same, warm or cold


def _imports(stderr: str) -> set[str]:
    """Top-level packages named by `python -X importtime` lines."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "imported package":
                names.add(name.split(".")[0])
    return names


HEAVY = {"click", "pydantic", "pydantic_core", "psycopg", "yaml", "asyncio"}


def test_the_client_stays_thin(module_warm: Warm, workdir: Path):
    ledger = f"sqlite:///{workdir / 'ledger.db'}"
    probe = [sys.executable, "-X", "importtime", "-m", "ci_guard"]
    warm = run(probe, module_warm.env(CI_GUARD_LEDGER=ledger), workdir, "sh", "-c", "echo ran", extra=("--quiet",))
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout == "ran\n"
    warm_imports = _imports(warm.stderr)
    assert {"ci_guard", "_socket", "_json"} <= warm_imports  # the probe sees the client's imports
    # nor the standard library's slow-to-import wrappers (enums, regular expressions): ~10 ms
    assert not warm_imports & (HEAVY | {"socket", "json", "signal"}), sorted(warm_imports & HEAVY)

    cold = run(probe, cold_env(CI_GUARD_LEDGER=ledger), workdir, "sh", "-c", "echo ran", extra=("--quiet",))
    assert cold.returncode == 0, cold.stderr
    assert {"click", "asyncio"} <= _imports(cold.stderr)  # the probe would have seen them


DENY = textwrap.dedent("""
    version: 1
    rules:
      - {name: nothing-today, decision: deny, reason: the freeze}
""")


def test_a_denied_run_exits_80_warm_as_cold(module_warm: Warm, workdir: Path):
    (workdir / "policy.yml").write_text(DENY)
    ledger = f"sqlite:///{workdir / 'ledger.db'}"
    agent = ("sh", "-c", "touch agent-ran")
    warm = run(CLI, module_warm.env(CI_GUARD_LEDGER=ledger), workdir, *agent)
    cold = run(CLI, cold_env(CI_GUARD_LEDGER=ledger), workdir, *agent)
    assert warm.returncode == cold.returncode == 80, (warm.stderr, cold.stderr)
    assert "the freeze" in warm.stderr and "the freeze" in cold.stderr
    assert "starting cold" not in warm.stderr
    assert not (workdir / "agent-ran").exists()


def test_bytes_that_are_not_utf8_in_argv_and_env_reach_the_agent_unchanged(module_warm: Warm, workdir: Path):
    ledger = f"sqlite:///{workdir / 'ledger.db'}"
    arg = os.fsdecode(b"na\xefve")  # as a client's sys.argv holds it: a surrogate escape
    outputs = []
    for env in (module_warm.env, cold_env):
        done = subprocess.run([*CLI, *RUN, "--quiet", "--", "sh", "-c", 'printf "%s|%s" "$1" "$WEIRD"', "sh", arg],
                              env=env(CI_GUARD_LEDGER=ledger, WEIRD=os.fsdecode(b"caf\xe9")), cwd=workdir,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT)
        assert done.returncode == 0, done.stderr
        assert b"starting cold" not in done.stderr
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] == b"na\xefve|caf\xe9"



def test_the_agent_gets_the_clients_umask(module_warm: Warm, workdir: Path):
    """A job that sets `umask 077` gets private files from its agent, warm as cold (the launcher's
    own umask is the one `warm start` ran with)."""
    ledger = f"sqlite:///{workdir / 'ledger.db'}"
    seen = []
    for env in (module_warm.env, cold_env):
        done = subprocess.run(["sh", "-c", 'umask 077 && exec "$@"', "sh", *CLI, *RUN, "--quiet", "--",
                               "sh", "-c", "umask; touch made"], env=env(CI_GUARD_LEDGER=ledger), cwd=workdir,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
        assert done.returncode == 0, done.stderr
        assert "starting cold" not in done.stderr
        seen.append((int(done.stdout, 8), stat.S_IMODE((workdir / "made").stat().st_mode)))
        (workdir / "made").unlink()
    assert seen == [(0o077, 0o600), (0o077, 0o600)]


def test_the_agent_gets_the_clients_limits_and_niceness(module_warm: Warm, workdir: Path):
    """`ulimit -n` and `nice` in the job reach the agent warm as cold (the launcher's own are those
    `warm start` ran with)."""
    ledger = f"sqlite:///{workdir / 'ledger.db'}"
    seen = []
    for env in (module_warm.env, cold_env):
        done = subprocess.run(["sh", "-c", 'ulimit -n 300 && exec nice -n 7 "$@"', "sh", *CLI, *RUN, "--quiet",
                               "--", "sh", "-c", "ulimit -n; cut -d' ' -f19 /proc/$$/stat"],
                              env=env(CI_GUARD_LEDGER=ledger), cwd=workdir, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert done.returncode == 0, done.stderr
        assert "starting cold" not in done.stderr
        seen.append(done.stdout.split())
    expected = str(min(19, os.getpriority(os.PRIO_PROCESS, 0) + 7))  # `nice` adds to the test's own niceness
    assert seen == [["300", expected], ["300", expected]]
