"""A request's JSON body, read only as far as metering needs.

A Claude Code request late in a session is 0.3-1 MB and more of JSON, almost all of it the
conversation (``messages``), which metering only measures and hashes. Building that tree as Python
objects (``json.loads``) and serialising it again for the estimate cost ~15 ms of the event loop's
CPU per megabyte, held several megabytes of objects per request in flight, and delayed every other
request of the proxy behind it.

:func:`parse_request` therefore splits a large body at its top level only, still validating the
whole document (its UTF-8 too): in one C pass where ci-guard was installed compiled (``_bytescan``,
~0.2 ms per MB), else with msgspec (~0.5 ms per MB with the UTF-8 check). Each top-level value stays
a compact slice of the agent's own bytes and is decoded (with :func:`json.loads`, exactly as before)
only when something reads it. Small values (model, max_tokens, stream, thinking ...) are read as
usual; the big parts are measured and hashed as the bytes they are. Everything falls back to the plain ``json.loads``
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

import codecs
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

LAZY_MIN_BYTES = 64 * 1024
_UTF8_SLICE = 16 * 1024  # its text (<= 64 kB) stays in the CPU cache and below glibc's mmap threshold

_MISSING = object()
_decoder: Any = None  # msgspec's top-level decoder, built with the first large body (not at start-up)

try:  # the compiled scans (setup.py, optional): the same answers as msgspec and the decode below, faster
    from ci_guard._bytescan import split_object as _split_object
    from ci_guard._bytescan import utf8_valid as _utf8_valid
except ImportError:
    _split_object = _utf8_valid = None
SCANS_COMPILED = _split_object is not None


Loads = Callable[[bytes], Any]
Part = bytes | memoryview  # a top-level value's JSON: a view into the request's bytes, or bytes
# A part may also be a list of bytes-like pieces to join (a conversation spliced without decoding
# it whole, transforms/splice.py): written upstream as is, joined only if something reads it.


class RequestBody(Mapping[str, Any]):
    """The top-level JSON object of a request, each value decoded when first read.

    Reads as a read-only mapping (``get``, ``in``, ``{**body}``), so adapters treat it like the
    dict they always had. A changed request is built with :func:`updated` (a new RequestBody that
    shares every untouched part's bytes: :meth:`encode` splices the changed values in between
    them, so a megabyte conversation is neither decoded nor re-encoded to change ``model``);
    ``{**body, ...}`` or ``dict(body)`` also work, decoding every value exactly as ``json.loads``
    of the whole body would have.
    """

    __slots__ = ("_encode_value", "_hints", "_parts", "_values")

    def __init__(self, parts: Mapping[str, Part | None], values: dict[str, Any] | None = None,
                 encode_value: Callable[[Any], Any] | None = None,
                 hints: Mapping[str, tuple[Any, Any]] | None = None) -> None:
        self._parts = dict(parts)  # None: a value set by :meth:`updated`, encoded by :meth:`encode`
        self._values: dict[str, Any] = dict(values or {})  # values decoded up front (the small ones)
        # How a changed value is written (transforms/splice.py passes one that reuses the agent's
        # bytes for every part of the value it did not change, as a list of bytes-like pieces);
        # compact json.dumps by default.
        self._encode_value = encode_value
        self._hints = hints or {}  # key -> (its part, what the split learnt about it): see hint()

    def __getitem__(self, key: str) -> Any:
        value = self._values.get(key, _MISSING)
        if value is _MISSING:
            value = json.loads(_joined(self._parts[key]))  # KeyError when absent, as a dict
            self._values[key] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    def __contains__(self, key: object) -> bool:
        return key in self._parts

    def raw(self, key: str) -> Part | None:
        """The compact JSON bytes of a top-level value, as the agent sent them (None: absent, or
        a value set by :meth:`updated`): a view into the request's own bytes, not a copy."""
        part = self._parts.get(key)
        return b"".join(part) if isinstance(part, list) else part

    def hint(self, key: str) -> Any:
        """What the split that made this body learnt about the part ``key`` (transforms/splice.py:
        where its messages are), or None; only while the part is the agent's bytes it was learnt from."""
        hint = self._hints.get(key)
        return hint[1] if hint is not None and self._parts.get(key) is hint[0] else None

    def updated(self, changes: Mapping[str, Any] | None = None, drop: Iterable[str] = ()) -> RequestBody:
        """A new body with ``changes`` set and ``drop`` removed, like ``{**body, **changes}``: a key
        already present keeps its place, a new one goes last. Nothing is decoded or encoded here."""
        parts, values = dict(self._parts), dict(self._values)
        for key in drop:
            parts.pop(key, None)
            values.pop(key, None)
        for key, value in (changes or {}).items():
            parts[key] = None
            values[key] = value
        return RequestBody(parts, values, self._encode_value, self._hints)

    def with_pieces(self, key: str, pieces: list[Any]) -> RequestBody:
        """The same body with the value of ``key`` given as JSON pieces to join (not decoded)."""
        parts, values = dict(self._parts), dict(self._values)
        parts[key] = pieces  # type: ignore[assignment]
        values.pop(key, None)
        return RequestBody(parts, values, self._encode_value, self._hints)

    def with_encoder(self, encode_value: Callable[[Any], Any], values: Mapping[str, Any]) -> RequestBody:
        """The same body with ``values`` already decoded and changed values written by ``encode_value``."""
        return RequestBody(self._parts, {**self._values, **values}, encode_value, self._hints)

    def encode(self) -> bytes:
        """The compact JSON of the body: the agent's bytes for every untouched part, the changed
        values encoded (semantically what ``json.dumps(dict(body))`` gives)."""
        return b"".join(self.pieces())

    def pieces(self) -> list[Any]:
        """:meth:`encode` as bytes-like pieces, not joined (the upstream write takes them as they are)."""
        encode_value = self._encode_value or dumps
        pieces: list[Any] = []
        for key, part in self._parts.items():
            pieces += (b",", _key(key), b":")
            value = part if part is not None else encode_value(self._values[key])
            if isinstance(value, list):  # pieces to join (a spliced value): joined once, here
                pieces += value
            else:
                pieces.append(value)
        if not pieces:
            return [b"{}"]
        pieces[0] = b"{"  # in place of the first comma
        pieces.append(b"}")
        return pieces


