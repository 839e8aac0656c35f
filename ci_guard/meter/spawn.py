"""Starting the agent without copying ci-guard's process.

The agent must die with ci-guard (``PR_SET_PDEATHSIG``; hardening.py). From Python that takes a
``preexec_fn``, and any spawn with one is a full ``fork()``: the page tables of ci-guard's tens of
MB, then copy-on-write faults on both sides until the exec. Measured on the warm launcher's runs,
that is ~6 ms of a run's ~39 ms of CPU (BENCHMARKS.md, "The launcher's own client").

So where the small compiled helper ``ci-guard-spawn`` was built (``_spawn.c``; Linux, optional
like every compiled part) the agent is started through it with ``subprocess``'s ``vfork()``: the
helper sets the signal and execs the agent. Its end is then awaited on a pidfd. Elsewhere (no
helper, no pidfd) the agent is started as before, with the ``preexec_fn``, by the event loop.
Either way the agent is the same process with the same arguments, environment, working directory,
session and descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence

from ci_guard.meter.hardening import die_with_parent

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ci-guard-spawn")


def helper() -> str | None:
    """The compiled helper, where it was built and the kernel has pidfds (Linux 5.3+)."""
    if not sys.platform.startswith("linux") or not hasattr(os, "pidfd_open"):
        return None
    return HELPER if os.access(HELPER, os.X_OK) else None


def resolve(program: str, env: Mapping[str, str], cwd: str | None) -> str:
    """The file that ``subprocess`` would run for ``program``, made absolute: a path as given
    (relative to ``cwd``), else the first executable file named so in the environment's ``PATH``.

    FileNotFoundError if there is none; PermissionError if there are only files that cannot be run.
    """
    base = os.path.abspath(cwd or os.getcwd())
    candidates = [program] if os.path.dirname(program) else \
        [os.path.join(directory, program) for directory in os.get_exec_path(dict(env))]
    refused = False
    for candidate in candidates:
        path = os.path.join(base, candidate)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        refused = refused or os.path.exists(path)
    if refused:
        raise PermissionError(13, "Permission denied", program)
    raise FileNotFoundError(2, "No such file or directory", program)


class AgentProcess:
    """The part of ``asyncio.subprocess.Process`` the supervisor uses, for a child started by
    ``subprocess`` and reaped when its pidfd says it ended."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.returncode: int | None = None
        self._loop = asyncio.get_running_loop()
        self._ended: asyncio.Future[int] = self._loop.create_future()
        try:
            self._pidfd = os.pidfd_open(self.pid)
            self._loop.add_reader(self._pidfd, self._reap)
        except BaseException:  # (out of descriptors): an agent nobody watches must not run on
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            popen.wait()
            raise

    def _reap(self) -> None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere: nothing more can be known of it
            pid, status = self.pid, 255 << 8
        if pid == 0:
            return
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self.returncode = self._popen.returncode = os.waitstatus_to_exitcode(status)
        if not self._ended.done():
            self._ended.set_result(self.returncode)

    async def wait(self) -> int:
        return await asyncio.shield(self._ended)


async def start_agent(cmd: Sequence[str], env: Mapping[str, str],
                      cwd: str | None) -> AgentProcess | asyncio.subprocess.Process:
    """Start the agent in a session of its own, dying with this process. Raises FileNotFoundError
    or PermissionError (the caller words them) before anything is started."""
    spawner = helper()
    if spawner is None:
        return await asyncio.create_subprocess_exec(*cmd, env=dict(env), cwd=cwd, start_new_session=True,
                                                    preexec_fn=die_with_parent)
    program = resolve(cmd[0], env, cwd)
    popen = subprocess.Popen([spawner, str(os.getpid()), program, *cmd], env=dict(env), cwd=cwd,
                             start_new_session=True)
    return AgentProcess(popen)
