"""The outcome of a policy decision: allow/deny/skip, the model and the hard limits."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ci_guard.context.model import RunContext
from ci_guard.money import usd_json
from ci_guard.policy.models import ClearSpec, ClearThinkingSpec, PruneSpec, RouteWhen

DecisionKind = Literal["allow", "deny", "skip"]


class Limits(BaseModel):
    """Hard limits of one run. ``None`` means no limit of that kind."""

    model_config = ConfigDict(extra="forbid")

    max_turns: int | None = None
    max_cost_usd: Decimal | None = None
    max_runtime_s: int | None = None
    max_context_tokens: int | None = None
    max_tool_calls: int | None = None
    max_identical_retries: int | None = None


class Route(BaseModel):
    """One resolved ``context.route`` entry: calls whose features match go to ``model``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    when: RouteWhen
    model: str  # concrete model id
    tier: str | None = None


class ContextPolicy(BaseModel):
    """The resolved ``context:`` block of the deciding rule (over ``defaults.context``).

    Everything defaults to off: a run whose policy names no context block has its calls
    forwarded exactly as the agent sent them.
    """

    model_config = ConfigDict(extra="forbid")

    cache: Literal["auto", "off"] = "off"
    prune_tool_results: PruneSpec | None = None
    clear_old_tool_results: ClearSpec | None = None
    route: list[Route] = Field(default_factory=list)
    max_thinking_tokens: int | None = None
    clear_old_thinking: ClearThinkingSpec | None = None
    max_reasoning_effort: Literal["low", "medium", "high"] | None = None

    @property
    def active(self) -> bool:
        return bool(self.cache == "auto" or self.prune_tool_results or self.clear_old_tool_results
                    or self.route or self.max_thinking_tokens or self.clear_old_thinking
                    or self.max_reasoning_effort)

    def as_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        for route in data["route"]:
            route["when"] = {k: v for k, v in route["when"].items() if v is not None}
        return data

    def describe(self) -> str:
        """One line for terminals and summaries ("off" when nothing is configured)."""
        parts = []
        if self.cache == "auto":
            parts.append("cache=auto")
        if self.prune_tool_results:
            p = self.prune_tool_results
            parts.append(f"prune tool results > {p.max_tokens} tokens "
                         f"(keep {p.keep.head_lines}+{p.keep.tail_lines} lines)")
        if self.clear_old_tool_results:
            c = self.clear_old_tool_results
            parts.append(f"clear old tool results past {c.trigger_tokens} tokens (keep last {c.keep_last})")
        for r in self.route:
            when = ", ".join(f"{k}={v}" for k, v in r.when.model_dump(exclude_none=True).items()) or "every call"
            parts.append(f"route {r.name} ({when}) -> {r.tier or r.model}")
        if self.max_thinking_tokens:
            parts.append(f"max_thinking_tokens={self.max_thinking_tokens}")
        if self.clear_old_thinking:
            parts.append(f"clear old thinking (keep last {self.clear_old_thinking.keep_turns} turns)")
        if self.max_reasoning_effort:
            parts.append(f"max_reasoning_effort={self.max_reasoning_effort}")
        return "; ".join(parts) or "off"


class BudgetStatus(BaseModel):
    """The state of one budget for the scope key this run falls into, in its current period."""

    model_config = ConfigDict(extra="forbid")

    name: str
    scope: str
    scope_key: str | None
    period: str
    period_start: datetime | None = None
    period_end: datetime | None = None
    limit_usd: Decimal
    spent_usd: Decimal = Decimal(0)
    reserved_usd: Decimal = Decimal(0)
    alert_at_usd: list[Decimal] = Field(default_factory=list)  # the budget's alert thresholds, ascending

    @property
    def remaining_usd(self) -> Decimal:
        return max(Decimal(0), self.limit_usd - self.spent_usd - self.reserved_usd)

    @property
    def alert_crossed_usd(self) -> Decimal | None:
        """The highest alert threshold that what was spent has reached, if any."""
        crossed = [a for a in self.alert_at_usd if self.spent_usd >= a]
        return crossed[-1] if crossed else None

    def alert_message(self) -> str | None:
        crossed = self.alert_crossed_usd
        if crossed is None:
            return None
        key = f" {self.scope}={self.scope_key}" if self.scope_key else ""
        pct = (self.spent_usd * 100 / self.limit_usd).quantize(Decimal("1")) if self.limit_usd > 0 else Decimal(0)
        at = (crossed * 100 / self.limit_usd).quantize(Decimal("1")) if self.limit_usd > 0 else Decimal(0)
        return (f"budget {self.name!r}{key} has spent ${self.spent_usd} of ${self.limit_usd} this {self.period} "
                f"({pct}%), past its {at}% alert")

    @property
    def remaining_pct(self) -> Decimal:
        if self.limit_usd <= 0:
            return Decimal(0)
        return (self.remaining_usd * 100 / self.limit_usd).quantize(Decimal("0.01"))

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "scope_key": self.scope_key,
            "period": self.period,
            "period_start": self.period_start.isoformat() if self.period_start else None,
            "period_end": self.period_end.isoformat() if self.period_end else None,
            "limit_usd": usd_json(self.limit_usd),
            "spent_usd": usd_json(self.spent_usd),
            "reserved_usd": usd_json(self.reserved_usd),
            "remaining_usd": usd_json(self.remaining_usd),
            "remaining_pct": str(self.remaining_pct),
            "alert_at_usd": [usd_json(a) for a in self.alert_at_usd],
            "alert_crossed_usd": usd_json(self.alert_crossed_usd),
        }


