"""Why a decision came out as it did: every rule in order, each condition with its result.

Uses the same compiled condition nodes as the engine, evaluated without the bitmask shortcut, so
the first rule shown as matching is the rule the engine picked (a test keeps them in agreement).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ci_guard.policy.compiled import Facts, Outcome
from ci_guard.policy.decision import Decision
from ci_guard.policy.engine import compiled
from ci_guard.policy.models import Policy
from ci_guard.policy.output import render_text as check_text


@dataclass
class RuleTrace:
    index: int
    name: str
    decision: str
    matched: bool | None  # True, False, or None (a condition was unknown)
    deciding: bool
    reached: bool  # False for rules after the deciding one
    conditions: list[Outcome]

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index, "name": self.name, "decision": self.decision, "matched": self.matched,
            "deciding": self.deciding, "reached": self.reached,
            "conditions": [{"key": o.key, "result": o.result, "detail": o.detail.strip()} for o in self.conditions],
        }


def trace_rules(policy: Policy, decision: Decision) -> list[RuleTrace]:
    """Evaluate every rule against the decision's context and budgets."""
    cp = compiled(policy)
    facts = Facts(decision.context, {b.name: b for b in decision.budgets})
    out = []
    reached = True
    for cr in cp.rules:
        outcomes = [o for node in cr.nodes for o in node.explain(facts)]
        results = [node.eval(facts) for node in cr.nodes]
        matched: bool | None = False if False in results else (None if None in results else True)
        deciding = reached and cr.rule.name == decision.rule
        out.append(RuleTrace(cr.index, cr.rule.name, cr.rule.decision, matched, deciding, reached, outcomes))
        if deciding:
            reached = False
    return out


def render_text(decision: Decision, traces: list[RuleTrace]) -> str:
    lines = []
    for t in traces:
        if t.deciding:
            status = "DECIDES"
        elif not t.reached:
            status = "not reached" + (" (would match)" if t.matched else "")
        else:
            status = {True: "matched", False: "no match", None: "unknown, no match"}[t.matched]
        lines.append(f"{t.index + 1:>3}. {t.name} -> {t.decision}   [{status}]")
        if not t.conditions:
            lines.append("       (no conditions: matches every run)")
        for o in t.conditions:
            lines.append(f"       {o.symbol} {o.detail}")
    lines.append("")
    # The decision block is the one `check` prints (model, limits, budgets, alerts, hint, notes), so
    # explain never shows less than the command whose result it explains.
    lines.append("decision: " + check_text(decision).removeprefix("ci-guard: ").replace("\n  ", "\n"))
    return "\n".join(lines)
