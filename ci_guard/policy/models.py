"""The policy language as pydantic models (the single source of `ci-guard schema`).

Every model forbids unknown keys so a typo (``whne:``, ``max_turn:``) is an error, not a silently
ignored line. Values that need parsing (globs, comparisons, durations) are checked here so that
the loader can report them with a line number; the engine compiles them again into matchers.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ci_guard.context.model import TRIGGERS
from ci_guard.errors import shown
from ci_guard.policy.conditions import glob_regex, parse_comparison
from ci_guard.policy.durations import parse_duration

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]*$"
SCOPES = ("org", "team", "repo", "user", "workflow", "agent")
PERIODS = ("day", "week", "month")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_default=False)


def _one_or_many(value: Any) -> Any:
    """A single string stands for a one-element list (``base_branch: main``)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and not value:
        raise ValueError("expected at least one value (an empty list never matches)")
    return value


def _check_globs(values: list[str]) -> list[str]:
    for value in values:
        glob_regex(value)
    return values


def _check_count(value: Any) -> str:
    return parse_comparison(value, kind="count").text


def _check_budget_cmp(value: Any) -> str:
    return parse_comparison(value, kind="budget").text


def _check_duration(value: Any) -> int:
    return parse_duration(value)


def _check_timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"expected an IANA time zone such as UTC or Europe/Berlin, got {shown(value)}") from exc
    return value


# The largest amount of money a policy may name: larger is a typo, and 1e999999999 overflows the
# Decimal arithmetic of budgets (issue 12 #13).
MAX_USD = Decimal(10**12)


def _check_alert(value: Any) -> str | Decimal:
    if isinstance(value, str) and value.strip().endswith("%"):
        number = value.strip()[:-1].strip()
        try:
            pct = Decimal(number)
        except ArithmeticError:
            pct = Decimal(-1)
        if not number or pct <= 0 or not pct.is_finite() or pct > 10**6:
            raise ValueError(f'expected a percentage such as "80%" or an amount in USD, got {shown(value)}')
        return f"{pct.normalize():f}%"
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise ValueError(f'expected a percentage such as "80%" or an amount in USD, got {shown(value)}')
    try:
        usd = Decimal(str(value).lstrip("$"))
    except ArithmeticError:
        raise ValueError(f'expected a percentage such as "80%" or an amount in USD, got {shown(value)}') from None
    if not usd.is_finite() or usd <= 0 or usd > MAX_USD:
        raise ValueError(f"expected a positive amount in USD (at most {MAX_USD:,}), got {shown(value)}")
    return usd


_STR_OR_LIST = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
_CMP_COUNT = {"type": "string", "pattern": r"^\s*(<=|>=|==|!=|<|>|=)\s*\d+\s*$",
              "description": 'A comparison such as "> 5000".'}
_CMP_BUDGET = {"type": "string", "pattern": r"^\s*(<=|>=|==|!=|<|>|=)\s*\$?\s*\d+(\.\d+)?\s*%?\s*$",
               "description": 'Remaining budget: "< 50" (USD) or "<= 20%" (of the limit).'}
_DURATION = {"anyOf": [{"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"},
                       {"type": "integer", "minimum": 1}],
             "description": "A duration: 90s, 15m, 1h, 1h30m, or a number of seconds."}
_TRIGGER_ENUM = {"enum": list(TRIGGERS)}

Globs = Annotated[list[str], BeforeValidator(_one_or_many), AfterValidator(_check_globs),
                  WithJsonSchema(_STR_OR_LIST)]
Names = Annotated[list[str], BeforeValidator(_one_or_many), WithJsonSchema(_STR_OR_LIST)]
Trigger = Literal["pull_request", "push", "schedule", "manual", "comment", "other"]
Triggers = Annotated[list[Trigger], BeforeValidator(_one_or_many),
                     WithJsonSchema({"anyOf": [_TRIGGER_ENUM, {"type": "array", "items": _TRIGGER_ENUM,
                                                                "minItems": 1}]})]
