"""The live log: one short line per model call on stderr, and one when a cap stops the run."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from ci_guard.secrets import redact

if TYPE_CHECKING:
    from ci_guard.ledger.records import CallRecord
    from ci_guard.meter.caps import CapGuard


def usd(amount: object) -> str:
    from decimal import Decimal

    value = Decimal(str(amount))
    return f"${value:.4f}" if abs(value) < 1 else f"${value:.2f}"


class LiveLog:
    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream

    def _write(self, line: str) -> None:
        if self.quiet:
            return
        out = self.stream or sys.stderr
        out.write(redact(line) + "\n")
        out.flush()

    def info(self, message: str) -> None:
        self._write(f"ci-guard: {message}")

    def call(self, call: CallRecord, guard: CapGuard) -> None:
        if self.quiet:
            return
        if call.status == "refused":
            self._write(f"ci-guard: refused a {call.endpoint} call: {(call.error or '').split(': ci-guard:')[0]}")
            return
        lim = guard.limits
        turn = f"turn {guard.turns}/{lim.max_turns}" if lim.max_turns else f"turn {guard.turns}"
        if not call.is_turn:
            turn = call.endpoint
        u = call.usage
        tokens = f"in {u.input_tokens:,}"
        if u.cache_read_tokens or u.cache_write_tokens:
            tokens += f" (+{u.cache_read_tokens:,} cached, +{u.cache_write_tokens:,} written)"
        tokens += f" out {u.output_tokens:,}"
        cap = f" / {usd(lim.max_cost_usd)}" if lim.max_cost_usd is not None else ""
        status = "" if call.status == "ok" else f" [{call.status}{': ' + call.error if call.error else ''}]"
        model = call.model_served or call.model_requested or "?"
        self._write(f"ci-guard: {turn} {model} {tokens} · {usd(guard.cost_usd)}{cap}{status}")

    def stopped(self, reason: str, detail: str) -> None:
        self._write(f"ci-guard: STOPPED ({reason}): {detail}")
