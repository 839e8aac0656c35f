"""Changing a large request by splicing: the agent's bytes, with only what changed written anew.

A late Claude Code request is a megabyte of conversation. Decoding it with ``json.loads`` and
writing it all again with ``json.dumps`` to cut a few tool results costs several milliseconds per
call. :func:`prepare` instead decodes the conversation with msgspec while it remembers the exact
bytes the agent sent for each message (Responses: each input item) -- and for the elements of any
other top-level part of 64 KB and more. The transforms then work on ordinary dicts and lists,
copy-on-write as always (a changed request shares every untouched object with the original), and
:meth:`Spans.encode` writes the result as the remembered bytes of every object the transforms
kept, joined with the new objects written by msgspec. What goes upstream is slices of the agent's
own bytes and the replacements: the same JSON value the full decode / re-encode gives
(tests/meter/test_transforms_splice.py compares them on all three wire formats), and the same
bytes on every turn for the same input, so the prompt-cache prefix stays identical.

Positions come from msgspec's ``Raw`` split, located by lengths: a compact ``[a,b,...]`` is
exactly as long as its elements' ``Raw`` bytes plus the punctuation, so when the lengths add up
every offset is exact; whitespace between the elements only makes the original longer, and then
only the whole part keeps its bytes. A large object part is split into its members the same
way (``dict[str, Raw]``); there a repeated key or one written with escapes only ever makes the
original longer, so the object is then decoded whole. A value msgspec will not decode (``1e400``) is decoded by
``json.loads``, the reference; from then on changed values are written by ``json.dumps``.

Identity is the contract: an object remembered here is never mutated (transforms and adapters
copy what they change), and the registry holds a reference to each, so an id cannot be reused.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec
import xxhash

from ci_guard.meter.providers.body import LAZY_MIN_BYTES, RequestBody, dumps, is_utf8
from ci_guard.meter.transforms import rawcut
from ci_guard.meter.transforms.cache import (
    MAX_BREAKPOINTS,
    last_assistant,
    mark_message,
    marks_any,
    message_caches,
    message_targets,
    top_breakpoints,
)
from ci_guard.meter.transforms.prune import cut, prune
from ci_guard.meter.transforms.toolresults import MESSAGE_RESULTS, is_model_item
from ci_guard.policy.models import PruneSpec

# A container below this is decoded in one call rather than split (splitting pays per value);
# if it changes it is written anew, which for a few kilobytes costs microseconds.
SPLIT_MIN_BYTES = 4096
# Container levels that keep their bytes: 1 = each message (or Responses item; a large object
# part's members) keeps its bytes and a changed one is written anew by msgspec (re-writing the few
# messages a transform touches costs less than more passes to split them further; measured).
SPLIT_DEPTH = 1
# Strings at least this long are remembered with their bytes (a short one is cheaper to write again).
STRING_MIN_BYTES = 256
# The conversation of each wire format: the only part large enough to be worth splitting deeper.
CONVERSATION = {"messages": "messages", "chat.completions": "messages", "responses": "input"}

_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_OBJECT = msgspec.json.Decoder(dict[str, msgspec.Raw])
_LBRACKET, _LBRACE, _COMMA = ord("["), ord("{"), ord(",")


def _encode_str(text: str) -> bytes:
    """A string as JSON (UTF-8 as is, as the agents write it; msgspec is ~10x json.dumps here)."""
    try:
        return msgspec.json.encode(text)
    except UnicodeEncodeError:  # a lone surrogate (json.loads accepts one): json.dumps escapes it
        return dumps(text)


def _key_size(key: str) -> int:
    """len(json.dumps(key, ensure_ascii=False).encode()): the shortest way to write the key."""
    if key.isascii() and key.isprintable() and '"' not in key and "\\" not in key:
        return len(key) + 2
    return len(json.dumps(key, ensure_ascii=False).encode())


# Kept per key tuple (a conversation has a handful of block shapes, repeated thousands of times) and
# per short string (roles, types); at most this many of each, and only small frames, so keys an agent
# makes up can neither grow the cache nor pin megabytes of key strings in it.
_FRAMES: dict[tuple[str, ...], int] = {}
_FRAMES_MAX, _FRAME_KEPT_MAX = 4096, 1024


def _frame(keys: tuple[str, ...]) -> int:
    """What an object with these keys takes besides its values: braces, keys, colons and commas."""
    size = _FRAMES.get(keys)
    if size is None:
        size = 1 + sum(_key_size(k) + 2 for k in keys) if keys else 2
        if size <= _FRAME_KEPT_MAX:
            if len(_FRAMES) >= _FRAMES_MAX:
                _FRAMES.clear()
            _FRAMES[keys] = size
    return size


_short_size = functools.lru_cache(maxsize=4096)(_key_size)


def _object_size(values: dict[str, msgspec.Raw]) -> int:
    return _frame(tuple(values)) + sum(map(len, values.values()))


class Spans:
    """The bytes the agent sent for each container and large string of a decoded conversation."""

    def __init__(self) -> None:
        self._raw: dict[int, tuple[Any, Any]] = {}  # id -> (the object, its bytes as a memoryview)
        # False once json.loads decoded a part: it may hold inf or nan, which msgspec would write
        # as null where json.dumps writes Infinity/NaN (the full path's bytes, which the upstream judges).
        self._exact = True
        self._pending: list[tuple[list[Any], memoryview]] = []  # lists whose elements are not located yet
        self._conversation: memoryview | None = None  # its located offsets go to the run's memo
        self._memo: MessageMemo | None = None

    def _decode(self, data: Any) -> Any:
        try:
            return msgspec.json.decode(data)
        except (msgspec.DecodeError, ValueError):  # what msgspec refuses, json.loads decides
            self._exact = False
            return json.loads(bytes(data))

    def _remember(self, value: Any, data: memoryview) -> Any:
        self._raw[id(value)] = (value, data)
        return value

    def load(self, data: memoryview, depth: int = 1) -> Any:
        """Decode ``data`` (one JSON value), remembering the bytes of its parts down to ``depth``
        levels of containers (below that, each container is decoded in one call)."""
        if len(data) < SPLIT_MIN_BYTES or depth <= 0:
            value = self._decode(data)
            if isinstance(value, dict | list) or (isinstance(value, str) and len(data) >= STRING_MIN_BYTES):
                self._remember(value, data)
            return value
        first = data[0]
        if first == _LBRACKET:
            value = self._elements(data)
        elif first == _LBRACE:
            value = self._object(data, depth)
        else:
            value = self._decode(data)
            if not isinstance(value, str):
                return value
        return self._remember(value, data)

    def _elements(self, data: memoryview) -> Any:
        """A list whose elements keep their bytes: decoded whole now, its elements located by a
        ``list[Raw]`` pass only if a changed value is encoded (a request the transforms only read
        never pays for it); two C calls, cheaper than a decode call per element."""
        value = self._decode(data)
        self._pending.append((value, data))
        return value

    def load_conversation(self, data: memoryview, memo: MessageMemo | None) -> Any:
        """:meth:`load` for the conversation: where the run's memo already knows where its messages
        are (a later turn), they are remembered from those offsets, without a ``list[Raw]`` pass."""
        index = memo.lookup(data) if memo is not None else None
        if index is None or len(data) < SPLIT_MIN_BYTES or data[0] != _LBRACKET:
            self._conversation, self._memo = data, memo
            return self.load(data, SPLIT_DEPTH)
        value = self._decode(data)
        if not isinstance(value, list) or len(value) != len(index.starts):
            return self._remember(value, data)  # cannot happen for equal bytes; the whole list keeps its bytes
        for element, start, end in zip(value, index.starts, index.ends, strict=True):
            if isinstance(element, dict | list) or (isinstance(element, str) and end - start >= STRING_MIN_BYTES):
                self._remember(element, data[start:end])
        return self._remember(value, data)

    def _locate(self, value: list[Any], data: memoryview) -> None:
        items = _LIST.decode(data)
        if sum(len(item) for item in items) + max(len(items), 1) + 1 != len(data) or len(items) != len(value):
            return  # whitespace between the elements: only the whole list keeps its bytes
        pos = 1
        starts, ends = [], []
        for element, item in zip(value, items, strict=True):
            size = len(item)
            if isinstance(element, dict | list) or (isinstance(element, str) and size >= STRING_MIN_BYTES):
                self._remember(element, data[pos:pos + size])
            starts.append(pos)
            ends.append(pos + size)
            pos += size + 1
        if self._memo is not None and data is self._conversation and self._exact and value:
            roles = [m.get("role") if isinstance(m, dict) else None for m in value]
            self._memo.add(MessageIndex(data, starts, ends, roles, any(message_caches(m) for m in value)))

    def _object(self, data: memoryview, depth: int) -> Any:
        members = _OBJECT.decode(data)
        if _object_size(members) != len(data):
            return self._decode(data)
        return self._members(data, members, depth)

    def _members(self, data: memoryview, members: dict[str, msgspec.Raw], depth: int) -> dict[str, Any]:
        """The object at ``data`` (its size already checked) from its members' raw values."""
        if len(data) < SPLIT_MIN_BYTES or depth <= 0:
            return self._remember(self._decode(data), data)
        out, pos = {}, 1
        for key, raw in members.items():
            pos += _key_size(key) + 1
            out[key] = self.load(data[pos:pos + len(raw)], depth - 1)
            pos += len(raw) + 1
        return self._remember(out, data)

    def encode(self, value: Any, depth: int = 0) -> Any:
        """Compact JSON of ``value``: remembered bytes for every object the transforms kept.

        ``depth`` is the level below a top-level value; nothing is remembered below
        :data:`SPLIT_DEPTH`, so a new value there is written by msgspec in one call.
        """
        hit = self._raw.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        if depth >= SPLIT_DEPTH and self._exact:
            try:
                return msgspec.json.encode(value)
            except (TypeError, ValueError, OverflowError):  # a lone surrogate: json.dumps escapes it
                pass
        if isinstance(value, str):
            return _encode_str(value)
        if isinstance(value, dict):
            if not value:
                return b"{}"
            pieces: list[Any] = []
            for key, item in value.items():
                pieces += (b",", _encode_str(key), b":", self.encode(item, depth + 1))
            pieces[0] = b"{"
            pieces.append(b"}")
            return b"".join(pieces)
        if isinstance(value, list | tuple):
            if not value:
                return b"[]"
            pieces = []
            for item in value:
                pieces += (b",", self.encode(item, depth + 1))
            pieces[0] = b"["
            pieces.append(b"]")
            return b"".join(pieces)
        return dumps(value)

    def pieces(self, value: Any) -> list[Any]:
        """``value`` as bytes-like pieces to join (a top-level list is not joined here: the caller
        joins the whole body once, so a megabyte conversation is copied once)."""
        while self._pending:
            self._locate(*self._pending.pop())
        hit = self._raw.get(id(value))
        if isinstance(value, list) and value and (hit is None or hit[0] is not value):
            out: list[Any] = []
            for item in value:
                out += (b",", self.encode(item, 1))
            out[0] = b"["
            out.append(b"]")
            return out
        return [self.encode(value)]

    def encode_bytes(self, value: Any) -> bytes:
        return b"".join(self.pieces(value))


