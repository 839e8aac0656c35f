from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ci_guard.errors import InvalidInputError
from ci_guard.ledger.periods import period_bounds


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_utc_day_week_month():
    now = utc(2026, 3, 14, 15, 9)  # a Saturday
    assert period_bounds("day", None, now) == (utc(2026, 3, 14), utc(2026, 3, 15))
    assert period_bounds("week", "UTC", now) == (utc(2026, 3, 9), utc(2026, 3, 16))  # ISO: Monday
    assert period_bounds("month", None, now) == (utc(2026, 3, 1), utc(2026, 4, 1))


def test_december_rolls_into_next_year():
    assert period_bounds("month", None, utc(2026, 12, 31, 23)) == (utc(2026, 12, 1), utc(2027, 1, 1))


def test_budget_timezone_moves_the_boundary():
    # 23:30 UTC on March 1st is already March 2nd in Tokyo
    start, end = period_bounds("day", "Asia/Tokyo", utc(2026, 3, 1, 23, 30))
    assert (start, end) == (utc(2026, 3, 1, 15), utc(2026, 3, 2, 15))
    start, _ = period_bounds("month", "America/Los_Angeles", utc(2026, 3, 1, 5))  # still Feb 28 in LA
    assert start == utc(2026, 2, 1, 8)


def test_dst_day_is_23_hours():
    start, end = period_bounds("day", "Europe/Berlin", utc(2026, 3, 29, 12))
    assert (end - start).total_seconds() == 23 * 3600


def test_naive_now_is_utc():
    assert period_bounds("day", None, datetime(2026, 3, 14, 1)) == (utc(2026, 3, 14), utc(2026, 3, 15))


def test_invalid_period_and_timezone():
    with pytest.raises(InvalidInputError) as info:
        period_bounds("year", None, utc(2026, 1, 1))
    assert "budgets.period: expected one of day, week, month, got 'year'" in info.value.render()
    with pytest.raises(InvalidInputError) as info:
        period_bounds("day", "Mars/Olympus", utc(2026, 1, 1))
    assert "unknown timezone 'Mars/Olympus'" in info.value.render()