def _joined(part: Any) -> bytes:
    return b"".join(part) if isinstance(part, list) else bytes(part)


def dumps(value: Any) -> bytes:
    """Compact JSON, as the proxy writes every value it changes."""
    return json.dumps(value, separators=(",", ":")).encode()


def _key(key: str) -> bytes:
    return json.dumps(key, ensure_ascii=False).encode()


def updated(body: Mapping[str, Any], changes: Mapping[str, Any] | None = None, drop: Iterable[str] = ()) -> Any:
    """``{**body, **changes}`` without the keys in ``drop``; a :class:`RequestBody` stays one (its
    untouched parts are not decoded), so adapters and transforms change a request through this."""
    if isinstance(body, RequestBody):
        return body.updated(changes, drop)
    out = dict(body)
    for key in drop:
        out.pop(key, None)
    out.update(changes or {})
    return out


def encode_request(body: Mapping[str, Any]) -> bytes:
    """The bytes that go upstream for a changed request (see :meth:`RequestBody.encode`)."""
    if isinstance(body, RequestBody):
        return body.encode()
    return dumps(body)


def request_pieces(body: Mapping[str, Any]) -> list[Any]:
    """:func:`encode_request` as pieces for the upstream write: a megabyte request spliced from the
    agent's bytes is not joined into a new buffer first."""
    if isinstance(body, RequestBody):
        return body.pieces()
    return [dumps(body)]


Split = Callable[[bytes], tuple[dict[str, Part], dict[str, tuple[Any, Any]]] | None]


