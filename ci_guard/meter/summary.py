"""The run summary: what `run --summary FILE` writes, comments render and the Action outputs."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ci_guard.money import UsdJson

if TYPE_CHECKING:
    from ci_guard.ledger.records import CallRecord

SUMMARY_VERSION = 1


class CallSummary(BaseModel):
    model_config = ConfigDict(extra="ignore")

    seq: int
    provider: str
    endpoint: str
    model: str | None  # served model (requested when the provider did not say)
    model_requested: str | None = None
    status: str  # ok | error | refused | cut
    http_status: int | None = None
    stream: bool = False
    # input, cache_write (of which cache_write_1h), cache_read, output, reasoning
    tokens: dict[str, int] = Field(default_factory=dict)
    tool_calls: int = 0
    web_searches: int = 0  # billed server-side web searches; their fee is in cost_usd
    service_tier: str | None = None  # the tier that served the call (priced accordingly)
    inference_geo: str | None = None  # where it ran, as priced (Anthropic "us", an OpenAI region)
    estimated: bool = False  # the provider reported no usage: tokens and cost are ci-guard's estimate
    cost_usd: UsdJson = Decimal(0)
    latency_ms: float = 0.0
    error: str | None = None
    started_at: str | None = None
    # what the context policy changed (breakpoints, pruned/cleared tokens, route, thinking clamp) and
    # saved_usd / cost_as_sent_usd / method; absent when it changed nothing
    context: dict[str, Any] | None = None


class RunSummary(BaseModel):
    """Stable JSON (money as decimal strings). ``decision`` is ``check --format json``'s object."""

    model_config = ConfigDict(extra="ignore")

    version: int = SUMMARY_VERSION
    run_id: str
    decision: dict[str, Any]
    status: str  # completed | stopped | failed | cancelled | no_calls | denied | skipped | error (meter/status.py)
    # stopped: the cap (max_turns | max_cost | max_runtime | max_context | max_tool_calls | retry_storm);
    # failed: upstream_auth | upstream_unreachable | agent_exit; cancelled: the signal (SIGTERM | SIGINT)
    stop_reason: str | None = None
    stop_detail: str | None = None  # one human sentence on why the run ended as it did
    agent_exit_code: int | None = None
    turns: int = 0
    tool_calls: int = 0
    tokens: dict[str, int] = Field(
        default_factory=lambda: {"input": 0, "cache_write": 0, "cache_write_1h": 0, "cache_read": 0, "output": 0,
                                 "reasoning": 0}
    )
    web_searches: int = 0
    cost_usd: UsdJson = Decimal(0)
    estimated_calls: int = 0  # calls priced from an estimate (no usage reported); their cost is in cost_usd
    runtime_s: float = 0.0
    started_at: str | None = None
    ended_at: str | None = None
    session_id: str | None = None
    enforced: bool = True
    # totals of the context policy's changes: saved_usd, share of the run, calls changed, tokens removed
    context_savings: dict[str, Any] | None = None
    calls: list[CallSummary] = Field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def call_summary(c: CallRecord) -> CallSummary:
    """The summary of one call, from its ledger row."""
    return CallSummary(
        seq=c.seq, provider=c.provider, endpoint=c.endpoint, model=c.model_served or c.model_requested,
        model_requested=c.model_requested, status=c.status, http_status=c.http_status, stream=c.stream,
        tokens=c.usage.as_json(), tool_calls=c.tool_calls, web_searches=c.web_searches, cost_usd=c.cost_usd,
        latency_ms=round(c.latency_ms, 2), service_tier=c.service_tier, inference_geo=c.inference_geo,
        estimated=c.estimated,
        error=c.error, started_at=c.started_at.isoformat() if c.started_at else None, context=c.context,
    )


def context_savings(calls: list[CallRecord], cost_usd: Decimal) -> dict[str, Any] | None:
    """Per-run totals of what the context policy changed and saved; None when it changed nothing.

    ``saved_usd`` sums the calls' savings (negative when first cache writes outweighed reads so far);
    ``share_pct`` is the saving out of what the run would have cost without the policy.
    """
    # a call whose only note is that the agent managed its own cache was not changed
    changed = [c for c in calls if c.context and set(c.context) - {"agent_caches"}]
    if not changed:
        return None
    saved = sum((c.context_saved_usd for c in changed), Decimal(0))
    totals: dict[str, int] = {}
    for c in changed:
        for key in ("breakpoints_added", "pruned_results", "pruned_tokens", "cleared_results", "cleared_tokens",
                    "cleared_thinking_turns"):
            totals[key] = totals.get(key, 0) + int((c.context or {}).get(key, 0))
    routed = sum(1 for c in changed if (c.context or {}).get("route"))
    methods = {str((c.context or {}).get("method")) for c in changed if (c.context or {}).get("method")}
    would_have = cost_usd + saved
    share = (saved * 100 / would_have).quantize(Decimal("0.1")) if would_have > 0 else Decimal(0)
    return {"saved_usd": str(saved), "share_pct": str(share), "calls_changed": len(changed), "calls_routed": routed,
            **totals, "method": "estimate" if "estimate" in methods else ("provider-reported" if methods else None)}


def write_summary(summary: RunSummary, path: str | None) -> None:
    """Write the summary JSON atomically (a reader never sees half a file)."""
    if not path:
        return
    import json

    from ci_guard.files import write_text_atomic

    write_text_atomic(path, json.dumps(summary.to_json(), indent=2) + "\n")
