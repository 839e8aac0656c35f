"""Run statuses tell the truth everywhere a run is shown (issue 10, item 4), on SQLite and PostgreSQL.

Each test takes the user's path: `ci-guard run` as a subprocess with `--format github` and
`--summary`, a real child agent against the simulator; then the ledger row, the summary JSON, the
step outputs, the step summary, the PR comment (`ci-guard comment --dry-run`), the dashboard and
the FOCUS tags are read back.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from ci_guard.ledger import open_ledger
from ci_guard.simulator.server import run_simulator

KEY = "sk-ant-api03-status-test-key-0123456789abcdefgh"
POLICY = textwrap.dedent("""
    version: 1
    models: {small: claude-haiku-4-5}
    budgets:
      - {name: repo-daily, scope: repo, period: day, limit_usd: 40}
    defaults:
      model: small
      limits: {max_turns: 6, max_cost_usd: 1.00, max_runtime: 2m}
    rules:
      - {name: allow, decision: allow}
""")
CALLER = textwrap.dedent("""
    import os, sys, httpx
    h = {"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"}
    r = httpx.post(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", headers=h, timeout=30,
                   json={"model": "claude-haiku-4-5", "max_tokens": 50,
                         "messages": [{"role": "user", "content": "hi"}]})
    print("agent got HTTP", r.status_code, file=sys.stderr)
    sys.exit(0 if r.status_code == 200 else int(os.environ.get("EXIT_ON_ERROR", "1")))
