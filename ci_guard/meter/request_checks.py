"""Reject agent requests the meter could read differently from the upstream (issue 12 #10, #14).

The proxy meters what it parses; an upstream bills what *it* parses. Where the two could disagree,
the request is refused with a 400 before anything is reserved or forwarded:

* **Duplicate keys** anywhere in the body: JSON leaves them undefined; Python keeps the last one,
  some servers keep the first (``max_tokens`` twice: the meter sees 50, the upstream honours 50000).
* **Output caps and fan-out** (``max_tokens``, ``max_completion_tokens``, ``max_output_tokens``,
  ``thinking.budget_tokens``, ``n``) that are not plain integers in range: negative, float, bool,
  string or a 300-digit number.
* **model** that is not a string; ``stream`` that is not a boolean.
* Bodies that are not a JSON object, or nested deeper than Python's recursion limit (~1000; the
  caller also turns a ``RecursionError`` while planning into a 400: no walk over a multi-MB body
  just to measure its depth).

Large bodies are split at their top level only (providers/body.py): see :func:`parse_body` for what
that keeps (tests/meter/test_request_checks.py, tests/meter/test_providers_body.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ci_guard.meter.providers.body import RequestBody, Split, parse_request

MAX_OUTPUT_TOKENS = 10_000_000  # above any model's output limit; larger is a typo or an attack
MAX_CHOICES = 128  # OpenAI's documented maximum for Chat Completions `n`
OUTPUT_CAP_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


class BadRequest(ValueError):
    """The body cannot be metered safely; the message says why (sent back with a 400)."""


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _loads(raw: bytes) -> Any:
    return json.loads(raw, object_pairs_hook=_no_duplicates)


def parse_body(raw: bytes, split: Split | None = None) -> Mapping[str, Any]:
    """The request body as a JSON object, or :class:`BadRequest`.

    A body of :data:`~ci_guard.meter.providers.body.LAZY_MIN_BYTES` and more is split at its top
    level only (see providers/body.py): a repeated top-level key sends it down the whole parse
    here, and every top-level value but the large ones (the conversation) is decoded with the
    same duplicate check. Inside those large values a repeated key is not looked for: the meter
    counts their bytes (both copies of a repeated key, so the estimate can only be higher) and
    reads no metering field from them. ``split``: see providers/body.py parse_request.
    """
    try:
        body = parse_request(raw, _loads, split)
    except _DuplicateKey as exc:
        raise BadRequest(f"duplicate key {str(exc)[:100]!r} in the JSON body (ambiguous: the meter and "
                         "the provider could read different values)") from None
    except RecursionError:
        raise BadRequest("the JSON body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # includes ints longer than Python's digit limit
        raise BadRequest(f"invalid JSON body: {str(exc)[:200]}") from None
    if not isinstance(body, dict | RequestBody):
        raise BadRequest("the request body is not a JSON object")
    check_fields(body)
    return body


def _plain_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_fields(body: Mapping[str, Any]) -> None:
    """The metering-relevant fields have the types and ranges the meter relies on."""
    for key in OUTPUT_CAP_KEYS:
        if key in body and body[key] is not None:
            _check_int(key, body[key], 1, MAX_OUTPUT_TOKENS)
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("budget_tokens") is not None:
        _check_int("thinking.budget_tokens", thinking["budget_tokens"], 0, MAX_OUTPUT_TOKENS)
    if "n" in body and body["n"] is not None:
        _check_int("n", body["n"], 1, MAX_CHOICES)
    if "model" in body and not isinstance(body["model"], str):
        raise BadRequest(f"model must be a string, not {type(body['model']).__name__}")
    if "stream" in body and body["stream"] is not None and not isinstance(body["stream"], bool):
        raise BadRequest(f"stream must be true or false, not {type(body['stream']).__name__}")


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if not _plain_int(value):
        raise BadRequest(f"{name} must be an integer, not {type(value).__name__} {str(value)[:40]}")
    if not low <= value <= high:
        shown = str(value) if len(str(value)) <= 20 else f"a {len(str(value))}-digit number"
        raise BadRequest(f"{name} must be between {low} and {high}, not {shown}")


# Hosted (server-side) tools billed with a fee of their own that ci-guard does not meter: OpenAI's
# code interpreter (per container), file search (per call, plus storage), image generation (image
# tokens at the image model's rates) and Anthropic's code execution (per container hour). Web search
# is metered (pricing.fees); web fetch, MCP and client-side tools (bash, text editor, computer use)
# cost tokens only. Under enforcement.strict a request offering one of these is refused.
UNMETERED_FEE_TOOLS = ("code_interpreter", "file_search", "image_generation", "code_execution")


def unmetered_fee_tools(tools: Any) -> list[str]:
    """The tool types in ``tools`` whose fees ci-guard does not meter (see UNMETERED_FEE_TOOLS)."""
    if not isinstance(tools, list):
        return []
    found = []
    for tool in tools:
        kind = tool.get("type") if isinstance(tool, dict) else None
        if isinstance(kind, str) and kind.startswith(UNMETERED_FEE_TOOLS) and kind not in found:
            found.append(kind)
    return found


__all__ = ["MAX_CHOICES", "MAX_OUTPUT_TOKENS", "UNMETERED_FEE_TOOLS", "BadRequest", "check_fields", "parse_body",
           "unmetered_fee_tools"]
