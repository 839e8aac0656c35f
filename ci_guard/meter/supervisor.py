"""Runs the agent as a child process and ends it when a cap stops the run.

The agent gets its own process group, so a cap (or ci-guard being cancelled) ends the agent and
everything it started: SIGTERM after a short grace, SIGKILL if it is still there after that.
stdin, stdout and stderr are inherited: the agent's output passes through untouched. SIGINT and
SIGTERM sent to ci-guard are forwarded to the agent's group. If ci-guard itself is killed
(SIGKILL, the OOM killer), the agent dies by ``PR_SET_PDEATHSIG`` and a watchdog process kills the
rest of its group (:class:`~ci_guard.meter.hardening.GroupWatchdog`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from ci_guard.errors import InvalidInputError
from ci_guard.meter.caps import MAX_RUNTIME
from ci_guard.meter.hardening import GroupWatchdog
from ci_guard.meter.session import MeterSession
from ci_guard.meter.spawn import AgentProcess, start_agent

Agent = AgentProcess | asyncio.subprocess.Process


@dataclass
class AgentExit:
    exit_code: int | None  # None when the agent could not be started
    terminated_by_ci_guard: bool = False  # we sent SIGTERM/SIGKILL because of a cap
    forwarded_signal: int | None = None


@dataclass
class Supervisor:
    session: MeterSession
    grace_s: float = 3.0  # time the agent gets to end by itself after its call was refused
    kill_after_s: float = 5.0  # time between SIGTERM and SIGKILL

    async def run(self, cmd: Sequence[str], env: Mapping[str, str], cwd: str | None = None,
                  started: Callable[[], Awaitable[None]] | None = None) -> AgentExit:
        """Run the agent to its end. ``started`` is awaited once the agent (and its watchdog) is
        running, before waiting for it; if it fails, the agent's group is killed and the error raised."""
        if not cmd:
            raise InvalidInputError("no agent command given: put it after `--`, e.g. `ci-guard run -- claude -p ...`")
        try:
            proc = await start_agent(cmd, env, cwd)  # dies with ci-guard (PR_SET_PDEATHSIG; spawn.py)
        except FileNotFoundError as exc:
            raise InvalidInputError(f"agent command not found: {cmd[0]!r}") from exc
        except PermissionError as exc:
            raise InvalidInputError(f"agent command is not executable: {cmd[0]!r}") from exc
        # The agent leads its own process group: if ci-guard is killed, the watchdog ends the group
        # (PDEATHSIG above ends only the agent, not what it started).
        watchdog = GroupWatchdog(proc.pid)

        forwarded: list[int] = []
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._forward, proc, sig, forwarded)
        try:
            if started is not None:
                try:
                    await started()
                except BaseException:
                    _kill_group(proc.pid, signal.SIGKILL)
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(proc.wait(), self.kill_after_s)
                    raise
            terminated = await self._wait(proc)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            _kill_group(proc.pid, signal.SIGKILL)  # leftovers of the agent (servers, subshells)
            watchdog.close()
        return AgentExit(proc.returncode, terminated, forwarded[0] if forwarded else None)

    async def _wait(self, proc: Agent) -> bool:
        session = self.session
        stop_event = session.stop_event or asyncio.Event()
        session.stop_event = stop_event
        limit = session.guard.limits.max_runtime_s
        remaining = None
        if limit is not None:
            remaining = max(0.0, limit - (time.monotonic() - session.guard.started_monotonic))
        waiter = asyncio.ensure_future(proc.wait())
        stopper = asyncio.ensure_future(stop_event.wait())
        done, _ = await asyncio.wait({waiter, stopper}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if waiter in done:
            return False
        if not done:  # the runtime cap passed while the agent was still working
            session.guard.stop(MAX_RUNTIME, f"max_runtime of {limit}s reached")
            session.announce_stop_if_needed()
            grace = 0.0
        else:
            grace = self.grace_s
        return await self._end(proc, waiter, grace)

    async def _end(self, proc: Agent, waiter: asyncio.Future[int], grace: float) -> bool:
        """Give the agent ``grace`` seconds to finish, then SIGTERM, then SIGKILL."""
        if grace > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiter), grace)
                return False
        _kill_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.kill_after_s)
        except TimeoutError:
            _kill_group(proc.pid, signal.SIGKILL)
            await waiter
        return True

    def _forward(self, proc: Agent, sig: int, forwarded: list[int]) -> None:
        forwarded.append(sig)
        _kill_group(proc.pid, sig)


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def agent_exit_status(code: int | None) -> int:
    """A shell-style exit status: negative return codes (signals) become 128 + signal."""
    if code is None:
        return 127
    return 128 - code if code < 0 else code


__all__ = ["AgentExit", "Supervisor", "agent_exit_status"]
