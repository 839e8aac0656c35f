"""Conservative input-token estimates from a request's compact JSON (about 4 bytes per token).

Shared by the proxy (caps before a call) and the simulator (served counts); no I/O, no meter code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from ci_guard.tokens.media import (
    OpenAIImage,
    Unmeasured,
    UnmeasuredOpenAIImage,
    json_size,
    may_carry_media,
    media_payloads,
)

# One encoder for every call: json.dumps with options builds a new JSONEncoder each time.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode(value: Any) -> bytes:
    # Compact, as the agent's own JSON usually is. Key order is the agent's: a retry storm repeats
    # the very same request, so sorting keys (a second, slower pass) would find nothing more.
    # surrogatepass: a lone surrogate (valid as a JSON escape) must not crash the meter.
    return _COMPACT.encode(value).encode("utf-8", "surrogatepass")


def estimate_tokens(text_bytes: int) -> int:
    """A conservative token estimate from a byte count (about 4 bytes per token in English and code).

    Used only before a call, for the context and cost caps; after the call the provider's own
    count is what gets recorded.
    """
    return (text_bytes + 3) // 4


def estimate_input_tokens(*parts: Any) -> int:
    """:func:`estimate_tokens` over the compact JSON of the request's input parts.

    Adapters pass what the model reads (system, messages / input, tools); absent parts are None
    and cost nothing. Inline base64 images and documents are not text: their payloads leave the
    byte count and are counted per item instead (see :mod:`ci_guard.tokens.media`). The
    simulator serves counts from the same function, so the proxy's estimate and the served count
    of a request agree there.
    """
    return estimate_encoded((part, encode(part)) for part in parts if part is not None)[0]


class LazyPart:
    """A part of a request body (a mapping such as ``RequestBody``), decoded only if the media walk needs it."""

    __slots__ = ("body", "key")

    def __init__(self, body: Mapping[str, Any], key: str) -> None:
        self.body, self.key = body, key

    def value(self) -> Any:
        return self.body[self.key]


class Estimate(NamedTuple):
    tokens: int  # estimated input tokens (model-independent)
    unmeasured: int  # media items by URL or file id, counted at their maximum
    openai_images_inline: int = 0  # OpenAI images: see media.openai_image_extra_tokens
    openai_images_by_reference: int = 0


def estimate_encoded(parts: Iterable[tuple[Any, bytes | memoryview]]) -> Estimate:
    """The input estimate of a request's parts, and the media items that make it up."""
    size = 0
    media_tokens = 0
    unmeasured = inline_images = referenced_images = 0
    for part, data in parts:
        size += len(data)
        if may_carry_media(data):
            for payload, tokens in media_payloads(part.value() if isinstance(part, LazyPart) else part):
                size -= json_size(payload)
                media_tokens += tokens
                unmeasured += isinstance(payload, Unmeasured)
                inline_images += isinstance(payload, OpenAIImage)
                referenced_images += isinstance(payload, UnmeasuredOpenAIImage)
    return Estimate(estimate_tokens(size) + media_tokens, unmeasured, inline_images, referenced_images)
