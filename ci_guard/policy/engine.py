"""The policy engine: a pure function from (policy, context, budget statuses) to a Decision.

Speed matters (the engine runs before every agent job and in bulk in `ci-guard test`), so the
policy is compiled once: top-level string/label/flag conditions go into per-field bitmask indexes
(bit *i* = rule *i*), a decision ANDs one mask per field to get the candidate rules, and only the
candidates' remaining conditions (comparisons, paths, budgets, not/any) are evaluated, lowest bit
first, which preserves "the first matching rule decides".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ci_guard.context.model import RunContext
from ci_guard.policy.compiled import (
    COUNT_FIELDS,
    FLAG_FIELDS,
    STRING_FIELDS,
    Facts,
    Flag,
    LabelsAny,
    Node,
    StringIn,
    compile_when,
    unknown_leaves,
)
from ci_guard.policy.conditions import GlobSet, compile_glob, is_literal, literal_value
from ci_guard.policy.decision import BudgetStatus, ContextPolicy, Decision, Enforcement, Limits, Route
from ci_guard.policy.models import ContextSpec, LimitsSpec, Policy, Rule

NO_RULE = "no rule matched; a policy denies by default"
MAX_HINT_LABELS = 32


@dataclass
class Outcome:
    """What an allow rule grants, resolved once at compile time."""

    model: str | None
    tier: str | None
    limits: Limits
    context: ContextPolicy = field(default_factory=ContextPolicy)


@dataclass
class CompiledRule:
    index: int
    rule: Rule
    nodes: list[Node]  # every top-level condition (for explain and hints)
    residual: list[Node]  # the ones the bitmask indexes do not cover
    granted: Outcome | None = None
    escalated: Outcome | None = None
    escalation_labels: frozenset[str] = frozenset()
    unknown_match: bool = False  # `unknown: match`: an unknown condition counts as holding (fail closed)


@dataclass
class FieldIndex:
    wild: int = 0  # rules with no condition on this field
    unknown_ok: int = 0  # rules with `unknown: match` that read this field: candidates when it is unknown
    literals: dict[Any, int] = field(default_factory=dict)
    globs: list[tuple[Any, int]] = field(default_factory=list)  # (compiled regex, mask)

    def mask(self, value: Any) -> int:
        if value is None:
            return self.wild | self.unknown_ok
        out = self.wild | self.literals.get(value, 0)
        for regex, bits in self.globs:
            if regex.fullmatch(value):
                out |= bits
        return out

    def mask_any(self, values: Sequence[str]) -> int:
        out = self.wild
        for value in values:
            out |= self.literals.get(value, 0)
            for regex, bits in self.globs:
                if regex.fullmatch(value):
                    out |= bits
        return out


@dataclass
class CompiledPolicy:
    policy: Policy
    rules: list[CompiledRule]
    indexes: dict[str, FieldIndex]
    all_mask: int
    refs: dict[str, int]  # field -> mask of rules that read it anywhere (for notes)
    enforcement: Enforcement
    team_members: dict[str, str]
    team_repos: list[tuple[str, GlobSet]]
    hint_labels: tuple[str, ...]
    label_refs: dict[str, int]  # literal label -> mask of rules that mention it anywhere
    budget_refs: frozenset[str]  # budgets named in budget_remaining conditions


# compile ---------------------------------------------------------------------------------------

def compiled(policy: Policy) -> CompiledPolicy:
    """The compiled form of a policy (cached on the policy object)."""
    if policy._compiled is None:
        policy._compiled = compile_policy(policy)
    return policy._compiled


def compile_policy(policy: Policy) -> CompiledPolicy:
    rules = [_compile_rule(policy, i, rule) for i, rule in enumerate(policy.rules)]
    indexes = _build_indexes(rules)
    refs: dict[str, int] = {}
    for cr in rules:
        for node in cr.nodes:
            for key in node.fields():
                refs[key] = refs.get(key, 0) | (1 << cr.index)
    members: dict[str, str] = {}
    for name, team in policy.teams.items():
        for login in team.members:
            members.setdefault(login.casefold(), name)
    return CompiledPolicy(
        policy=policy, rules=rules, indexes=indexes, all_mask=(1 << len(rules)) - 1, refs=refs,
        enforcement=build_enforcement(policy), team_members=members,
        team_repos=[(name, GlobSet(tuple(t.repos))) for name, t in policy.teams.items() if t.repos],
        hint_labels=_hint_labels(policy), label_refs=_label_refs(policy),
        budget_refs=frozenset(n.budget for r in rules for n in _leaves(r.nodes)  # type: ignore[attr-defined]
                              if n.key == "budget_remaining"),
    )


def _compile_rule(policy: Policy, index: int, rule: Rule) -> CompiledRule:
    nodes = compile_when(rule.when)
    residual = [n for n in nodes if not isinstance(n, StringIn | LabelsAny | Flag)]
    cr = CompiledRule(index=index, rule=rule, nodes=nodes, residual=residual,
                      unknown_match=rule.unknown == "match")
    if rule.decision == "allow":
        base = merge_limits(policy.defaults.limits, rule.limits)
        model, tier = policy.resolve_model(rule.model or policy.defaults.model)
        context = resolve_context(policy, merge_context(policy.defaults.context, rule.context))
        cr.granted = Outcome(model, tier, to_limits(base), context)
        if rule.escalation is not None:
            esc = rule.escalation
            emodel, etier = policy.resolve_model(esc.model)
            cr.escalated = Outcome(emodel, etier, to_limits(merge_limits(base, esc.limits)), context)
            cr.escalation_labels = frozenset(esc.label)
    return cr


def merge_limits(base: LimitsSpec, over: LimitsSpec | None) -> LimitsSpec:
    """Keys set in ``over`` (even to null) replace those of ``base``."""
    if over is None:
        return base
    data = {k: getattr(base, k) for k in base.model_fields_set}
    data.update({k: getattr(over, k) for k in over.model_fields_set})
    return LimitsSpec.model_validate(data) if data else LimitsSpec()


def merge_context(base: ContextSpec, over: ContextSpec | None) -> ContextSpec:
    """Like :func:`merge_limits`: a key set in the rule's block (even to null) replaces the default's."""
    if over is None:
        return base
    data = {k: getattr(base, k) for k in base.model_fields_set}
    data.update({k: getattr(over, k) for k in over.model_fields_set})
    return ContextSpec.model_construct(_fields_set=set(data), **data)


def resolve_context(policy: Policy, spec: ContextSpec) -> ContextPolicy:
    """The context policy a run gets: tier names of routes resolved to model ids."""
    routes = []
    for i, entry in enumerate(spec.route or []):
        model, tier = policy.resolve_model(entry.model)
        routes.append(Route(name=entry.name or f"route[{i}]", when=entry.when, model=model or entry.model,
                            tier=tier))
    return ContextPolicy(cache=spec.cache or "off", prune_tool_results=spec.prune_tool_results,
                         clear_old_tool_results=spec.clear_old_tool_results, route=routes,
                         max_thinking_tokens=spec.max_thinking_tokens, clear_old_thinking=spec.clear_old_thinking,
                         max_reasoning_effort=spec.max_reasoning_effort)


def to_limits(spec: LimitsSpec) -> Limits:
    return Limits(max_turns=spec.max_turns, max_cost_usd=spec.max_cost_usd, max_runtime_s=spec.max_runtime,
                  max_context_tokens=spec.max_context_tokens, max_tool_calls=spec.max_tool_calls,
                  max_identical_retries=spec.max_identical_retries)


def build_enforcement(policy: Policy) -> Enforcement:
    e = policy.enforcement
    allowed = [policy.resolve_model(name)[0] or name for name in e.allowed_models]
    return Enforcement(
        model_enforcement=e.model_enforcement, on_cost_cap=e.on_cost_cap,
        allow_unmetered_posts=list(e.allow_unmetered_posts), allowed_models=allowed,
        on_unknown_model=policy.pricing.on_unknown_model,
        fallback_model=policy.resolve_model(policy.pricing.fallback_model)[0],
        on_ledger_error=e.on_ledger_error, on_budget_exceeded=e.on_budget_exceeded,
        reservation_ttl_s=e.reservation_ttl, strict=e.strict,
    )


def _build_indexes(rules: list[CompiledRule]) -> dict[str, FieldIndex]:
    indexed = [*STRING_FIELDS, "labels", *FLAG_FIELDS]
    indexes: dict[str, FieldIndex] = {}
    for key in indexed:
        users = [cr for cr in rules if any(n.key == key for n in cr.nodes)]
        if not users:
            continue
        index = FieldIndex()
        patterns: dict[str, int] = {}
        for cr in rules:
            bit = 1 << cr.index
            node = next((n for n in cr.nodes if n.key == key), None)
            if node is None:
                index.wild |= bit
                continue
            if cr.unknown_match:
                index.unknown_ok |= bit
            if isinstance(node, Flag):
                index.literals[node.expected] = index.literals.get(node.expected, 0) | bit
            else:
                for pattern in node.globs.patterns:  # type: ignore[attr-defined]
                    if is_literal(pattern):
                        lit = literal_value(pattern)
                        index.literals[lit] = index.literals.get(lit, 0) | bit
                    else:
                        patterns[pattern] = patterns.get(pattern, 0) | bit
        index.globs = [(compile_glob(p), bits) for p, bits in patterns.items()]
        indexes[key] = index
    return indexes


def _leaves(nodes: Sequence[Node]) -> list[Node]:
    out: list[Node] = []
    for node in nodes:
        children = getattr(node, "children", None)
        child = getattr(node, "child", None)
        if children is not None:
            out += _leaves(children)
        elif child is not None:
            out += _leaves([child])
        else:
            out.append(node)
    return out


def _label_refs(policy: Policy) -> dict[str, int]:
    from ci_guard.policy.lint import walk_when

    refs: dict[str, int] = {}
    for i, rule in enumerate(policy.rules):
        for _, when in walk_when(rule.when, ("rules", i)):
            for label in when.labels or []:
                refs[label] = refs.get(label, 0) | (1 << i)
    return refs


def _hint_labels(policy: Policy) -> tuple[str, ...]:
    from ci_guard.policy.lint import walk_when

    labels: list[str] = []
    for i, rule in enumerate(policy.rules):
        for _, when in walk_when(rule.when, ("rules", i)):
            labels += [lab for lab in when.labels or [] if is_literal(lab)]
    return tuple(dict.fromkeys(labels))[:MAX_HINT_LABELS]


# decide ----------------------------------------------------------------------------------------

def resolve_team(policy: Policy, ctx: RunContext) -> RunContext:
    """Fill ``ctx.team`` from `teams:` (members first, then repository globs) when it is unknown."""
    if ctx.team is not None or not policy.teams:
        return ctx
    cp = compiled(policy)
    team = cp.team_members.get(ctx.actor.casefold()) if ctx.actor else None
    if team is None and ctx.repo:
        team = next((name for name, globs in cp.team_repos if globs.match(ctx.repo)), None)
    return ctx if team is None else ctx.model_copy(update={"team": team})


# Triggers that never involve a pull/merge request: there is no draft and no fork to be unknown.
NO_PR_TRIGGERS = ("push", "schedule", "manual")


def settle_no_pr(ctx: RunContext) -> RunContext:
    """On a push, schedule or manual run without a PR, ``draft`` and ``fork`` are false, not unknown.

    Unknown would make every ``draft:``/``fork:`` rule a "could not match" note on every branch
    run, and a deny rule on them would be reported as failing open when there is nothing to deny.
    """
    if ctx.pr is not None or ctx.trigger not in NO_PR_TRIGGERS or (ctx.draft is not None and ctx.fork is not None):
        return ctx
    return ctx.model_copy(update={"draft": False if ctx.draft is None else ctx.draft,
                                  "fork": False if ctx.fork is None else ctx.fork})


def first_match(cp: CompiledPolicy, facts: Facts) -> tuple[CompiledRule | None, int]:
    """The deciding rule (or None) and the candidate mask it was picked from."""
    ctx = facts.ctx
    candidates = cp.all_mask
    for key, index in cp.indexes.items():
        if key == "labels":
            candidates &= index.mask_any(ctx.labels)
        else:
            candidates &= index.mask(facts.value(key))
        if not candidates:
            return None, 0
    initial = candidates
    rules = cp.rules
    while candidates:
        low = candidates & -candidates
        cr = rules[low.bit_length() - 1]
        for node in cr.residual:
            result = node.eval(facts)
            if result is not True and (result is False or not cr.unknown_match):
                break
        else:
            return cr, initial
        candidates ^= low
    return None, initial


def decide(policy: Policy, ctx: RunContext, budgets: Sequence[BudgetStatus], now: datetime | None = None
           ) -> Decision:
    """Decide one run. Pure: the same inputs always give the same Decision."""
    cp = compiled(policy)
    ctx = settle_no_pr(resolve_team(policy, ctx))
    budgets = _with_alerts(policy, budgets)
    facts = Facts(ctx, {b.name: b for b in budgets})
    cr, _ = first_match(cp, facts)
    notes = _notes(cp, facts, cr)
    if cr is not None and cr.unknown_match:
        notes += _decided_on_unknown(cr, facts)
    if cr is None:
        return Decision(decision="deny", rule=None, reason=NO_RULE, budgets=list(budgets),
                        enforcement=cp.enforcement, context=ctx, notes=notes, hint=_hint(cp, facts, None))
    rule = cr.rule
    if rule.decision != "allow":
        hint = rule.hint or _hint(cp, facts, cr.index)
        return Decision(decision=rule.decision, rule=rule.name, reason=rule.reason or _default_reason(rule),
                        budgets=list(budgets), enforcement=cp.enforcement, context=ctx, notes=notes, hint=hint)
    granted, hint, reason = cr.granted, rule.hint, rule.reason or _default_reason(rule)
    if cr.escalated is not None:
        label = next((lab for lab in ctx.labels if lab in cr.escalation_labels), None)
        if label is not None:
            granted = cr.escalated
            notes.append(f"escalated by label {label!r}")
            reason = rule.escalation.reason or f"{reason} (escalated by label {label!r})"  # type: ignore[union-attr]
        else:
            hint = hint or _escalation_hint(cr)
    assert granted is not None
    empty = next((b for b in budgets if b.scope_key is not None and b.remaining_usd <= 0), None)
    if empty is not None:
        # Budgets always bind: a run that would charge a budget with nothing left cannot start.
        return Decision(decision="deny", rule=f"budget:{empty.name}[{empty.scope_key}]",
                        reason=(f"budget {empty.name}[{empty.scope_key}] has nothing left: limit "
                                f"${empty.limit_usd}, spent ${empty.spent_usd}, reserved by running jobs "
                                f"${empty.reserved_usd}"),
                        budgets=list(budgets), enforcement=cp.enforcement, context=ctx, notes=notes,
                        hint=f"wait for the budget's next {empty.period}, or raise its limit_usd")
    return Decision(decision="allow", rule=rule.name, reason=reason, model=granted.model,
                    model_tier=granted.tier, limits=granted.limits.model_copy(), context_policy=granted.context,
                    budgets=list(budgets), enforcement=cp.enforcement, context=ctx, notes=notes, hint=hint,
                    handoff=rule.handoff.as_json() if rule.handoff else None)


def _with_alerts(policy: Policy, budgets: Sequence[BudgetStatus]) -> list[BudgetStatus]:
    """Attach each budget's alert thresholds (USD) so outputs can say when one was crossed."""
    thresholds = {b.name: b.alert_thresholds_usd() for b in policy.budgets if b.alert_at}
    return [b.model_copy(update={"alert_at_usd": thresholds[b.name]}) if b.name in thresholds else b
            for b in budgets]