def prepare(body: RequestBody, endpoint: str, memo: MessageMemo | None = None) -> RequestBody:
    """``body`` with its conversation (and any other large part) decoded and its spans remembered;
    changes made to the result through :func:`~ci_guard.meter.providers.body.updated` are written
    by splicing (see the module docstring)."""
    spans = Spans()
    conversation = CONVERSATION.get(endpoint)
    values = {}
    for key in body:
        raw = body.raw(key)
        if raw is not None and key == conversation:
            values[key] = spans.load_conversation(memoryview(raw), memo)
        elif raw is not None and len(raw) >= LAZY_MIN_BYTES:
            values[key] = spans.load(memoryview(raw), SPLIT_DEPTH)
    return body.with_encoder(spans.pieces, values)


# -- the conversation by its index, without decoding it again ------------------------------------------
# Breakpoints need only three facts about the messages: where each one starts and ends, its role,
# and whether any of them sets cache_control already. A later turn of the same run repeats the
# previous turn's messages byte for byte and appends to them, so those facts are kept per run
# (:class:`MessageMemo`) and a later call decodes only the messages it has not seen; the repeated
# bytes are recognised by a keyed hash (see MessageMemo). Searching the bytes for "cache_control"
# instead was measured slower than decoding (bytes.find ~0.5 ms per MB on test logs) and escapes
# could hide the key.
#
# The facts come from one msgspec pass (:data:`_MESSAGES`): each message an object whose values
# stay undecoded bytes (Raw) except strings and its content blocks, themselves objects of Raw values.
# Skipping a value costs about what splitting the array into its messages costs (~0.3 ms per MB),
# and every size is then known: a message is as long as its keys and values plus the punctuation,
# so the messages are located by lengths as Spans._locate does (whitespace, a key written with
# escapes or given twice, a string written with needless escapes only ever make the bytes longer:
# then the two-pass scan decides). Pruning keeps what it made of each message in the index
# (:class:`MessageCut`): a later turn cuts and writes only the messages it has not seen.

