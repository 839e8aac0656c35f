"""Anthropic Messages adapter: requests, clamping, JSON bodies and recorded SSE streams."""

from __future__ import annotations

import json
import random

import pytest

from ci_guard.meter.providers.anthropic import AnthropicMessages
from ci_guard.meter.providers.base import estimate_input_tokens
from ci_guard.meter.providers.registry import adapter_for
from ci_guard.pricing.usage import Usage

A = AnthropicMessages()


def sse(*events: tuple[str, dict], crlf: bool = False) -> bytes:
    nl = "\r\n" if crlf else "\n"
    return "".join(f"event: {name}{nl}data: {json.dumps(data)}{nl}{nl}" for name, data in events).encode()


# A Claude Code main-loop reply: thinking (with signature), text and a Bash tool_use, pings, and a
# message_delta whose cumulative usage restates the input side.
START_USAGE = {"input_tokens": 4, "cache_creation_input_tokens": 2061, "cache_read_input_tokens": 28763,
               "cache_creation": {"ephemeral_5m_input_tokens": 2061, "ephemeral_1h_input_tokens": 0},
               "output_tokens": 1, "service_tier": "standard"}
CLAUDE_CODE = [
    ("message_start", {"type": "message_start", "message": {
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [], "stop_reason": None, "stop_sequence": None, "usage": START_USAGE}}),
    ("ping", {"type": "ping"}),
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "thinking_delta", "thinking": "I should run echo."}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "signature_delta", "signature": "EqQBCkYIBxgCKkBsig=="}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("content_block_start", {"type": "content_block_start", "index": 1,
                             "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1,
                             "delta": {"type": "text_delta", "text": "Running it – ok ✓"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {
        "type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {}}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 2,
                             "delta": {"type": "input_json_delta", "partial_json": "{\"command\": \"ec"}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 2,
                             "delta": {"type": "input_json_delta", "partial_json": "ho hi\"}"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 2}),
    ("ping", {"type": "ping"}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                       "usage": {"input_tokens": 4, "cache_creation_input_tokens": 2061,
                                 "cache_read_input_tokens": 28763, "output_tokens": 312}}),
    ("message_stop", {"type": "message_stop"}),
]
CLAUDE_CODE_USAGE = Usage(input_tokens=4, cache_write_tokens=2061, cache_read_tokens=28763, output_tokens=312)

# Server tools: two message_delta events; the second restates everything (cumulative, not added).
SERVER_TOOLS = [
    ("message_start", {"type": "message_start", "message": {
        "id": "msg_02", "model": "claude-opus-4-5", "usage": {"input_tokens": 100, "output_tokens": 2}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
        "type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": None},
                       "usage": {"output_tokens": 100, "server_tool_use": {"web_search_requests": 1}}}),
    ("some_future_event", {"type": "some_future_event", "x": 1}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                       "usage": {"input_tokens": 7000, "cache_read_input_tokens": 50, "output_tokens": 250}}),
    ("message_stop", {"type": "message_stop"}),
]


def meter_in_chunks(data: bytes, seed: int) -> tuple[bytes, object]:
    rng = random.Random(seed)
    meter = A.stream_meter()
    out, i = [], 0
    while i < len(data):
        n = rng.choice([1, 2, 3, 7, 16, 64, 500])
        chunk = data[i:i + n]
        forwarded = meter.feed(chunk)
        assert forwarded == chunk  # nothing held back: Anthropic streams are never rewritten
        out.append(forwarded)
        i += n
    out.append(meter.close())
    return b"".join(out), meter.result()


@pytest.mark.parametrize("crlf", [False, True])
def test_claude_code_stream_in_random_chunks(crlf: bool) -> None:
    data = sse(*CLAUDE_CODE, crlf=crlf)
    for seed in range(150):
        out, result = meter_in_chunks(data, seed)
        assert out == data
        assert result.usage == CLAUDE_CODE_USAGE, seed
        assert result.tool_calls == 1 and result.complete and result.error is None
        assert result.model_served == "claude-sonnet-4-5-20250929" and result.stop_reason == "tool_use"


