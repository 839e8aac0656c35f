from decimal import Decimal

import pytest

from ci_guard.money import burn_bar, format_duration, format_tokens, format_usd, percent, to_decimal


@pytest.mark.parametrize(("value", "expected"), [
    (Decimal("0"), "$0.00"), ("1.234", "$1.23"), ("1.235", "$1.24"), ("1234.5", "$1,234.50"),
    ("0.0042", "$0.0042"), ("0.00004", "<$0.0001"), ("0.01", "$0.01"), ("0.015", "$0.02"), (None, "—"),
    ("garbage", "—"), (3, "$3.00"),
])
def test_format_usd(value: object, expected: str) -> None:
    assert format_usd(value) == expected


def test_precise_keeps_sub_cent_digits_below_a_dollar() -> None:
    assert format_usd("0.0123", precise=True) == "$0.0123"
    assert format_usd("0.5", precise=True) == "$0.50"
    assert format_usd("2.5", precise=True) == "$2.50"


def test_to_decimal_never_goes_through_binary_float_noise() -> None:
    assert to_decimal(0.1) == Decimal("0.1")
    assert to_decimal("nan") is None
    assert to_decimal(True) is None


def test_burn_bar() -> None:
    assert burn_bar("40", "100") == "▓▓▓▓░░░░░░ 40%"
    assert burn_bar("0", "100") == "░░░░░░░░░░ 0%"
    assert burn_bar("0.01", "100") == "▓░░░░░░░░░ 0%"  # any spend shows
    assert burn_bar("150", "100") == "▓▓▓▓▓▓▓▓▓▓ 150%"
    assert burn_bar("1", "0") == "—"
    assert percent("1", "3") == Decimal(33)


def test_tokens_and_durations() -> None:
    assert format_tokens(1234567) == "1,234,567"
    assert format_tokens(None) == "0"
    assert [format_duration(s) for s in (4.4, 65, 3725, None)] == ["4s", "1m 05s", "1h 02m", "—"]
