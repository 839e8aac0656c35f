"""`ci-guard warm start|stop` and the launcher's life: one per socket, a stop lets runs finish,
an idle launcher leaves by itself, and the output formats."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

from tests.warm.conftest import (
    CLI,
    POLICY,
    RUN,
    TIMEOUT,
    Warm,
    base_env,
    ledger_runs,
    server_pid,
    start_warm,
    stop_warm,
    wait_for,
)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env or base_env(), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=TIMEOUT)


def test_a_second_start_on_a_served_socket_exits_3(warm: Warm):
    again = cli("warm", "start", "--socket", warm.socket, "--idle-timeout", "60")
    assert again.returncode == 3, again.stderr
    assert "already serves" in again.stderr
    assert server_pid(warm.socket) == warm.pid and warm.alive()  # no second launcher was started
    # nor one started by hand with `serve`
    serve = cli("warm", "serve", "--socket", warm.socket, "--idle-timeout", "60")
    assert serve.returncode == 3 and "already serves" in serve.stderr
    assert os.path.exists(warm.socket) and warm.alive()


def test_launchers_started_at_the_same_instant_leave_one_serving(tmp_path: Path):
    """Four `serve`s on one socket at once: the lock beside it lets exactly one bind, the others
    exit 3 (without it, one could bind between another's check and listen, then serve a socket
    file that was replaced under it)."""
    path = str(tmp_path / "sock")
    procs = [subprocess.Popen([*CLI, "warm", "serve", "--socket", path, "--idle-timeout", "60"], env=base_env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    try:
        assert wait_for(lambda: sum(p.poll() is not None for p in procs) == 3, 60)
        losers = [p for p in procs if p.poll() is not None]
        assert all(p.returncode == 3 and "already serves" in p.stderr.read() for p in losers)  # type: ignore[union-attr]
        (winner,) = [p for p in procs if p.poll() is None]
        from ci_guard.warm.server import serving

        assert wait_for(lambda: serving(path), 30)
        winner.terminate()  # the one that serves is the one left: once it is gone, nothing answers
        winner.wait(20)
        assert not serving(path)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(20)


def test_the_lock_beside_the_socket_decides_who_serves(tmp_path: Path):
    # a launcher between its lock and its listen (held here): nothing answers yet, and still a
    # second one does not bind
    import fcntl

    path = str(tmp_path / "sock")
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        serve = cli("warm", "serve", "--socket", path, "--idle-timeout", "60")
    assert serve.returncode == 3 and "already serves" in serve.stderr
    assert not os.path.exists(path)


def test_stop_without_a_launcher_has_nothing_to_stop(tmp_path: Path):
    for path in (tmp_path / "never-started", tmp_path):  # no such file; not a socket
        stopped = cli("warm", "stop", "--socket", str(path))
        assert stopped.returncode == 0, stopped.stderr
        assert "nothing to stop" in stopped.stderr
    # named by the environment, as `warm start --format shell` sets it up
    stopped = cli("warm", "stop", env=base_env(CI_GUARD_WARM=str(tmp_path / "never-started")))
    assert stopped.returncode == 0 and "nothing to stop" in stopped.stderr
    nameless = cli("warm", "stop")
    assert nameless.returncode == 2 and "CI_GUARD_WARM" in nameless.stderr


def background_run(warm: Warm, cwd: Path, script: str) -> subprocess.Popen[str]:
    """A warm run of ``sh -c script`` left running, its output piped."""
    return subprocess.Popen([*CLI, *RUN, "--quiet", "--", "sh", "-c", script],
                            env=warm.env(CI_GUARD_LEDGER=f"sqlite:///{cwd / 'ledger.db'}"), cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_stale_socket_is_replaced_by_the_next_start(tmp_path: Path):
    first = start_warm(tmp_path / "sock")
    os.kill(first.pid, 9)
    assert wait_for(lambda: not first.alive(), 10)
    assert (tmp_path / "sock").exists()  # left behind by the killed launcher
    second = start_warm(tmp_path / "sock")
    try:
        assert second.pid != first.pid and second.alive()
    finally:
        stop_warm(second)


def test_stop_lets_the_run_in_progress_finish_then_the_launcher_exits(warm: Warm, tmp_path: Path):
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    run = background_run(warm, tmp_path, "touch started; sleep 1; echo finished")
    try:
        assert wait_for(lambda: (tmp_path / "started").exists(), 20)
        stopped = cli("warm", "stop", env=base_env(CI_GUARD_WARM=warm.socket))
        assert stopped.returncode == 0, stopped.stderr
        assert "is stopping; 1 run(s) still finishing" in stopped.stderr
        assert wait_for(lambda: not os.path.exists(warm.socket), 5)  # it takes no new run at once
        assert warm.alive() and run.poll() is None  # but the run goes on, and the launcher with it
        out, err = run.communicate(timeout=TIMEOUT)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, err
    assert out == "finished\n" and "went away" not in err
    assert list(ledger_runs(ledger).values()) == ["no_calls"]  # ended as a cold run of it would
    assert wait_for(lambda: not warm.alive(), 10)
    assert not os.path.exists(warm.socket)

    # the next run finds no launcher and starts cold
    cold = subprocess.run([*CLI, *RUN, "--quiet", "--", "sh", "-c", "echo ok"], env=warm.env(CI_GUARD_LEDGER=ledger),
                          cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
    assert cold.returncode == 0 and cold.stdout == "ok\n" and "starting cold" in cold.stderr


def test_an_idle_launcher_exits_by_itself(tmp_path: Path):
    sock = tmp_path / "sock"
    started = cli("warm", "start", "--socket", str(sock), "--idle-timeout", "0.5")
    assert started.returncode == 0, started.stderr
    warm = Warm(str(sock), server_pid(str(sock)))
    try:
        assert sock.exists()
        assert wait_for(lambda: not warm.alive(), 10)
        assert not sock.exists()
    finally:
        stop_warm(warm)


def test_idle_time_starts_after_the_last_run(tmp_path: Path):
    (tmp_path / "policy.yml").write_text(POLICY)
    sock = tmp_path / "sock"
    started = cli("warm", "start", "--socket", str(sock), "--idle-timeout", "1")
    assert started.returncode == 0, started.stderr
    warm = Warm(str(sock), server_pid(str(sock)))
    try:
        began = time.monotonic()
        run = subprocess.run([*CLI, *RUN, "--quiet", "--", "sh", "-c", "sleep 1.5; echo long"],
                             env=warm.env(CI_GUARD_LEDGER=f"sqlite:///{tmp_path / 'ledger.db'}"), cwd=tmp_path,
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
        assert run.returncode == 0 and run.stdout == "long\n", run.stderr
        assert "went away" not in run.stderr  # a run longer than the idle timeout is not cut short
        assert time.monotonic() - began > 1.5
        assert warm.alive()  # idle only since that run ended
        assert wait_for(lambda: not warm.alive(), 10)
        assert not sock.exists()
    finally:
        stop_warm(warm)


def test_format_shell_prints_an_export_line(tmp_path: Path):
    started = cli("warm", "start", "--socket", str(tmp_path / "it's here"), "--idle-timeout", "60", "--format", "shell")
    assert started.returncode == 0, started.stderr
    path = str(tmp_path / "it's here")
    warm = Warm(path, server_pid(path))
    try:
        lines = started.stdout.splitlines()
        assert lines == [f"export CI_GUARD_WARM={shlex.quote(path)}",
                         f'export PATH={shlex.quote(path + ".bin")}:"$PATH"']
        echoed = subprocess.run(["sh", "-c", started.stdout + 'printf "%s\\n" "$CI_GUARD_WARM"; command -v ci-guard'],
                                capture_output=True, text=True, timeout=TIMEOUT)
        # what a shell makes of it (eval "$(ci-guard warm start --format shell)"): the launcher's own ci-guard first
        assert echoed.stdout.splitlines() == [path, path + ".bin/ci-guard"]
    finally:
        stop_warm(warm)


def test_format_github_appends_to_github_env(tmp_path: Path):
    github_env, github_path = tmp_path / "github_env", tmp_path / "github_path"
    github_env.write_text("EARLIER=1\n")
    github_path.write_text("/earlier/bin\n")
    path = str(tmp_path / "sock")
    started = cli("warm", "start", "--socket", path, "--idle-timeout", "60", "--format", "github",
                  env=base_env(GITHUB_ENV=str(github_env), GITHUB_PATH=str(github_path)))
    assert started.returncode == 0, started.stderr
    warm = Warm(path, server_pid(path))
    try:
        assert started.stdout == path + "\n"
        assert github_env.read_text() == f"EARLIER=1\nCI_GUARD_WARM={path}\n"
        # later steps find the launcher's own ci-guard first (a runner prepends each line to PATH)
        assert github_path.read_text() == f"/earlier/bin\n{path}.bin\n"
        assert os.access(f"{path}.bin/ci-guard", os.X_OK)
    finally:
        stop_warm(warm)


def test_a_request_that_arrives_while_it_stops_is_refused(warm: Warm, tmp_path: Path):
    import socket

    from ci_guard.warm.client import identity, read_message, send_message

    run = background_run(warm, tmp_path, "touch started; sleep 1")
    late = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    late.settimeout(20)
    try:
        assert wait_for(lambda: (tmp_path / "started").exists(), 20)
        late.connect(warm.socket)  # connected before the stop, its request sent after it
        stopped = cli("warm", "stop", "--socket", warm.socket)  # accepted with `late`, after it
        assert stopped.returncode == 0, stopped.stderr
        send_message(late, {**identity(), "argv": ["run", "--", "true"], "cwd": str(tmp_path), "env": {},
                            "umask": 0o022}, [0, 1, 2])
        assert read_message(late) == {"refused": "it is stopping"}
        _, err = run.communicate(timeout=TIMEOUT)
        assert run.returncode == 0, err  # the run in progress finished
    finally:
        late.close()
        if run.poll() is None:
            run.kill()
            run.wait()
    assert wait_for(lambda: not warm.alive(), 10)