MEMO_ENTRIES = 4  # conversations of a run followed at once (the main agent and a few sub-agents)

_Value = str | bool | None | list[dict[str, msgspec.Raw]] | dict[str, msgspec.Raw]
_MESSAGES = msgspec.json.Decoder(list[dict[str, _Value]])


class MessageCut(NamedTuple):
    """What pruning made of one message of an indexed conversation."""

    newest: bool | None  # whether it was part of the newest turn then (None: too small to matter)
    encoded: bytes | None  # the pruned message's JSON as the full splice writes it, or None: unchanged
    results: int
    tokens: int
    cuts_newest: bool  # a tool result of this newest message would be cut (cache: auto skips its mark)
    uses: tuple[tuple[str, str], ...]  # the tool uses it adds, for exclude_tools: (id, tool name)
    floats: bool  # the pruned message holds a float (see _has_float)


_SMALL = MessageCut(None, None, 0, 0, False, (), False)
_UNMARKED = object()


class MessageIndex:
    """Where each message of a compact ``messages`` array is, its role, whether one caches, and
    what pruning made of each (``cuts``: None where it has not looked yet). ``view`` is the array
    as the current call has it; ``digest`` and the ``edges`` identify it for a later turn."""

    __slots__ = ("caches", "cuts", "digest", "edges", "ends", "marks", "roles", "starts", "view")

    def __init__(self, view: memoryview, starts: list[int], ends: list[int], roles: list[Any], caches: bool,
                 cuts: list[MessageCut | None] | None = None) -> None:
        self.view, self.starts, self.ends, self.roles, self.caches = view, starts, ends, roles, caches
        self.cuts = (cuts or []) + [None] * (len(starts) - len(cuts or []))
        self.digest: bytes | None = None  # of the array without its closing bracket (MessageMemo)
        self.marks: dict[int, Any] = {}  # an unpruned message with its breakpoint (None: none fits), by position
        self.edges = _edges(view, len(view))


