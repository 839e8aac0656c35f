"""Codex CLI output: the JSONL events of ``codex exec --json``.

``turn.completed`` carries the usage of the turn (every model call of it, summed): ``input_tokens``
includes ``cached_input_tokens`` (and ``cache_write_input_tokens`` where reported) and
``output_tokens`` includes ``reasoning_output_tokens``, as in the Responses API. The events name no
model, so the model comes from ``--model`` or the policy decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ci_guard.errors import InvalidInputError, Problem
from ci_guard.importers.jsonl import json_lines
from ci_guard.importers.model import ImportedCall, ImportedUsage
from ci_guard.pricing.normalize import from_openai_responses
from ci_guard.pricing.usage import Usage

TOOL_ITEMS = {"command_execution", "mcp_tool_call", "file_change", "web_search", "collab_tool_call"}


def parse(text: str, path: str, default_model: str | None = None) -> ImportedUsage:
    imported = ImportedUsage(source="codex-jsonl", path=path)
    turns = 0
    for lineno, event in _events(text, path):
        kind = event.get("type")
        if kind == "thread.started":
            imported.session_id = event.get("thread_id") or imported.session_id
        elif kind == "turn.completed":
            turns += 1
            imported.calls.append(ImportedCall(model=default_model, usage=_usage(event.get("usage"), path, lineno),
                                               provider="openai", is_sum=True))
        elif kind == "turn.failed":
            imported.is_error = True
        elif kind == "item.completed" and (event.get("item") or {}).get("type") in TOOL_ITEMS:
            imported.tool_calls += 1
    if not imported.calls:
        raise InvalidInputError("no usage to import", [Problem(
            'expected "turn.completed" events with usage; run codex exec with --json', path, 1, 1)])
    imported.turns = turns
    imported.notes.append("Codex reports usage per turn, not per model call: turns counts Codex turns")
    return imported


def _events(text: str, path: str) -> list[tuple[int, Mapping[str, Any]]]:
    # codex may print non-JSON lines (warnings) around the events: objects_only skips them
    return list(json_lines(text, path, "invalid Codex output", objects_only=True))


def _usage(usage: Any, path: str, lineno: int) -> Usage:
    if not isinstance(usage, Mapping):
        raise InvalidInputError("invalid Codex output", [
            Problem("turn.completed has no usage object", path, lineno, None, "usage")])
    return codex_usage(usage)


def codex_usage(usage: Mapping[str, Any]) -> Usage:
    """Codex's usage object (``codex exec --json`` and session rollouts) as normalised Usage.

    Its counts mean what the Responses API's do: input includes cached (and written) tokens.
    """
    return from_openai_responses({
        "input_tokens": usage.get("input_tokens"),
        "input_tokens_details": {"cached_tokens": usage.get("cached_input_tokens"),
                                 "cache_write_tokens": usage.get("cache_write_input_tokens")},
        "output_tokens": usage.get("output_tokens"),
        "output_tokens_details": {"reasoning_tokens": usage.get("reasoning_output_tokens")},
    })
