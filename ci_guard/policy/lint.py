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
    if policy.pricing.fallback_model:
        yield ("pricing", "fallback_model"), policy.pricing.fallback_model
    for j, name in enumerate(policy.enforcement.allowed_models):
        yield ("enforcement", "allowed_models", j), name


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


def lint_policy(policy: Policy) -> list[Finding]:
    """Every finding: reference errors plus warnings about rules that can never decide."""
    findings = [Finding("error", p, m) for p, m in reference_problems(policy)]
    findings += _unreachable(policy)
    findings += _team_refs(policy)
    findings += _escalation_noops(policy)
    return findings


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
