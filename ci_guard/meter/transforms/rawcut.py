"""Pruning a message on its JSON bytes: the oversized tool results are cut without being decoded.

On a conversation the proxy has never seen (a run that resumes one, or a history the agent
rewrote), every oversized result is cut in one call. Decoding each (msgspec), cutting it
(:func:`~ci_guard.meter.transforms.prune.cut`, whose line count alone reads the whole result)
and writing the message again costs ~40 us per 700-line test log, ~1.6 ms for the 39 results
of a megabyte request. Here the message is decoded as a *skeleton* -- each long string value of a
``content``, ``text`` or ``output`` member (the only members a tool result's text is in:
toolresults.py) replaced by a short placeholder -- so the tool-result logic of toolresults.py runs
unchanged on a few hundred bytes; each result that must be cut is cut by ``_jsoncut.cut`` (C, one
pass over its bytes: the same cut as ``prune.cut``, in characters), and the message
is written as the agent's bytes with the cut literals spliced in.

The bytes are the Python path's exactly (``msgspec.json.encode`` of the pruned message): the raw
path is taken only when the message is written as msgspec writes it (the skeleton re-encodes to
itself, and every long literal uses only msgspec's escapes); any other message is left to the
Python path. Which path cuts a message therefore never changes what goes upstream, and the cut
stays stable across turns (tests/meter/test_rawcut.py compares the two on generated messages).

``_jsoncut`` is compiled at install time and optional (setup.py): where it is missing,
:data:`AVAILABLE` is False and the Python path does all the cutting.
"""

from __future__ import annotations

import secrets
from typing import Any, NamedTuple

import msgspec

from ci_guard.meter.transforms.prune import marker
from ci_guard.policy.models import PruneSpec

try:
    from ci_guard.meter.transforms import _jsoncut
except ImportError:  # not compiled (no C compiler where the package was installed)
    _jsoncut = None  # type: ignore[assignment]

AVAILABLE = _jsoncut is not None

# The members a tool result's text is the value of, in each wire format (toolresults.py: Messages
# and Chat ``content`` strings, ``text`` of content parts, Responses ``output`` strings), written as
# msgspec writes keys. A long value of any other member stays in the skeleton, decoded.
TEXT_KEYS = (b'"content"', b'"text"', b'"output"')

# Placeholders hold a per-process secret: an agent cannot write a short string that reads as one.
_SECRET = "\x00ci-guard:" + secrets.token_hex(8) + ":"
_PLACEHOLDER = msgspec.json.encode(_SECRET)[:-1]  # as JSON, without its closing quote: the C part adds the number


class Skeleton(NamedTuple):
    """A message decoded with its long text values replaced by placeholders."""

    value: Any  # the decoded message, placeholders in place of the long texts
    literals: list[tuple[int, int]]  # (start, end) of the literal each placeholder stands for, quotes included
    floats: bool  # the message holds a float (splice._has_float)

    def span(self, text: Any) -> tuple[int, int] | None:
        """The literal ``text`` stands for, if it is one of this skeleton's placeholders."""
        if isinstance(text, str) and text.startswith(_SECRET):
            number = text[len(_SECRET):]
            if number.isascii() and number.isdigit() and int(number) < len(self.literals):
                return self.literals[int(number)]
        return None


class _Float(Exception):
    pass


def _no_float(text: str) -> float:
    raise _Float


# a skeleton holds a float rarely: one decoder that stops at the first, instead of a walk over each
_DECODER = msgspec.json.Decoder(float_hook=_no_float)


def skeleton(data: memoryview, min_len: int) -> Skeleton | None:
    """The skeleton of the message ``data``, replacing literals longer than ``min_len`` bytes; None
    when it has none, or when it is not written as msgspec writes it (the Python path decides)."""
    if _jsoncut is None:
        return None
    found = _jsoncut.skeleton(data, min_len, TEXT_KEYS, _PLACEHOLDER)
    if found is None:
        return None
    raw, literals = found
    floats = False
    try:
        try:
            value = _DECODER.decode(raw)
        except _Float:
            value, floats = msgspec.json.decode(raw), True
        if msgspec.json.encode(value) != raw:
            return None  # whitespace, a key twice, another escape, a number written another way
    except (msgspec.DecodeError, TypeError, ValueError, OverflowError):
        return None
    return Skeleton(value, literals, floats)


def cut(data: memoryview, span: tuple[int, int], spec: PruneSpec) -> tuple[int, int, bytes, int, int] | None:
    """``prune.cut`` of the literal at ``span``: (the byte offsets where the kept head ends and the
    kept tail starts, what goes between them, the text's characters before and after), or None
    when it is not cut. Raises ValueError when the literal is not written as msgspec writes it
    (the caller leaves the message to the Python path)."""
    assert _jsoncut is not None
    found = _jsoncut.cut(data, span[0], span[1], spec.max_tokens, spec.keep.head_lines, spec.keep.tail_lines)
    if found is None:
        return None
    head_byte, cut_byte, lines, removed, sep, chars, head_chars, tail_chars = found
    note = marker(lines, removed, spec.max_tokens)
    new_chars = head_chars + sep + len(note) + 1 + tail_chars
    if new_chars >= chars:
        return None
    # the marker is printable ASCII without quotes or backslashes: its JSON is itself
    return head_byte, cut_byte, b"%s%s\\n" % (b"\\n" if sep else b"", note.encode()), chars, new_chars


def canonical(data: memoryview, span: tuple[int, int]) -> bool:
    """Whether the literal at ``span`` is written as msgspec writes the string it holds."""
    assert _jsoncut is not None
    return bool(_jsoncut.canonical(data, span[0], span[1]))