Platforms = Annotated[list[Literal["github", "gitlab", "local"]], BeforeValidator(_one_or_many),
                      WithJsonSchema({"anyOf": [{"enum": ["github", "gitlab", "local"]},
                                                {"type": "array", "items": {"enum": ["github", "gitlab", "local"]}}]})]
CountCmp = Annotated[str, BeforeValidator(_check_count), WithJsonSchema(_CMP_COUNT)]
BudgetCmp = Annotated[str, BeforeValidator(_check_budget_cmp), WithJsonSchema(_CMP_BUDGET)]
Duration = Annotated[int, BeforeValidator(_check_duration), WithJsonSchema(_DURATION)]
Money = Annotated[Decimal, Field(ge=0, le=MAX_USD, allow_inf_nan=False),
                  WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0},
                                            {"type": "string", "pattern": r"^\d+(\.\d+)?$"}]})]
StrictFlag = Annotated[bool, Field(strict=True)]
RuleName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
Timezone = Annotated[str, AfterValidator(_check_timezone)]
Alert = Annotated[str | Decimal, BeforeValidator(_check_alert),
                  WithJsonSchema({"anyOf": [{"type": "string", "pattern": r"^\d+(\.\d+)?%$"},
                                            {"type": "number", "exclusiveMinimum": 0}]})]


class When(_Strict):
    """Conditions of a rule: all must hold; a list value means any of its items."""

    platform: Platforms | None = Field(None, description="github, gitlab or local.")
    trigger: Triggers | None = Field(None, description="Normalised trigger of the run.")
    event: Globs | None = Field(None, description="Raw forge event (pull_request_target, merge_request_event).")
    agent: Globs | None = Field(None, description="Agent kind, e.g. pr-review.")
    repo: Globs | None = Field(None, description="owner/name (GitLab: group/sub/project).")
    org: Globs | None = Field(None, description="Owner or top-level group.")
    actor: Globs | None = Field(None, description="Login of who triggered the run.")
    team: Globs | None = Field(None, description="Team, resolved from teams: when not given.")
    base_branch: Globs | None = Field(None, description="Target branch of the PR/MR.")
    head_branch: Globs | None = Field(None, description="Source branch of the PR/MR.")
    labels: Globs | None = Field(None, description="Holds when the PR/MR has any of these labels.")
    environment: Globs | None = None
    workflow: Globs | None = None
    cohort: Globs | None = None
    draft: StrictFlag | None = None
    fork: StrictFlag | None = None
    diff_lines: CountCmp | None = Field(None, description='Lines added + deleted, e.g. "> 5000".')
    diff_files: CountCmp | None = Field(None, description='Changed files, e.g. "<= 3".')
    paths: Globs | None = Field(None, description="Holds when any changed file matches (never when unknown).")
    paths_only: Globs | None = Field(
        None, description="Holds when every changed file matches (never when unknown or empty)."
    )
    budget_remaining: dict[str, BudgetCmp] | None = Field(
        None, description='Per named budget: "< 50" (USD) or "<= 20%".'
    )
    not_: When | None = Field(None, alias="not", description="Holds when the nested conditions do not.")
    any: list[When] | None = Field(None, min_length=1, description="Holds when any nested block holds.")

    def is_empty(self) -> bool:
        return not self.model_fields_set or all(getattr(self, f) is None for f in self.model_fields_set)


class LimitsSpec(_Strict):
    """Hard limits; a key merges over `defaults.limits` (null removes that limit)."""

    max_turns: Annotated[int, Field(gt=0)] | None = None
    max_cost_usd: Money | None = None
    max_runtime: Duration | None = None
    max_context_tokens: Annotated[int, Field(gt=0)] | None = Field(None, description="Per-call input tokens.")
    max_tool_calls: Annotated[int, Field(gt=0)] | None = None
    max_identical_retries: Annotated[int, Field(ge=0)] | None = None