def _default_reason(rule: Rule) -> str:
    verb = {"allow": "allows", "deny": "denies", "skip": "skips"}[rule.decision]
    return f"rule {rule.name!r} {verb} this run"


def _escalation_hint(cr: CompiledRule) -> str:
    esc = cr.escalated
    assert esc is not None
    labels = " or ".join(repr(lab) for lab in sorted(cr.escalation_labels))
    target = f"{esc.tier} ({esc.model})" if esc.tier else str(esc.model)
    return f"add the label {labels} to run on {target}"


def _hint(cp: CompiledPolicy, facts: Facts, deciding: int | None) -> str | None:
    """What would allow a denied or skipped run: a label that leads to an allow rule, if any."""
    ctx = facts.ctx
    # Adding a label can only change the outcome through a rule up to the deciding one that reads it.
    upto = cp.all_mask if deciding is None else (1 << (deciding + 1)) - 1
    for label in cp.hint_labels:
        if label in ctx.labels or not cp.label_refs.get(label, 0) & upto:
            continue
        trial = Facts(ctx.model_copy(update={"labels": [*ctx.labels, label]}), facts.budgets)
        cr, _ = first_match(cp, trial)
        if cr is not None and cr.rule.decision == "allow":
            return f"add the label {label!r} (rule {cr.rule.name!r} would allow the run)"
    if ctx.draft:
        trial = Facts(ctx.model_copy(update={"draft": False}), facts.budgets)
        cr, _ = first_match(cp, trial)
        if cr is not None and cr.rule.decision == "allow":
            return f"mark the pull request ready for review (rule {cr.rule.name!r} would allow the run)"
    return None


