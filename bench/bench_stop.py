"""Time `ci-guard stop` when the proxy has exited but nobody reaps it (a container whose PID 1 never reaps).

`ci-guard start` runs under a child subreaper that never waits for its children; the proxy is sent
SIGTERM and left a zombie; then `ci-guard stop` is timed, next to `ci-guard --help` (the
interpreter and CLI start alone). Three rounds; Linux only. Writes bench/results/stop.json.

    python bench/bench_stop.py
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

POLICY = """version: 1
defaults: {model: claude-haiku-4-5, limits: {max_turns: 3, max_cost_usd: 1}}
rules:
  - {name: all, decision: allow}
"""
NON_REAPING_INIT = textwrap.dedent("""
    import ctypes, subprocess, sys, time
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    subprocess.run(sys.argv[1:], capture_output=True)
    print("--started--", flush=True)
    time.sleep(120)  # never waits for the orphaned proxy
""")


def state_of(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cig-stop-"))
    (work / "policy.yml").write_text(POLICY)
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-bench-000000000000000",
           "CI_GUARD_ANTHROPIC_UPSTREAM": "http://127.0.0.1:9"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cli = [sys.executable, "-m", "ci_guard"]
    rounds = []
    for i in range(3):
        state = work / f"state-{i}.json"
        init = subprocess.Popen([sys.executable, "-c", NON_REAPING_INIT, *cli, "start", "--policy", "policy.yml",
                                 "--repo", "a/b", "--ledger", f"sqlite:///{work / 'ledger.db'}", "--state",
                                 str(state), "--quiet"], cwd=work, env=env, stdout=subprocess.PIPE, text=True)
        assert init.stdout is not None
        init.stdout.readline()
        pid = json.loads(state.read_text())["pid"]
        os.kill(pid, signal.SIGTERM)  # the proxy settles, writes its summary and exits; nobody reaps it
        while state_of(pid) != "Z":
            time.sleep(0.01)
        t0 = time.monotonic()
        subprocess.run([*cli, "stop", "--state", str(state)], cwd=work, env=env, capture_output=True, check=True)
        stop_s = time.monotonic() - t0
        t0 = time.monotonic()
        subprocess.run([*cli, "--help"], env=env, capture_output=True, check=True)
        rounds.append({"stop_s": round(stop_s, 3), "cli_start_s": round(time.monotonic() - t0, 3)})
        init.kill()
        init.wait()
    result = {"rounds": rounds, "load_avg": os.getloadavg()}
    print("stop of an exited, unreaped proxy (s) and `ci-guard --help` (s):",
          [(r["stop_s"], r["cli_start_s"]) for r in rounds], "load", result["load_avg"])
    out = Path(__file__).resolve().parent / "results" / "stop.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