""")


def _run(tmp_path: Path, ledger_url: str, agent: list[str], upstream: str, key: str = KEY,
         wait_for: Path | None = None, send: int | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    out, step = tmp_path / "out.txt", tmp_path / "step.md"
    env = {**os.environ, "ANTHROPIC_API_KEY": key, "CI_GUARD_ANTHROPIC_UPSTREAM": upstream,
           "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(step)}
    cmd = [sys.executable, "-m", "ci_guard", "run", "--policy", str(policy), "--repo", "acme/web", "--pr", "7",
           "--agent", "pr-review", "--no-draft", "--ledger", ledger_url, "--format", "github",
           "--summary", str(tmp_path / "summary.json"), "--quiet", "--grace", "0.5", "--", *agent]
    if send is None:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90)
    else:
        popen = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while wait_for is not None and not wait_for.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        popen.send_signal(send)
        stdout, stderr = popen.communicate(timeout=60)
        proc = subprocess.CompletedProcess(cmd, popen.returncode, stdout, stderr)
    summary = json.loads((tmp_path / "summary.json").read_text())
    return proc, summary


def _outputs(tmp_path: Path) -> dict[str, str]:
    values, lines = {}, (tmp_path / "out.txt").read_text().splitlines()
    i = 0
    while i < len(lines):
        name, delim = lines[i].split("<<", 1)
        end = lines.index(delim, i + 1)
        values[name] = "\n".join(lines[i + 1:end])
        i = end + 1
    return values


def _shown(tmp_path: Path, ledger_url: str, run_id: str,
           exports: bool = False) -> tuple[object, str, str, list[dict]]:
    """The run as the ledger, the PR comment, the dashboard and the FOCUS export show it."""
    store = open_ledger(ledger_url)
    try:
        run = store.get_run(run_id)
    finally:
        store.close()
    env = {**os.environ, "CI_GUARD_LEDGER": ledger_url}
    comment = subprocess.run(
        [sys.executable, "-m", "ci_guard", "comment", "--summary", str(tmp_path / "summary.json"), "--no-ledger",
         "--platform", "github", "--repo", "acme/web", "--pr", "7", "--dry-run"],
        env=env, capture_output=True, text=True, timeout=60)
    assert comment.returncode == 0, comment.stderr
    if not exports:
        return run, comment.stdout, "", []
    month = run.started_at.strftime("%Y-%m")
    board, focus = tmp_path / "board.html", tmp_path / "focus.csv"
    for argv in (["dashboard", "--month", month, "-o", str(board)], ["export", "--month", month, "-o", str(focus)]):
        done = subprocess.run([sys.executable, "-m", "ci_guard", "ledger", *argv, "--ledger", ledger_url],
                              env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(focus.open())) if focus.exists() else []
    return run, comment.stdout, board.read_text(), rows


def test_an_agent_exiting_3_is_failed_with_exit_code_3(tmp_path, ledger_url):
    with run_simulator("tool-loop", api_key=KEY) as sim:
        proc, summary = _run(tmp_path, ledger_url, [sys.executable, "-c", CALLER.replace(
            "sys.exit(0 if", "sys.exit(3) if True else sys.exit(0 if")], sim.url)
    assert proc.returncode == 3, proc.stderr
    assert summary["status"] == "failed" and summary["agent_exit_code"] == 3
    assert summary["stop_reason"] == "agent_exit" and "exited with code 3" in summary["stop_detail"]
    outputs = _outputs(tmp_path)
    assert outputs["status"] == "failed" and outputs["agent-exit-code"] == "3"
    assert "ci-guard: failed" in (tmp_path / "step.md").read_text()
    run, comment, board, focus = _shown(tmp_path, ledger_url, summary["run_id"], exports=True)
    assert run.status == "failed" and run.agent_exit_code == 3 and run.stop_reason == "agent_exit"
    assert "failed" in comment and "exit code 3" in comment and "✅" not in comment
    assert "failed" in board and "completed" not in board.split("<tbody", 1)[-1]
    assert focus and all(json.loads(r["Tags"])["ci-guard/run_status"] == "failed" for r in focus)


def test_a_401_from_the_upstream_is_failed_with_the_auth_error_named(tmp_path, ledger_url):
    with run_simulator("tool-loop", api_key=KEY) as sim:
        proc, summary = _run(tmp_path, ledger_url, [sys.executable, "-c", CALLER], sim.url,
                             key="sk-ant-api03-the-wrong-key-000000000000000")
    assert proc.returncode == 1
    assert summary["status"] == "failed" and summary["stop_reason"] == "upstream_auth"
    assert "HTTP 401" in summary["stop_detail"] and "refused the provider key" in summary["stop_detail"]
    assert "sk-ant-api03-the-wrong-key" not in json.dumps(summary)
    run, comment, _, _ = _shown(tmp_path, ledger_url, summary["run_id"])
    assert run.status == "failed" and run.stop_reason == "upstream_auth"
    assert "auth" in comment.lower() and "✅" not in comment


def test_an_unreachable_upstream_is_failed_and_named(tmp_path, ledger_url):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    proc, summary = _run(tmp_path, ledger_url, [sys.executable, "-c", CALLER], dead)
    assert proc.returncode == 1
    assert summary["status"] == "failed" and summary["stop_reason"] == "upstream_unreachable"
    assert "could not be reached" in summary["stop_detail"]


def test_sigterm_to_ci_guard_is_cancelled(tmp_path, ledger_url):
    started = tmp_path / "started"
    script = (f"import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(143))\n"
              f"open({str(started)!r}, 'w').write('x')\ntime.sleep(60)\n")
    with run_simulator("tool-loop", api_key=KEY) as sim:
        proc, summary = _run(tmp_path, ledger_url, [sys.executable, "-c", script], sim.url,
                             wait_for=started, send=signal.SIGTERM)
    assert proc.returncode == 143
    assert summary["status"] == "cancelled" and summary["stop_reason"] == "SIGTERM"
    assert _outputs(tmp_path)["status"] == "cancelled"
    run, comment, _, _ = _shown(tmp_path, ledger_url, summary["run_id"])
    assert run.status == "cancelled" and "cancelled" in comment and "✅" not in comment


def test_an_agent_that_never_calls_is_no_calls_with_a_warning_everywhere(tmp_path, ledger_url):
    with run_simulator("tool-loop", api_key=KEY) as sim:
        proc, summary = _run(tmp_path, ledger_url, [sys.executable, "-c", "print('did nothing')"], sim.url)
        assert sim.served == []
    assert proc.returncode == 0
    assert summary["status"] == "no_calls" and "without making a single metered call" in summary["stop_detail"]
    assert "warning" in proc.stderr and "metered call" in proc.stderr  # the log, even with --quiet
    assert "::warning" in proc.stdout  # an annotation on the job
    assert _outputs(tmp_path)["status"] == "no_calls"
    assert "no_calls" in (tmp_path / "step.md").read_text() and "metered call" in (tmp_path / "step.md").read_text()
    run, comment, _, _ = _shown(tmp_path, ledger_url, summary["run_id"])  # the dashboard lists runs with calls
    assert run.status == "no_calls"
    assert "no metered call" in comment and "✅" not in comment


def test_a_completed_run_is_still_completed(tmp_path, ledger_url):
    with run_simulator("tool-loop", api_key=KEY) as sim:
        proc, summary = _run(tmp_path, ledger_url, [sys.executable, "-c", CALLER], sim.url)
    assert proc.returncode == 0 and summary["status"] == "completed" and summary["stop_reason"] is None
    run, comment, _, _ = _shown(tmp_path, ledger_url, summary["run_id"])
    assert run.status == "completed" and "✅" in comment