def _notes(cp: CompiledPolicy, facts: Facts, cr: CompiledRule | None) -> list[str]:
    """Say which earlier rules could not match because the context lacks a value they read.

    A rule is named for each condition that was unknown, but only when none of its conditions was
    known to fail (otherwise it could not have matched anyway). Any field counts: unknown fork,
    draft, branches, actor, team, trigger ... fail *open* if a deny rule reads them, so the
    decision must say so.
    """
    below = (1 << cr.index) - 1 if cr is not None else cp.all_mask
    mask = below & _unknown_refs(cp, facts)
    if mask:
        mask &= _not_ruled_out(cp, facts)
    if not mask:
        return []
    named: dict[tuple[str, str], list[str]] = {}
    for i in range(mask.bit_length()):
        if not mask >> i & 1:
            continue
        rule = cp.rules[i]
        results = [node.eval(facts) for node in rule.nodes]
        if False in results:
            continue
        for node, result in zip(rule.nodes, results, strict=True):
            if result is not None:
                continue
            for leaf in unknown_leaves(node, facts):
                names = named.setdefault((leaf.unknown_what(facts), leaf.key), [])
                if rule.rule.name not in names:
                    names.append(rule.rule.name)
    notes = []
    for (what, key), names in named.items():
        shown = ", ".join(repr(n) for n in names[:5]) + (" ..." if len(names) > 5 else "")
        notes.append(f"{what}: {shown} could not match on {key}")
    return notes