class Enforcement(BaseModel):
    """How the proxy enforces the decision (from the policy's `enforcement:` section)."""

    model_config = ConfigDict(extra="forbid")

    model_enforcement: Literal["rewrite", "reject"] = "rewrite"
    # what to do when a call's worst case would pass max_cost_usd: lower max_tokens, or refuse it
    on_cost_cap: Literal["clamp", "refuse"] = "clamp"
    # extra POST paths the proxy may forward unmetered, e.g. "/openai/v1/embeddings"
    allow_unmetered_posts: list[str] = Field(default_factory=list)
    # models that may be used besides the decided one (e.g. a small model for side calls)
    allowed_models: list[str] = Field(default_factory=list)
    on_unknown_model: Literal["deny", "warn", "error"] = "deny"
    fallback_model: str | None = None
    on_ledger_error: Literal["deny", "allow"] = "deny"
    on_budget_exceeded: Literal["deny", "clamp"] = "deny"
    reservation_ttl_s: int = 7200
    # refuse calls whose cost cannot be bounded up front (media by URL/file id, unmetered hosted tools)
    strict: bool = False


class Decision(BaseModel):
    """What ``ci-guard check`` prints and ``ci-guard run`` enforces."""

    model_config = ConfigDict(extra="forbid")

    decision: DecisionKind
    rule: str | None = None
    reason: str | None = None
    model: str | None = None  # concrete model id
    model_tier: str | None = None  # the tier name when the model came from a tier
    limits: Limits = Field(default_factory=Limits)
    context_policy: ContextPolicy = Field(default_factory=ContextPolicy)
    budgets: list[BudgetStatus] = Field(default_factory=list)
    enforcement: Enforcement = Field(default_factory=Enforcement)
    context: RunContext = Field(default_factory=RunContext)
    notes: list[str] = Field(default_factory=list)  # e.g. "changed paths unknown: paths_only not evaluated"
    hint: str | None = None  # what would allow a denied run (e.g. "add the label ai:escalate")
    # the deciding rule's `handoff:` (Handoff.as_json()): what `ci-guard comment` does when a cap stops the run
    handoff: dict[str, Any] | None = None

    @property
    def alerts(self) -> list[str]:
        """One message per budget past one of its alert thresholds (`alert_at` in the policy)."""
        return [m for m in (b.alert_message() for b in self.budgets) if m]

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    def as_json(self) -> dict[str, Any]:
        """The stable JSON shape of `check --format json` (money as decimal strings)."""
        limits = self.limits
        return {
            "decision": self.decision,
            "rule": self.rule,
            "reason": self.reason,
            "model": self.model,
            "model_tier": self.model_tier,
            "limits": {
                "max_turns": limits.max_turns,
                "max_cost_usd": usd_json(limits.max_cost_usd),
                "max_runtime_s": limits.max_runtime_s,
                "max_context_tokens": limits.max_context_tokens,
                "max_tool_calls": limits.max_tool_calls,
                "max_identical_retries": limits.max_identical_retries,
            },
            "context_policy": self.context_policy.as_json(),
            "budgets": [b.as_json() for b in self.budgets],
            "enforcement": self.enforcement.model_dump(mode="json"),
            "notes": list(self.notes),
            "alerts": self.alerts,
            "hint": self.hint,
            "handoff": self.handoff,
            "context": self.context.model_dump(mode="json"),
        }