def _edges(view: memoryview, size: int) -> bytes:
    """The first and last bytes of an array of ``size`` bytes before its closing bracket: two
    different conversations almost always differ there, so most are told apart without hashing."""
    return bytes(view[:EDGE]) + bytes(view[max(0, size - 1 - EDGE):size - 1])


EDGE = 64
# where the conversation is looked for in a request (agents put it first, or after the system prompt)
GUESS_WITHIN = 256 * 1024


def _value_size(value: Any) -> int:
    """The compact JSON size of a message's value other than a list of blocks (the shortest way to write it)."""
    if isinstance(value, msgspec.Raw):
        return len(value)
    if isinstance(value, str):
        if len(value) > 32:
            return _key_size(value) if len(value) < 256 else len(_encode_str(value))
        return _short_size(value)
    if isinstance(value, dict):
        return _object_size(value)
    return 5 if value is False else 4  # true, null


def _message_size(message: dict[str, Any]) -> int:
    """The size of a message as :data:`_MESSAGES` gives it (a lower bound: see _value_size)."""
    size = _frame(tuple(message))
    for value in message.values():
        if isinstance(value, list):  # blocks: brackets, commas, and each block's keys and values
            size += 1 + len(value) if value else 2
            for block in value:
                size += _object_size(block)
        else:
            size += _value_size(value)
    return size


class Located(NamedTuple):
    """The messages of a compact array: offsets from the array's first byte, roles, and caching."""

    starts: list[int]
    ends: list[int]
    roles: list[Any]
    caches: bool
    size: int  # the array's size, if the sizes above are exact (the caller compares it)


def _locate_messages(messages: list[Any]) -> Located | None:
    """Where the messages decoded by :data:`_MESSAGES` are, if every size is the exact one; None
    when one is not an object or msgspec refuses a tool result's content (so it would the message)."""
    starts, ends, roles, caches, pos = [], [], [], False, 1
    for message in messages:
        if not isinstance(message, dict):
            return None
        size = _message_size(message)
        content = message.get("content")
        if not caches and isinstance(content, list):
            caches = _blocks_cache(content)
            if caches is None:
                return None
        role = message.get("role")
        starts.append(pos)
        ends.append(pos + size)
        roles.append(role if isinstance(role, str) else None)
        pos += size + 1
    return Located(starts, ends, roles, caches, max(pos, 2))


def _exact(data: memoryview, located: Located | None) -> bool:
    """The sizes add up to the bytes (so each is exact), and each message is where they say."""
    return located is not None and located.size == len(data) and all(
        data[start] == _LBRACE and data[end] in _AFTER for start, end in zip(located.starts, located.ends, strict=True))


def _scan(data: memoryview, base: int, starts: list[int], ends: list[int], roles: list[Any]) -> bool | None:
    """Append the messages of the compact array ``data`` (offsets from ``base``); whether one of
    them sets cache_control, or None when the array is not compact or msgspec refuses a message
    (then the full path decides, exactly as before)."""
    try:
        located = _locate_messages(_MESSAGES.decode(data))
    except (msgspec.DecodeError, ValueError):  # a message that is not an object of these values
        located = None
    if not _exact(data, located):  # whitespace or escapes (the sizes do not add up), or a refusal
        return _scan_decoding(data, base, starts, ends, roles)
    assert located is not None
    starts += [base + start for start in located.starts]
    ends += [base + end for end in located.ends]
    roles += located.roles
    return located.caches


_RAW_MESSAGES = msgspec.json.Decoder(list[dict[str, msgspec.Raw]])


def scan_openai(data: memoryview, base: int, starts: list[int], ends: list[int], roles: list[Any]) -> bool | None:
    """:func:`_scan` for an OpenAI conversation (Chat ``messages``, Responses ``input``): a tool
    output is a message's own string there, which :data:`_MESSAGES` would decode and size by writing
    it again (~2x the cost of this pass); here every value stays bytes but the role. Nothing in it
    caches (False): OpenAI caches by itself."""
    try:
        messages = _RAW_MESSAGES.decode(data)
    except (msgspec.DecodeError, ValueError):  # an element that is not an object
        messages = None
    located = _locate_raw(messages) if messages is not None else None
    if not _exact(data, located):  # whitespace, or a key written with escapes or given twice
        return None if _scan_decoding(data, base, starts, ends, roles) is None else False
    assert located is not None
    starts += [base + start for start in located.starts]
    ends += [base + end for end in located.ends]
    roles += located.roles
    return False


