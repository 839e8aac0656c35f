"""Money and number formatting for comments and summaries: one style everywhere.

Amounts are US dollars held as :class:`~decimal.Decimal`. Whole cents are enough for anything
of a cent or more; below a cent (a single cheap call, a cache read) four decimals keep the
figure meaningful instead of rounding it to ``$0.00``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated

from pydantic import PlainSerializer

CENT = Decimal("0.01")
SUB_CENT = Decimal("0.0001")
MICRO = Decimal("0.000001")  # the ledger's unit: every call is priced to the micro-dollar


def usd_json(value: object) -> str | None:
    """Money in JSON and step outputs: a decimal string with six places (``"5.000000"``,
    ``"0.002670"``), the same scale everywhere, so consumers compare and sum strings safely."""
    amount = to_decimal(value)
    if amount is None:
        return None
    return f"{amount.quantize(MICRO, rounding=ROUND_HALF_UP):f}"


def to_decimal(value: object) -> Decimal | None:
    """A Decimal from a Decimal, int or decimal string; ``None`` when absent or not a number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, float):  # only ever reached from foreign JSON; go through str to avoid binary noise
        value = repr(value)
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def format_usd(value: object, missing: str = "—", precise: bool = False) -> str:
    """``$1.23``, ``$1,234.50``, ``$0.0042``, ``<$0.0001``, ``$0.00``; ``missing`` when unknown.

    ``precise`` keeps four decimals below one dollar (per-call tables, where cents hide the
    difference between calls).
    """
    amount = to_decimal(value)
    if amount is None:
        return missing
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount == 0:
        return "$0.00"
    if amount >= CENT and not (precise and amount < 1):
        return f"{sign}${amount.quantize(CENT, rounding=ROUND_HALF_UP):,}"
    small = amount.quantize(SUB_CENT, rounding=ROUND_HALF_UP)
    if small == 0:
        return f"{sign}<$0.0001"
    text = f"{small:f}".rstrip("0")
    text += "0" * max(0, 4 - len(text))  # at least two decimals: "0.5" -> "0.50"
    return f"{sign}${text}"


def format_tokens(value: object) -> str:
    """Token counts with thousands separators: ``12,345``."""
    try:
        return f"{int(value or 0):,}"  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return "—"


def percent(part: object, whole: object) -> Decimal | None:
    """``part / whole`` in percent (0 decimals, half up); ``None`` when ``whole`` is not positive."""
    p, w = to_decimal(part), to_decimal(whole)
    if p is None or w is None or w <= 0:
        return None
    return (p * 100 / w).quantize(Decimal(1), rounding=ROUND_HALF_UP)


def burn_bar(spent: object, limit: object, width: int = 10) -> str:
    """A text burn bar: ``▓▓▓▓░░░░░░ 40%``; past the limit the bar is full and the figure says so."""
    pct = percent(spent, limit)
    if pct is None:
        return "—"
    filled = int(min(max(pct, Decimal(0)), Decimal(100)) * width / 100)
    if filled == 0 and (to_decimal(spent) or 0) > 0:
        filled = 1  # any spend at all shows on the bar
    return "▓" * filled + "░" * (width - filled) + f" {pct}%"


def format_duration(seconds: object) -> str:
    """``42s``, ``3m 05s``, ``1h 02m``; ``—`` when unknown."""
    try:
        total = round(float(seconds))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "—"
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


# A Decimal model field that serialises with usd_json in JSON mode (run summaries, call summaries).
UsdJson = Annotated[Decimal, PlainSerializer(usd_json, return_type=str, when_used="json")]
