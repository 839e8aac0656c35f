"""Claude Code output: ``claude -p --output-format json`` (one result object), ``stream-json`` (JSONL
whose last ``result`` line counts) and claude-code-action's execution file (a JSON array of messages).

The result's ``modelUsage`` has one entry per model, side calls included, so it is the complete
record; ``usage`` (main loop only) is the fallback when ``modelUsage`` is missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any

from ci_guard.errors import InvalidInputError, Problem
from ci_guard.importers.jsonl import as_str, json_lines
from ci_guard.importers.model import ImportedCall, ImportedUsage
from ci_guard.pricing.normalize import anthropic_tier, anthropic_web_searches, from_anthropic
from ci_guard.pricing.usage import Usage


def parse(text: str, path: str, default_model: str | None = None) -> ImportedUsage:
    messages = _messages(text, path)
    result = next((m for m in reversed(messages) if m.get("type") == "result"), None)
    if result is None:
        raise InvalidInputError("no usage to import", [Problem(
            'expected a Claude Code result object ("type": "result"); run claude with '
            "--output-format json or stream-json", path, 1, 1)])
    model = default_model or _init_model(messages)
    imported = ImportedUsage(
        source="claude-code-json", path=path, turns=_int(result.get("num_turns")),
        session_id=result.get("session_id"), reported_cost_usd=_decimal(result.get("total_cost_usd")),
        runtime_s=(_int(result.get("duration_ms")) or 0) / 1000 or None,
        is_error=bool(result.get("is_error")), tool_calls=_tool_uses(messages),
    )
    imported.calls = _model_calls(result.get("modelUsage"), model, result.get("usage"))
    if len(imported.calls) > 1 or (imported.turns or 0) > 1:
        imported.calls = [replace(c, is_sum=True) for c in imported.calls]
    if not imported.calls:
        raise InvalidInputError("no usage to import", [Problem(
            "the result has neither modelUsage nor usage", path, None, None, "usage")])
    return imported


def _messages(text: str, path: str) -> list[Mapping[str, Any]]:
    stripped = text.strip()
    if not stripped:
        raise InvalidInputError("no usage to import", [Problem("the file is empty", path, 1, 1)])
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError:
        return _jsonl(stripped, path)
    if isinstance(data, list):
        return [m for m in data if isinstance(m, Mapping)]
    if isinstance(data, Mapping):
        return [data]
    raise InvalidInputError("no usage to import", [Problem("expected a JSON object or array", path, 1, 1)])


def _jsonl(text: str, path: str) -> list[Mapping[str, Any]]:
    return [value for _, value in json_lines(text, path, "invalid Claude Code output")]


def _model_calls(model_usage: Any, model: str | None, usage: Any) -> list[ImportedCall]:
    main = from_anthropic(usage) if isinstance(usage, Mapping) else Usage()
    geo = as_str(usage.get("inference_geo")) if isinstance(usage, Mapping) else None
    tier = anthropic_tier(usage) if isinstance(usage, Mapping) else None
    if isinstance(model_usage, Mapping) and model_usage:
        entries = {name: _camel_usage(u) for name, u in model_usage.items() if isinstance(u, Mapping)}
        owner = _main_loop_model(entries, model, main)
        calls = []
        for name, u in model_usage.items():
            if not isinstance(u, Mapping):
                continue
            tokens = entries[name]
            if name == owner and main.cache_write_1h_tokens:
                # modelUsage does not split cache writes by TTL; the result's usage (the main loop,
                # this model's calls) does: its 1-hour writes are billed at the 1-hour rate
                tokens = replace(tokens, cache_write_1h_tokens=min(main.cache_write_1h_tokens,
                                                                   tokens.cache_write_tokens))
            # the result's usage (and its speed) is the main loop's: side calls (Haiku) are not fast mode;
            # when the main loop's model is unknown, every entry keeps it (never under-counted)
            own_tier = tier if owner in (None, name) or tier != "fast" else as_str(usage.get("service_tier"))
            calls.append(ImportedCall(model=name, usage=tokens, vendor_cost_usd=_decimal(u.get("costUSD")),
                                      provider="anthropic", web_searches=anthropic_web_searches(u),
                                      inference_geo=geo, service_tier=own_tier))
        return calls
    if isinstance(usage, Mapping):
        return [ImportedCall(model=model, usage=main, provider="anthropic",
                             web_searches=anthropic_web_searches(usage), inference_geo=geo, service_tier=tier)]
    return []


def _main_loop_model(entries: Mapping[str, Usage], model: str | None, main: Usage) -> str | None:
    """The modelUsage entry the result's ``usage`` (the main loop) belongs to: the init model, else
    the only entry with at least as many cache writes."""
    if model in entries:
        return model
    fits = [name for name, u in entries.items() if u.cache_write_tokens >= main.cache_write_tokens]
    return fits[0] if len(fits) == 1 else None


def _camel_usage(u: Mapping[str, Any]) -> Usage:
    # modelUsage spells the Messages API fields in camelCase; the meaning is the same.
    return from_anthropic({
        "input_tokens": u.get("inputTokens"), "output_tokens": u.get("outputTokens"),
        "cache_read_input_tokens": u.get("cacheReadInputTokens"),
        "cache_creation_input_tokens": u.get("cacheCreationInputTokens"),
    })


def _init_model(messages: list[Mapping[str, Any]]) -> str | None:
    for m in messages:
        if m.get("type") == "system" and m.get("subtype") == "init" and m.get("model"):
            return str(m["model"])
    return None


def _tool_uses(messages: list[Mapping[str, Any]]) -> int:
    count = 0
    for m in messages:
        content = (m.get("message") or {}).get("content") if m.get("type") == "assistant" else None
        if isinstance(content, list):
            count += sum(1 for block in content if isinstance(block, Mapping) and block.get("type") == "tool_use")
    return count


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        # via str: a JSON float such as 0.0123 must not become 0.01229999...
        return Decimal(str(value))
    except InvalidOperation:
        return None