def _locate_raw(messages: list[Any]) -> Located | None:
    """:func:`_locate_messages` for messages decoded as objects of undecoded values (OpenAI's):
    only each role is decoded. None when one is not an object."""
    starts, ends, roles, pos = [], [], [], 1
    for message in messages:
        if not isinstance(message, dict):
            return None
        size = _frame(tuple(message)) + sum(map(len, message.values()))  # _object_size, inlined: per item
        starts.append(pos)
        ends.append(pos + size)
        role = message.get("role")
        if role is not None:  # a short role is decoded once per run of the proxy; a long one (odd) each time
            role = _role(bytes(role)) if len(role) <= 32 else _string_or_none(role)
        roles.append(role)
        pos += size + 1
    return Located(starts, ends, roles, False, max(pos, 2))


def _string_or_none(raw: Any) -> str | None:
    value = _decode_or_none(raw)
    return value if isinstance(value, str) else None


_role = functools.lru_cache(maxsize=64)(_string_or_none)  # a handful of distinct roles, decoded once each


# -- the request's top-level split and its messages in one pass ---------------------------------------
# providers/body.py splits a large request at its top level (one msgspec pass over the megabyte) and
# the index then took a second pass over the messages. For a run whose policy indexes them, the
# proxy's inspection splits the request with :func:`split_request` instead: the top-level values
# typed as :data:`_MESSAGES` types its messages, so one pass gives both the parts and the index.
# Every size is a lower bound as in _scan except a number's, which is compared with the bytes
# where it must be: when the sizes add up, every part and every message is where they say.

_Top = str | int | float | bool | None | list[dict[str, _Value] | str] | dict[str, msgspec.Raw]
_TOP = msgspec.json.Decoder(dict[str, _Top])
# OpenAI's: every value of a message stays bytes (a tool output is a message's own string there)
_TopRaw = str | int | float | bool | list[dict[str, msgspec.Raw] | str] | dict[str, msgspec.Raw] | None
_TOP_RAW = msgspec.json.Decoder(dict[str, _TopRaw])


def split_request(raw: bytes, key: str = "messages", raw_messages: bool = False
                  ) -> tuple[dict[str, memoryview], dict[str, tuple[memoryview, Located]]] | None:
    """The top-level parts of a compact JSON object (as providers/body.py's split gives them) and
    where the messages of its conversation ``key`` are (Responses: the items of ``input``); None when
    the one pass cannot tell (then the plain split decides). ``raw_messages``: the messages'
    values stay undecoded but their roles (OpenAI's, as :func:`scan_openai` reads them)."""
    if not raw.isascii() and not is_utf8(raw):  # msgspec does not check the bytes of strings it skips
        return None
    try:
        top = (_TOP_RAW if raw_messages else _TOP).decode(raw)
    except (msgspec.DecodeError, ValueError):
        return None
    view = memoryview(raw)
    parts, hints, pos = {}, {}, 1
    for name, value in top.items():
        pos += _key_size(name) + 1
        if isinstance(value, list):
            located = ((_locate_raw if raw_messages else _locate_messages)(value)) if name == key else None
            size = located.size if located is not None else (1 + len(value) if value else 2) + sum(
                [_message_size(item) if isinstance(item, dict) else _value_size(item) for item in value])
            if located is not None:
                hints[name] = located
        elif isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = msgspec.json.encode(value)
            except (TypeError, ValueError, OverflowError):
                return None
            if view[pos:pos + len(number)] != number:
                return None  # written another way (1E2, 1.50): its size is not known
            size = len(number)
        else:
            size = _value_size(value)
        parts[name] = view[pos:pos + size]
        pos += size + 1
    if pos != len(raw) or not parts:
        return None  # whitespace, a key twice or written with escapes, a string with needless escapes
    return parts, {name: (parts[name], located) for name, located in hints.items() if _exact(parts[name], located)}


_AFTER = frozenset(b",]")


def _blocks_cache(blocks: list[dict[str, msgspec.Raw]]) -> bool | None:
    """cache.message_caches for a message's blocks as _MESSAGES gives them (None: msgspec refuses one)."""
    for block in blocks:
        if "cache_control" in block:
            return True
        inner = block.get("content")
        if inner is not None and memoryview(inner)[0] == _LBRACKET:
            inner = _decode_or_none(inner)
            if inner is None:
                return None
            if marks_any(inner):
                return True
    return False


def _decode_or_none(data: Any) -> Any:
    try:
        return msgspec.json.decode(data)
    except (msgspec.DecodeError, ValueError):
        return None


def _scan_decoding(data: memoryview, base: int, starts: list[int], ends: list[int], roles: list[Any]) -> bool | None:
    """:func:`_scan` by splitting the array into its messages and decoding each (two passes)."""
    try:
        items = _LIST.decode(data)
    except (msgspec.DecodeError, ValueError):
        return None
    if sum(len(item) for item in items) + max(len(items), 1) + 1 != len(data):
        return None  # whitespace between the messages
    caches, pos = False, 1
    for item in items:
        size = len(item)
        try:
            message = msgspec.json.decode(data[pos:pos + size])
        except (msgspec.DecodeError, ValueError):
            return None
        starts.append(base + pos)
        ends.append(base + pos + size)
        roles.append(message.get("role") if isinstance(message, dict) else None)
        caches = caches or message_caches(message)
        pos += size + 1
    return caches


