"""The true status of a metered run once its agent has exited (pure: no I/O).

The vocabulary every output uses (ledger, summary, Action outputs, comment, step summary,
dashboard, FOCUS tags):

* ``completed`` -- the agent exited 0 after at least one metered call.
* ``stopped`` -- a cap stopped it (``stop_reason`` names the cap).
* ``failed`` -- the agent exited non-zero (``agent_exit_code``); ``stop_reason`` says why when
  ci-guard knows: ``upstream_auth`` (the provider answered 401/403), ``upstream_unreachable`` (no
  connection), else ``agent_exit``.
* ``cancelled`` -- ci-guard got SIGTERM/SIGINT and ended the agent (``stop_reason`` is the signal).
* ``no_calls`` -- the agent exited 0 without making a single metered call: it most likely never
  reached the proxy (a wrapper that lost the settings, a wrong base URL) or did nothing.
* ``denied``/``skipped`` -- the policy refused the run (decided before the agent, not here).
* ``error`` -- ci-guard itself failed.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass

from ci_guard.ledger.records import CallRecord

AUTH_STATUSES = (401, 403)
UPSTREAM_AUTH = "upstream_auth"
UPSTREAM_UNREACHABLE = "upstream_unreachable"
AGENT_EXIT = "agent_exit"


@dataclass(frozen=True)
class FinalStatus:
    status: str
    stop_reason: str | None = None
    detail: str | None = None  # one sentence for people (log, summary, comment)

    @property
    def warning(self) -> str | None:
        """A line worth a warning in the log and the step summary (no_calls)."""
        return self.detail if self.status == "no_calls" else None


def final_status(*, stopped: bool, exit_code: int, forwarded_signal: int | None,
                 calls: Sequence[CallRecord], turns: int = 0, max_turns: int | None = None) -> FinalStatus:
    """Classify a run whose agent has exited (``exit_code`` is shell style: 128 + signal)."""
    if stopped:
        return FinalStatus("stopped")
    if (exit_code != 0 and forwarded_signal is None and max_turns is not None and turns >= max_turns
            and not any(c.http_status in AUTH_STATUSES for c in calls)):
        # The preset hands the agent its turn cap (CLAUDE_CODE_MAX_TURNS) and Claude Code stops itself
        # there with exit 1: the cap did its work, the agent did not fail.
        return FinalStatus("stopped", "max_turns", f"the agent stopped itself at the turn cap ci-guard gave it "
                                                   f"({max_turns} turns; agent exit code {exit_code})")
    if forwarded_signal is not None:
        name = _signal_name(forwarded_signal)
        return FinalStatus("cancelled", name, f"cancelled: ci-guard received {name} and ended the agent "
                                              f"(exit code {exit_code})")
    auth = [c for c in calls if c.http_status in AUTH_STATUSES]
    unreachable = [c for c in calls if (c.error or "").startswith("upstream unreachable")]
    all_auth = bool(calls) and len(auth) == len(calls)
    if exit_code != 0 or all_auth:
        if auth:
            last = auth[-1]
            return FinalStatus("failed", UPSTREAM_AUTH, (
                f"failed (exit code {exit_code}): the {last.provider} API refused the provider key "
                f"(HTTP {last.http_status}) on {len(auth)} of {len(calls)} calls; check the key ci-guard "
                f"was given (e.g. ANTHROPIC_API_KEY / OPENAI_API_KEY)"))
        if unreachable:
            return FinalStatus("failed", UPSTREAM_UNREACHABLE, (
                f"failed (exit code {exit_code}): the {unreachable[-1].provider} upstream could not be reached "
                f"({len(unreachable)} of {len(calls)} calls): {unreachable[-1].error}"))
        return FinalStatus("failed", AGENT_EXIT, f"failed: the agent exited with code {exit_code}")
    if not calls:
        return FinalStatus("no_calls", None, (
            "no_calls: the agent exited 0 without making a single metered call; it most likely never "
            "reached the proxy (check the preset and that the command passes ANTHROPIC_BASE_URL / "
            "OPENAI_BASE_URL on) or had nothing to do"))
    return FinalStatus("completed")


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