def test_message_delta_replaces_present_fields() -> None:
    for seed in range(50):
        _, result = meter_in_chunks(sse(*SERVER_TOOLS), seed)
        assert result.usage == Usage(input_tokens=7000, cache_read_tokens=50, output_tokens=250)
        assert result.tool_calls == 1 and result.stop_reason == "end_turn"
        # the later delta does not restate server_tool_use: the search already counted stays counted
        assert result.web_searches == 1


def test_cut_off_stream_reports_what_was_seen() -> None:
    data = sse(*CLAUDE_CODE)
    cut = data.index(b"event: content_block_start")  # right after message_start and a ping
    meter = A.stream_meter()
    meter.feed(data[:cut + 10])
    result = meter.result()
    assert not result.complete
    assert result.usage == Usage(input_tokens=4, cache_write_tokens=2061, cache_read_tokens=28763, output_tokens=1)


def test_error_event_after_200() -> None:
    data = sse(CLAUDE_CODE[0], ("error", {"type": "error", "error": {"type": "overloaded_error",
                                                                     "message": "Overloaded"}}))
    meter = A.stream_meter()
    meter.feed(data)
    result = meter.result()
    assert result.error == "overloaded_error: Overloaded" and not result.complete
    assert result.usage.cache_read_tokens == 28763


def test_malformed_json_is_recorded_and_forwarded() -> None:
    bad = b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": {"ty\n\n'
    data = sse(*CLAUDE_CODE[:3]) + bad + sse(*CLAUDE_CODE[3:])
    meter = A.stream_meter()
    assert meter.feed(data) == data
    result = meter.result()
    assert result.error is not None and result.error.startswith("malformed_sse")
    assert result.usage == CLAUDE_CODE_USAGE and result.complete


def test_parse_json_body_counts_client_and_server_tools() -> None:
    body = {"id": "msg_1", "type": "message", "model": "claude-opus-4-5", "stop_reason": "tool_use",
            "content": [{"type": "text", "text": "x"}, {"type": "server_tool_use", "id": "s", "name": "web_search"},
                        {"type": "tool_use", "id": "t", "name": "Bash", "input": {}}],
            "usage": {"input_tokens": 10, "cache_creation_input_tokens": 30, "cache_read_input_tokens": 5,
                      "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20},
                      "output_tokens": 7, "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 2}}}
    result = A.parse_response(json.dumps(body).encode())
    assert result.tool_calls == 2 and result.complete and result.stop_reason == "tool_use"
    assert result.web_searches == 3  # web fetches cost nothing beyond their tokens
    assert result.usage == Usage(input_tokens=10, cache_write_tokens=30, cache_write_1h_tokens=20,
                                 cache_read_tokens=5, output_tokens=7)
    assert result.model_served == "claude-opus-4-5"


def test_parse_error_and_garbage_bodies() -> None:
    err = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}, "request_id": "r"}
    assert A.parse_response(json.dumps(err).encode()).error == "rate_limit_error: slow down"
    garbage = A.parse_response(b"<html>502</html>")
    assert garbage.error and garbage.error.startswith("invalid_response") and not garbage.complete


CC_BODY = {
    "model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": True,
    "thinking": {"type": "enabled", "budget_tokens": 31999},
    "system": [{"type": "text", "text": "You are Claude Code."}],
    "messages": [{"role": "user", "content": "hi"}],
    "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
    "metadata": {"user_id": "u1"},
}


def test_inspect() -> None:
    info = A.inspect(CC_BODY)
    assert (info.model, info.stream, info.max_output_tokens) == ("claude-sonnet-4-5", True, 32000)
    assert info.estimated_input_tokens == estimate_input_tokens(CC_BODY["system"], CC_BODY["messages"],
                                                                CC_BODY["tools"])
    # metadata, stream and max_tokens do not change the fingerprint; the messages do
    same = A.inspect({**CC_BODY, "metadata": {"user_id": "u2"}, "stream": False, "max_tokens": 5})
    other = A.inspect({**CC_BODY, "messages": [{"role": "user", "content": "hello"}]})
    assert info.fingerprint == same.fingerprint != other.fingerprint


