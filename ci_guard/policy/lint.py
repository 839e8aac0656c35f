"""Cross-checks a schema cannot express: references between sections and rules that never decide.

:func:`reference_problems` are errors (the loader refuses the policy); :func:`lint_policy` adds
warnings that `ci-guard validate` prints but that do not stop `check`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ci_guard.policy.conditions import is_literal
from ci_guard.policy.models import Policy, When

Path = tuple[Any, ...]
# A value that looks like a tier name rather than a model id (model ids have digits, dashes or dots).
_TIER_LIKE = re.compile(r"^[a-z][a-z_]*$")


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" | "warning"
    path: Path
    message: str


def walk_when(when: When | None, path: Path) -> Iterator[tuple[Path, When]]:
    """Every `when` block, nested `not:`/`any:` included, with its path."""
    if when is None:
        return
    yield path, when
    if when.not_ is not None:
        yield from walk_when(when.not_, (*path, "not"))
    for i, sub in enumerate(when.any or []):
        yield from walk_when(sub, (*path, "any", i))


def _model_refs(policy: Policy) -> Iterator[tuple[Path, str]]:
    if policy.defaults.model:
        yield ("defaults", "model"), policy.defaults.model
    for i, rule in enumerate(policy.rules):
        if rule.model:
            yield ("rules", i, "model"), rule.model
        if rule.escalation:
            yield ("rules", i, "escalation", "model"), rule.escalation.model
    for path, spec in _context_blocks(policy):
        for j, route in enumerate(spec.route or []):
            yield (*path, "route", j, "model"), route.model
    if policy.pricing.fallback_model:
        yield ("pricing", "fallback_model"), policy.pricing.fallback_model
    for j, name in enumerate(policy.enforcement.allowed_models):
        yield ("enforcement", "allowed_models", j), name


def _context_blocks(policy: Policy) -> Iterator[tuple[Path, Any]]:
    yield ("defaults", "context"), policy.defaults.context
    for i, rule in enumerate(policy.rules):
        if rule.context is not None:
            yield ("rules", i, "context"), rule.context


def _context_warnings(policy: Policy) -> list[Finding]:
    """Context blocks that do something other than what they seem to say."""
    out = []
    for path, spec in _context_blocks(policy):
        for j, route in enumerate(spec.route or []):
            if route.when.model_dump(exclude_none=True) == {}:
                out.append(Finding("warning", (*path, "route", j, "when"),
                                   f"this route sends every call of the run to {route.model!r}, the main loop "
                                   f"included; choose the run's model with the rule's model instead"))
        clear = spec.clear_old_tool_results
        if clear is not None and clear.clear_at_least and clear.clear_at_least >= clear.trigger_tokens:
            out.append(Finding("warning", (*path, "clear_old_tool_results", "clear_at_least"),
                               "clear_at_least is not below trigger_tokens: clearing can never remove that much"))
        prune = spec.prune_tool_results
        if prune is not None and clear is not None and prune.max_tokens >= clear.trigger_tokens:
            out.append(Finding("warning", (*path, "prune_tool_results", "max_tokens"),
                               "max_tokens is not below clear_old_tool_results.trigger_tokens: a single "
                               "result can start clearing before it is ever pruned"))
    return out


def reference_problems(policy: Policy) -> list[tuple[Path, str]]:
    """Errors: duplicate names, undefined budgets, undefined tiers."""
    out: list[tuple[Path, str]] = []
    seen: dict[str, int] = {}
    for i, rule in enumerate(policy.rules):
        if rule.name in seen:
            out.append((("rules", i, "name"), f"duplicate rule name {rule.name!r} (also rules[{seen[rule.name]}])"))
        seen.setdefault(rule.name, i)
    budget_seen: dict[str, int] = {}
    for i, budget in enumerate(policy.budgets):
        if budget.name in budget_seen:
            out.append((("budgets", i, "name"),
                        f"duplicate budget name {budget.name!r} (also budgets[{budget_seen[budget.name]}])"))
        budget_seen.setdefault(budget.name, i)
    defined = ", ".join(budget_seen) or "none defined"
    for i, rule in enumerate(policy.rules):
        for path, when in walk_when(rule.when, ("rules", i, "when")):
            for name in (when.budget_remaining or {}):
                if name not in budget_seen:
                    out.append(((*path, "budget_remaining", name),
                                f"budget {name!r} is not defined in budgets: (expected one of: {defined})"))
    tiers = ", ".join(policy.models) or "none defined"
    for path, name in _model_refs(policy):
        if name not in policy.models and _TIER_LIKE.match(name):
            out.append((path, f"model {name!r} is not a tier defined in models: ({tiers}) and does not look "
                              f"like a concrete model id"))
    return out


def lint_policy(policy: Policy, strict: bool = False) -> list[Finding]:
    """Every finding: reference errors plus warnings about rules that can never decide.

    ``strict`` adds the warnings of `validate --strict`: allow rules without a cost cap.
    """
    findings = [Finding("error", p, m) for p, m in reference_problems(policy)]
    findings += _unreachable(policy)
    findings += _team_refs(policy)
    findings += _escalation_noops(policy)
    findings += _handoff_noops(policy)
    findings += fail_open(policy)
    findings += agent_model_mismatch(policy)
    findings += _context_warnings(policy)
    if strict:
        findings += _uncapped_allows(policy)
    return findings


def _uncapped_allows(policy: Policy) -> list[Finding]:
    """Allow rules whose runs have no max_cost_usd (defaults and escalation merged in)."""
    from ci_guard.policy.engine import merge_limits

    out = []
    for i, rule in enumerate(policy.rules):
        if rule.decision != "allow":
            continue
        limits = merge_limits(policy.defaults.limits, rule.limits)
        escalated = merge_limits(limits, rule.escalation.limits) if rule.escalation else limits
        if limits.max_cost_usd is not None and escalated.max_cost_usd is not None:
            continue
        where = "" if limits.max_cost_usd is None else " when escalated"
        if policy.budgets:
            effect = ("each run's cost cap is everything its budgets have left, so runs sharing a budget "
                      "cannot run side by side")
        else:
            effect = "and no budget applies: its runs' spend is not capped at all"
        out.append(Finding("warning", ("rules", i) if rule.limits is None else ("rules", i, "limits"),
                           f"allow rule {rule.name!r} has no max_cost_usd{where}; {effect} "
                           f"(set limits.max_cost_usd here or in defaults.limits)"))
    return out


def _unreachable(policy: Policy) -> list[Finding]:
    out = []
    catch_all: str | None = None
    seen_when: dict[str, str] = {}
    for i, rule in enumerate(policy.rules):
        if catch_all is not None:
            out.append(Finding("warning", ("rules", i),
                               f"rule {rule.name!r} is unreachable: rule {catch_all!r} above matches every run"))
            continue
        if rule.when is None or rule.when.is_empty():
            catch_all = rule.name
            continue
        key = rule.when.model_dump_json(exclude_none=True, by_alias=True)
        if key in seen_when:
            out.append(Finding("warning", ("rules", i, "when"),
                               f"rule {rule.name!r} never decides: rule {seen_when[key]!r} above has the same "
                               f"conditions"))
        seen_when.setdefault(key, rule.name)
    return out


def _team_refs(policy: Policy) -> list[Finding]:
    out = []
    for i, rule in enumerate(policy.rules):
        for path, when in walk_when(rule.when, ("rules", i, "when")):
            for team in when.team or []:
                if is_literal(team) and team not in policy.teams:
                    defined = ", ".join(policy.teams) or "none defined"
                    out.append(Finding("warning", (*path, "team"),
                                       f"team {team!r} is not defined in teams: ({defined}); it can only match "
                                       f"a team given explicitly (--team or --context)"))
    return out


def _escalation_noops(policy: Policy) -> list[Finding]:
    out = []
    for i, rule in enumerate(policy.rules):
        esc = rule.escalation
        if esc is None:
            continue
        normal = policy.resolve_model(rule.model or policy.defaults.model)[0]
        if policy.resolve_model(esc.model)[0] == normal and esc.limits is None:
            out.append(Finding("warning", ("rules", i, "escalation"),
                               f"escalation of rule {rule.name!r} changes nothing: same model, no limits"))
    return out


# the limit that makes each cap of `handoff.on` able to stop a run
_CAP_LIMIT = {"max_turns": "max_turns", "max_cost": "max_cost_usd", "max_runtime": "max_runtime",
              "max_context": "max_context_tokens", "max_tool_calls": "max_tool_calls",
              "retry_storm": "max_identical_retries"}


def _handoff_noops(policy: Policy) -> list[Finding]:
    """A handoff whose caps the rule never sets can never happen."""
    from ci_guard.policy.engine import merge_limits

    out = []
    for i, rule in enumerate(policy.rules):
        if rule.handoff is None:
            continue
        limits = merge_limits(policy.defaults.limits, rule.limits)
        variants = [limits, merge_limits(limits, rule.escalation.limits) if rule.escalation else limits]
        # a budget caps a run's cost at what the budget has left, so max_cost can stop it without max_cost_usd
        can_stop = {cap for cap, key in _CAP_LIMIT.items()
                    if any(getattr(v, key) is not None for v in variants)
                    or (cap == "max_cost" and policy.budgets)}
        if not can_stop & set(rule.handoff.on):
            out.append(Finding("warning", ("rules", i, "handoff"),
                               f"the handoff of rule {rule.name!r} never happens: none of its caps "
                               f"({', '.join(rule.handoff.on)}) is set for the rule's runs (limits here or in "
                               f"defaults.limits)"))
    return out


# Where a value a condition reads can be unknown, by normalised trigger, and why (docs/policy.md,
# "Unknown values"). Labels, platform, trigger, repo and org are always known in CI.
_EVERY_TRIGGER = ("pull_request", "push", "schedule", "manual", "comment", "other")
_PR_UNREAD = ("comment", "other")
UNKNOWN_ON: dict[str, tuple[tuple[str, ...], str]] = {
    "draft": (_PR_UNREAD, "the pull request of a comment-triggered run could not be read (no API token)"),
    "fork": (_PR_UNREAD, "the pull request of a comment-triggered run could not be read (no API token)"),
    "base_branch": (_PR_UNREAD, "the pull request of a comment-triggered run could not be read (no API token)"),
    "head_branch": (_PR_UNREAD, "the pull request of a comment-triggered run could not be read (no API token)"),
    "diff_lines": (_EVERY_TRIGGER, "neither git history nor a forge token gave the diff"),
    "diff_files": (_EVERY_TRIGGER, "neither git history nor a forge token gave the diff"),
    "paths": (_EVERY_TRIGGER, "neither git history nor a forge token gave the changed files"),
    "paths_only": (_EVERY_TRIGGER, "neither git history nor a forge token gave the changed files"),
    "team": (_EVERY_TRIGGER, "the actor is in no team and no teams: repos glob matches the repository"),
}
_SAFE_VALUE = {"draft": "draft: false", "fork": "fork: false"}


def _fields_read(when: When | None) -> set[str]:
    """Every field a `when` block reads, nested `not:`/`any:` included (budget scopes as budget:NAME)."""
    out: set[str] = set()
    for _, block in walk_when(when, ()):
        for name in block.model_fields_set:
            if name in ("not_", "any") or getattr(block, name) is None:
                continue
            if name == "budget_remaining":
                out |= {f"budget:{b}" for b in block.budget_remaining or {}}
            else:
                out.add(name)
    return out


def _top_level_fields(when: When | None) -> set[str]:
    if when is None:
        return set()
    out = {n for n in when.model_fields_set if n not in ("not_", "any") and getattr(when, n) is not None}
    if "budget_remaining" in out:
        out.discard("budget_remaining")
        out |= {f"budget:{b}" for b in when.budget_remaining or {}}
    return out


def _triggers(when: When | None) -> tuple[str, ...]:
    """The triggers a rule can apply to, from its top-level `trigger:` (every trigger without one)."""
    if when is None:
        return _EVERY_TRIGGER
    triggers = [t for t in _EVERY_TRIGGER if not when.trigger or t in when.trigger]
    excluded = when.not_
    if excluded is not None and excluded.trigger and excluded.model_fields_set <= {"trigger"}:
        triggers = [t for t in triggers if t not in excluded.trigger]
    return tuple(triggers)


def _unknowable(policy: Policy, field: str) -> tuple[tuple[str, ...], str] | None:
    if field.startswith("budget:"):
        budget = next((b for b in policy.budgets if b.name == field[7:]), None)
        if budget is None or budget.scope not in ("team", "user"):
            return None
        what = "the actor is in no team" if budget.scope == "team" else "the run has no actor"
        return _EVERY_TRIGGER, f"{what}, so budget {budget.name!r} has no status for the run"
    return UNKNOWN_ON.get(field)


def fail_open(policy: Policy) -> list[Finding]:
    """Deny/skip rules that a run falls through when a value they read is unknown.

    An unknown value never holds (docs/policy.md), so ``{fork: true} -> deny`` does not stop a
    comment-triggered run whose fork status could not be read. The run then reaches the next allow
    rule that does not itself read the value: that pair is the finding. An allow rule that reads
    the value at top level cannot match either, so it closes the hole; so does ``unknown: match``
    on the deny rule, and ``unknown: no-match`` says the fall-through is intended.
    """
    out = []
    for i, rule in enumerate(policy.rules):
        if rule.decision == "allow" or rule.unknown is not None:
            continue
        rule_triggers = set(_triggers(rule.when))
        for field in sorted(_fields_read(rule.when)):
            known = _unknowable(policy, field)
            if known is None:
                continue
            triggers = [t for t in known[0] if t in rule_triggers]
            if not triggers:
                continue
            leak = next((later for later in policy.rules[i + 1:]
                         if later.decision == "allow" and set(_triggers(later.when)) & set(triggers)
                         and field not in _top_level_fields(later.when)), None)
            if leak is None:
                continue
            shown = field.replace("budget:", "budget_remaining of ")
            fix = _SAFE_VALUE.get(field, f"a {shown.split(' of ')[0]} condition")
            out.append(Finding("warning", ("rules", i), (
                f"rule {rule.name!r} fails open on {shown}: on {'/'.join(triggers)} runs it can be unknown "
                f"({known[1]}); the rule then does not match and the run falls through to allow rule "
                f"{leak.name!r}. Fix: add {fix} to the allow rules below, or `unknown: match` on this rule "
                f"to {rule.decision} such runs too (`unknown: no-match` accepts the fall-through)")))
    return out


# Agent kinds whose name says which CLI runs them (pr-review is neutral): a Codex agent speaks only
# OpenAI's Responses API, Claude Code only Anthropic Messages, so the other family's model fails every call.
_AGENT_FAMILY = (("codex", "openai"), ("claude", "anthropic"))


def model_family(model: str | None) -> str | None:
    """anthropic / openai / gemini for a concrete model id, None when it cannot be told."""
    if not model:
        return None
    name = model.lower().rsplit("/", 1)[-1]
    if name.startswith("claude"):
        return "anthropic"
    if name.startswith(("gpt", "o1", "o3", "o4", "codex", "chatgpt")):
        return "openai"
    if name.startswith("gemini"):
        return "gemini"
    return None


def agent_model_mismatch(policy: Policy) -> list[Finding]:
    """Allow rules that decide a model the agent they apply to cannot call, and reject-mode side calls."""
    out = []
    for i, rule in enumerate(policy.rules):
        if rule.decision != "allow" or rule.when is None or not rule.when.agent:
            continue
        decided = [("model", policy.resolve_model(rule.model or policy.defaults.model)[0])]
        if rule.escalation is not None:
            decided.append(("escalation.model", policy.resolve_model(rule.escalation.model)[0]))
        for agent in rule.when.agent:
            wanted = next((fam for word, fam in _AGENT_FAMILY if word in agent.lower()), None)
            for where, model in decided:
                family = model_family(model)
                if wanted and family and family != wanted:
                    path = ("rules", i, *where.split(".")) if rule.model or where != "model" else ("rules", i)
                    out.append(Finding("warning", path, (
                        f"rule {rule.name!r} decides {model} ({family}) for agent {agent!r}, which calls "
                        f"{wanted} models only: every call of that run would fail")))
    enforcement = policy.enforcement
    if enforcement.model_enforcement == "reject":
        allowed = {policy.resolve_model(m)[0] or m for m in enforcement.allowed_models}
        for rule in policy.rules:
            model = policy.resolve_model(rule.model or policy.defaults.model)[0] if rule.decision == "allow" else None
            if model_family(model) != "anthropic" or "haiku" in (model or ""):
                continue
            if any("haiku" in m for m in allowed):
                continue
            agents = rule.when.agent if rule.when and rule.when.agent else None
            if agents and not any("claude" in a.lower() or not any(w in a.lower() for w, _ in _AGENT_FAMILY)
                                  for a in agents):
                continue
            out.append(Finding("warning", ("enforcement", "model_enforcement"), (
                f"model_enforcement: reject refuses every call for another model than the decided one, and "
                f"Claude Code makes side calls (titles, summaries) on its small model: rule {rule.name!r} "
                f"decides {model}. Add a claude-haiku model to enforcement.allowed_models or use rewrite")))
            break
    return out
