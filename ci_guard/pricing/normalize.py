"""Convert each provider's usage object to :class:`Usage` before pricing.

The providers disagree on what "input" means, and every gateway bug listed in the notes about
double-counted or free cache tokens comes from mixing the conventions up:

* Anthropic: ``input_tokens`` already *excludes* cache reads and writes; writes are split by TTL
  in ``cache_creation`` (absent: treat all as 5-minute).
* OpenAI Chat / Responses: ``prompt_tokens`` / ``input_tokens`` *include* ``cached_tokens`` (and
  ``cache_write_tokens``, reported from GPT-5.6 on), so fresh input is the remainder.
* Gemini: ``promptTokenCount`` includes ``cachedContentTokenCount``; tool-use prompt tokens are
  billed as input; thoughts are billed as output but reported apart from ``candidatesTokenCount``.

Reasoning tokens are part of billed output everywhere; ``reasoning_tokens`` only says how much.
Missing or null fields count as zero; a negative remainder (inconsistent provider numbers) is
clamped to zero rather than producing a negative cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ci_guard.pricing.usage import Usage


def _n(obj: Mapping[str, Any] | None, *keys: str) -> int:
    """The first present integer among ``keys`` (snake_case and camelCase spellings), else 0."""
    if not isinstance(obj, Mapping):
        return 0
    for key in keys:
        value = obj.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            return max(0, int(value))
    return 0


def _sub(obj: Mapping[str, Any] | None, key: str) -> Mapping[str, Any] | None:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return value if isinstance(value, Mapping) else None


def anthropic_web_searches(usage: Mapping[str, Any] | None) -> int:
    """``usage.server_tool_use.web_search_requests`` (the API's usage), or ``webSearchRequests`` (Claude
    Code's per-model usage): searches are billed per request, not per token."""
    return _n(_sub(usage, "server_tool_use"), "web_search_requests") or _n(usage, "webSearchRequests")


def anthropic_tier(usage: Mapping[str, Any] | None) -> str | None:
    """The tier an Anthropic call is priced on: ``fast`` when ``usage.speed`` says fast mode served it
    (how the proxy records it), else ``usage.service_tier`` (``batch`` for Message Batches results)."""
    if not isinstance(usage, Mapping):
        return None
    for value in (usage.get("speed") == "fast" and "fast", usage.get("service_tier")):
        if isinstance(value, str) and value:
            return value
    return None


def from_anthropic(usage: Mapping[str, Any] | None) -> Usage:
    """Messages API ``usage`` (also the merged ``message_start`` + ``message_delta`` usage)."""
    writes = _n(usage, "cache_creation_input_tokens")
    split = _sub(usage, "cache_creation")
    write_1h = _n(split, "ephemeral_1h_input_tokens")
    if split is not None:
        # trust the breakdown when the total is missing or smaller than its parts
        writes = max(writes, _n(split, "ephemeral_5m_input_tokens") + write_1h)
    output = _n(usage, "output_tokens")
    thinking = _n(_sub(usage, "output_tokens_details"), "thinking_tokens")
    return Usage(
        input_tokens=_n(usage, "input_tokens"),
        cache_write_tokens=writes,
        cache_write_1h_tokens=min(write_1h, writes),
        cache_read_tokens=_n(usage, "cache_read_input_tokens"),
        output_tokens=output,
        reasoning_tokens=min(thinking, output),
    )


def _openai(total_in: int, in_details: Mapping[str, Any] | None, output: int,
            out_details: Mapping[str, Any] | None) -> Usage:
    cached = min(_n(in_details, "cached_tokens"), total_in)
    written = min(_n(in_details, "cache_write_tokens"), total_in - cached)
    return Usage(
        input_tokens=total_in - cached - written,
        cache_write_tokens=written,
        cache_read_tokens=cached,
        output_tokens=output,
        reasoning_tokens=min(_n(out_details, "reasoning_tokens"), output),
    )


def from_openai_chat(usage: Mapping[str, Any] | None) -> Usage:
    """Chat Completions ``usage`` (``prompt_tokens`` includes cached and written tokens)."""
    return _openai(_n(usage, "prompt_tokens"), _sub(usage, "prompt_tokens_details"),
                   _n(usage, "completion_tokens"), _sub(usage, "completion_tokens_details"))


def from_openai_responses(usage: Mapping[str, Any] | None) -> Usage:
    """Responses API ``usage`` (``input_tokens`` includes cached and written tokens)."""
    return _openai(_n(usage, "input_tokens"), _sub(usage, "input_tokens_details"),
                   _n(usage, "output_tokens"), _sub(usage, "output_tokens_details"))


def from_gemini(usage_metadata: Mapping[str, Any] | None) -> Usage:
    """``usageMetadata`` of generateContent (camelCase, or the SDKs' snake_case)."""
    md = usage_metadata
    prompt = _n(md, "promptTokenCount", "prompt_token_count")
    prompt += _n(md, "toolUsePromptTokenCount", "tool_use_prompt_token_count")
    cached = min(_n(md, "cachedContentTokenCount", "cached_content_token_count"), prompt)
    thoughts = _n(md, "thoughtsTokenCount", "thoughts_token_count")
    return Usage(
        input_tokens=prompt - cached,
        cache_read_tokens=cached,
        output_tokens=_n(md, "candidatesTokenCount", "candidates_token_count") + thoughts,
        reasoning_tokens=thoughts,
    )
