"""Codex's session rollouts: ``~/.codex/sessions/YYYY/MM/DD/rollout-<time>-<id>.jsonl``.

Codex records each model response's usage: ``token_usage_record`` lines (``response_id`` and that
response's ``usage``) in current versions, ``event_msg`` ``token_count`` events (``last_token_usage``,
with the running ``total_token_usage``) in older ones. Each becomes one call, deduplicated by
response id (older files: by the running total, which only a new response moves), and is priced
one request at a time like the proxy prices it. The model is the one of the latest ``turn_context``
(``--model`` when a file names none). A directory is read whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ci_guard.errors import InvalidInputError, Problem
from ci_guard.importers.codex import codex_usage
from ci_guard.importers.jsonl import as_str, as_time, json_lines, read_paths
from ci_guard.importers.model import ImportedCall, ImportedUsage

__all__ = ["parse", "read_paths"]


def parse(files: Iterable[tuple[str, str]], path: str, default_model: str | None = None) -> ImportedUsage:
    imported = ImportedUsage(source="codex-session", path=path)
    records: dict[str, ImportedCall] = {}  # response id -> call (current Codex)
    counted: dict[tuple[str, int], ImportedCall] = {}  # (file, running total) -> call (older Codex)
    for name, text in files:
        model = default_model
        for lineno, entry in json_lines(text, name, "invalid Codex session file", objects_only=True):
            kind, payload = entry.get("type"), entry.get("payload")
            if not isinstance(payload, Mapping):
                continue
            if kind == "session_meta":
                imported.session_id = imported.session_id or as_str(payload.get("id") or payload.get("session_id"))
            elif kind == "turn_context":
                model = as_str(payload.get("model")) or model
            elif kind == "token_usage_record" and isinstance(payload.get("usage"), Mapping):
                key = as_str(payload.get("response_id")) or f"{name}:{lineno}"
                records.setdefault(key, _call(payload["usage"], model, entry))
            elif kind == "event_msg" and payload.get("type") == "token_count":
                info = payload.get("info")
                if isinstance(info, Mapping) and isinstance(info.get("last_token_usage"), Mapping):
                    total = info.get("total_token_usage")
                    running = total.get("total_tokens") if isinstance(total, Mapping) else None
                    key2 = (name, running if isinstance(running, int) else lineno)
                    counted.setdefault(key2, _call(info["last_token_usage"], model, entry))
        if records:
            counted = {}  # a file with per-response records: its token_count events repeat them
    calls = list(records.values()) or list(counted.values())
    if not calls:
        raise InvalidInputError("no usage to import", [Problem(
            "expected Codex rollout lines with per-response usage (token_usage_record or token_count "
            "events; ~/.codex/sessions/...)", path, 1, 1)])
    imported.calls = calls
    imported.turns = len(calls)
    return imported


def _call(usage: Mapping[str, Any], model: str | None, entry: Mapping[str, Any]) -> ImportedCall:
    return ImportedCall(model=model, usage=codex_usage(usage), provider="openai",
                        started_at=as_time(entry.get("timestamp")))