def parse_request(raw: bytes, loads: Loads = json.loads, split: Split | None = None) -> Any:
    """The request's JSON (a :class:`RequestBody` for a large object); raises what ``loads`` raises.

    Small or unusual bodies are decoded whole by ``loads`` (the reference behaviour, also for its
    error messages); the result need not be an object (the caller checks). For a large object,
    ``loads`` decodes each top-level value below :data:`LAZY_MIN_BYTES` at once (the metering
    fields: model, caps, stream, thinking ...); the large ones are decoded with ``json.loads``
    only if something reads them. ``split`` may split it instead, giving the same parts and hints
    about them (transforms/splice.py split_request); where it cannot, the plain split does.
    """
    if len(raw) >= LAZY_MIN_BYTES:
        found = split(raw) if split is not None else None
        parts, hints = found if found is not None else (_split(raw), None)
        if parts is not None:
            if isinstance(parts, _Checked):
                # the C split found no repeated key in any object and no number out of float
                # range: there msgspec's decoder gives what ``loads`` gives, 3x faster (_bytescan.c)
                import msgspec

                loads = msgspec.json.decode
            return RequestBody(parts, {k: loads(bytes(v)) for k, v in parts.items() if len(v) < LAZY_MIN_BYTES},
                               hints=hints)
    return loads(raw)


class _Checked(dict):  # type: ignore[type-arg]
    """Parts from the C split (see :func:`parse_request`)."""

    __slots__ = ()



def _split(raw: bytes) -> dict[str, Part] | None:
    """The top-level values as views of compact JSON, or None when the strict path must decide."""
    global _decoder
    if _split_object is not None:
        # One pass in C (_bytescan.c) that checks the UTF-8 and the whole document as msgspec
        # does, and finds the same parts (tests/meter/test_bytescan.py): ~0.2 ms per MB, against
        # ~0.5 ms for the check and msgspec's split, and without the GIL. It declines what it is
        # not sure of (whitespace at the top level, an escaped or repeated key, a surrogate
        # escape, ...), and msgspec decides those as before.
        members = _split_object(raw)
        if members is not None:
            view = memoryview(raw)
            return _Checked((str(view[ks:ke], "utf-8"), view[vs:ve]) for ks, ke, vs, ve in members)
    import msgspec

    if _decoder is None:
        _decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
    try:
        if not raw.isascii() and not is_utf8(raw):  # msgspec does not check the bytes of strings it skips
            return None
        parts = _parts(raw)  # validates the whole document
        if parts is None:  # whitespace, or a key twice: without whitespace, only a repeated key
            parts = _parts(msgspec.json.format(raw, indent=-1))
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError):
        return None
    return parts


def is_utf8(raw: bytes) -> bool:
    """Whether ``raw`` is UTF-8 as the strict decoder takes it (encoded surrogates are refused too)."""
    if _utf8_valid is not None:
        return _utf8_valid(raw)
    return _decodes(raw)


def _decodes(raw: bytes) -> bool:
    """The reference check, in Python: decoded a slice at a time and thrown away.

    The text of one slice stays in the CPU's cache, where decoding the whole body at once writes
    (and page-faults in) a string of up to 4x its size -- twice as slow. A character cut by a
    slice's end is left to the next slice.
    """
    view, size, start = memoryview(raw), len(raw), 0
    try:
        while start < size:
            end = start + _UTF8_SLICE
            start += codecs.utf_8_decode(view[start:end], "strict", end >= size)[1]
    except UnicodeDecodeError:
        return False
    return True


def _parts(data: bytes) -> dict[str, Part] | None:
    if not data.startswith(b"{"):
        return None
    # Views of the agent's bytes (msgspec's Raw points into them), not copies: a megabyte
    # conversation is not copied once more per request, nor held twice while it is in flight.
    parts = {key: memoryview(value) for key, value in _decoder.decode(data).items()}
    # {"k":v,...}: if the parts and their keys do not add up to the whole, there was whitespace
    # between them, or a key was repeated (the split kept only its last value) or written with
    # escapes. Agents send compact JSON, so this is almost always exact at the first try.
    size = 2 + sum(len(json.dumps(key, ensure_ascii=False).encode()) + 1 + len(value)
                   for key, value in parts.items()) + max(0, len(parts) - 1)
    return parts if size == len(data) else None


__all__ = ["LAZY_MIN_BYTES", "SCANS_COMPILED", "RequestBody", "Split", "dumps", "encode_request", "is_utf8",
           "parse_request", "request_pieces", "updated"]