class MessageMemo:
    """Per run: the index of the conversations last seen, reused for the turns that extend them.

    A conversation is recognised by the XXH3-128 digest of its bytes under a secret random seed
    (as :class:`~ci_guard.meter.transforms.prune.CutMemo` recognises a tool result): an agent that
    does not know the seed cannot craft two conversations with one digest. Hashing reads the
    megabyte once, where comparing with a kept copy read it twice and copied it on every turn.
    """

    def __init__(self, scan: Callable[[memoryview, int, list[int], list[int], list[Any]], bool | None] | None = None
                 ) -> None:
        self._entries: list[MessageIndex] = []
        self._seed = secrets.randbits(64)
        self._scanner = scan  # how new messages are located (scan_openai for OpenAI's); None: _scan

    def _scan(self, data: memoryview, base: int, starts: list[int], ends: list[int], roles: list[Any]) -> bool | None:
        return (self._scanner or _scan)(data, base, starts, ends, roles)

    def index(self, view: memoryview, located: Located | None = None) -> MessageIndex | None:
        """The index of the compact Messages array ``view`` (None: the full path must decode it);
        ``located``: its messages as :func:`split_request` found them, if it did."""
        index = self.lookup(view)
        if index is not None:
            return index
        if located is not None:
            starts, ends, roles, caches = located.starts, located.ends, located.roles, located.caches
        else:
            starts, ends, roles = [], [], []
            caches = self._scan(view, 0, starts, ends, roles)
        if caches is None or not roles:
            return None
        index = MessageIndex(view, starts, ends, roles, caches)
        self.add(index)
        return index

    def add(self, index: MessageIndex) -> None:
        if index.digest is None:
            index.digest = xxhash.xxh3_128_digest(index.view[:-1], self._seed)
        self._entries.insert(0, index)
        del self._entries[MEMO_ENTRIES:]

    def split(self, raw: bytes, key: str = "messages"
              ) -> tuple[dict[str, memoryview], dict[str, tuple[memoryview, Located]]] | None:
        """:func:`split_request` for a request whose conversation this memo does not seem to know
        (a first sight); None for the others, whose index a later turn extends (providers/body.py
        then splits it the plain way: the sizes split_request adds up cost ~0.1 ms per MB). The
        guess reads where the conversation seems to start: a wrong one costs time, never bytes."""
        opening = b'"%s":[' % key.encode()
        at = raw.find(opening, 0, GUESS_WITHIN)
        if at >= 0:
            head = raw[at + len(opening) - 1:at + len(opening) - 1 + EDGE]
            if any(entry.edges[:EDGE] == head for entry in list(self._entries)):  # a copy: called off the loop
                return None
        return split_request(raw, key, self._scanner is scan_openai)

    def lookup(self, view: memoryview) -> MessageIndex | None:
        """The index of ``view`` if it repeats a conversation seen (and maybe appends to it)."""
        size = len(view)
        for n, entry in enumerate(self._entries):
            seen = len(entry.view)
            # the same messages and maybe more: everything up to the old closing bracket is equal
            if not 2 < seen <= size or (seen < size and view[seen - 1] != _COMMA) or _edges(view, seen) != entry.edges:
                continue
            digest = xxhash.xxh3_128(seed=self._seed)
            digest.update(view[:seen - 1])
            if digest.digest() != entry.digest:
                continue
            if seen == size:
                index = entry
                index.view = view  # this call's bytes (equal to the ones seen)
            else:
                starts, ends, roles = list(entry.starts), list(entry.ends), list(entry.roles)
                # the new messages as an array of their own: "[" in place of the comma
                caches = self._scan(memoryview(b"[" + bytes(view[seen:])), seen - 1, starts, ends, roles)
                if caches is None:
                    return None
                index = MessageIndex(view, starts, ends, roles, entry.caches or caches, entry.cuts)
                digest.update(view[seen - 1:size - 1])
                index.digest = digest.digest()
            del self._entries[n]
            self.add(index)
            return index
        return None


class PrunePlan(NamedTuple):
    cuts: dict[int, MessageCut]  # the messages pruning changes, by position
    results: int
    tokens: int
    cuts_newest: bool  # a tool result of the newest turn would be cut


