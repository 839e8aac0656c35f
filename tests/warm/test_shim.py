"""The launcher's own `ci-guard` (<socket>.bin/ci-guard, ci_guard/warm/shim.py): a faster client
that must never change what runs. Run as a job runs it: first on PATH, before the installed one."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_guard.warm import shim
from tests.warm.conftest import CONSOLE, KEY, RUN, TIMEOUT, Warm, base_env, ledger_runs, stop_warm, wait_for
from tests.warm.test_parity import LINEAGE

VENV_BIN = str(Path(sys.executable).parent)


def shim_of(warm: Warm) -> Path:
    return Path(warm.socket + ".bin") / "ci-guard"


def job_env(warm: Warm, *before_venv: Path, **extra: str) -> dict[str, str]:
    """What a job's later steps have after `warm start --format github`: the launcher named, its
    ci-guard first on PATH (then ``before_venv`` directories, then the installed ci-guard's)."""
    path = os.pathsep.join([str(shim_of(warm).parent), *map(str, before_venv), VENV_BIN, "/usr/bin", "/bin"])
    return base_env(ANTHROPIC_API_KEY=KEY, CI_GUARD_WARM=warm.socket, PATH=path, **extra)


def ci_guard(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`ci-guard ...` as a shell step runs it: looked up on the step's PATH."""
    return subprocess.run(["sh", "-c", 'exec ci-guard "$@"', "ci-guard", *args], env=env, cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)


def test_the_launcher_writes_its_own_ci_guard_and_removes_it_when_it_stops(warm: Warm):
    path = shim_of(warm)
    assert stat.S_IMODE(path.stat().st_mode) == 0o700 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    script = path.with_name("ci-guard.py") if shim.compiled_client() else path  # the Python client
    first, *rest = script.read_text().splitlines()
    assert first == f"#!{sys.executable} -IS"  # no site, no PYTHON* variables: ~9 ms instead of ~20
    assert not any(KEY in line for line in rest)
    stop_warm(warm)
    assert not path.parent.exists()


def test_a_run_through_it_is_forked_from_the_launcher(warm: Warm, tmp_path: Path):
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    done = ci_guard(job_env(warm, CI_GUARD_LEDGER=ledger), tmp_path, *RUN, "--", sys.executable, "-c", LINEAGE)
    assert done.returncode == 0, done.stderr
    _run_pid, grand = map(int, done.stdout.split())
    assert grand == warm.pid  # the run is the launcher's child: it went warm
    assert "warm launcher" not in done.stderr
    assert list(ledger_runs(ledger).values()) == ["no_calls"]


def test_exit_codes_and_output_are_the_runs(warm: Warm, tmp_path: Path):
    env = job_env(warm, CI_GUARD_LEDGER=f"sqlite:///{tmp_path / 'ledger.db'}")
    failed = ci_guard(env, tmp_path, *RUN, "--", "sh", "-c", "echo out; exit 3")
    assert failed.returncode == 3 and failed.stdout == "out\n", failed.stderr
    bad = ci_guard(env, tmp_path, "run", "--no-such-option", "--", "true")
    cold = subprocess.run([CONSOLE, "run", "--no-such-option", "--", "true"], env=base_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert bad.returncode == cold.returncode == 2 and bad.stderr == cold.stderr


def test_other_commands_run_the_installed_ci_guard(warm: Warm, tmp_path: Path):
    version = ci_guard(job_env(warm), tmp_path, "--version")
    assert version.returncode == 0 and version.stdout == subprocess.run(
        [CONSOLE, "--version"], capture_output=True, text=True, timeout=TIMEOUT).stdout


def _marked_copy_of_the_console_script(where: Path) -> Path:
    """The installed console script, copied (same interpreter, same installation) with one line that
    leaves a mark when it runs."""
    where.mkdir()
    mark = where / "ran"
    lines = Path(CONSOLE).read_text().splitlines()
    copy = where / "ci-guard"
    copy.write_text("\n".join([lines[0], f"open({str(mark)!r}, 'w').close()", *lines[1:]]) + "\n")
    copy.chmod(0o755)
    return mark


def test_a_run_for_this_installation_goes_straight_to_the_launcher(warm: Warm, tmp_path: Path):
    mark = _marked_copy_of_the_console_script(tmp_path / "bin")
    env = job_env(warm, tmp_path / "bin", CI_GUARD_LEDGER=f"sqlite:///{tmp_path / 'ledger.db'}")
    done = ci_guard(env, tmp_path, *RUN, "--", sys.executable, "-c", LINEAGE)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[1]) == warm.pid and not mark.exists()  # the script was not needed


def test_a_different_import_path_leaves_the_run_to_the_installed_script(warm: Warm, tmp_path: Path):
    # PYTHONPATH could name another ci-guard: only the installed script (and its identity check) can tell
    mark = _marked_copy_of_the_console_script(tmp_path / "bin")
    env = job_env(warm, tmp_path / "bin", CI_GUARD_LEDGER=f"sqlite:///{tmp_path / 'ledger.db'}",
                  PYTHONPATH=str(tmp_path / "elsewhere"))
    done = ci_guard(env, tmp_path, *RUN, "--", sys.executable, "-c", LINEAGE)
    assert done.returncode == 0, done.stderr
    assert mark.exists()
    assert int(done.stdout.split()[1]) == warm.pid  # which then went warm itself: the same installation


def test_another_ci_guard_next_on_path_is_the_one_that_runs(warm: Warm, tmp_path: Path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "ci-guard").write_text('#!/bin/sh\necho "the other ci-guard: $*"\nexit 7\n')
    (other / "ci-guard").chmod(0o755)
    done = ci_guard(job_env(warm, other), tmp_path, *RUN, "--", "true")
    assert done.returncode == 7 and done.stdout == f"the other ci-guard: {' '.join([*RUN, '--', 'true'])}\n"


def test_a_launcher_that_died_leaves_one_note_and_a_cold_run(warm: Warm, tmp_path: Path):
    os.kill(warm.pid, signal.SIGKILL)
    assert wait_for(lambda: not warm.alive())
    assert shim_of(warm).exists()  # nobody removed it: PATH still names it
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    done = ci_guard(job_env(warm, CI_GUARD_LEDGER=ledger), tmp_path, *RUN, "--", "sh", "-c", "echo ran; exit 4")
    assert done.returncode == 4 and done.stdout == "ran\n", done.stderr
    assert done.stderr.count("warm launcher") == 1 and "starting cold" in done.stderr  # not a second try
    assert list(ledger_runs(ledger).values()) == ["failed"]


def test_with_no_other_ci_guard_on_path_it_runs_its_own_installation(warm: Warm, tmp_path: Path):
    env = base_env(PATH=os.pathsep.join([str(shim_of(warm).parent), "/usr/bin", "/bin"]))
    done = ci_guard(env, tmp_path, "--version")
    assert done.returncode == 0 and "ci-guard, version" in done.stdout, done.stderr


def test_runs_in_accepts_only_this_interpreter_and_environment(tmp_path: Path):
    prefix = sys.prefix
    python = sys.executable

    def script(first_line: str) -> str:
        path = tmp_path / f"s{len(list(tmp_path.iterdir()))}"
        path.write_text(first_line + "\nimport sys\n")
        return str(path)

    assert shim.runs_in(script(f"#!{python}"), python, prefix) == (os.path.dirname(VENV_BIN) == prefix)
    assert not shim.runs_in(script("#!/bin/sh"), python, prefix)  # pip's trampoline for long paths
    assert not shim.runs_in(script(f"#!{tmp_path}/venv/bin/python"), python, prefix)  # another venv
    assert not shim.runs_in(script("no shebang"), python, prefix)
    assert not shim.runs_in(str(tmp_path / "missing"), python, prefix)


@pytest.mark.parametrize("python", ["/a/" + "long" * 70 + "/python", "/with space/python"])
def test_no_shim_where_a_shebang_cannot_name_the_interpreter(python: str):
    assert shim.script(python, "/p", {}, "/src") is None


# -- the compiled client (ci_guard/warm/_shim.c): `ci-guard` where setup.py could build it ---------

IN_CI = os.environ.get("CI") == "true"
compiled = pytest.mark.skipif(shim.compiled_client() is None and not IN_CI and sys.platform.startswith("linux"),
                              reason="the compiled client was not built here (no C compiler)")


@compiled
def test_on_linux_the_launchers_ci_guard_is_the_compiled_client(warm: Warm):
    directory = shim_of(warm).parent
    assert shim_of(warm).read_bytes()[:4] == b"\x7fELF"  # in CI it must have been built
    assert (directory / "ci-guard.py").read_text().startswith(f"#!{sys.executable} -IS\n")
    settings = (directory / "ci-guard.conf").read_text()
    assert f"python {sys.executable}\n" in settings and f"prefix {sys.prefix}\n" in settings
    assert stat.S_IMODE((directory / "ci-guard.conf").stat().st_mode) == 0o600
    stop_warm(warm)
    assert not directory.exists()


class FakeLauncher:
    """A socket that takes requests and answers none: what each client sends, as the launcher reads it."""

    def __init__(self, path: Path) -> None:
        import socket
        import threading

        self.requests: list[dict[str, object]] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        from ci_guard.warm.client import read_message

        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                message = read_message(conn)
                if message is not None:
                    self.requests.append(message)

    def close(self) -> None:
        self.listener.close()


@contextlib.contextmanager
def fake_launcher(tmp_path: Path) -> Iterator[tuple[Warm, FakeLauncher]]:
    """A fake launcher's socket, with the launcher's own `ci-guard` written for it as a real one would."""
    from ci_guard.warm.server import remove_shim, write_shim

    path = tmp_path / "fake.sock"
    fake = FakeLauncher(path)
    write_shim(str(path))
    try:
        yield Warm(str(path), 0), fake
    finally:
        fake.close()
        remove_shim(str(path))


@compiled
def test_the_compiled_and_the_python_client_send_the_same_request(tmp_path: Path):
    with fake_launcher(tmp_path) as (warm, fake):
        env = job_env(warm, TRICKY='say "hi" \\ \x01\x7f\n\tend', EMPTY="")
        # the compiled client sends, gets no answer and hands over to the Python client, which
        # sends again, gets none either and starts cold (`run --help` then prints the help)
        done = ci_guard(env, tmp_path, "run", "--help", "--ledger", "it's \\ \"quoted\"")
        assert done.returncode == 0 and "Usage:" in done.stdout, done.stderr
        assert done.stderr.count("warm launcher") == 1  # one note: the compiled client writes none
    compiled_request, python_request = fake.requests
    assert compiled_request == python_request
    assert compiled_request["argv"] == ["run", "--help", "--ledger", "it's \\ \"quoted\""]
    assert compiled_request["env"]["TRICKY"] == 'say "hi" \\ \x01\x7f\n\tend'  # type: ignore[index]


@compiled
def test_a_byte_outside_ascii_is_left_to_the_python_client(tmp_path: Path):
    with fake_launcher(tmp_path) as (warm, fake):
        done = ci_guard(job_env(warm, NAME="caf\u00e9"), tmp_path, "run", "--help")
        assert done.returncode == 0, done.stderr
    (only,) = fake.requests  # the compiled client sent nothing
    assert only["env"]["NAME"] == "caf\u00e9"  # type: ignore[index]


@compiled
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signals_to_the_compiled_client_reach_the_run_as_they_would_cold(warm: Warm, tmp_path: Path, sig: int):
    from tests.warm.test_signals import signalled

    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    cold_code, _, _ = signalled(base_env(ANTHROPIC_API_KEY=KEY, CI_GUARD_LEDGER=ledger), tmp_path, sig, [CONSOLE])
    warm_code, warm_err, _ = signalled(job_env(warm, CI_GUARD_LEDGER=ledger), tmp_path, sig, [str(shim_of(warm))])
    assert warm_code == cold_code != 0, warm_err
    assert "warm launcher" not in warm_err
    if sig == signal.SIGTERM:  # (SIGHUP: both die of it, as test_signals.py shows for the Python client)
        assert list(ledger_runs(ledger).values()) == ["cancelled", "cancelled"]
    assert warm.alive()