class PruneKeep(_Strict):
    """How much of an oversized tool result is kept: its first and last lines."""

    # bounded: a million lines is already more than any tool prints, and the cut's arithmetic stays exact
    head_lines: Annotated[int, Field(ge=0, le=1_000_000)] = 80
    tail_lines: Annotated[int, Field(ge=0, le=1_000_000)] = 200


class PruneSpec(_Strict):
    """Cut tool results above ``max_tokens`` to head and tail, with a one-line marker."""

    max_tokens: Annotated[int, Field(gt=0, le=100_000_000)] = Field(description="Tool results above this size are cut.")
    keep: PruneKeep = Field(default_factory=PruneKeep)
    exclude_tools: Names = Field(default_factory=list, description="Tools whose results are never cut.")


class ClearSpec(_Strict):
    """Replace old tool results by a placeholder once the request's input passes ``trigger_tokens``."""

    trigger_tokens: Annotated[int, Field(gt=0)] = Field(description="Input size that starts clearing.")
    keep_last: Annotated[int, Field(ge=0)] = Field(3, description="Newest tool uses that are never cleared.")
    clear_at_least: Annotated[int, Field(gt=0)] | None = Field(
        None, description="Clear nothing unless at least this many tokens go (each clearing costs a cache write).")
    exclude_tools: Names = Field(default_factory=list, description="Tools whose results are never cleared.")


class ClearThinkingSpec(_Strict):
    """Anthropic server-side clearing of thinking blocks from older assistant turns (context editing)."""

    keep_turns: Annotated[int, Field(ge=1)] = Field(
        1, description="Newest assistant turns whose thinking blocks are kept.")


class RouteWhen(_Strict):
    """Features of one call (all must hold)."""

    tools: Literal["none", "present"] | None = Field(None, description="The call declares tools or not.")
    max_output_tokens: CountCmp | None = Field(None, description='The declared output cap, e.g. "<= 512".')
    request_tokens: CountCmp | None = Field(None, description='Estimated input size, e.g. "< 2000".')
    stream: StrictFlag | None = None
    model: Globs | None = Field(None, description="The model the agent asked for.")
    agent_call: Literal["title"] | None = Field(
        None, description="An agent's own marker: title = Claude Code's session-title side call.")


class RouteRule(_Strict):
    when: RouteWhen = Field(description="The call's features; an empty block matches every call.")
    model: str = Field(description="Tier name or concrete model id the call is sent to.")
    name: RuleName | None = Field(None, description="Recorded with each routed call (default route[N]).")


class ContextSpec(_Strict):
    """Context policy: what the proxy may change in a call to make it cheaper (all opt-in)."""

    cache: Literal["auto", "off"] | None = Field(
        None, description="auto: add cache_control breakpoints to Anthropic requests that have none.")
    prune_tool_results: PruneSpec | None = None
    clear_old_tool_results: ClearSpec | None = None
    route: list[RouteRule] | None = Field(None, description="Per-call routing; the first matching entry wins.")
    max_thinking_tokens: Annotated[int, Field(ge=1024)] | None = Field(
        None, description="Larger thinking budgets are clamped (max_tokens stays above the budget).")
    clear_old_thinking: ClearThinkingSpec | None = Field(
        None, description="Anthropic: thinking blocks of older turns cleared server-side "
                          "(clear_thinking_20251015), on models with context editing and requests with thinking on.")
    max_reasoning_effort: Literal["low", "medium", "high"] | None = Field(
        None, description="OpenAI: a higher reasoning effort (reasoning.effort / reasoning_effort) is lowered to this.")


class Escalation(_Strict):
    """A label that lifts an allow rule onto another model (usually the large tier)."""

    label: Names = Field(description="Label (or any of several labels) that escalates.")
    model: str = Field(description="Tier name or concrete model id used when escalated.")
    limits: LimitsSpec | None = Field(None, description="Limits merged over the rule's when escalated.")
    reason: str | None = None