class SeenCuts:
    """Per run: what pruning made of each large message seen, by its bytes. A conversation the
    message memo does not know (evicted, or a history the agent rewrote) mostly repeats messages
    the run has pruned before: they are found here by a keyed XXH3-128 digest of their bytes (as
    :class:`~ci_guard.meter.transforms.prune.CutMemo` finds a cut) instead of decoded and cut again.
    Not used with ``exclude_tools``, where a message's cut also depends on the tool uses before it.
    At most ``max_entries``, least recently used go first."""

    def __init__(self, max_entries: int = 1024) -> None:
        self.max_entries = max_entries
        self._seed = secrets.randbits(64)
        self._cuts: OrderedDict[tuple[bytes, int, bool], MessageCut] = OrderedDict()

    def key(self, data: memoryview, newest: bool) -> tuple[bytes, int, bool]:
        return xxhash.xxh3_128_digest(data, self._seed), len(data), newest

    def get(self, key: tuple[bytes, int, bool]) -> MessageCut | None:
        cut = self._cuts.get(key)
        if cut is not None:
            self._cuts.move_to_end(key)
        return cut

    def put(self, key: tuple[bytes, int, bool], cut: MessageCut) -> None:
        self._cuts[key] = cut
        if len(self._cuts) > self.max_entries:
            self._cuts.popitem(last=False)


def prune_indexed(index: MessageIndex, spec: PruneSpec, cutter: Callable[[str], str | None],
                  endpoint: str = "messages", seen: SeenCuts | None = None) -> PrunePlan | None:
    """:func:`~ci_guard.meter.transforms.prune.prune` of an indexed conversation (Messages, Chat
    Completions ``messages`` or Responses ``input``): only the messages the index has no cut for yet
    are decoded (and of those, only the ones long enough to hold a result above the limit and not
    in ``seen``); None when msgspec refuses one (the full path decides)."""
    view = index.view
    last_reply = _last_reply(index, endpoint)
    if last_reply is None:
        return None
    excluded = bool(spec.exclude_tools)  # then every message's tool uses are needed, for the names
    # A result above the limit has more than 4 * max_tokens characters, each at least a byte of JSON.
    bound = 4 * spec.max_tokens
    names: dict[str, str] = {}
    plan = PrunePlan({}, 0, 0, False)
    results = tokens = 0
    cuts_newest = False
    for i, (start, end) in enumerate(zip(index.starts, index.ends, strict=True)):
        newest = i > last_reply
        done = index.cuts[i]
        if done is None or done.newest not in (None, newest):
            if not excluded and end - start <= bound:
                done = _SMALL
            else:
                key = seen.key(view[start:end], newest) if seen is not None and not excluded else None
                done = seen.get(key) if seen is not None and key is not None else None
                if done is None:
                    # on the bytes (rawcut.py); else decoded and cut in Python: the same cut, byte for byte
                    done = _cut_raw(view[start:end], i, newest, names, spec, endpoint)
                    if done is None:
                        message = _decode_or_none(view[start:end])
                        if message is None:
                            return None
                        done = _cut_message(message, i, newest, names, spec, cutter, endpoint)
                    if seen is not None and key is not None:
                        seen.put(key, done)
            index.cuts[i] = done
        names.update(done.uses)
        if done.encoded is not None:
            plan.cuts[i] = done
        results += done.results
        tokens += done.tokens
        cuts_newest = cuts_newest or done.cuts_newest
    return plan._replace(results=results, tokens=tokens, cuts_newest=cuts_newest)


def _last_reply(index: MessageIndex, endpoint: str) -> int | None:
    """The position of the model's last message (-1: none), as toolresults finds it; None when
    msgspec refuses what it must read. Messages and Chat: the last assistant role. Responses: the
    last item the model produced, by its type and role, read from the end (the newest turn is short)."""
    if endpoint != "responses":
        return last_assistant(index.roles)
    for i in range(len(index.starts) - 1, -1, -1):
        data = index.view[index.starts[i]:index.ends[i]]
        if data[0] != _LBRACE:
            continue  # not an object: never a reply
        try:  # the item's keys; of its values only these two are decoded
            members = _OBJECT.decode(data)
            item = {key: msgspec.json.decode(members[key]) for key in ("type", "role") if key in members}
        except (msgspec.DecodeError, ValueError):
            return None
        if is_model_item(item):
            return i
    return -1


def _cut_message(message: Any, i: int, newest: bool, names: dict[str, str], spec: PruneSpec,
                 cutter: Callable[[str], str | None], endpoint: str = "messages") -> MessageCut:
    """What pruning makes of message ``i`` (``names``: the tool uses before it; it gets this message's)."""
    known = dict(names)
    found = list(MESSAGE_RESULTS[endpoint](message, i, newest, names))
    uses = tuple((k, v) for k, v in names.items() if known.get(k) != v)
    # prune() on a body of this one message: the results' paths (conversation, i, ...) lead into it
    key = CONVERSATION[endpoint]
    pruned = prune(endpoint, {key: {i: message}}, spec, found, cutter)
    cuts_newest = newest and any(cutter(r.text) is not None for r in found)
    if not pruned.results:
        return MessageCut(newest, None, 0, 0, cuts_newest, uses, False)
    new = pruned.body[key][i]
    return MessageCut(newest, Spans().encode(new, 1), pruned.results, pruned.tokens, cuts_newest, uses,
                      _has_float(new))


