"""A request's JSON body, read only as far as metering needs.

A Claude Code request late in a session is 0.3-1 MB and more of JSON, almost all of it the
conversation (``messages``), which metering only measures and hashes. Building that tree as Python
objects (``json.loads``) and serialising it again for the estimate cost ~15 ms of the event loop's
CPU per megabyte, held several megabytes of objects per request in flight, and delayed every other
request of the proxy behind it.

:func:`parse_request` therefore splits a large body at its top level only (msgspec, ~0.3 ms per MB,
which still validates the whole document): each top-level value stays a compact slice of the
agent's own bytes and is decoded (with :func:`json.loads`, exactly as before) only when something
reads it. Small values (model, max_tokens, stream, thinking ...) are read as usual; the big parts
are measured and hashed as the bytes they are. Everything falls back to the plain ``json.loads``
path, which stays the reference behaviour, whenever the two could disagree:

* bodies below :data:`LAZY_MIN_BYTES` (decoding them whole costs well under a millisecond);
* anything msgspec refuses (``NaN``, lone surrogates, UTF-16 bodies, ...: ``json.loads`` decides);
* any top-level key that appears twice, or is written with escapes (the split cannot see the
  duplicates, so the strict path judges them);
* (whitespace between the top-level values is dropped first, with msgspec's formatter; an object
  compact at the top level but not inside a value keeps that whitespace, which only adds to the
  estimate);
* bytes that are not valid UTF-8.

The estimate on the lazy path counts the compact bytes of each part as the agent sent them. For
compact JSON without ``\\u`` escapes that is byte for byte what ``json.dumps`` of the decoded part
gives (the reference estimate); an escape counts its six bytes where the reference counts the
character's UTF-8 (1-3), so the lazy estimate can only be higher. Numbers count as written: a
float in exponent form (``1e15``) counts its few bytes where Python would write ``1000000000000000.0``;
agents do not put such numbers in conversations, and the provider's own count, not this estimate,
is what the call is charged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

LAZY_MIN_BYTES = 64 * 1024

_MISSING = object()
_decoder: Any = None  # msgspec's top-level decoder, built with the first large body (not at start-up)


Loads = Callable[[bytes], Any]


class RequestBody(Mapping[str, Any]):
    """The top-level JSON object of a request, each value decoded when first read.

    Reads as a read-only mapping (``get``, ``in``, ``{**body}``), so adapters treat it like the
    dict they always had; a changed request is built with ``{**body, ...}`` or ``dict(body)``,
    which decodes every value exactly as ``json.loads`` of the whole body would have.
    """

    __slots__ = ("_parts", "_values")

    def __init__(self, parts: dict[str, bytes], values: dict[str, Any] | None = None) -> None:
        self._parts = parts
        self._values: dict[str, Any] = dict(values or {})  # values decoded up front (the small ones)

    def __getitem__(self, key: str) -> Any:
        value = self._values.get(key, _MISSING)
        if value is _MISSING:
            value = json.loads(self._parts[key])  # KeyError when absent, as a dict
            self._values[key] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    def __contains__(self, key: object) -> bool:
        return key in self._parts

    def raw(self, key: str) -> bytes | None:
        """The compact JSON bytes of a top-level value, as the agent sent them."""
        return self._parts.get(key)


def parse_request(raw: bytes, loads: Loads = json.loads) -> Any:
    """The request's JSON (a :class:`RequestBody` for a large object); raises what ``loads`` raises.

    Small or unusual bodies are decoded whole by ``loads`` (the reference behaviour, also for its
    error messages); the result need not be an object (the caller checks). For a large object,
    ``loads`` decodes each top-level value below :data:`LAZY_MIN_BYTES` at once (the metering
    fields: model, caps, stream, thinking ...); the large ones are decoded with ``json.loads``
    only if something reads them.
    """
    if len(raw) >= LAZY_MIN_BYTES:
        parts = _split(raw)
        if parts is not None:
            return RequestBody(parts, {k: loads(v) for k, v in parts.items() if len(v) < LAZY_MIN_BYTES})
    return loads(raw)


def _split(raw: bytes) -> dict[str, bytes] | None:
    """The top-level values as compact byte strings, or None when the strict path must decide."""
    global _decoder
    import msgspec

    if _decoder is None:
        _decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
    try:
        if not raw.isascii():
            raw.decode("utf-8")  # msgspec does not check the bytes of strings it skips
        parts = _parts(raw)  # validates the whole document
        if parts is None:  # whitespace, or a key twice: without whitespace, only a repeated key
            parts = _parts(msgspec.json.format(raw, indent=-1))
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError):
        return None
    return parts


def _parts(data: bytes) -> dict[str, bytes] | None:
    if not data.startswith(b"{"):
        return None
    parts = {key: bytes(value) for key, value in _decoder.decode(data).items()}
    # {"k":v,...}: if the parts and their keys do not add up to the whole, there was whitespace
    # between them, or a key was repeated (the split kept only its last value) or written with
    # escapes. Agents send compact JSON, so this is almost always exact at the first try.
    size = 2 + sum(len(json.dumps(key, ensure_ascii=False).encode()) + 1 + len(value)
                   for key, value in parts.items()) + max(0, len(parts) - 1)
    return parts if size == len(data) else None


__all__ = ["LAZY_MIN_BYTES", "RequestBody", "parse_request"]
