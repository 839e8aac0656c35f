"""The final status of a run from what ci-guard saw (the pure part; tests/ledger/test_run_statuses.py
runs each case end to end through the CLI)."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from decimal import Decimal

from ci_guard.ledger.records import RUN_STATUSES, CallRecord
from ci_guard.meter.status import final_status
from ci_guard.pricing.usage import Usage

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def call(seq: int, http_status: int = 200, error: str | None = None) -> CallRecord:
    return CallRecord("run_x", seq, NOW, NOW, "anthropic", "messages", "m", "m", Usage(input_tokens=1),
                      Decimal(0), status="ok" if http_status == 200 else "error", http_status=http_status, error=error)


def test_each_status_and_what_it_names():
    ok, auth = call(1), call(2, 401)
    assert final_status(stopped=False, exit_code=0, forwarded_signal=None, calls=[ok]).status == "completed"
    assert final_status(stopped=True, exit_code=143, forwarded_signal=signal.SIGTERM, calls=[ok]).status == "stopped"
    cancelled = final_status(stopped=False, exit_code=130, forwarded_signal=signal.SIGINT, calls=[])
    assert (cancelled.status, cancelled.stop_reason) == ("cancelled", "SIGINT")
    failed = final_status(stopped=False, exit_code=3, forwarded_signal=None, calls=[ok])
    assert (failed.status, failed.stop_reason) == ("failed", "agent_exit") and "code 3" in failed.detail
    failed = final_status(stopped=False, exit_code=1, forwarded_signal=None, calls=[auth])
    assert (failed.status, failed.stop_reason) == ("failed", "upstream_auth") and "HTTP 401" in failed.detail
    down = call(1, 502, "upstream unreachable: connection refused")
    failed = final_status(stopped=False, exit_code=1, forwarded_signal=None, calls=[down])
    assert (failed.status, failed.stop_reason) == ("failed", "upstream_unreachable")
    none = final_status(stopped=False, exit_code=0, forwarded_signal=None, calls=[])
    assert none.status == "no_calls" and none.warning and "metered call" in none.warning


def test_an_agent_that_swallows_401s_and_exits_0_is_still_failed():
    result = final_status(stopped=False, exit_code=0, forwarded_signal=None, calls=[call(1, 401), call(2, 403)])
    assert (result.status, result.stop_reason) == ("failed", "upstream_auth")
    # one auth error among answered calls is not a failed run
    assert final_status(stopped=False, exit_code=0, forwarded_signal=None,
                        calls=[call(1, 401), call(2)]).status == "completed"


def test_every_status_is_in_the_ledger_vocabulary():
    for status in ("completed", "stopped", "failed", "cancelled", "no_calls", "denied", "skipped", "error"):
        assert status in RUN_STATUSES


def test_an_agent_that_stops_itself_at_the_turn_cap_it_was_given_is_stopped_not_failed():
    # Claude Code reads CLAUDE_CODE_MAX_TURNS from the preset and exits 1 at that many turns.
    calls = [call(1), call(2), call(3)]
    capped = final_status(stopped=False, exit_code=1, forwarded_signal=None, calls=calls, turns=3, max_turns=3)
    assert (capped.status, capped.stop_reason) == ("stopped", "max_turns") and "exit code 1" in capped.detail
    # below the cap, a non-zero exit is still the agent's failure; a clean exit at the cap is completed
    early = final_status(stopped=False, exit_code=1, forwarded_signal=None, calls=calls[:2], turns=2, max_turns=3)
    assert early.status == "failed"
    clean = final_status(stopped=False, exit_code=0, forwarded_signal=None, calls=calls, turns=3, max_turns=3)
    assert clean.status == "completed"
    # an auth failure at the cap is still named as such
    auth = final_status(stopped=False, exit_code=1, forwarded_signal=None, calls=[call(1, 401)], turns=1, max_turns=1)
    assert (auth.status, auth.stop_reason) == ("failed", "upstream_auth")
