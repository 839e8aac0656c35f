"""OpenAI Chat Completions adapter: include_usage injection, stripping, tool-call deltas."""

from __future__ import annotations

import json
import random

import pytest

from ci_guard.meter.providers.openai_chat import OpenAIChat
from ci_guard.pricing.usage import Usage

C = OpenAIChat()
BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4.1-2025-04-14"}


def chunk(delta: dict, finish: str | None = None, **extra) -> dict:
    return {**BASE, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": None, **extra}


USAGE = {"prompt_tokens": 1200, "completion_tokens": 80, "total_tokens": 1280,
         "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
         "completion_tokens_details": {"reasoning_tokens": 16, "audio_tokens": 0}}
EVENTS = [
    chunk({"role": "assistant", "content": None}),
    # two parallel tool calls: the first fragment of each has id and name, later ones only the index
    chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                           "function": {"name": "read_file", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"path\": \"a"}}]}),
    chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                           "function": {"name": "grep", "arguments": "{\"q\""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": ".py\"}"}}]}),
    chunk({"tool_calls": [{"index": 1, "function": {"arguments": ": \"x\"}"}}]}),
    chunk({}, "tool_calls"),
    {**BASE, "choices": [], "usage": USAGE},
    "[DONE]",
]
EXPECTED = Usage(input_tokens=176, cache_read_tokens=1024, output_tokens=80, reasoning_tokens=16)


def frame(event: dict | str) -> bytes:
    return b"data: " + (event if isinstance(event, str) else json.dumps(event)).encode() + b"\n\n"


STREAM = b"".join(frame(e) for e in EVENTS)
USAGE_FRAME = frame(EVENTS[-2])
LONGEST = max(len(frame(e)) for e in EVENTS)


def run(strip: bool, seed: int) -> tuple[bytes, object]:
    rng = random.Random(seed)
    meter = C.stream_meter(strip)
    out, fed, i = [], 0, 0
    while i < len(STREAM):
        piece = STREAM[i:i + rng.randint(1, 120)]
        got = meter.feed(piece)
        if not strip:
            assert got == piece
        out.append(got)
        fed += len(piece)
        i += len(piece)
        # never more than one (partial) event held back
        dropped = len(USAGE_FRAME) if strip and meter.result().usage != Usage() else 0
        held = fed - sum(len(o) for o in out) - dropped
        assert held <= LONGEST
    out.append(meter.close())
    return b"".join(out), meter.result()


@pytest.mark.parametrize("strip", [False, True])
def test_stream_in_random_chunks(strip: bool) -> None:
    for seed in range(200):
        out, result = run(strip, seed)
        assert out == (STREAM.replace(USAGE_FRAME, b"") if strip else STREAM), seed
        assert out.endswith(b"data: [DONE]\n\n")
        assert result.usage == EXPECTED and result.tool_calls == 2 and result.complete
        assert result.stop_reason == "tool_calls" and result.model_served == "gpt-4.1-2025-04-14"


def test_cut_before_usage_chunk() -> None:
    meter = C.stream_meter(True)
    cut = STREAM.index(USAGE_FRAME)
    forwarded = meter.feed(STREAM[:cut + 20])
    assert forwarded == STREAM[:cut]  # the partial usage chunk is the only thing held
    result = meter.result()
    assert result.usage == Usage() and not result.complete and result.tool_calls == 2
    assert meter.close() == STREAM[cut:cut + 20]  # an unfinished event is flushed, not lost


def test_error_and_malformed_chunks() -> None:
    meter = C.stream_meter(False)
    meter.feed(b"data: {not json}\n\n")
    meter.feed(b'data: {"error": {"message": "boom", "type": "server_error"}}\n\n')
    result = meter.result()
    assert result.error.startswith("malformed_sse") and not result.complete


def test_prepare_injects_include_usage_only_when_needed() -> None:
    body = {"model": "gpt-5", "stream": True, "messages": [], "stream_options": {"x": 1}}
    new, strip = C.prepare(body)
    assert strip and new["stream_options"] == {"x": 1, "include_usage": True} and body["stream_options"] == {"x": 1}
    asked = {**body, "stream_options": {"include_usage": True}}
    assert C.prepare(asked) == (asked, False)
    plain = {"model": "gpt-5", "messages": []}
    assert C.prepare(plain) == (plain, False)


