"""`when:` blocks compiled into condition nodes with three-valued results.

A node answers ``True`` (holds), ``False`` (does not) or ``None`` (unknown: the context lacks the
value, e.g. changed paths could not be determined, or a budget's scope key is unknown). A rule
decides only when its block is ``True``; ``not:`` keeps unknown as unknown, so negating an unknown
never lets a rule match. Every node can also explain itself for `ci-guard explain`, and a leaf
says what was unknown (:meth:`Node.unknown_what`) so the engine can note it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ci_guard.context.model import RunContext
from ci_guard.policy.conditions import Comparison, GlobSet, parse_comparison
from ci_guard.policy.decision import BudgetStatus
from ci_guard.policy.models import When

# `when:` keys that compare one string field of the context against globs.
STRING_FIELDS = ("platform", "trigger", "event", "agent", "repo", "org", "actor", "team", "base_branch",
                 "head_branch", "environment", "workflow", "cohort")
CONTEXT_ATTR = {"event": "event_name"}
FLAG_FIELDS = ("draft", "fork")
COUNT_FIELDS = ("diff_lines", "diff_files")


@dataclass
class Facts:
    """What the conditions read, gathered once per decision."""

    ctx: RunContext
    budgets: Mapping[str, BudgetStatus]

    def value(self, field: str) -> Any:
        return getattr(self.ctx, CONTEXT_ATTR.get(field, field))


@dataclass(frozen=True)
class Outcome:
    key: str
    result: bool | None
    detail: str

    @property
    def symbol(self) -> str:
        return {True: "✓", False: "✗", None: "?"}[self.result]


class Node:
    key: str = ""

    def eval(self, facts: Facts) -> bool | None:
        raise NotImplementedError

    def explain(self, facts: Facts) -> list[Outcome]:
        """One outcome for a leaf; composite nodes return their own plus indented children."""
        return [Outcome(self.key, self.eval(facts), self.describe(facts))]

    def describe(self, facts: Facts) -> str:
        raise NotImplementedError

    def fields(self) -> set[str]:
        return {self.key}

    def unknown_what(self, facts: Facts) -> str:
        """What the context lacked when this leaf evaluated to unknown (for the decision's notes)."""
        return f"{self.key} unknown"


def unknown_leaves(node: Node, facts: Facts) -> list[Node]:
    """The leaves that made ``node`` unknown (empty when it is known)."""
    if node.eval(facts) is not None:
        return []
    children: list[Node] | None = getattr(node, "children", None)
    child: Node | None = getattr(node, "child", None)
    if children is None and child is None:
        return [node]
    return [leaf for sub in (children if children is not None else [child]) if sub is not None
            for leaf in unknown_leaves(sub, facts)]


def _shown(values: tuple[str, ...]) -> str:
    return values[0] if len(values) == 1 else "any of [" + ", ".join(values) + "]"


class StringIn(Node):
    def __init__(self, key: str, patterns: list[str]) -> None:
        self.key = key
        self.globs = GlobSet(tuple(patterns))

    def eval(self, facts: Facts) -> bool | None:
        value = facts.value(self.key)
        return None if value is None else self.globs.match(value)

    def describe(self, facts: Facts) -> str:
        value = facts.value(self.key)
        return f"{self.key} is {_shown(self.globs.patterns)}; run has {value if value is not None else 'unknown'}"


class LabelsAny(Node):
    key = "labels"

    def __init__(self, patterns: list[str]) -> None:
        self.globs = GlobSet(tuple(patterns))

    def eval(self, facts: Facts) -> bool | None:
        return any(self.globs.match(label) for label in facts.ctx.labels)

    def describe(self, facts: Facts) -> str:
        have = ", ".join(facts.ctx.labels) or "no labels"
        return f"labels include {_shown(self.globs.patterns)}; run has {have}"


class Flag(Node):
    def __init__(self, key: str, expected: bool) -> None:
        self.key = key
        self.expected = expected

    def eval(self, facts: Facts) -> bool | None:
        value = facts.value(self.key)
        return None if value is None else value is self.expected

    def describe(self, facts: Facts) -> str:
        value = facts.value(self.key)
        shown = "unknown" if value is None else str(value).lower()
        return f"{self.key} is {str(self.expected).lower()}; run has {shown}"


class Count(Node):
    def __init__(self, key: str, text: str) -> None:
        self.key = key
        self.cmp: Comparison = parse_comparison(text, kind="count")
        self.limit = int(self.cmp.value)

    def eval(self, facts: Facts) -> bool | None:
        value = facts.value(self.key)
        return None if value is None else self.cmp.test(value)

    def describe(self, facts: Facts) -> str:
        value = facts.value(self.key)
        return f"{self.key} {self.cmp}; run has {value if value is not None else 'unknown'}"


class Paths(Node):
    """`paths` (any changed file matches) or `paths_only` (every changed file matches)."""

    def __init__(self, key: str, patterns: list[str]) -> None:
        self.key = key
        self.every = key == "paths_only"
        self.globs = GlobSet(tuple(patterns))

    def eval(self, facts: Facts) -> bool | None:
        paths = facts.ctx.changed_paths
        if paths is None:
            return None
        if not paths:  # a known, empty change: paths_only must not be vacuously true, so it is false
            return False
        if self.every:
            return all(self.globs.match(p) for p in paths)
        return any(self.globs.match(p) for p in paths)

    def describe(self, facts: Facts) -> str:
        paths = facts.ctx.changed_paths
        want = f"{'every' if self.every else 'any'} changed file matches {_shown(self.globs.patterns)}"
        if paths is None:
            return f"{want}; changed files unknown"
        if not paths:
            return f"{want}; no changed files"
        if self.every:
            misses = [p for p in paths if not self.globs.match(p)]
            return f"{want}; {len(paths) - len(misses)}/{len(paths)} match" + (
                f" (first miss: {misses[0]})" if misses else "")
        hits = [p for p in paths if self.globs.match(p)]
        return f"{want}; {len(hits)}/{len(paths)} match" + (f" (first: {hits[0]})" if hits else "")

    def unknown_what(self, facts: Facts) -> str:
        return "changed files unknown"


class BudgetRemaining(Node):
    key = "budget_remaining"

    def __init__(self, budget: str, text: str) -> None:
        self.budget = budget
        self.cmp = parse_comparison(text, kind="budget")

    def eval(self, facts: Facts) -> bool | None:
        status = facts.budgets.get(self.budget)
        # Every budget scope needs a key: without one (a team budget for a run in no team) the
        # status is an empty bucket that says nothing about this run's spend.
        if status is None or status.scope_key is None:
            return None
        if self.cmp.percent:
            if status.limit_usd <= 0:
                return self.cmp.test(Decimal(0))
            return self.cmp.test_share(status.remaining_usd, status.limit_usd)
        return self.cmp.test(status.remaining_usd)

    def describe(self, facts: Facts) -> str:
        status = facts.budgets.get(self.budget)
        if status is None:
            return f"budget {self.budget} remaining {self.cmp}; status unknown"
        if status.scope_key is None:
            return f"budget {self.budget} remaining {self.cmp}; {status.scope} unknown for this run"
        return (f"budget {self.budget} remaining {self.cmp}; remaining ${status.remaining_usd} "
                f"({status.remaining_pct}% of ${status.limit_usd})")

    def unknown_what(self, facts: Facts) -> str:
        status = facts.budgets.get(self.budget)
        if status is None:
            return f"budget status unknown for {self.budget}"
        return f"{status.scope} unknown for budget {self.budget}"


class All(Node):
    key = "all"

    def __init__(self, children: list[Node]) -> None:
        self.children = children

    def eval(self, facts: Facts) -> bool | None:
        result: bool | None = True
        for child in self.children:
            value = child.eval(facts)
            if value is False:
                return False
            if value is None:
                result = None
        return result

    def explain(self, facts: Facts) -> list[Outcome]:
        return [o for child in self.children for o in child.explain(facts)]

    def describe(self, facts: Facts) -> str:
        return "all of"

    def fields(self) -> set[str]:
        return {f for child in self.children for f in child.fields()}


class Not(Node):
    key = "not"

    def __init__(self, child: Node) -> None:
        self.child = child

    def eval(self, facts: Facts) -> bool | None:
        value = self.child.eval(facts)
        return None if value is None else not value

    def explain(self, facts: Facts) -> list[Outcome]:
        inner = self.child.explain(facts)
        return [Outcome("not", self.eval(facts), "none of the following holds"),
                *(Outcome(o.key, o.result, "  " + o.detail) for o in inner)]

    def describe(self, facts: Facts) -> str:
        return "not"

    def fields(self) -> set[str]:
        return self.child.fields()


class AnyOf(Node):
    key = "any"

    def __init__(self, children: list[Node]) -> None:
        self.children = children

    def eval(self, facts: Facts) -> bool | None:
        result: bool | None = False
        for child in self.children:
            value = child.eval(facts)
            if value is True:
                return True
            if value is None:
                result = None
        return result

    def explain(self, facts: Facts) -> list[Outcome]:
        out = [Outcome("any", self.eval(facts), "any of the following blocks holds")]
        for i, child in enumerate(self.children):
            out.append(Outcome("any", child.eval(facts), f"  block {i + 1}:"))
            out += [Outcome(o.key, o.result, "    " + o.detail) for o in child.explain(facts)]
        return out

    def describe(self, facts: Facts) -> str:
        return "any of"

    def fields(self) -> set[str]:
        return {f for child in self.children for f in child.fields()}


def compile_when(when: When | None) -> list[Node]:
    """The top-level conditions of a block, in a stable order (all must hold)."""
    if when is None:
        return []
    nodes: list[Node] = []
    for key in STRING_FIELDS:
        patterns = getattr(when, key)
        if patterns is not None:
            nodes.append(StringIn(key, list(patterns)))
    if when.labels is not None:
        nodes.append(LabelsAny(when.labels))
    for key in FLAG_FIELDS:
        value = getattr(when, key)
        if value is not None:
            nodes.append(Flag(key, value))
    for key in COUNT_FIELDS:
        text = getattr(when, key)
        if text is not None:
            nodes.append(Count(key, text))
    for key in ("paths", "paths_only"):
        patterns = getattr(when, key)
        if patterns is not None:
            nodes.append(Paths(key, patterns))
    for name, text in (when.budget_remaining or {}).items():
        nodes.append(BudgetRemaining(name, text))
    if when.not_ is not None:
        nodes.append(Not(All(compile_when(when.not_))))
    if when.any is not None:
        nodes.append(AnyOf([All(compile_when(sub)) for sub in when.any]))
    return nodes
