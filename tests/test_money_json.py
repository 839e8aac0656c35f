"""JSON money: one fixed scale everywhere (summaries, check --format json, ledger JSON, cost, step outputs)."""

from __future__ import annotations

from decimal import Decimal

from ci_guard.meter.summary import RunSummary
from ci_guard.money import usd_json


def test_json_money_has_one_fixed_scale() -> None:
    assert [usd_json(v) for v in (Decimal("5"), Decimal("5.00"), "0.5", Decimal("0.00267"), 0, None)] == [
        "5.000000", "5.000000", "0.500000", "0.002670", "0.000000", None]
    # a summary's money is the same string whatever scale the Decimal had
    dumped = RunSummary(run_id="r", decision={}, status="completed", cost_usd=Decimal("0.5")).to_json()
    assert dumped["cost_usd"] == "0.500000"
    assert RunSummary.model_validate(dumped).cost_usd == Decimal("0.5")  # and reads back exactly
