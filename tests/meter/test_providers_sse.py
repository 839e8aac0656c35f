"""The incremental SSE parser: line endings, multi-line data, comments, arbitrary chunking."""

from __future__ import annotations

import random

import pytest

from ci_guard.meter.providers.sse import SSEEvent, SSEParser, SSEStreamMeter
from ci_guard.pricing.usage import Usage

STREAM = (
    b": a comment first\r\n"
    b"event: one\r\ndata: {\"a\": 1}\r\n\r\n"
    b"data: line1\ndata: line2\n\n"
    b"event: cr\rdata:no-space\r\r"
    b"id: 7\nretry: 100\nunknown: x\ndata: \xc3\xa9t\xc3\xa9\n\n"
    b": only a comment\n\n"
    b"data: tail-without-blank-line"
)
EXPECTED = [("one", '{"a": 1}'), ("message", "line1\nline2"), ("cr", "no-space"), ("message", "été"),
            ("message", "tail-without-blank-line")]


def parse(chunks: list[bytes], keep_raw: bool = False) -> list:
    parser = SSEParser(keep_raw=keep_raw)
    events = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.close()


def chunked(data: bytes, rng: random.Random, most: int = 9) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, most)
        out.append(data[i:i + n])
        i += n
    return out


def test_whole_stream() -> None:
    events = [(e.event, e.data) for e in parse([STREAM]) if not e.empty]
    assert events == EXPECTED


def test_any_chunking_gives_the_same_events() -> None:
    for seed in range(300):
        chunks = chunked(STREAM, random.Random(seed))
        assert [(e.event, e.data) for e in parse(chunks) if not e.empty] == EXPECTED, seed


def test_one_byte_at_a_time_with_raw_bytes_preserved() -> None:
    events = parse([STREAM[i:i + 1] for i in range(len(STREAM))], keep_raw=True)
    assert b"".join(e.raw for e in events) == STREAM  # comments and blank lines are kept for forwarding
    assert [e.data for e in events if not e.empty] == [d for _, d in EXPECTED]


def test_cr_at_chunk_end_waits_for_a_possible_lf() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: x\r") == []
    assert parser.feed(b"\n") == []
    assert [e.data for e in parser.feed(b"\r\n")] == ["x"]


def test_blank_lines_without_data_dispatch_nothing() -> None:
    assert parse([b"\n\n\nevent: lonely\n\n"]) == []


class _Exploding(SSEStreamMeter):
    """A meter whose handler fails on one event: what any unforeseen shape would do."""

    def __init__(self, hold: bool) -> None:
        super().__init__(hold=hold)
        self.tokens = 0

    def on_event(self, event: SSEEvent) -> bool:
        if event.event == "boom":
            raise KeyError("unexpected shape")
        self.tokens += int(event.data)
        return True

    def current_usage(self) -> Usage:
        return Usage(input_tokens=self.tokens)


@pytest.mark.parametrize("hold", [False, True])
def test_a_failing_handler_keeps_bytes_usage_and_records_the_error(hold: bool) -> None:
    meter = _Exploding(hold)
    data = b"data: 150000\n\nevent: boom\ndata: {}\n\ndata: 5\n\n"
    out = b"".join(meter.feed(data[i:i + 7]) for i in range(0, len(data), 7)) + meter.close()
    assert out == data
    result = meter.result()
    assert result.usage.input_tokens == 150005
    assert result.error is not None and "boom" in result.error and "KeyError" in result.error
