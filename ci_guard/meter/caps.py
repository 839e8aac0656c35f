"""Hard caps of one run: the rules the proxy applies before and after every model call.

Pure logic, no I/O: :class:`CapGuard` is told about each call before it goes upstream
(:meth:`CapGuard.admit`) and after it ends (:meth:`CapGuard.settle_call`). Once any cap stops the
run, every later call is refused with the same reason, so an agent that keeps retrying gets the
same non-retryable answer and the supervisor can end it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from ci_guard.policy.decision import Limits

# Stop reasons, as recorded in the ledger and the run summary.
MAX_TURNS = "max_turns"
MAX_COST = "max_cost"
MAX_RUNTIME = "max_runtime"
MAX_CONTEXT = "max_context"
MAX_TOOL_CALLS = "max_tool_calls"
RETRY_STORM = "retry_storm"
# Not a stop reason: the call does not fit only because calls in flight hold the rest of the cost
# cap. The proxy waits for one of them to end and asks again.
WAIT_FOR_CALLS_IN_FLIGHT = "wait_for_calls_in_flight"


@dataclass
class Admission:
    """The verdict on one call before it is sent upstream."""

    allowed: bool
    cap: str | None = None  # the cap that refused the call
    message: str = ""
    max_output_tokens: int | None = None  # lower the request's output cap to this (max_cost clamp)


@dataclass
class PlannedCall:
    """What the proxy knows about a call before sending it."""

    fingerprint: str
    estimated_input_tokens: int
    max_output_tokens: int | None
    worst_case_usd: Decimal | None  # input at list price + max output; None when unpriceable
    is_turn: bool = True


@dataclass
class CapGuard:
    limits: Limits
    started_monotonic: float = field(default_factory=time.monotonic)
    turns: int = 0
    tool_calls: int = 0
    cost_usd: Decimal = Decimal(0)
    held_usd: Decimal = Decimal(0)  # worst cases of admitted calls that have not ended yet
    stop_reason: str | None = None
    stop_detail: str | None = None
    on_cost_cap: str = "clamp"  # clamp | refuse
    _fingerprints: Counter[str] = field(default_factory=Counter)
    _last_error: str | None = None
    _same_error_count: int = 0

    # -- queries ---------------------------------------------------------------------------
    @property
    def stopped(self) -> bool:
        return self.stop_reason is not None

    def remaining_usd(self) -> Decimal | None:
        """What the cost cap still allows, after what was spent and what calls in flight may spend."""
        if self.limits.max_cost_usd is None:
            return None
        return self.limits.max_cost_usd - self.cost_usd - self.held_usd

    def hold(self, amount: Decimal | None) -> Decimal:
        """Hold an admitted call's worst case until it ends, so parallel calls cannot overspend together."""
        if amount is None or self.limits.max_cost_usd is None:
            return Decimal(0)
        self.held_usd += amount
        return amount

    def deadline_passed(self, now: float | None = None) -> bool:
        limit = self.limits.max_runtime_s
        if limit is None:
            return False
        return (now if now is not None else time.monotonic()) - self.started_monotonic >= limit

    # -- decisions -------------------------------------------------------------------------
    def stop(self, reason: str, detail: str) -> None:
        """Record the first reason the run was stopped; later ones do not overwrite it."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_detail = detail

    def admit(self, call: PlannedCall, max_output_for_remaining: int | None = None) -> Admission:
        """Decide whether ``call`` may go upstream now.

        ``max_output_for_remaining`` is how many output tokens still fit in the remaining cost
        cap after the call's input (computed by the caller from the price), used to clamp.
        """
        if self.stopped:
            return self._refuse(self.stop_reason or "", self.stop_detail or "the run was stopped")
        if self.deadline_passed():
            return self._stop_and_refuse(MAX_RUNTIME, f"max_runtime of {self.limits.max_runtime_s}s reached")
        if not call.is_turn:
            return Admission(True)

        lim = self.limits
        if lim.max_turns is not None and self.turns >= lim.max_turns:
            return self._stop_and_refuse(MAX_TURNS, f"max_turns of {lim.max_turns} reached")
        if lim.max_context_tokens is not None and call.estimated_input_tokens > lim.max_context_tokens:
            return self._stop_and_refuse(
                MAX_CONTEXT,
                f"request input of about {call.estimated_input_tokens} tokens exceeds "
                f"max_context_tokens of {lim.max_context_tokens}",
            )
        if lim.max_identical_retries is not None:
            seen = self._fingerprints[call.fingerprint]
            if seen > lim.max_identical_retries:
                return self._stop_and_refuse(
                    RETRY_STORM,
                    f"the same request was sent {seen + 1} times (max_identical_retries "
                    f"{lim.max_identical_retries})",
                )
        admission = self._admit_cost(call, max_output_for_remaining)
        if admission.allowed:
            self._fingerprints[call.fingerprint] += 1
            self.turns += 1
        return admission

    def _admit_cost(self, call: PlannedCall, max_output_for_remaining: int | None) -> Admission:
        remaining = self.remaining_usd()
        if remaining is None or call.worst_case_usd is None:
            return Admission(True)
        cap = self.limits.max_cost_usd
        if self.limits.max_cost_usd - self.cost_usd <= 0:
            return self._stop_and_refuse(MAX_COST, f"max_cost_usd of ${cap} spent")
        if call.worst_case_usd <= remaining:
            return Admission(True)
        if self.held_usd > 0:
            # What is held is usually not all spent: decide once the calls in flight have ended.
            return self._refuse(WAIT_FOR_CALLS_IN_FLIGHT, f"the rest of max_cost_usd ${cap} is held by calls in flight")
        if self.on_cost_cap == "refuse" or not max_output_for_remaining or max_output_for_remaining < 1:
            return self._stop_and_refuse(
                MAX_COST,
                f"this call could cost up to ${call.worst_case_usd:.6f} but only ${remaining:.6f} "
                f"of max_cost_usd ${cap} remains",
            )
        return Admission(True, max_output_tokens=max_output_for_remaining)

    def settle_call(self, *, cost_usd: Decimal, tool_calls: int, error_signature: str | None,
                    held_usd: Decimal = Decimal(0)) -> None:
        """Account for a finished call (releasing what was held for it) and stop the run when it crossed a cap."""
        self.held_usd -= held_usd
        self.cost_usd += cost_usd
        self.tool_calls += tool_calls
        lim = self.limits
        if lim.max_cost_usd is not None and self.cost_usd >= lim.max_cost_usd:
            self.stop(MAX_COST, f"spent ${self.cost_usd} of max_cost_usd ${lim.max_cost_usd}")
        if lim.max_tool_calls is not None and self.tool_calls > lim.max_tool_calls:
            self.stop(MAX_TOOL_CALLS, f"{self.tool_calls} tool calls, more than max_tool_calls {lim.max_tool_calls}")
        self._track_errors(error_signature)

    def _track_errors(self, signature: str | None) -> None:
        # The same upstream error again and again (529, 500) is a retry storm even when the
        # agent varies its request slightly between attempts.
        if signature is None:
            self._last_error, self._same_error_count = None, 0
            return
        if signature == self._last_error:
            self._same_error_count += 1
        else:
            self._last_error, self._same_error_count = signature, 1
        limit = self.limits.max_identical_retries
        if limit is not None and self._same_error_count > limit:
            self.stop(RETRY_STORM, f"upstream answered {signature!r} {self._same_error_count} times in a row")

    def _refuse(self, cap: str, message: str) -> Admission:
        return Admission(False, cap=cap, message=message)

    def _stop_and_refuse(self, cap: str, message: str) -> Admission:
        self.stop(cap, message)
        return self._refuse(cap, message)
