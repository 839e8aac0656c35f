"""What-if results as a terminal table, markdown (the policy PR comment) or JSON.

Every string that came from the ledger (repositories, workflows, rules, models: ultimately from PR
authors and policy files) goes through :func:`ci_guard.report.escape.md` in markdown, like the cost
comments.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from ci_guard.ledger.sqlstore import from_micros
from ci_guard.money import format_usd
from ci_guard.preview.whatif import WhatIf
from ci_guard.report.escape import md
from ci_guard.report.table import table

TOP = 10  # rows of the short tables


def usd(micros: int) -> str:
    return format_usd(from_micros(micros))


def signed(micros: int) -> str:
    return ("+" if micros > 0 else "") + usd(micros)


def runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def headline(r: WhatIf) -> str:
    """One sentence: "this change would have denied 34 of 912 runs and cut the spend by $412 (−18 %)"."""
    parts = []
    if r.newly_refused:
        parts.append(f"denied {len(r.newly_refused)} of {runs(r.runs)}")
    if r.stopped:
        parts.append(f"stopped {runs(len(r.stopped))} earlier")
    if r.newly_allowed:
        parts.append(f"allowed {runs(len(r.newly_allowed))} the baseline refused")
    pct = r.delta_pct
    pct_text = f" ({'+' if pct > 0 else '−' if pct < 0 else ''}{abs(pct)} %)" if pct is not None else ""
    if r.delta_micros < 0:
        parts.append(f"cut the spend by {usd(-r.delta_micros)}{pct_text}")
    elif r.delta_micros > 0:
        parts.append(f"raised the spend by {usd(r.delta_micros)}{pct_text}")
    days = max(1, round((r.until - r.since).total_seconds() / 86400))
    period = f"over {days} days ({runs(r.runs)})"
    if not parts:
        return f"this change would not have changed any decision or the spend {period}"
    text = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    return f"this change would have {text} {period}"


# -- text --------------------------------------------------------------------------------------------
def render_text(r: WhatIf) -> str:
    out = [f"what-if: {r.proposal} against {r.baseline}, {r.since:%Y-%m-%d %H:%M} to {r.until:%Y-%m-%d %H:%M} UTC",
           headline(r).capitalize() + ".",
           f"spend {usd(r.before_micros)} -> {usd(r.after_micros)} ({signed(r.delta_micros)}); "
           f"{r.approximated} of {r.runs} runs approximated (recorded before decision inputs were stored)", ""]
    if r.transitions:
        out += ["Decisions that change:", table(["from", "to", "runs"], [
            (f"{f} ({fr})", f"{t} ({tr})", n) for (f, fr, t, tr), n in r.transitions.most_common(TOP)], right=[2]), ""]
    if r.newly_allowed:
        worst = sum(c.after.unknown_micros for c in r.newly_allowed)
        out.append(f"{len(r.newly_allowed)} runs refused in the baseline would run: spend unknown, "
                   f"worst case {usd(worst)} (max_cost_usd)\n")
    if r.stopped:
        out += ["Runs a cap would have stopped earlier:", table(
            ["run", "repo", "workflow", "stop", "calls", "saving"],
            [(c.run.run_id, c.run.repo, c.run.workflow, c.after.stop_reason or "max_cost",
              f"{c.after.calls}/{c.before.calls}", usd(c.before.cost_micros - c.after.cost_micros))
             for c in r.stopped[:TOP]], right=[4, 5]), ""]
    if r.continued:
        out.append(f"{len(r.continued)} runs stopped by a cap in the baseline would have gone on (spend after "
                   "the stop unknown; counted at what they spent)\n")
    if r.repriced:
        delta = sum(c.after.cost_micros - c.before.cost_micros for c in r.repriced)
        out.append(f"{len(r.repriced)} runs on another model: {signed(delta)} (estimate: recorded tokens at the "
                   "new model's prices)\n")
    rows = _group_rows(r.by_rule)
    if rows:
        out += ["By rule:", table(["rule", "runs", "denied", "stopped", "before", "after", "change"], rows,
                                  right=[1, 2, 3, 4, 5, 6]), ""]
    rows = _group_rows(r.by_workflow)
    if rows:
        out += ["By workflow:", table(["workflow", "runs", "denied", "stopped", "before", "after", "change"], rows,
                                      right=[1, 2, 3, 4, 5, 6]), ""]
    if r.budgets:
        out += ["Budgets (projected spend of each period under the proposal):", table(
            ["budget", "key", "period from", "limit", "before", "after", "alerts fired"],
            [(b["budget"], b["scope_key"], b["period_start"][:10], format_usd(b["limit_usd"]),
              usd(b["before_micros"]), usd(b["after_micros"]), _alerts(b)) for b in r.budgets[:TOP * 2]],
            right=[3, 4, 5]), ""]
    return "\n".join(out).rstrip() + "\n"


def _group_rows(groups: dict[str, dict[str, int]]) -> list[tuple[Any, ...]]:
    ordered = sorted(groups.items(), key=lambda kv: (kv[1]["after"] - kv[1]["before"], -kv[1]["runs"], kv[0]))
    return [(name, g["runs"], g["refused"], g["stopped"], usd(g["before"]), usd(g["after"]),
             signed(g["after"] - g["before"])) for name, g in ordered[:TOP]]


def _alerts(b: dict[str, Any]) -> str:
    fired = [a for a in b["alerts_after"] if a not in b["alerts_before"]]
    gone = [a for a in b["alerts_before"] if a not in b["alerts_after"]]
    over = " OVER LIMIT" if from_micros(b["after_micros"]) > b["limit_usd"] else ""
    parts = [f"+{format_usd(a)}" for a in fired] + [f"-{format_usd(a)}" for a in gone]
    return (" ".join(parts) or "-") + over


# -- markdown ----------------------------------------------------------------------------------------
def render_markdown(r: WhatIf) -> str:
    lines = [f"### ci-guard policy preview: {md(r.proposal)}", "",
             f"**{headline(r)[0].upper() + headline(r)[1:]}.**", "",
             f"Spend {usd(r.before_micros)} → {usd(r.after_micros)} ({signed(r.delta_micros)}) against "
             f"{md(r.baseline)}, {r.since:%Y-%m-%d} to {r.until:%Y-%m-%d}."]
    if r.approximated:
        lines.append(f"{r.approximated} of {r.runs} runs were recorded before decision inputs were stored and are "
                     "approximated.")
    if r.newly_allowed:
        lines.append(f"{len(r.newly_allowed)} runs refused before would run: spend unknown, worst case "
                     f"{usd(sum(c.after.unknown_micros for c in r.newly_allowed))}.")
    if r.repriced:
        lines.append(f"{len(r.repriced)} runs change model: "
                     f"{signed(sum(c.after.cost_micros - c.before.cost_micros for c in r.repriced))} "
                     "(estimate: recorded tokens at the new model's prices).")
    lines.append("")
    for title, groups in (("Rule", r.by_rule), ("Workflow", r.by_workflow)):
        rows = [row for row in _group_rows(groups) if row[2] or row[3] or row[4] != row[5]]
        if rows:
            lines += [f"| {title} | Runs | Denied | Stopped | Before | After | Change |",
                      "|---|--:|--:|--:|--:|--:|--:|"]
            lines += [f"| {md(n)} | {a} | {b} | {c} | {d} | {e} | {f} |" for n, a, b, c, d, e, f in rows]
            lines.append("")
    details = _details(r)
    if details:
        lines += ["<details><summary>Details</summary>", "", *details, "", "</details>", ""]
    return "\n".join(lines)


def _details(r: WhatIf) -> list[str]:
    out: list[str] = []
    if r.transitions:
        out += ["**Decisions that change**", "", "| From | To | Runs |", "|---|---|--:|"]
        out += [f"| {md(f)} ({md(fr)}) | {md(t)} ({md(tr)}) | {n} |"
                for (f, fr, t, tr), n in r.transitions.most_common(TOP)]
        out.append("")
    if r.stopped:
        out += ["**Runs a cap would have stopped earlier**", "", "| Run | Repository | Workflow | Stop |",
                "|---|---|---|---|"]
        out += [f"| {md(c.run.run_id)} | {md(c.run.repo)} | {md(c.run.workflow)} | {md(c.after.stop_reason)} "
                f"after {c.after.calls} of {c.before.calls} calls, "
                f"saving {usd(c.before.cost_micros - c.after.cost_micros)} |"
                for c in r.stopped[:TOP]]
        out.append("")
    if r.budgets:
        out += ["**Budgets**", "", "| Budget | Key | Period from | Limit | Before | After | Alerts |",
                "|---|---|---|--:|--:|--:|---|"]
        out += [f"| {md(b['budget'])} | {md(b['scope_key'])} | {b['period_start'][:10]} | {format_usd(b['limit_usd'])} "
                f"| {usd(b['before_micros'])} | {usd(b['after_micros'])} | {_alerts(b)} |"
                for b in r.budgets[:TOP * 2]]
    return out


def render_invalid(policy_path: str, errors: str) -> str:
    """The comment for a proposal that does not validate: the errors instead of figures."""
    body = errors.strip().replace("```", "``\u200b`")[:6000]
    return (f"### ci-guard policy preview: {md(policy_path)}\n\n**The proposed policy is not valid**, so its effect "
            f"cannot be previewed. `ci-guard validate` says:\n\n```text\n{body}\n```\n")


def render_json(r: WhatIf) -> str:
    data = r.as_json()
    data["headline"] = headline(r)
    return json.dumps(data, indent=2, default=_default) + "\n"


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)
