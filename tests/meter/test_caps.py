from decimal import Decimal

from ci_guard.meter.caps import (
    MAX_CONTEXT,
    MAX_COST,
    MAX_RUNTIME,
    MAX_TOOL_CALLS,
    MAX_TURNS,
    RETRY_STORM,
    CapGuard,
    PlannedCall,
)
from ci_guard.policy.decision import Limits


def call(fp: str = "a", tokens: int = 100, out: int | None = 1000, worst: str | None = "0.01") -> PlannedCall:
    return PlannedCall(fp, tokens, out, Decimal(worst) if worst is not None else None)


def test_max_turns_allows_exactly_n_calls_then_stops():
    guard = CapGuard(Limits(max_turns=3))
    assert [guard.admit(call(fp=str(i))).allowed for i in range(3)] == [True, True, True]
    refused = guard.admit(call(fp="x"))
    assert not refused.allowed and refused.cap == MAX_TURNS
    assert guard.stop_reason == MAX_TURNS
    # once stopped, every call gets the same answer
    assert guard.admit(call(fp="y")).cap == MAX_TURNS
    assert guard.turns == 3


def test_non_turn_calls_do_not_count():
    guard = CapGuard(Limits(max_turns=1))
    assert guard.admit(PlannedCall("ct", 0, None, None, is_turn=False)).allowed
    assert guard.admit(call()).allowed
    assert guard.turns == 1


def test_context_cap_refuses_large_input():
    guard = CapGuard(Limits(max_context_tokens=1000))
    assert guard.admit(call(tokens=1000)).allowed
    refused = guard.admit(call(fp="b", tokens=1001))
    assert refused.cap == MAX_CONTEXT and "1001" in refused.message


def test_identical_retries_become_a_retry_storm():
    guard = CapGuard(Limits(max_identical_retries=2))
    assert [guard.admit(call(fp="same")).allowed for _ in range(3)] == [True, True, True]
    refused = guard.admit(call(fp="same"))
    assert refused.cap == RETRY_STORM
    assert guard.stop_reason == RETRY_STORM


def test_same_upstream_error_repeated_is_a_retry_storm():
    guard = CapGuard(Limits(max_identical_retries=2))
    for i in range(3):
        assert guard.admit(call(fp=str(i))).allowed
        guard.settle_call(cost_usd=Decimal(0), tool_calls=0, error_signature="529 overloaded_error")
    assert guard.stop_reason == RETRY_STORM


def test_an_ok_call_resets_the_error_streak():
    guard = CapGuard(Limits(max_identical_retries=1))
    guard.settle_call(cost_usd=Decimal(0), tool_calls=0, error_signature="500 api_error")
    guard.settle_call(cost_usd=Decimal(0), tool_calls=0, error_signature=None)
    guard.settle_call(cost_usd=Decimal(0), tool_calls=0, error_signature="500 api_error")
    assert guard.stop_reason is None


def test_cost_cap_clamps_output_when_worst_case_does_not_fit():
    guard = CapGuard(Limits(max_cost_usd=Decimal("0.10")))
    guard.settle_call(cost_usd=Decimal("0.09"), tool_calls=0, error_signature=None)
    admission = guard.admit(call(worst="0.50"), max_output_for_remaining=200)
    assert admission.allowed and admission.max_output_tokens == 200


def test_cost_cap_refuses_when_nothing_fits_or_policy_says_refuse():
    guard = CapGuard(Limits(max_cost_usd=Decimal("0.10")))
    assert guard.admit(call(worst="0.50"), max_output_for_remaining=0).cap == MAX_COST
    strict = CapGuard(Limits(max_cost_usd=Decimal("0.10")), on_cost_cap="refuse")
    assert strict.admit(call(worst="0.50"), max_output_for_remaining=500).cap == MAX_COST


def test_spending_the_cap_stops_the_run():
    guard = CapGuard(Limits(max_cost_usd=Decimal("0.10")))
    guard.settle_call(cost_usd=Decimal("0.10"), tool_calls=0, error_signature=None)
    assert guard.stop_reason == MAX_COST
    assert not guard.admit(call()).allowed


def test_tool_calls_past_the_cap_stop_the_run():
    guard = CapGuard(Limits(max_tool_calls=2))
    guard.settle_call(cost_usd=Decimal(0), tool_calls=2, error_signature=None)
    assert guard.stop_reason is None
    guard.settle_call(cost_usd=Decimal(0), tool_calls=1, error_signature=None)
    assert guard.stop_reason == MAX_TOOL_CALLS


def test_runtime_cap_refuses_after_the_deadline():
    guard = CapGuard(Limits(max_runtime_s=10))
    guard.started_monotonic -= 11
    refused = guard.admit(call())
    assert refused.cap == MAX_RUNTIME


def test_first_stop_reason_wins():
    guard = CapGuard(Limits(max_turns=1, max_cost_usd=Decimal("0.01")))
    guard.stop(MAX_TURNS, "a")
    guard.stop(MAX_COST, "b")
    assert (guard.stop_reason, guard.stop_detail) == (MAX_TURNS, "a")


def test_calls_in_flight_hold_their_worst_case_and_others_wait_instead_of_stopping_the_run():
    from ci_guard.meter.caps import WAIT_FOR_CALLS_IN_FLIGHT

    guard = CapGuard(Limits(max_cost_usd=Decimal("5.00")))
    assert guard.admit(call(fp="a", worst="4.90")).allowed
    held = guard.hold(Decimal("4.90"))
    # a parallel call that does not fit next to the held one waits; the run is not stopped
    second = guard.admit(call(fp="b", worst="0.50"), max_output_for_remaining=0)
    assert not second.allowed and second.cap == WAIT_FOR_CALLS_IN_FLIGHT
    assert guard.stop_reason is None and guard.turns == 1
    # a small one that fits next to it goes ahead
    assert guard.admit(call(fp="c", worst="0.05")).allowed
    guard.settle_call(cost_usd=Decimal("0.40"), tool_calls=0, error_signature=None, held_usd=held)
    assert guard.held_usd == 0 and guard.remaining_usd() == Decimal("4.60")
    assert guard.admit(call(fp="b", worst="0.50")).allowed  # asked again after the settle: fits