def _decided_on_unknown(cr: CompiledRule, facts: Facts) -> list[str]:
    """Notes for a rule with `unknown: match` that decided although some of its conditions were unknown."""
    out = []
    for node in cr.nodes:
        if node.eval(facts) is None:
            for leaf in unknown_leaves(node, facts):
                note = f"{leaf.unknown_what(facts)}: {cr.rule.name!r} decided (unknown: match)"
                if note not in out:
                    out.append(note)
    return out


def _not_ruled_out(cp: CompiledPolicy, facts: Facts) -> int:
    """Rules that no *known* indexed value rules out (an unknown value rules nothing out here)."""
    mask = cp.all_mask
    for key, index in cp.indexes.items():
        if key == "labels":
            mask &= index.mask_any(facts.ctx.labels)
        else:
            value = facts.value(key)
            if value is not None:
                mask &= index.mask(value)
    return mask


def _unknown_refs(cp: CompiledPolicy, facts: Facts) -> int:
    """The rules that read, anywhere in their `when`, a value this context does not know."""
    ctx = facts.ctx
    keys = [k for k in (*STRING_FIELDS, *FLAG_FIELDS, *COUNT_FIELDS) if facts.value(k) is None]
    if ctx.changed_paths is None:
        keys += ["paths", "paths_only"]
    if any(facts.budgets.get(name) is None or facts.budgets[name].scope_key is None for name in cp.budget_refs):
        keys.append("budget_remaining")
    mask = 0
    for key in keys:
        mask |= cp.refs.get(key, 0)
    return mask
