"""How a Decision is shown: terminal text, GitHub step outputs and a step-summary table."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from ci_guard.money import format_usd, usd_json
from ci_guard.policy.decision import Decision
from ci_guard.policy.durations import format_duration
from ci_guard.policy.models import CAPS


def limits_text(decision: Decision) -> str:
    lim = decision.limits
    parts = []
    if lim.max_turns is not None:
        parts.append(f"max_turns={lim.max_turns}")
    if lim.max_cost_usd is not None:
        parts.append(f"max_cost=${lim.max_cost_usd}")
    if lim.max_runtime_s is not None:
        parts.append(f"max_runtime={format_duration(lim.max_runtime_s)}")
    if lim.max_context_tokens is not None:
        parts.append(f"max_context_tokens={lim.max_context_tokens}")
    if lim.max_tool_calls is not None:
        parts.append(f"max_tool_calls={lim.max_tool_calls}")
    if lim.max_identical_retries is not None:
        parts.append(f"max_identical_retries={lim.max_identical_retries}")
    return " ".join(parts) or "none"


def handoff_text(handoff: dict) -> str:
    """One line: what happens on the PR/MR when a cap stops the agent."""
    parts = []
    if handoff.get("label"):
        parts.append("label " + ", ".join(handoff["label"]))
    if handoff.get("request_review"):
        parts.append("request review from " + ", ".join(handoff["request_review"]))
    if handoff.get("mention"):
        parts.append("mention " + ", ".join(handoff["mention"]))
    caps = handoff.get("on") or []
    when = "any cap" if set(caps) >= set(CAPS) else " or ".join(caps)
    return f"{'; '.join(parts)} (when {when} stops the agent; applied by `ci-guard comment`)"


def render_text(decision: Decision) -> str:
    lines = [f"ci-guard: {decision.decision} (rule: {decision.rule or '-'})"]
    if decision.reason:
        lines.append(f"  reason:  {decision.reason}")
    if decision.allowed:
        tier = f" (tier {decision.model_tier})" if decision.model_tier else ""
        lines.append(f"  model:   {decision.model or 'as requested by the agent'}{tier}")
        lines.append(f"  limits:  {limits_text(decision)}")
        if decision.context_policy.active:
            lines.append(f"  context: {decision.context_policy.describe()}")
        if decision.handoff:
            lines.append(f"  handoff: {handoff_text(decision.handoff)}")
    for b in decision.budgets:
        key = f" {b.scope_key}" if b.scope_key else ""
        lines.append(f"  budget:  {b.name} ({b.scope}{key}, {b.period}): {format_usd(b.remaining_usd)} of "
                     f"{format_usd(b.limit_usd)} left ({b.remaining_pct}%)")
    for alert in decision.alerts:
        lines.append(f"  ALERT:   {alert}")
    if decision.hint:
        lines.append(f"  hint:    {decision.hint}")
    for note in [*decision.context.notes, *decision.notes]:
        lines.append(f"  note:    {note}")
    return "\n".join(lines)


def github_annotations(decision: Decision) -> str:
    """`::warning::` lines for budget alerts, shown on the workflow run's summary page."""
    return "".join(f"::warning title=ci-guard budget alert::{_annotation(a)}\n" for a in decision.alerts)


def _annotation(text: str) -> str:
    # workflow-command escaping: % first, then the line breaks
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def step_outputs(decision: Decision) -> dict[str, str]:
    """The GitHub step outputs (strings; empty when unknown)."""
    import json

    lim = decision.limits

    def s(value: object) -> str:
        return "" if value is None else str(value)

    return {
        "decision": decision.decision,
        "allowed": "true" if decision.allowed else "false",
        "rule": s(decision.rule),
        "reason": s(decision.reason),
        "hint": s(decision.hint),
        "model": s(decision.model),
        "model-tier": s(decision.model_tier),
        "max-turns": s(lim.max_turns),
        "max-cost-usd": usd_json(lim.max_cost_usd) or "",
        "max-runtime-s": s(lim.max_runtime_s),
        "max-context-tokens": s(lim.max_context_tokens),
        "max-tool-calls": s(lim.max_tool_calls),
        "max-identical-retries": s(lim.max_identical_retries),
        "alerts": "\n".join(decision.alerts),
        "json": json.dumps(decision.as_json(), separators=(",", ":")),
    }


def format_outputs(outputs: dict[str, str]) -> str:
    """`name<<DELIM` blocks: safe for values with newlines (a value can never contain the delimiter)."""
    chunks = []
    for name, value in outputs.items():
        delim = f"ghadelimiter_{uuid.uuid4().hex}"
        chunks.append(f"{name}<<{delim}\n{value}\n{delim}\n")
    return "".join(chunks)


def summary_markdown(decision: Decision) -> str:
    icon = {"allow": "✅", "deny": "⛔", "skip": "⏭️"}[decision.decision]
    rows = [("Decision", f"{icon} **{decision.decision}**"), ("Rule", f"`{decision.rule or '-'}`"),
            ("Reason", decision.reason or "")]
    if decision.allowed:
        tier = f" ({decision.model_tier})" if decision.model_tier else ""
        rows += [("Model", f"`{decision.model or '-'}`{tier}"), ("Limits", limits_text(decision))]
    if decision.hint:
        rows.append(("Hint", decision.hint))
    lines = ["### ci-guard policy decision", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {_cell(v)} |" for k, v in rows]
    if decision.budgets:
        lines += ["", "| Budget | Scope | Limit | Spent | Reserved | Remaining |", "|---|---|--:|--:|--:|--:|"]
        for b in decision.budgets:
            scope = _cell(f"{b.scope} {b.scope_key or ''}".strip())
            lines.append(f"| {_cell(b.name)} | {scope} | ${b.limit_usd} | ${b.spent_usd} | ${b.reserved_usd} | "
                         f"${b.remaining_usd} ({b.remaining_pct}%) |")
    if decision.alerts:
        lines += ["", *[f"> ⚠️ **Budget alert:** {_cell(a)}" for a in decision.alerts]]
    notes = [*decision.context.notes, *decision.notes]
    if notes:
        lines += ["", *[f"- {_cell(n)}" for n in notes]]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def append_file(env_var: str, text: str) -> bool:
    """Append to the file named by a GitHub variable in one write; False when the variable is unset."""
    path = os.environ.get(env_var)
    if not path:
        return False
    with Path(path).open("a", encoding="utf-8") as fh:
        fh.write(text)
    return True
