from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.context.model import RunContext
from ci_guard.policy.decision import BudgetStatus
from ci_guard.policy.loader import load_policy_file
from ci_guard.policy.models import Policy

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture(scope="session")
def default_policy() -> Policy:
    return load_policy_file(POLICIES / "default.yml")


def pr_context(**overrides: object) -> RunContext:
    """A GitHub pull request to main that only the protected-review rule allows."""
    base: dict[str, object] = dict(
        platform="github", repo="acme/web", org="acme", trigger="pull_request", event_name="pull_request",
        agent="pr-review", base_branch="main", head_branch="feature/x", actor="carol", draft=False,
        fork=False, diff_lines=120, diff_files=2, changed_paths=["src/app.py", "src/b.py"], labels=[],
    )
    base.update(overrides)
    return RunContext.model_validate(base)


def status(name: str, limit: str, spent: str = "0", reserved: str = "0", scope: str = "org",
           key: str | None = "acme") -> BudgetStatus:
    return BudgetStatus(name=name, scope=scope, scope_key=key, period="month", limit_usd=Decimal(limit),
                        spent_usd=Decimal(spent), reserved_usd=Decimal(reserved))
