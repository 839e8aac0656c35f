"""Calendar budget periods in the budget's own timezone.

A ``day`` budget in ``Europe/Berlin`` resets at Berlin midnight, a ``week`` on Monday 00:00 (ISO),
a ``month`` on the 1st. Bounds are computed on the local calendar and returned as UTC, so a period
keeps its real length across a DST change (23 or 25 hours for that day).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ci_guard.errors import InvalidInputError, Problem

PERIODS = ("day", "week", "month")


def zone(tz_name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz_name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInputError("invalid budget timezone", [
            Problem(f"unknown timezone {tz_name!r}; expected an IANA name such as Europe/Berlin",
                    field="budgets.timezone")
        ]) from None


def period_bounds(period: str, tz_name: str | None, now: datetime) -> tuple[datetime, datetime]:
    """``[start, end)`` of the calendar ``period`` containing ``now``, as UTC datetimes."""
    tz = zone(tz_name)
    local = as_utc(now).astimezone(tz).date()
    if period == "day":
        first, after = local, local + timedelta(days=1)
    elif period == "week":
        first = local - timedelta(days=local.weekday())
        after = first + timedelta(days=7)
    elif period == "month":
        first = local.replace(day=1)
        after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    else:
        raise InvalidInputError("invalid budget period", [
            Problem(f"expected one of {', '.join(PERIODS)}, got {period!r}", field="budgets.period")
        ])
    return _midnight(first, tz), _midnight(after, tz)


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime (naive values are taken to be UTC already)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
