"""The live log: one short line per model call on stderr, and one when a cap stops the run."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, TextIO

from ci_guard.secrets import redact

if TYPE_CHECKING:
    from ci_guard.ledger.records import CallRecord
    from ci_guard.meter.caps import CapGuard
    from ci_guard.meter.summary import RunSummary


def usd(amount: object) -> str:
    """The money format of comments and summaries (four decimals below a dollar), for log lines."""
    from ci_guard.money import format_usd

    return format_usd(amount, precise=True)


def context_note(context: Mapping[str, object] | None) -> str:
    """What the context policy changed in a call, for its log line ("" when nothing)."""
    if not context:
        return ""
    parts = []
    if context.get("route"):
        parts.append(f"routed {context.get('routed_from')} -> {context.get('routed_to')} ({context['route']})")
    if context.get("pruned_results"):
        parts.append(f"pruned {context['pruned_results']} results (~{context.get('pruned_tokens', 0):,} tokens)")
    if context.get("cleared_tokens"):
        parts.append(f"cleared {context['cleared_tokens']:,} tokens ({context.get('cleared_by')})")
        if context.get("cleared_thinking_turns"):
            parts[-1] += f", {context['cleared_thinking_turns']} thinking turns"
    elif context.get("context_edit") or context.get("thinking_edit"):
        parts.append("context editing sent")
    if context.get("breakpoints_added"):
        parts.append(f"+{context['breakpoints_added']} cache breakpoints")
    if context.get("thinking_budget_from"):
        parts.append(f"thinking {context['thinking_budget_from']} -> {context.get('thinking_budget_to')}")
    if context.get("reasoning_effort_from"):
        parts.append(f"reasoning effort {context['reasoning_effort_from']} -> {context.get('reasoning_effort_to')}")
    return f" · context: {', '.join(parts)}" if parts else ""


def call_log_lines(summary: RunSummary) -> list[str]:
    """One line per call of a finished run (what the live log printed), for `ci-guard stop`."""
    lines = []
    total = Decimal(0)
    for c in summary.calls:
        total += c.cost_usd
        t = c.tokens
        tokens = f"in {t.get('input', 0):,}"
        if t.get("cache_read") or t.get("cache_write"):
            tokens += f" (+{t.get('cache_read', 0):,} cached, +{t.get('cache_write', 0):,} written)"
        tokens += f" out {t.get('output', 0):,}"
        status = "" if c.status == "ok" else f" [{c.status}{': ' + c.error if c.error else ''}]"
        lines.append(redact(f"#{c.seq} {c.endpoint} {c.model or '?'} {tokens} · {usd(c.cost_usd)} "
                            f"(run {usd(total)}){status}{context_note(c.context)}"))
    return lines


def collapsed(title: str, lines: list[str], environ: Mapping[str, str]) -> str:
    """``lines`` in a collapsible log group: GitHub's ::group::, GitLab's collapsed section, else plain."""
    body = "\n".join(lines)
    if environ.get("GITHUB_ACTIONS") == "true":
        # Workflow commands are read from the start of a line: a call line can never start one.
        body = "\n".join(" " + line if line.startswith("::") else line for line in lines)
        return f"::group::{title}\n{body}\n::endgroup::"
    if environ.get("GITLAB_CI") == "true":
        import time

        now = int(time.time())
        return (f"\x1b[0Ksection_start:{now}:ci_guard_calls[collapsed=true]\r\x1b[0K{title}\n{body}\n"
                f"\x1b[0Ksection_end:{now}:ci_guard_calls\r\x1b[0K")
    return f"{title}\n{body}"


class LiveLog:
    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream

    def warn(self, message: str) -> None:
        """A warning the user must see: written even with --quiet."""
        (self.stream or sys.stderr).write(redact(f"ci-guard: warning: {message}") + "\n")

    def _write(self, line: str) -> None:
        if self.quiet:
            return
        out = self.stream or sys.stderr
        out.write(redact(line) + "\n")
        out.flush()

    def info(self, message: str) -> None:
        self._write(f"ci-guard: {message}")

    def call(self, call: CallRecord, guard: CapGuard) -> None:
        if self.quiet:
            return
        if call.status == "refused":
            self._write(f"ci-guard: refused a {call.endpoint} call: {(call.error or '').split(': ci-guard:')[0]}")
            return
        lim = guard.limits
        turn = f"turn {guard.turns}/{lim.max_turns}" if lim.max_turns else f"turn {guard.turns}"
        if not call.is_turn:
            turn = call.endpoint
        u = call.usage
        tokens = f"in {u.input_tokens:,}"
        if u.cache_read_tokens or u.cache_write_tokens:
            tokens += f" (+{u.cache_read_tokens:,} cached, +{u.cache_write_tokens:,} written)"
        tokens += f" out {u.output_tokens:,}"
        cap = f" / {usd(lim.max_cost_usd)}" if lim.max_cost_usd is not None else ""
        status = "" if call.status == "ok" else f" [{call.status}{': ' + call.error if call.error else ''}]"
        model = call.model_served or call.model_requested or "?"
        self._write(f"ci-guard: {turn} {model} {tokens} · {usd(guard.cost_usd)}{cap}{status}"
                    + context_note(call.context))

    def stopped(self, reason: str, detail: str) -> None:
        self._write(f"ci-guard: STOPPED ({reason}): {detail}")