CAPS = ("max_turns", "max_cost", "max_runtime", "max_context", "max_tool_calls", "retry_storm")
# forge logins (GitHub users and apps' `name[bot]`, GitLab usernames) and GitHub teams as org/team-slug
LOGIN_PATTERN = r"^@?[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,99})(?:\[bot\])?$"
TEAM_PATTERN = r"^@?[A-Za-z0-9][A-Za-z0-9_.-]{0,99}(?:/[A-Za-z0-9][A-Za-z0-9_.-]{0,99})+$"
_WHO = {"type": "string", "pattern": f"{LOGIN_PATTERN}|{TEAM_PATTERN}"}
_LABEL = {"type": "string", "minLength": 1, "maxLength": 50, "pattern": r"^[^,\r\n\x00-\x1f]+$"}
_CAP = {"enum": list(CAPS)}


def _one_or_list(item: dict[str, Any]) -> WithJsonSchema:
    return WithJsonSchema({"anyOf": [item, {"type": "array", "items": item}]})


LoginsOrTeams = Annotated[list[Annotated[str, Field(pattern=_WHO["pattern"])]], BeforeValidator(_one_or_many),
                          _one_or_list(_WHO)]
# GitHub labels are at most 50 characters; GitLab's add_labels is comma-separated, so no commas
Labels = Annotated[list[Annotated[str, Field(min_length=1, max_length=50, pattern=_LABEL["pattern"])]],
                   BeforeValidator(_one_or_many), _one_or_list(_LABEL)]
Caps = Annotated[list[Literal[CAPS]], BeforeValidator(_one_or_many), _one_or_list(_CAP)]  # type: ignore[valid-type]


class Handoff(_Strict):
    """What happens on the PR/MR when a cap stops an agent this rule allowed (applied by `ci-guard comment`)."""

    on: Caps = Field(
        default_factory=lambda: list(CAPS), description="The caps that hand off (default: every cap).")
    label: Labels = Field(
        default_factory=list, description="Labels added to the PR/MR, e.g. needs-human.")
    request_review: LoginsOrTeams = Field(
        default_factory=list, description="Reviewers requested: logins, or org/team for a GitHub team.")
    mention: LoginsOrTeams = Field(
        default_factory=list, description="Mentioned in the cost comment: logins, org/team, or `author` (the "
                                          "PR/MR author).")

    @model_validator(mode="after")
    def _does_something(self) -> Handoff:
        if not (self.label or self.request_review or self.mention):
            raise ValueError("a handoff needs at least one of label, request_review or mention")
        return self

    def as_json(self) -> dict[str, Any]:
        return {"on": list(self.on), "label": list(self.label), "request_review": list(self.request_review),
                "mention": list(self.mention)}


class Rule(_Strict):
    name: RuleName
    description: str | None = None
    when: When | None = Field(None, description="Omit for a catch-all rule.")
    decision: Literal["allow", "deny", "skip"]
    reason: str | None = None
    hint: str | None = Field(None, description="Shown on deny/skip: what would allow the run.")
    model: str | None = Field(None, description="Tier name or concrete model id (allow rules).")
    limits: LimitsSpec | None = None
    context: ContextSpec | None = Field(None, description="Merged key by key over defaults.context.")
    escalation: Escalation | None = None
    handoff: Handoff | None = Field(None, description="When a cap stops the agent: label, request a review, "
                                                      "mention someone (docs/policy.md#handoff).")
    unknown: Literal["match", "no-match"] | None = Field(
        None, description="deny/skip rules: 'match' also decides when a condition reads a value the run does "
                          "not know (fail closed); 'no-match' (the default behaviour) lets such a run fall "
                          "through, and says so deliberately (silences the fail-open lint).")

    @field_validator("model", "limits", "context", "escalation", "handoff", "unknown")
    @classmethod
    def _allow_only(cls, value: Any, info: ValidationInfo) -> Any:
        decision = info.data.get("decision")
        if info.field_name == "unknown":
            if value is not None and decision == "allow":
                raise ValueError("only deny and skip rules take unknown: (an allow rule that matched unknown "
                                 "values would fail open)")
        elif value is not None and decision in ("deny", "skip"):
            raise ValueError(f"only allow rules choose {info.field_name} (this rule is {decision})")
        return value


EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=100)]


class Alerts(_Strict):
    """Where alerts go: webhook URLs by the names of environment variables (never the URLs here)."""

    slack_webhook_env: EnvName | None = Field(
        None, description="Environment variable holding a Slack-compatible incoming-webhook URL.")
    webhook_env: EnvName | None = Field(
        None, description="Environment variable holding a URL that receives each alert as JSON.")
    annotation: bool = Field(True, description="Also show each alert as a CI annotation / log warning.")
    on: list[Literal["budget_threshold", "budget_exhausted", "cap", "retry_storm"]] = Field(
        default_factory=lambda: ["budget_threshold", "budget_exhausted", "cap", "retry_storm"],
        description="Which events alert; each is sent once (per threshold and period, or per run).")


class Team(_Strict):
    members: list[str] = Field(default_factory=list, description="Forge logins (case-insensitive).")
    repos: Globs = Field(default_factory=list, description="Repositories owned by the team (globs).")


class Budget(_Strict):
    """A spending limit for one scope key in one calendar period (read by the ledger)."""

    name: RuleName
    scope: Literal["org", "team", "repo", "user", "workflow", "agent"]
    period: Literal["day", "week", "month"]
    limit_usd: Annotated[Decimal, Field(gt=0, le=MAX_USD, allow_inf_nan=False),
                         WithJsonSchema({"anyOf": [{"type": "number", "exclusiveMinimum": 0},
                                                   {"type": "string", "pattern": r"^\d+(\.\d+)?$"}]})]
    alert_at: list[Alert] = Field(default_factory=list, description='"80%" of the limit or an amount in USD.')
    timezone: Timezone = Field("UTC", description="Where the calendar period starts (weeks start Monday).")

    def alert_thresholds_usd(self) -> list[Decimal]:
        """The alert thresholds in USD, ascending."""
        out = []
        for a in self.alert_at:
            if isinstance(a, str):
                out.append((self.limit_usd * Decimal(a[:-1]) / 100).quantize(Decimal("0.000001")))
            else:
                out.append(a)
        return sorted(out)


class Defaults(_Strict):
    model: str | None = Field(None, description="Tier name or concrete model id of allow rules.")
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    context: ContextSpec = Field(default_factory=ContextSpec)


class PriceTierOverride(_Strict):
    """Rates that apply to every token of a call whose input is above a threshold (long context)."""

    above_input_tokens: Annotated[int, Field(gt=0)]
    input: Money | None = None
    output: Money | None = None
    cache_write: Money | None = None
    cache_write_5m: Money | None = None
    cache_write_1h: Money | None = None
    cache_read: Money | None = None


class PriorityOverride(_Strict):
    """OpenAI Priority processing rates of a model, and of its long-context tiers."""

    input: Money
    output: Money
    cache_write: Money | None = None
    cache_write_5m: Money | None = None
    cache_write_1h: Money | None = None
    cache_read: Money | None = None
    tiers: list[PriceTierOverride] | None = None


