"""The interface of a wire-format adapter (one module per wire format).

An adapter knows one API's bytes: how to read a request, how to change it safely (model, output
cap, usage in streams), how to find usage and tool calls in a JSON body or an SSE stream, and how
to shape an error the agent's SDK understands. It does no I/O, so it is tested with recorded bytes.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import xxhash

from ci_guard.meter.providers.body import RequestBody
from ci_guard.pricing.rates import DISCOUNT_TIERS, normalize_tier
from ci_guard.pricing.usage import Usage
from ci_guard.tokens.estimate import LazyPart, estimate_encoded
from ci_guard.tokens.estimate import encode as _encode

# Re-exported: adapters, benches and tests read the estimate from here.
from ci_guard.tokens.estimate import estimate_input_tokens as estimate_input_tokens
from ci_guard.tokens.estimate import estimate_tokens as estimate_tokens


@dataclass
class RequestInfo:
    model: str | None
    stream: bool
    max_output_tokens: int | None  # max_tokens / max_completion_tokens / max_output_tokens
    estimated_input_tokens: int  # a conservative estimate of the input size, before the call
    fingerprint: str  # hash of the semantically relevant request (retry-storm detection)
    service_tier: str | None = None  # what the request asked for (OpenAI: auto, default, flex, priority)
    inference_geo: str | None = None  # where the request asked to run (Anthropic: "us" costs more)
    speed: str | None = None  # Anthropic fast mode: the request's ``speed`` ("fast" costs a multiple)
    # OpenAI's older web_search_preview tool is offered: its searches cost more on non-reasoning models
    web_search_preview: bool = False
    choices: int = 1  # completions generated per call (Chat `n`): the output cap applies to each
    unmeasured_media: int = 0  # images/documents by URL or file id (estimated at their documented maximum)
    # OpenAI images, inline and by reference: what one bills depends on the model (tokens/media.py),
    # added to the estimate once the model is final (the policy may rewrite it)
    openai_images: tuple[int, int] = (0, 0)
    # OpenAI GPT-5.6+: the minimum cache life of every cache breakpoint the request writes
    # (prompt_cache_options.ttl): "12h" writes cost 2.5x input, the default "30m" 1.25x
    cache_ttl: str | None = None


@dataclass
class CallResult:
    usage: Usage = field(default_factory=Usage)
    tool_calls: int = 0
    model_served: str | None = None
    complete: bool = False  # the provider signalled a normal end (message_stop, [DONE], response.completed)
    error: str | None = None  # an error the provider reported in the body or the stream (type: message)
    stop_reason: str | None = None
    web_searches: int = 0  # billed server-side web searches (a fee per search, on top of the tokens)
    service_tier: str | None = None  # the tier the provider says served the call
    inference_geo: str | None = None  # where the provider says the call ran (Anthropic usage.inference_geo)
    speed: str | None = None  # the speed the provider says served the call (Anthropic usage.speed: fast|standard)
    # Anthropic context editing: what the provider reports it cleared (context_management.applied_edits)
    cleared_tool_uses: int = 0
    cleared_input_tokens: int = 0
    cleared_thinking_turns: int = 0


class StreamMeter(ABC):
    """Reads an SSE stream on the side while the proxy forwards it chunk by chunk."""

    # True when :meth:`feed` always returns its chunk unchanged: the proxy may then forward a
    # chunk before metering it, so parsing never delays what the agent sees.
    forwards_unchanged: bool = False

    @abstractmethod
    def feed(self, chunk: bytes) -> bytes:
        """Take the next bytes from upstream; return the bytes to forward to the client now.

        Usually ``chunk`` itself; an adapter may hold back a partial event or drop an event the
        client did not ask for (the usage chunk of an injected ``include_usage``).
        """

    @abstractmethod
    def close(self) -> bytes:
        """Upstream ended: return whatever is still held back."""

    @abstractmethod
    def result(self) -> CallResult:
        """What was metered so far; valid at any time, also for a stream cut off midway."""


class WireAdapter(ABC):
    provider: str  # "anthropic" | "openai"
    endpoint: str  # "messages" | "chat.completions" | "responses"
    # The smallest output cap the API accepts; clamp_output never goes below it, so a caller whose
    # cost cap allows less than this must refuse the call instead of clamping it.
    min_output_tokens: int = 1

    @abstractmethod
    def inspect(self, body: dict[str, Any]) -> RequestInfo: ...

    @abstractmethod
    def prepare(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Make a request meterable; return (body, strip_usage_chunk).

        Chat Completions streams get ``stream_options.include_usage`` when the client did not ask
        for it, and then the extra usage chunk must be stripped from what the client sees.
        """

    @abstractmethod
    def set_model(self, body: dict[str, Any], model: str) -> dict[str, Any]: ...

    @abstractmethod
    def clamp_output(self, body: dict[str, Any], max_output_tokens: int) -> dict[str, Any]:
        """Lower the output cap to ``max_output_tokens``, keeping the request valid (thinking budgets)."""

    @abstractmethod
    def parse_response(self, body: bytes) -> CallResult: ...

    @abstractmethod
    def stream_meter(self, strip_usage_chunk: bool = False) -> StreamMeter: ...

    @abstractmethod
    def error_body(self, status: int, kind: str, message: str) -> bytes:
        """A provider-shaped JSON error body (``kind`` is ci-guard's cap name or error type)."""


