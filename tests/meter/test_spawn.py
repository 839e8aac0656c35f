"""Starting the agent (ci_guard/meter/spawn.py): through the compiled helper with vfork where it
was built, as before elsewhere; the same program found the same way, and dying with ci-guard."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ci_guard.meter import spawn
from tests.helpers import pid_alive

IN_CI = os.environ.get("CI") == "true"
needs_helper = pytest.mark.skipif(spawn.helper() is None and not IN_CI,
                                  reason="ci-guard-spawn was not built here (no C compiler)")


def _executable(path: Path, text: str = "#!/bin/sh\necho ran\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_resolve_finds_what_subprocess_would_run(tmp_path: Path):
    first, second = tmp_path / "a", tmp_path / "b"
    (first / "tool").parent.mkdir(parents=True)
    (first / "tool").write_text("not executable")  # skipped, as execvp skips it
    _executable(second / "tool")
    env = {"PATH": f"{first}:{second}"}
    assert spawn.resolve("tool", env, str(tmp_path)) == str(second / "tool")
    assert os.path.samefile(spawn.resolve("./b/tool", env, str(tmp_path)), second / "tool")  # relative to cwd
    assert spawn.resolve(str(second / "tool"), {}, None) == str(second / "tool")
    # a relative PATH entry is relative to the agent's working directory, not ci-guard's
    assert spawn.resolve("tool", {"PATH": "b"}, str(tmp_path)) == str(second / "tool")


def test_resolve_says_what_is_wrong(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        spawn.resolve("no-such-agent", {"PATH": str(tmp_path)}, str(tmp_path))
    (tmp_path / "plain").write_text("x")
    with pytest.raises(PermissionError):
        spawn.resolve("plain", {"PATH": str(tmp_path)}, str(tmp_path))
    with pytest.raises(PermissionError):
        spawn.resolve(str(tmp_path), {}, None)  # a directory


@needs_helper
def test_the_helper_is_built_and_used():
    path = spawn.helper()
    assert path is not None and Path(path).read_bytes()[:4] == b"\x7fELF"  # in CI it must have been built
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o111


REPORT = textwrap.dedent("""
    import json, os, sys
    with open(sys.argv[1], "w") as fh:
        json.dump({"argv": sys.argv, "cwd": os.getcwd(), "var": os.environ.get("ONLY_HERE"),
                   "sid": os.getsid(0), "pid": os.getpid(), "ppid": os.getppid(),
                   "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd"))}, fh)
""")


@pytest.fixture(params=["helper", "fork"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test once through the compiled helper (required in CI) and once the fork way."""
    if request.param == "fork":
        monkeypatch.setattr(spawn, "helper", lambda: None)
    elif spawn.helper() is None:
        if IN_CI:
            pytest.fail("ci-guard-spawn was not built in CI")
        pytest.skip("ci-guard-spawn was not built here")
    return str(request.param)


def test_both_ways_start_the_same_agent(tmp_path: Path, way: str):
    import json

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "py-agent").symlink_to(sys.executable)
    (tmp_path / "work").mkdir()
    out = tmp_path / "out.json"

    async def go() -> tuple[int, int | None]:
        proc = await spawn.start_agent(["py-agent", "-c", REPORT, str(out)],
                                       {**os.environ, "ONLY_HERE": "yes", "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"},
                                       str(tmp_path / "work"))
        return await proc.wait(), proc.returncode

    assert asyncio.run(go()) == (0, 0)
    agent = json.loads(out.read_text())
    assert agent["argv"] == ["-c", str(out)] and agent["var"] == "yes" and agent["cwd"] == str(tmp_path / "work")
    assert agent["sid"] == agent["pid"] and agent["ppid"] == os.getpid()  # its own session, our child
    assert agent["fds"] == [0, 1, 2, 3, 4]  # stdio, its report and listdir: nothing of ci-guard leaks in


def test_a_signal_is_the_agents_exit_status(tmp_path: Path, way: str):

    async def go() -> int:
        proc = await spawn.start_agent(["sh", "-c", "kill -TERM $$"], dict(os.environ), str(tmp_path))
        return await proc.wait()

    assert asyncio.run(go()) == -signal.SIGTERM


@needs_helper
def test_the_agent_dies_with_ci_guard_by_itself(tmp_path: Path):
    """No watchdog here (hardening.GroupWatchdog is started beside it in a run, and may fail to
    start): PR_SET_PDEATHSIG, set by the helper before the exec, ends the agent when ci-guard dies."""
    script = textwrap.dedent(f"""
        import asyncio, os, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from ci_guard.meter import spawn
        async def go():
            await spawn.start_agent([sys.executable, "-c", "import os, time; "
                                     "open('agent.pid', 'w').write(str(os.getpid())); time.sleep(120)"],
                                    dict(os.environ), {str(tmp_path)!r})
            await asyncio.sleep(120)
        asyncio.run(go())
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path)
    pid_file = tmp_path / "agent.pid"
    try:
        deadline = time.monotonic() + 20
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        agent = int(pid_file.read_text())
        assert pid_alive(agent) and os.getsid(agent) == agent  # in a session of its own
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 5
        while pid_alive(agent) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(agent)
    finally:
        if parent.poll() is None:
            parent.kill()
