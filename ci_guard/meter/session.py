"""One metered run as the proxy sees it: identity, caps, running totals and the call log."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from ci_guard.ledger.records import CallRecord
from ci_guard.meter.caps import CapGuard
from ci_guard.meter.live_log import LiveLog
from ci_guard.meter.recorder import Recorder
from ci_guard.policy.decision import Decision
from ci_guard.pricing.usage import Usage

if TYPE_CHECKING:  # imported when the run ends: its models need not be built before the agent starts
    from ci_guard.meter.summary import RunSummary


class Pricer(Protocol):
    """What the proxy needs from pricing (see :mod:`ci_guard.meter.pricer`)."""

    def refusal(self, model: str | None) -> str | None:
        """A message when calls to ``model`` must be refused (unknown model, policy deny)."""
        ...

    def cost(self, model: str | None, usage: Usage) -> Decimal: ...

    def worst_case(self, model: str | None, input_tokens: int, max_output_tokens: int | None) -> Decimal | None: ...

    def max_output_within(self, model: str | None, input_tokens: int, budget_usd: Decimal) -> int | None: ...


def new_run_id() -> str:
    return "run_" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "_" + secrets.token_hex(4)


def new_run_token() -> str:
    # Prefixed so `ci_guard.secrets.redact` recognises it anywhere it might be echoed.
    return "cig_" + secrets.token_urlsafe(24)


@dataclass
class MeterSession:
    run_id: str
    token: str
    decision: Decision
    guard: CapGuard
    pricer: Pricer
    recorder: Recorder
    live: LiveLog = field(default_factory=LiveLog)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_monotonic: float = field(default_factory=time.monotonic)
    calls: list[CallRecord] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    session_id: str | None = None
    on_stop: Callable[[str, str], None] | None = None  # called once when a cap stops the run
    stop_event: asyncio.Event | None = None
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # set whenever a call is settled
    _seq: int = 0
    _stop_announced: bool = False
    # The context policy's request transforms; None when the policy names none (then no call pays for them).
    transforms: Any = field(default=None, init=False)

    def __post_init__(self) -> None:
        policy = getattr(self.decision, "context_policy", None)
        if policy is not None and policy.active:
            from ci_guard.meter.transforms import ContextTransforms

            self.transforms = ContextTransforms(policy)

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    @property
    def allowed_models(self) -> set[str]:
        models = set(self.decision.enforcement.allowed_models)
        if self.decision.model:
            models.add(self.decision.model)
        return models

    def record(self, call: CallRecord) -> None:
        """Account for a finished call: totals, ledger (queued), live log, stop notification."""
        self.calls.append(call)
        self.settled.set()
        self.usage = self.usage + call.usage
        if call.session_id and not self.session_id:
            self.session_id = call.session_id
        self.recorder.record_call(call)
        self.live.call(call, self.guard)
        self.announce_stop_if_needed()

    def ledger_failed(self, detail: str) -> None:
        """A ledger write failed mid-run and the policy says ``on_ledger_error: deny``: stop the run."""
        self.guard.stop("ledger_error", f"the ledger failed mid-run and the policy says deny: {detail}")
        self.announce_stop_if_needed()

    def watch_ledger(self, loop: asyncio.AbstractEventLoop) -> None:
        """Apply the policy's ``on_ledger_error`` to failures during the run, not only at its start."""
        if self.decision.enforcement.on_ledger_error == "deny":
            self.recorder.on_failure(lambda detail: loop.call_soon_threadsafe(self.ledger_failed, detail))

    def announce_stop_if_needed(self) -> None:
        if self.guard.stopped and not self._stop_announced:
            self._stop_announced = True
            self.live.stopped(self.guard.stop_reason or "", self.guard.stop_detail or "")
            if self.stop_event is not None:
                self.stop_event.set()
            if self.on_stop is not None:
                self.on_stop(self.guard.stop_reason or "", self.guard.stop_detail or "")

    def summary(self, *, status: str, agent_exit_code: int | None, ended_at: datetime | None = None) -> RunSummary:
        from ci_guard.meter.summary import RunSummary, call_summary, context_savings

        ended = ended_at or datetime.now(UTC)
        cost = sum((c.cost_usd for c in self.calls), Decimal(0))
        return RunSummary(
            run_id=self.run_id,
            decision=self.decision.as_json(),
            status=status,
            stop_reason=self.guard.stop_reason,
            stop_detail=self.guard.stop_detail,
            agent_exit_code=agent_exit_code,
            turns=self.guard.turns,
            tool_calls=self.guard.tool_calls,
            tokens=self.usage.as_json(),
            web_searches=sum(c.web_searches for c in self.calls),
            cost_usd=cost,
            estimated_calls=sum(1 for c in self.calls if c.estimated),
            context_savings=context_savings(self.calls, cost),
            runtime_s=round(time.monotonic() - self.started_monotonic, 3),
            started_at=self.started_at.isoformat(),
            ended_at=ended.isoformat(),
            session_id=self.session_id,
            calls=[call_summary(c) for c in self.calls],
        )