class PriceOverride(_Strict):
    """USD per million tokens; read by the pricing engine (see docs/pricing.md)."""

    same_as: str | None = Field(None, description="Start from this catalog model's prices (a custom name).")
    provider: str | None = None
    input: Money | None = None
    output: Money | None = None
    cache_write: Money | None = Field(None, description="Both cache-write rates at once (5-minute and 1-hour).")
    cache_write_5m: Money | None = None
    cache_write_1h: Money | None = None
    cache_read: Money | None = None
    discount_pct: Annotated[Decimal, Field(ge=0, le=100)] | None = None
    tiers: list[PriceTierOverride] | None = Field(None, description="Long-context tiers, by total input size.")
    priority: PriorityOverride | None = Field(None, description="OpenAI Priority (fast) processing rates.")
    inference_geo: dict[str, Annotated[Decimal, Field(ge=0, le=100, allow_inf_nan=False)]] | None = Field(
        None, description="Multiplier on every rate by where the call ran, e.g. {us: 1.1}.")
    service_tiers: dict[str, Annotated[Decimal, Field(ge=0, le=100, allow_inf_nan=False)]] | None = Field(
        None, description="Multiplier on every rate by service tier, e.g. {fast: 2} (Anthropic fast mode), "
                          "{flex: 0.5}.")
    note: str | None = None


class PricingConfig(_Strict):
    on_unknown_model: Literal["deny", "warn", "error"] = "deny"
    fallback_model: str | None = Field(None, description="Priced as this model when one is unknown.")
    files: list[str] = Field(default_factory=list, description="LiteLLM-format price JSON, relative to the policy.")
    overrides: dict[str, PriceOverride] = Field(default_factory=dict)


class EnforcementConfig(_Strict):
    model_enforcement: Literal["rewrite", "reject"] = "rewrite"
    on_cost_cap: Literal["clamp", "refuse"] = "clamp"
    allow_unmetered_posts: list[str] = Field(default_factory=list)
    allowed_models: list[str] = Field(default_factory=list, description="Tier names or model ids.")
    on_ledger_error: Literal["deny", "allow"] = "deny"
    on_budget_exceeded: Literal["deny", "clamp"] = "deny"
    reservation_ttl: Duration = 7200
    strict: StrictFlag = Field(False, description=(
        "Refuse calls whose cost ci-guard cannot bound from the request: images or documents by URL "
        "or file id, hosted tools with fees it does not meter (image generation, code interpreter, "
        "file search, code execution, ...). Off: such media count at their documented maximum."))


class Policy(_Strict):
    """A whole policy file."""

    version: Literal[1]
    description: str | None = None
    timezone: Timezone | None = Field(None, description="Default time zone of budget periods.")
    models: dict[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")], str] = Field(
        default_factory=dict, description="Tier name -> concrete model id."
    )
    teams: dict[str, Team] = Field(default_factory=dict)
    budgets: list[Budget] = Field(default_factory=list)
    alerts: Alerts | None = Field(None, description="Send budget, cap and retry-storm alerts (docs/finops.md).")
    defaults: Defaults = Field(default_factory=Defaults)
    rules: list[Rule] = Field(min_length=1, description="Ordered; the first rule whose when holds decides.")
    pricing: PricingConfig = Field(default_factory=PricingConfig)
    enforcement: EnforcementConfig = Field(default_factory=EnforcementConfig)
    comment_template: str | None = Field(None, description="Jinja2 template, relative to the policy file.")

    _source: Path | None = PrivateAttr(None)
    _compiled: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def _default_timezone(self) -> Policy:
        if self.timezone:
            for budget in self.budgets:
                if "timezone" not in budget.model_fields_set:
                    budget.timezone = self.timezone
        return self

    @property
    def source(self) -> Path | None:
        """The file this policy was loaded from, if any."""
        return self._source

    def resolve_path(self, relative: str) -> Path:
        """A path named in the policy (price files, comment template), relative to the policy file."""
        path = Path(relative)
        if path.is_absolute() or self._source is None:
            return path
        return self._source.parent / path

    def resolve_model(self, name: str | None) -> tuple[str | None, str | None]:
        """(concrete model id, tier name or None) for a tier name or a concrete id."""
        if name is None:
            return None, None
        if name in self.models:
            return self.models[name], name
        return name, None

    def budget(self, name: str) -> Budget | None:
        return next((b for b in self.budgets if b.name == name), None)


When.model_rebuild()