@pytest.mark.parametrize(("cap", "max_tokens", "thinking"), [
    (40000, 32000, {"type": "enabled", "budget_tokens": 31999}),   # never raised
    (8000, 8000, {"type": "enabled", "budget_tokens": 7999}),
    (1025, 1025, {"type": "enabled", "budget_tokens": 1024}),
    (1024, 1024, None),                                           # no valid budget left: no thinking
    (10, 10, None),
    (0, 1, None),                                                 # the API minimum
])
def test_clamp_keeps_thinking_valid(cap: int, max_tokens: int, thinking: dict | None) -> None:
    out = A.clamp_output(CC_BODY, cap)
    assert out["max_tokens"] == max_tokens
    assert out.get("thinking") == thinking
    assert CC_BODY["max_tokens"] == 32000 and CC_BODY["thinking"]["budget_tokens"] == 31999  # not mutated


def test_clamp_keeps_a_small_budget() -> None:
    body = {**CC_BODY, "thinking": {"type": "enabled", "budget_tokens": 2000}}
    assert A.clamp_output(body, 16000)["thinking"]["budget_tokens"] == 2000


def test_prepare_and_set_model() -> None:
    assert A.prepare(CC_BODY) == (CC_BODY, False)
    assert A.set_model(CC_BODY, "claude-haiku-4-5")["model"] == "claude-haiku-4-5"
    assert CC_BODY["model"] == "claude-sonnet-4-5"


def test_error_body_for_caps_is_non_retryable_shape() -> None:
    body = json.loads(A.error_body(400, "max_cost", "ci-guard: the run's cost cap was reached"))
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "max_cost" in body["error"]["message"]
    assert json.loads(A.error_body(529, "overloaded_error", "x"))["error"]["type"] == "overloaded_error"


def test_error_body_is_understood_by_the_sdk() -> None:
    import anthropic
    import httpx

    response = httpx.Response(400, content=A.error_body(400, "max_turns", "turn cap"),
                              request=httpx.Request("POST", "http://x/v1/messages"))
    client = anthropic.Anthropic(api_key="x")
    err = client._make_status_error_from_response(response)
    assert isinstance(err, anthropic.BadRequestError) and "turn cap" in str(err)


def test_registry() -> None:
    assert adapter_for("anthropic", "/v1/messages?beta=true") is not None
    assert adapter_for("anthropic", "/v1/messages/count_tokens") is None
    assert adapter_for("openai", "/v1/chat/completions").endpoint == "chat.completions"
    assert adapter_for("openai", "/v1/responses/").endpoint == "responses"
    assert adapter_for("openai", "/v1/embeddings") is None
    assert adapter_for("openai", "/v1/messages") is None


def test_non_object_shapes_in_a_stream_keep_usage_and_bytes() -> None:
    """A garbled event (a string where an object belongs) must not break the stream or lose usage."""
    meter = A.stream_meter()
    start = sse(("message_start", {"type": "message_start", "message": {
        "model": "claude-sonnet-4-5", "usage": {"input_tokens": 150000, "output_tokens": 1}}}))
    assert meter.feed(start) == start
    odd = [
        ("message_delta", {"type": "message_delta", "delta": "oops", "usage": {"output_tokens": 7}}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": ["x"]},
                           "usage": {"input_tokens": None, "output_tokens": "lots"}}),
        ("message_delta", {"type": "message_delta", "delta": None, "usage": "oops"}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": "tool_use"}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": [1]}),
        ("message_start", {"type": "message_start", "message": "oops"}),
        ("message_start", {"type": ["message_start"], "message": {"model": 5, "usage": [1]}}),
    ]
    for event in odd:
        data = sse(event)
        assert meter.feed(data) == data  # forwarded untouched
    assert meter.close() == b""
    result = meter.result()
    assert result.usage == Usage(input_tokens=150000, output_tokens=7)
    assert result.model_served == "claude-sonnet-4-5" and result.tool_calls == 0
    assert result.stop_reason is None and not result.complete


def test_non_object_shapes_in_a_json_body() -> None:
    body = {"type": "message", "model": {"id": 1}, "content": 5, "usage": [1], "stop_reason": ["end"]}
    result = A.parse_response(json.dumps(body).encode())
    assert result.usage == Usage() and result.tool_calls == 0 and result.complete
    assert result.model_served is None and result.stop_reason is None
    body = {"type": "message", "content": {"type": "tool_use"}, "usage": {"input_tokens": 9, "output_tokens": "x"}}
    result = A.parse_response(json.dumps(body).encode())
    assert result.usage == Usage(input_tokens=9) and result.tool_calls == 0
