"""GitHub Actions step outputs and step summary of a metered run."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping

from ci_guard.meter.summary import RunSummary
from ci_guard.money import usd_json
from ci_guard.secrets import redact


def write_github_outputs(values: Mapping[str, object], path: str | None = None, *,
                         secret: Mapping[str, str] | None = None) -> None:
    """Append ``name<<DELIM`` blocks to $GITHUB_OUTPUT (safe for any value, multi-line included).

    ``values`` are redacted; ``secret`` outputs are written as they are (the caller masked them
    with ``::add-mask::``): a secret the workflow hands to a later ci-guard step, e.g. the stop key.
    """
    target = path or os.environ.get("GITHUB_OUTPUT")
    if not target:
        return
    lines = []
    for name, value in [*((n, redact("" if v is None else str(v))) for n, v in values.items()),
                        *(secret or {}).items()]:
        text = value
        delim = f"ci_guard_{secrets.token_hex(8)}"
        lines.append(f"{name}<<{delim}\n{text}\n{delim}\n")
    with open(target, "a", encoding="utf-8") as fh:
        fh.write("".join(lines))


def append_github_env(values: Mapping[str, str], path: str | None = None) -> None:
    """Export ``values`` to the job's later steps through $GITHUB_ENV: ``name=value`` lines, and a
    ``name<<DELIM`` block for a value with a line break (which a plain line would split into a
    second variable). Not redacted: these are values the steps need as they are."""
    target = path or os.environ.get("GITHUB_ENV")
    if not target:
        return
    lines = []
    for name, value in values.items():
        if "\n" in value or "\r" in value:
            delim = f"ci_guard_{secrets.token_hex(8)}"
            lines.append(f"{name}<<{delim}\n{value}\n{delim}\n")
        else:
            lines.append(f"{name}={value}\n")
    with open(target, "a", encoding="utf-8") as fh:
        fh.write("".join(lines))


def append_github_path(directory: str, path: str | None = None) -> None:
    """Put ``directory`` first on the ``PATH`` of the job's later steps ($GITHUB_PATH)."""
    target = path or os.environ.get("GITHUB_PATH")
    if not target:
        return
    if "\n" in directory or "\r" in directory:  # one line per directory: it cannot carry a line break
        raise ValueError(f"a directory with a line break cannot go on $GITHUB_PATH: {directory!r}")
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(directory + "\n")


def append_step_summary(markdown: str, path: str | None = None) -> None:
    target = path or os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(redact(markdown).rstrip("\n") + "\n\n")


def run_outputs(summary: RunSummary, summary_path: str | None) -> dict[str, object]:
    decision = summary.decision
    limits = decision.get("limits") or {}
    return {
        "run-id": summary.run_id,
        "decision": decision.get("decision"),
        "rule": decision.get("rule"),
        "reason": decision.get("reason") or "",
        "model": decision.get("model"),
        "max-turns": limits.get("max_turns"),
        "max-cost-usd": limits.get("max_cost_usd"),
        "status": summary.status,
        "stop-reason": summary.stop_reason or "",
        "cost-usd": usd_json(summary.cost_usd) or "0.000000",
        # what the context policy saved (summary context_savings.saved_usd; negative when first
        # cache writes outweighed the reads so far), "0.000000" when it changed nothing
        "context-saved-usd": usd_json((summary.context_savings or {}).get("saved_usd")) or "0.000000",
        "turns": summary.turns,
        "tool-calls": summary.tool_calls,
        "agent-exit-code": "" if summary.agent_exit_code is None else summary.agent_exit_code,
        "summary-path": os.path.abspath(summary_path) if summary_path else "",
    }


def run_step_summary(summary: RunSummary) -> str:
    d = summary.decision
    limits = d.get("limits") or {}
    t = summary.tokens
    cap = limits.get("max_cost_usd")
    stop = ""
    if summary.status == "stopped" and summary.stop_reason:
        stop = f" — stopped by **{summary.stop_reason}**"
    elif summary.status == "failed":
        stop = f" — agent exit code **{summary.agent_exit_code}**" + (
            f" ({summary.stop_reason})" if summary.stop_reason not in (None, "agent_exit") else "")
    elif summary.status == "cancelled":
        stop = f" — by **{summary.stop_reason}**" if summary.stop_reason else ""
    rows = [
        f"### ci-guard: {summary.status}{stop}",
        "",
        "| decision | rule | model | turns | tool calls | tokens (in / cache read / cache write / out) | cost |",
        "|---|---|---|---|---|---|---|",
        f"| {d.get('decision')} | {_cell(d.get('rule'))} | {_cell(d.get('model'))} | "
        f"{summary.turns}/{limits.get('max_turns') or '∞'} | {summary.tool_calls} | "
        f"{t.get('input', 0):,} / {t.get('cache_read', 0):,} / {t.get('cache_write', 0):,} / {t.get('output', 0):,} | "
        f"${summary.cost_usd}" + (f" / ${cap}" if cap else "") + " |",
    ]
    if summary.stop_detail:
        rows += ["", _cell(summary.stop_detail)]
    if summary.context_savings:
        saved = summary.context_savings
        rows += ["", f"Context policy saved ${_cell(saved.get('saved_usd'))}, {_cell(saved.get('share_pct'))}% of "
                     f"this run ({_cell(saved.get('calls_changed'))} calls changed; {_cell(saved.get('method'))})."]
    if summary.status in ("denied", "skipped") and d.get("reason"):
        rows += ["", _cell(d.get("reason"))]
    return "\n".join(rows)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace("@", "@\u200d")


def annotation(text: str) -> str:
    """``text`` made safe for a workflow command's message (redacted, one line)."""
    return redact(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def emit_github_run_outputs(summary: RunSummary, summary_path: str | None) -> None:
    write_github_outputs(run_outputs(summary, summary_path))
    append_step_summary(run_step_summary(summary))
    if summary.status == "error" and summary.stop_reason == "ledger_error":
        print(f"::error title=ci-guard ledger::{annotation(summary.stop_detail or 'the ledger failed')}", flush=True)
    if summary.status in ("no_calls", "failed") and summary.stop_detail:
        title = "ci-guard: no metered call" if summary.status == "no_calls" else "ci-guard: agent failed"
        kind = "warning" if summary.status == "no_calls" else "error"
        text = redact(summary.stop_detail).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        print(f"::{kind} title={title}::{text}", flush=True)
    for alert in summary.decision.get("alerts") or []:
        # a workflow command on stdout: shown as a warning on the run's summary page
        text = redact(str(alert)).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        print(f"::warning title=ci-guard budget alert::{text}", flush=True)
