"""Rows of the ledger: one run per agent run, one call per model call."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ci_guard.pricing.usage import Usage
from ci_guard.text import clean, clean_any


def _clean_strings(record: Any) -> None:
    # Every text column may hold agent- or PR-author-controlled text: a lone surrogate or a NUL
    # would make the database driver raise and keep the row (and its spend) out of the ledger.
    for name, value in vars(record).items():
        if isinstance(value, str):
            cleaned = clean(value)
            if cleaned is not value:
                setattr(record, name, cleaned)
        elif isinstance(value, dict) and name != "inputs":
            # (`inputs` is left alone: written from a cleaned RunContext as ASCII JSON, read back
            # only through RunContext validation, which cleans again; walking it per run read made
            # `what-if` over a month twice as slow)
            setattr(record, name, clean_any(value))

# See ci_guard/meter/status.py for what each means.
RUN_STATUSES = ("running", "completed", "stopped", "failed", "cancelled", "no_calls", "denied", "skipped", "error")
STOP_REASONS = ("max_turns", "max_cost", "max_runtime", "max_context", "max_tool_calls", "retry_storm",
                "ledger_error")  # ledger_error: the ledger failed mid-run and on_ledger_error is deny
CALL_STATUSES = ("ok", "error", "refused", "cut")  # cut: the stream ended before the provider finished


@dataclass
class RunRecord:
    run_id: str
    started_at: datetime
    decision: str = "allow"  # allow | deny | skip
    status: str = "running"  # one of RUN_STATUSES
    # attribution
    org: str | None = None
    team: str | None = None
    repo: str | None = None
    user: str | None = None
    workflow: str | None = None
    agent: str | None = None
    environment: str | None = None
    trigger: str | None = None
    pr: int | None = None
    branch: str | None = None
    cohort: str | None = None
    platform: str | None = None
    # the decision
    rule: str | None = None
    reason: str | None = None
    model: str | None = None
    limits: dict[str, Any] = field(default_factory=dict)  # Decision.as_json()["limits"]
    # the outcome
    ended_at: datetime | None = None
    stop_reason: str | None = None  # one of STOP_REASONS
    outcome: str | None = None  # free-form, e.g. "merged", "closed", set later by `ci-guard ledger outcome`
    agent_exit_code: int | None = None
    session_id: str | None = None  # e.g. Claude Code's X-Claude-Code-Session-Id
    enforced: bool = True  # False for usage imported from a vendor export
    run_url: str | None = None  # the CI job's page (RunContext.run_url)
    # running totals, kept in step with the calls
    turns: int = 0
    tool_calls: int = 0
    cost_usd: Decimal = Decimal(0)
    usage: Usage = field(default_factory=Usage)
    web_searches: int = 0  # billed server-side web searches (their fee is in cost_usd)
    context_saved_usd: Decimal = Decimal(0)  # what the context policy saved (not spent, not in cost_usd)
    tests_fixed: int | None = None  # failing tests a test-repair run fixed (`ci-guard outcome --tests-fixed`)
    # what the decision saw (ci_guard.policy.inputs); None for runs recorded before schema version 9
    inputs: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _clean_strings(self)


@dataclass
class CallRecord:
    run_id: str
    seq: int  # 1-based order of the call within the run
    started_at: datetime
    ended_at: datetime
    provider: str  # anthropic | openai
    endpoint: str  # messages | count_tokens | chat.completions | responses
    model_requested: str | None
    model_served: str | None
    usage: Usage
    cost_usd: Decimal
    status: str = "ok"  # one of CALL_STATUSES
    http_status: int | None = None
    stream: bool = False
    tool_calls: int = 0
    context_tokens: int = 0  # input size the model saw (fresh + cache)
    latency_ms: float = 0.0
    fingerprint: str | None = None  # request fingerprint for retry-storm detection
    error: str | None = None  # short, redacted
    session_id: str | None = None
    is_turn: bool = True  # generation call (count_tokens and refused calls are not turns)
    web_searches: int = 0  # billed server-side web searches (their fee is in cost_usd)
    service_tier: str | None = None  # the tier that served the call (OpenAI priority is priced higher)
    # where the call ran, as priced (Anthropic usage.inference_geo, the OpenAI data-residency region)
    inference_geo: str | None = None
    # usage (and so cost) estimated by ci-guard: the provider reported none, or the stream was cut
    estimated: bool = False
    # what the context policy changed in the call and what it saved (see meter/transforms/savings.py)
    context: dict[str, Any] | None = None
    context_saved_usd: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        _clean_strings(self)
