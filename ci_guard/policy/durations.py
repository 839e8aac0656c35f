"""Durations in policy files: ``90s``, ``15m``, ``1h``, ``1h30m``, ``2d`` or a bare number of seconds."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from ci_guard.errors import shown

_UNITS = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600), "d": Decimal(86400)}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")

EXPECTED = "a duration such as 90s, 15m, 1h or 1h30m (or a number of seconds)"


def parse_duration(value: object) -> int:
    """Whole seconds (rounded up) of a duration; raise ValueError saying what was expected."""
    if isinstance(value, bool):
        raise ValueError(f"expected {EXPECTED}, got {shown(value)}")
    if isinstance(value, int | Decimal | float):
        seconds = Decimal(str(value))
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        try:
            seconds = Decimal(text) if text and text.replace(".", "", 1).isdigit() else None
        except InvalidOperation:
            seconds = None
        if seconds is None:
            if not _WHOLE.fullmatch(text):
                raise ValueError(f"expected {EXPECTED}, got {shown(value)}")
            seconds = sum((Decimal(n) * _UNITS[u] for n, u in _PART.findall(text)), Decimal(0))
    else:
        raise ValueError(f"expected {EXPECTED}, got {shown(value)}")
    if seconds <= 0:
        raise ValueError(f"expected a positive duration, got {shown(value)}")
    return math.ceil(seconds)


def format_duration(seconds: int) -> str:
    """The shortest human spelling of whole seconds (``900`` -> ``15m``)."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            count, seconds = divmod(seconds, size)
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