def test_inspect_and_clamp() -> None:
    body = {"model": "gpt-5", "messages": [{"role": "user", "content": "x" * 400}], "max_completion_tokens": 9000,
            "stream": True, "metadata": {"a": 1}, "user": "u"}
    info = C.inspect(body)
    assert info.max_output_tokens == 9000 and info.stream and info.estimated_input_tokens > 100
    assert info.fingerprint == C.inspect({**body, "stream": False, "metadata": {}}).fingerprint
    assert C.clamp_output(body, 500)["max_completion_tokens"] == 500
    assert C.clamp_output(body, 50000)["max_completion_tokens"] == 9000
    legacy = {"model": "gpt-4o", "messages": [], "max_tokens": 4000}
    out = C.clamp_output(legacy, 100)
    assert out == {**legacy, "max_tokens": 100} and "max_completion_tokens" not in out
    assert C.inspect(legacy).max_output_tokens == 4000
    assert C.clamp_output({"model": "gpt-5", "messages": []}, 77)["max_completion_tokens"] == 77


def test_parse_response() -> None:
    body = {"id": "c", "object": "chat.completion", "model": "gpt-5-2025-08-07",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": None,
                "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                               {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}}],
            "usage": USAGE}
    result = C.parse_response(json.dumps(body).encode())
    assert result.usage == EXPECTED and result.tool_calls == 2 and result.complete
    err = C.parse_response(b'{"error": {"message": "Rate limit", "type": "requests", "code": "rate_limit_exceeded"}}')
    assert err.error == "requests: Rate limit"


def test_error_body_for_caps() -> None:
    body = json.loads(C.error_body(400, "max_tool_calls", "tool call cap reached"))
    assert body == {"error": {"message": "tool call cap reached", "type": "invalid_request_error",
                              "param": None, "code": "ci_guard_max_tool_calls"}}
    import httpx
    import openai

    response = httpx.Response(400, content=json.dumps(body).encode(),
                              request=httpx.Request("POST", "http://x/v1/chat/completions"))
    err = openai.OpenAI(api_key="x")._make_status_error_from_response(response)
    assert isinstance(err, openai.BadRequestError) and err.code == "ci_guard_max_tool_calls"


ODD_CHUNKS = [
    {**BASE, "model": ["x"], "choices": ["oops", 5, None]},
    {**BASE, "choices": [{"index": 0, "delta": "oops", "finish_reason": ["stop"]}]},
    {**BASE, "choices": [{"index": [0], "delta": {"tool_calls": 5, "function_call": None}}]},
    {**BASE, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": [1]}, {"index": {"a": 1}}, "x"]}}]},
    {**BASE, "choices": {"index": 0}, "usage": "oops"},
]


@pytest.mark.parametrize("strip", [False, True])
def test_non_object_shapes_in_a_stream_keep_usage_and_bytes(strip: bool) -> None:
    events = EVENTS[:-2] + ODD_CHUNKS + EVENTS[-2:]
    meter = C.stream_meter(strip)
    out = b"".join(meter.feed(frame(e)) for e in events) + meter.close()
    expected = b"".join(frame(e) for e in events)
    assert out == (expected.replace(USAGE_FRAME, b"") if strip else expected)
    result = meter.result()
    assert result.usage == EXPECTED and result.complete and result.model_served == "gpt-4.1-2025-04-14"
    # two real calls, plus the odd fragments of choice 0 whose indices were not numbers (call 0 again)
    assert result.tool_calls == 2 and result.stop_reason == "tool_calls"


def test_non_object_shapes_in_a_json_body() -> None:
    body = {"model": 7, "choices": [{"message": "oops", "finish_reason": 5}, "x"], "usage": USAGE}
    result = C.parse_response(json.dumps(body).encode())
    assert result.usage == EXPECTED and result.tool_calls == 0 and result.complete
    assert result.model_served is None and result.stop_reason is None
    result = C.parse_response(json.dumps({"choices": 5, "usage": [1]}).encode())
    assert result.usage == Usage() and result.tool_calls == 0 and result.error is None
