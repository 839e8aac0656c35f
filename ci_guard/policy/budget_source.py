"""The remaining-budget interface that `check` reads and the ledger implements.

The policy engine never talks to a database: it receives :class:`BudgetStatus` objects from a
:class:`BudgetSource`. Two sources exist: :class:`ci_guard.policy.snapshot.SnapshotBudgetSource`
(a JSON file, for dry runs and `--budget-snapshot`) and the ledger store
(:mod:`ci_guard.ledger`), which keeps per-budget rollups so this read never scans calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from ci_guard.context.model import RunContext
from ci_guard.policy.decision import BudgetStatus

if TYPE_CHECKING:
    from ci_guard.policy.models import Budget


class BudgetSource(Protocol):
    def budget_status(
        self, budgets: Sequence[Budget], ctx: RunContext, now: datetime
    ) -> list[BudgetStatus]:
        """The status of each budget for the scope key ``ctx`` falls into, in the period of ``now``.

        Budgets whose scope key is unknown for this context (a team budget for a user in no team)
        are still returned, with ``scope_key=None`` and nothing spent.
        """
        ...
