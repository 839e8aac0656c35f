"""Claude Code's session transcripts: ``~/.claude/projects/<project>/<session-id>.jsonl``.

Claude Code appends one line per content block of every assistant message, each carrying the
message's ``usage`` (the API's own object: fresh input, cache writes split by TTL, cache reads,
output, ``service_tier``, ``inference_geo``, ``server_tool_use``). These are per-request records,
the ones ccusage reads: one model call per ``requestId`` (else ``message.id``), deduplicated across
lines and files, priced by the proxy's normaliser and pricer one call at a time, so a long-context
tier applies exactly to the requests that crossed it. Usage counts are cumulative within a
message, so the largest value seen for each field is the call's.

A directory is read whole (every ``*.jsonl`` below it: the session and its subagents' sidechains).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ci_guard.errors import InvalidInputError, Problem
from ci_guard.importers.jsonl import as_str, as_time, json_lines
from ci_guard.importers.jsonl import read_paths as read_paths
from ci_guard.importers.model import ImportedCall, ImportedUsage
from ci_guard.pricing.normalize import anthropic_tier, anthropic_web_searches, from_anthropic

_USAGE_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
_SPLIT_FIELDS = ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens")


@dataclass
class _Call:
    key: str
    model: str | None
    first_line: int
    started_at: datetime | None
    usage: dict[str, Any] = field(default_factory=dict)
    tool_uses: set[str] = field(default_factory=set)


def parse(files: Iterable[tuple[str, str]], path: str, default_model: str | None = None) -> ImportedUsage:
    calls: dict[str, _Call] = {}
    sessions: list[str] = []
    for name, text in files:
        for lineno, entry in json_lines(text, name, "invalid Claude Code session file"):
            if entry.get("sessionId") and entry["sessionId"] not in sessions and not entry.get("isSidechain"):
                sessions.append(str(entry["sessionId"]))
            message = entry.get("message")
            if entry.get("type") != "assistant" or not isinstance(message, Mapping):
                continue
            usage = message.get("usage")
            model = message.get("model") or default_model
            if not isinstance(usage, Mapping) or model == "<synthetic>":
                continue  # Claude Code's own placeholder messages (API errors, interrupts): no model call
            key = str(entry.get("requestId") or message.get("id") or f"{name}:{lineno}")
            call = calls.get(key)
            if call is None:
                call = calls[key] = _Call(key, str(model) if model else None, lineno, as_time(entry.get("timestamp")))
            _merge(call.usage, usage)
            for block in message.get("content") or []:
                if isinstance(block, Mapping) and block.get("type") == "tool_use":
                    call.tool_uses.add(str(block.get("id") or len(call.tool_uses)))
    if not calls:
        raise InvalidInputError("no usage to import", [Problem(
            "expected Claude Code session lines with an assistant message and its usage "
            "(~/.claude/projects/<project>/<session-id>.jsonl)", path, 1, 1)])
    imported = ImportedUsage(source="claude-code-session", path=path, session_id=sessions[0] if sessions else None)
    ordered = sorted(calls.values(), key=lambda c: (c.started_at is None, c.started_at or datetime.min, c.first_line))
    for call in ordered:
        imported.calls.append(ImportedCall(
            model=call.model, usage=from_anthropic(call.usage), started_at=call.started_at,
            tool_calls=len(call.tool_uses), provider="anthropic", web_searches=anthropic_web_searches(call.usage),
            service_tier=anthropic_tier(call.usage), inference_geo=as_str(call.usage.get("inference_geo")),
        ))
    imported.turns = len(ordered)
    imported.tool_calls = sum(len(c.tool_uses) for c in ordered)
    if len(sessions) > 1:
        imported.notes.append(f"{len(sessions)} sessions were read; they are imported as one run")
    return imported


def _merge(into: dict[str, Any], usage: Mapping[str, Any]) -> None:
    """Keep the largest value of each count (cumulative within a message) and the latest labels."""
    for key in _USAGE_FIELDS:
        into[key] = max(_int(into.get(key)), _int(usage.get(key)))
    split = usage.get("cache_creation")
    if isinstance(split, Mapping):
        mine = into.setdefault("cache_creation", {})
        for key in _SPLIT_FIELDS:
            mine[key] = max(_int(mine.get(key)), _int(split.get(key)))
    tools = usage.get("server_tool_use")
    if isinstance(tools, Mapping):
        mine = into.setdefault("server_tool_use", {})
        mine["web_search_requests"] = max(_int(mine.get("web_search_requests")),
                                          _int(tools.get("web_search_requests")))
    for key in ("service_tier", "inference_geo", "speed"):
        if as_str(usage.get(key)):
            into[key] = usage[key]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