def request_info(body: dict[str, Any], *, output_cap_keys: tuple[str, ...], input_keys: tuple[str, ...],
                 semantic_keys: tuple[str, ...]) -> RequestInfo:
    """What every adapter's ``inspect`` returns, from the keys of its wire format.

    ``output_cap_keys`` in order of preference (the first integer wins); ``input_keys`` are the
    parts of the request the model reads (a subset of ``semantic_keys``); ``semantic_keys`` decide
    whether two requests are "the same" for retry-storm detection (not metadata, stream flags or
    headers). Each part is serialised once and serves both the estimate and the fingerprint: on a
    Claude-Code-sized history that serialisation is most of the proxy's per-call CPU.
    """
    cap = next((v for v in (body.get(k) for k in output_cap_keys) if isinstance(v, int) and not isinstance(v, bool)),
               None)
    if isinstance(body, RequestBody):
        # A large body split at its top level: each part is already compact JSON bytes, so the
        # estimate and the fingerprint read them as they are (see providers/body.py).
        encoded = {k: data for k in semantic_keys if (data := body.raw(k)) is not None and data != b"null"}
        estimate = estimate_encoded((LazyPart(body, k), encoded[k]) for k in input_keys if k in encoded)
    else:
        encoded = {k: _encode(v) for k in semantic_keys if (v := body.get(k)) is not None}
        estimate = estimate_encoded((body[k], encoded[k]) for k in input_keys if k in encoded)
    return RequestInfo(
        model=body.get("model"),
        stream=bool(body.get("stream")),
        max_output_tokens=cap,
        estimated_input_tokens=estimate[0],
        unmeasured_media=estimate[1],
        openai_images=(estimate.openai_images_inline, estimate.openai_images_by_reference),
        fingerprint=_fingerprint_encoded(semantic_keys, encoded),
        service_tier=as_str(body.get("service_tier")),
        inference_geo=as_str(body.get("inference_geo")),
        web_search_preview=_offers_search_preview(body.get("tools")),
        cache_ttl=as_str(as_dict(body.get("prompt_cache_options")).get("ttl")),
    )


def billed_tier(info: RequestInfo, result: CallResult | None = None) -> str | None:
    """The service tier a call is priced on (the ledger's ``service_tier``), before the call
    (``result`` None: its worst case) or after it.

    What the provider reports wins over what the request asked for: a fast-mode request served at
    standard speed is billed standard, and a flex request served on the default tier is billed
    default. Anthropic fast mode is reported as ``usage.speed`` next to ``usage.service_tier``, and
    is recorded as the tier ``fast``. Without a report a request's ``speed: fast`` counts (never
    under-count); its ``flex`` or ``batch`` does not, because those make a call cheaper.
    """
    speed = (result.speed if result is not None else None) or info.speed
    if speed == "fast":
        return "fast"
    reported = normalize_tier(result.service_tier) if result is not None else None
    if reported:
        return reported
    asked = normalize_tier(info.service_tier)
    return None if asked in DISCOUNT_TIERS else asked


def _offers_search_preview(tools: Any) -> bool:
    if not isinstance(tools, list):
        return False
    return any(isinstance(t, dict) and str(t.get("type", "")).startswith("web_search_preview") for t in tools)


def fingerprint(obj: Any) -> str:
    """A stable hash of a JSON-able object (sorted keys), for identical-request detection."""
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def _fingerprint_encoded(keys: tuple[str, ...], encoded: Mapping[str, bytes | memoryview]) -> str:
    # XXH3-128, not a cryptographic hash: a run only compares its own requests, and nothing is
    # gained by forging a collision (a false match only counts towards a retry cap). A 1 MB
    # history is hashed on every call: ~0.02 ms against SHA-1's ~0.5 ms. Parts are fed one by one.
    digest = xxhash.xxh3_128()
    for key in keys:
        digest.update(b"%s=" % key.encode())
        digest.update(encoded.get(key, b"null"))
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def load_json_body(body: bytes) -> tuple[dict[str, Any], str | None]:
    """(the JSON object, None) or ({}, error text) for a provider's response body."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        return {}, f"invalid_response: the body is not JSON ({exc})"
    if not isinstance(data, dict):
        return {}, "invalid_response: the body is not a JSON object"
    return data, None


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else ``{}``: providers' bodies are read, never trusted."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` when it is a JSON array, else ``[]``."""
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    """``value`` when it is a non-empty string, else None (model names, stop reasons)."""
    return value if isinstance(value, str) and value else None


def error_text(error: Any) -> str:
    """``type: message`` from an error object (Anthropic's or OpenAI's shape), for CallResult.error."""
    if not isinstance(error, dict):
        return f"error: {error}" if error else "error: unknown error"
    kind = error.get("type") or error.get("code") or "error"
    return f"{kind}: {error.get('message') or ''}".rstrip()