def _cut_raw(data: memoryview, i: int, newest: bool, names: dict[str, str], spec: PruneSpec,
             endpoint: str) -> MessageCut | None:
    """:func:`_cut_message` on the message's bytes (rawcut.py): the same MessageCut, byte for byte,
    without decoding its long texts; None when the bytes are not msgspec's writing (or the C part
    is not installed): then the message is decoded and cut in Python."""
    # a literal of at most 4 * max_tokens + 2 bytes holds at most 4 * max_tokens characters: never cut
    skeleton = rawcut.skeleton(data, 4 * spec.max_tokens + 2)
    if skeleton is None:
        return None
    seen = dict(names)
    found = list(MESSAGE_RESULTS[endpoint](skeleton.value, i, newest, seen))
    uses = tuple((k, v) for k, v in seen.items() if names.get(k) != v)
    excluded = spec.exclude_tools
    cuts: dict[tuple[int, int], tuple[int, int, bytes, int, int]] = {}
    read: set[tuple[int, int]] = set()  # literals a cut of the newest turn already checked
    tokens = 0
    cuts_newest = False
    try:
        for result in found:
            span = skeleton.span(result.text)
            if span is None:
                if cut(result.text, spec) is not None:  # cannot be: a short text is within the limit
                    return None
                continue
            if span in cuts:  # one literal read twice: the Python path would cut it once
                return None
            # as prune() and _cut_message: the newest turn and excluded tools are never cut
            if newest:
                if not cuts_newest and rawcut.cut(data, span, spec) is not None:
                    cuts_newest = True
                    read.add(span)  # a cut read (and checked) the whole literal
                continue
            if excluded and (result.name is None or result.name in excluded):
                continue
            pruned = rawcut.cut(data, span, spec)
            if pruned is not None:
                cuts[span] = pruned
                tokens += (pruned[3] + 3) // 4 - (pruned[4] + 3) // 4
        # every other long literal goes upstream as it is: it too must be msgspec's writing
        if not all(rawcut.canonical(data, span) for span in skeleton.literals if span not in cuts and span not in read):
            return None
    except (ValueError, OverflowError):  # a literal msgspec would not write so (or limits beyond the C part)
        return None
    if not cuts:
        return MessageCut(newest, None, 0, 0, cuts_newest, uses, False)
    pieces: list[Any] = []
    pos = 0
    for span in sorted(cuts):
        head_byte, cut_byte, middle = cuts[span][:3]
        pieces += (data[pos:head_byte], middle)
        pos = cut_byte
    pieces.append(data[pos:])
    return MessageCut(newest, b"".join(pieces), len(cuts), tokens, cuts_newest, uses, skeleton.floats)


def _has_float(value: Any) -> bool:
    """A float anywhere in ``value``. The full splice writes new values with msgspec only when
    msgspec decoded the whole conversation, and with json.dumps (1e+16, not 1e16) when it refused a
    number (1e400) that the index's pass skipped: a new value with a float is left to the full path."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, float):
            return True
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def write_indexed(body: RequestBody, index: MessageIndex, cuts: dict[int, MessageCut], mark: bool,
                  skip_newest: bool, key: str = "messages") -> tuple[RequestBody, int] | None:
    """``body`` with the pruned messages ``cuts`` and, if ``mark``, the breakpoints of
    :func:`~ci_guard.meter.transforms.cache.add_breakpoints` (how many): only the changed messages
    are written anew, everything else of the conversation goes upstream as slices of the agent's
    bytes (the bytes the full splice writes). None: a new value holds a float (see _has_float).
    ``key``: the conversation's top-level key (Responses: ``input``); breakpoints are Messages' only."""
    spans = Spans()
    out, added = top_breakpoints(body) if mark else ({}, 0)
    if any(cut.floats for cut in cuts.values()) or _has_float(out):
        return None
    view = index.view
    written = {i: cut.encoded for i, cut in cuts.items()}
    for i in message_targets(index.roles, skip_newest) if mark else ():
        if added >= MAX_BREAKPOINTS:
            break
        cut = cuts.get(i)
        marked = index.marks.get(i, _UNMARKED) if cut is None else _UNMARKED
        if marked is _UNMARKED:
            # a pruned message is read back from its JSON (it holds no float: msgspec gives the same value)
            message = _decode_or_none(cut.encoded if cut is not None else view[index.starts[i]:index.ends[i]])
            if message is None:
                return None  # msgspec refuses it (the index's pass skipped its values): the full path decides
            new = mark_message(message)
            if new is not None and _has_float(new):
                return None
            marked = spans.encode(new, 1) if new is not None else None
            if cut is None:  # the same bytes get the same mark: a repeated request reuses it
                index.marks[i] = marked
        if marked is not None:
            written[i] = marked
            added += 1
    if not out and not written:
        return body, 0
    result = body.with_encoder(spans.pieces, {}).updated(out)
    if written:
        pieces: list[Any] = []
        pos = 0
        for i in sorted(written):
            pieces += (view[pos:index.starts[i]], written[i])
            pos = index.ends[i]
        pieces.append(view[pos:])
        result = result.with_pieces(key, pieces)
    return result, added
