"""An incremental Server-Sent Events parser for metering streams on the side.

The proxy forwards upstream bytes as they arrive, so the parser must accept any chunking: a chunk
may end inside a line, inside a ``\\r\\n`` pair or inside a UTF-8 sequence. Lines end with ``\\n``,
``\\r\\n`` or ``\\r`` (the SSE spec allows all three); ``:`` lines are comments; several ``data:``
lines of one event are joined with ``\\n``; a blank line dispatches the event.

With ``keep_raw=True`` every dispatched event also carries its exact bytes, and the bytes of the
event still being received are available as :attr:`SSEParser.pending_raw` -- that is what a meter
needs to hold back (and possibly drop) one event at a time. Without it nothing but the current line
and the current event's fields is kept, whatever the stream's length.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from dataclasses import dataclass, replace
from typing import Any

from ci_guard.meter.providers.base import CallResult, StreamMeter
from ci_guard.pricing.usage import Usage
from ci_guard.secrets import redact


@dataclass
class SSEEvent:
    event: str  # the `event:` field, "message" when absent
    data: str  # the `data:` lines joined with "\n"
    raw: bytes = b""  # the exact bytes of the event, blank line included (only with keep_raw)
    empty: bool = False  # comments / empty fields only: nothing to read, bytes still to forward

    def json(self) -> Any:
        """The data as JSON, or raise ValueError (malformed JSON is the caller's to record)."""
        return json.loads(self.data)


class SSEParser:
    def __init__(self, keep_raw: bool = False) -> None:
        self._keep_raw = keep_raw
        self._buf = b""  # bytes of the line being received
        self._raw: list[bytes] = []  # complete lines of the event being received (keep_raw only)
        self._event = ""
        self._data: list[str] = []
        self._has_fields = False  # any line of the current event seen (a comment counts)

    @property
    def pending_raw(self) -> bytes:
        """Bytes received for the event not yet dispatched (only with keep_raw)."""
        return b"".join(self._raw) + self._buf

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume bytes; return the events completed by them, in order."""
        buf = self._buf + chunk if self._buf else chunk
        events: list[SSEEvent] = []
        pos = 0
        n = len(buf)
        while pos < n:
            end, nxt = _line_end(buf, pos)
            if end < 0:
                break
            line = buf[pos:end]
            if self._keep_raw:
                self._raw.append(buf[pos:nxt])
            pos = nxt
            event = self._line(line)
            if event is not None:
                events.append(event)
        self._buf = buf[pos:]
        return events

    def close(self) -> list[SSEEvent]:
        """Upstream ended: a final line without terminator still counts, an unterminated event too.

        Browsers drop an event not followed by a blank line; a meter should rather see what the
        provider did send (a final usage chunk missing only its blank line is still usage).
        """
        events: list[SSEEvent] = []
        if self._buf:
            line = self._buf.rstrip(b"\r")
            if self._keep_raw:
                self._raw.append(self._buf)
            self._buf = b""
            self._line(line)
        if self._data:
            events.append(self._dispatch())
        elif self._raw:
            events.append(SSEEvent("", "", b"".join(self._raw), empty=True))
            self._reset()
        return events

    def _line(self, line: bytes) -> SSEEvent | None:
        if not line:
            if self._data:
                return self._dispatch()
            # A blank line after comments or empty fields only: the spec dispatches nothing, but a
            # meter that holds bytes back must still forward them.
            raw = b"".join(self._raw) if self._keep_raw else b""
            self._reset()
            return SSEEvent("", "", raw, empty=True) if raw else None
        self._has_fields = True
        if line[:1] == b":":
            return None
        text = line.decode("utf-8", errors="replace")
        name, sep, value = text.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        # `id:`, `retry:` and unknown fields do not matter to a meter.
        return None

    def _dispatch(self) -> SSEEvent:
        raw = b"".join(self._raw) if self._keep_raw else b""
        event = SSEEvent(self._event or "message", "\n".join(self._data), raw)
        self._reset()
        return event

    def _reset(self) -> None:
        self._raw = []
        self._event = ""
        self._data = []
        self._has_fields = False


def _line_end(buf: bytes, pos: int) -> tuple[int, int]:
    """(end of line content, start of next line) or (-1, -1) when the line is not complete yet.

    A ``\\r`` at the very end of the buffer may be the first half of ``\\r\\n``: wait for more.
    """
    lf = buf.find(b"\n", pos)
    cr = buf.find(b"\r", pos, lf if lf >= 0 else len(buf))
    if cr < 0:
        return (lf, lf + 1) if lf >= 0 else (-1, -1)
    if cr + 1 >= len(buf):
        return -1, -1
    if buf[cr + 1 : cr + 2] == b"\n":
        return cr, cr + 2
    return cr, cr + 1


def parse_json(event: SSEEvent) -> tuple[Any, str | None]:
    """(decoded JSON, None) or (None, error text): malformed JSON must never stop a meter."""
    try:
        return event.json(), None
    except ValueError as exc:
        return None, f"malformed_sse: invalid JSON in {event.event!r} event: {exc}"


class SSEStreamMeter(StreamMeter):
    """The forwarding half shared by every SSE meter; subclasses read events in :meth:`on_event`.

    Normally each chunk is forwarded as it came and parsed on the side. With ``hold=True`` (only
    needed to drop an event) the bytes of the one event still being received are held back until
    it is complete, then forwarded unless :meth:`on_event` returned False.
    """

    def __init__(self, hold: bool = False) -> None:
        self._hold = hold
        self.forwards_unchanged = not hold
        self._parser = SSEParser(keep_raw=hold)
        self._result = CallResult()

    def feed(self, chunk: bytes) -> bytes:
        events = self._parser.feed(chunk)
        if not self._hold:
            for event in events:
                self._read(event)
            return chunk
        return b"".join(event.raw for event in events if self._read(event))

    def close(self) -> bytes:
        events = self._parser.close()
        kept = [event.raw for event in events if self._read(event)]
        return b"".join(kept) if self._hold else b""

    def result(self) -> CallResult:
        return replace(self._result, usage=self.current_usage())

    def _read(self, event: SSEEvent) -> bool:
        if event.empty:
            return True
        try:
            return self.on_event(event)
        except Exception as exc:  # one odd event must not break the agent's stream
            # The handlers are type-safe; this is the last line of defence. The event is forwarded
            # and the usage read so far is kept: losing either would cost more than the error.
            self.record_error(redact(f"malformed_sse: {event.event!r} event not understood "
                                     f"({type(exc).__name__}: {exc})"))
            return True

    def json_object(self, event: SSEEvent) -> dict[str, Any] | None:
        """The event's data as a JSON object, or None (the problem recorded, the event still forwarded)."""
        data, err = parse_json(event)
        if err is not None or not isinstance(data, dict):
            self.record_error(err or f"malformed_sse: {event.event!r} event is not a JSON object")
            return None
        return data

    def record_error(self, message: str) -> None:
        # The first error is the cause; later ones are usually consequences of it.
        if self._result.error is None:
            self._result.error = message

    @abstractmethod
    def on_event(self, event: SSEEvent) -> bool:
        """Read one event; return False to drop it from what the client sees."""

    @abstractmethod
    def current_usage(self) -> Usage: ...
