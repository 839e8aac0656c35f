"""Small builders for runs, calls and budgets used across the ledger tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from ci_guard.context.model import RunContext
from ci_guard.ledger.records import CallRecord, RunRecord
from ci_guard.pricing.usage import Usage

NOW = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)
BUDGETS = [
    {"name": "org-monthly", "scope": "org", "period": "month", "limit_usd": "10"},
    {"name": "repo-daily", "scope": "repo", "period": "day", "limit_usd": "3"},
    {"name": "team-weekly", "scope": "team", "period": "week", "limit_usd": "5"},
]
CTX = RunContext(org="acme", repo="acme/api", actor="alice", agent="pr-review")


def run(run_id: str, started_at: datetime = NOW, **kw) -> RunRecord:
    attrs = {"org": "acme", "repo": "acme/api", "user": "alice", "agent": "pr-review", "pr": 7,
             "model": "claude-sonnet-4-5", "rule": "protected-review"}
    attrs.update(kw)
    return RunRecord(run_id=run_id, started_at=started_at, **attrs)


def call(run_id: str, seq: int, cost: str, at: datetime = NOW, **kw) -> CallRecord:
    attrs = {"provider": "anthropic", "endpoint": "messages", "model_requested": "claude-sonnet-4-5",
             "model_served": "claude-sonnet-4-5-20250929",
             "usage": Usage(input_tokens=100, cache_read_tokens=2000, output_tokens=50, reasoning_tokens=10)}
    attrs.update(kw)
    return CallRecord(run_id=run_id, seq=seq, started_at=at, ended_at=at, cost_usd=Decimal(cost), **attrs)
