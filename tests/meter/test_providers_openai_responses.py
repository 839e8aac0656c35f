"""OpenAI Responses adapter: Codex-like streams, failures, JSON bodies."""

from __future__ import annotations

import json
import random

from ci_guard.meter.providers.openai_responses import OpenAIResponses
from ci_guard.pricing.usage import Usage

R = OpenAIResponses()
USAGE = {"input_tokens": 9892, "input_tokens_details": {"cached_tokens": 9748},
         "output_tokens": 340, "output_tokens_details": {"reasoning_tokens": 256}, "total_tokens": 10232}
EXPECTED = Usage(input_tokens=144, cache_read_tokens=9748, output_tokens=340, reasoning_tokens=256)
CALL = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "exec_command",
        "arguments": "{\"cmd\":\"ls\"}", "status": "completed"}
MSG = {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
       "content": [{"type": "output_text", "text": "Listing files.", "annotations": []}]}
REASONING = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA"}


def response(status: str, output: list, usage: dict | None) -> dict:
    return {"id": "resp_1", "object": "response", "model": "gpt-5-2025-08-07", "status": status,
            "output": output, "usage": usage, "error": None, "incomplete_details": None}


def codex_stream(terminal: dict) -> list[dict]:
    events = [
        {"type": "response.created", "response": response("in_progress", [], None)},
        {"type": "response.in_progress", "response": response("in_progress", [], None)},
        {"type": "response.output_item.added", "output_index": 0, "item": {**REASONING, "summary": []}},
        {"type": "response.output_item.done", "output_index": 0, "item": REASONING},
        {"type": "response.output_item.added", "output_index": 1, "item": {**MSG, "content": []}},
        {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 1, "content_index": 0,
         "delta": "Listing ", "logprobs": []},
        {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 1, "content_index": 0,
         "delta": "files.", "logprobs": []},
        {"type": "response.output_item.done", "output_index": 1, "item": MSG},
        {"type": "response.output_item.added", "output_index": 2, "item": {**CALL, "arguments": ""}},
        {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 2,
         "delta": "{\"cmd\":"},
        {"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 2,
         "arguments": CALL["arguments"]},
        {"type": "response.output_item.done", "output_index": 2, "item": CALL},
        terminal,
    ]
    return [{**e, "sequence_number": i} for i, e in enumerate(events)]


def frames(events: list[dict]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


COMPLETED = {"type": "response.completed", "response": response("completed", [REASONING, MSG, CALL], USAGE)}


def test_codex_stream_in_random_chunks() -> None:
    data = frames(codex_stream(COMPLETED))
    for seed in range(150):
        rng = random.Random(seed)
        meter = R.stream_meter()
        i = 0
        while i < len(data):
            piece = data[i:i + rng.randint(1, 200)]
            assert meter.feed(piece) == piece
            i += len(piece)
        assert meter.close() == b""
        result = meter.result()
        assert result.usage == EXPECTED and result.tool_calls == 1 and result.complete, seed
        assert result.model_served == "gpt-5-2025-08-07" and result.error is None


def test_cut_before_completed_has_tool_calls_but_no_usage() -> None:
    meter = R.stream_meter()
    meter.feed(frames(codex_stream(COMPLETED)[:-1]))
    result = meter.result()
    assert result.tool_calls == 1 and result.usage == Usage() and not result.complete


def test_failed_and_incomplete_and_error_events() -> None:
    failed = {"type": "response.failed", "response": {
        **response("failed", [], None), "error": {"code": "rate_limit_exceeded", "message": "try again in 2s"}}}
    meter = R.stream_meter()
    meter.feed(frames(codex_stream(failed)))
    result = meter.result()
    assert result.error == "rate_limit_exceeded: try again in 2s" and not result.complete

    incomplete = {"type": "response.incomplete", "response": {
        **response("incomplete", [MSG], USAGE), "incomplete_details": {"reason": "max_output_tokens"}}}
    meter = R.stream_meter()
    meter.feed(frames(codex_stream(incomplete)))
    result = meter.result()
    assert result.usage == EXPECTED and result.complete and result.stop_reason == "max_output_tokens"

    meter = R.stream_meter()
    meter.feed(b'event: error\ndata: {"type": "error", "code": "server_error", "message": "oops", '
               b'"sequence_number": 3}\n\ndata: {oops\n\n')
    assert meter.result().error == "server_error: oops"


def test_parse_response_and_errors() -> None:
    body = response("completed", [REASONING, MSG, CALL, {**CALL, "type": "custom_tool_call"},
                                  {"type": "web_search_call", "id": "ws"}], USAGE)
    result = R.parse_response(json.dumps(body).encode())
    assert result.usage == EXPECTED and result.tool_calls == 3 and result.complete
    err = R.parse_response(b'{"error": {"message": "bad", "type": "invalid_request_error", "code": null}}')
    assert err.error == "invalid_request_error: bad"


def test_inspect_clamp_and_fingerprint() -> None:
    body = {"model": "gpt-5", "instructions": "be brief", "input": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "name": "exec_command"}], "stream": True, "store": False,
            "prompt_cache_key": "abc", "max_output_tokens": 4000}
    info = R.inspect(body)
    assert info.max_output_tokens == 4000 and info.stream and info.model == "gpt-5"
    assert info.fingerprint == R.inspect({**body, "prompt_cache_key": "other", "stream": False}).fingerprint
    assert info.fingerprint != R.inspect({**body, "instructions": "be long"}).fingerprint
    assert R.clamp_output(body, 100)["max_output_tokens"] == 100
    assert R.clamp_output({"model": "gpt-5"}, 3)["max_output_tokens"] == R.min_output_tokens == 16
    assert R.prepare(body) == (body, False)
    assert json.loads(R.error_body(400, "retry_storm", "stop"))["error"]["code"] == "ci_guard_retry_storm"


def test_non_object_shapes_in_a_stream_keep_usage_and_bytes() -> None:
    terminal = {"type": "response.incomplete",
                "response": {**response("incomplete", [CALL], USAGE), "incomplete_details": "max_output_tokens"}}
    events = [
        {"type": "response.created", "response": {"model": ["gpt"], "status": 5}},
        {"type": ["response.completed"], "response": "oops"},
        {"type": "response.output_item.done", "item": "function_call"},
        {"type": "response.failed", "response": [1]},
        {"type": "error", "code": ["x"], "message": {"m": 1}},
        terminal,
    ]
    meter = R.stream_meter()
    for event in events:
        data = frames([event])
        assert meter.feed(data) == data
    result = meter.result()
    assert result.usage == EXPECTED and result.complete and result.stop_reason == "incomplete"
    assert result.tool_calls == 1 and result.model_served == "gpt-5-2025-08-07"
    assert result.error is not None  # the error event is still reported


def test_non_object_shapes_in_a_json_body() -> None:
    body = {**response("incomplete", "oops", USAGE), "incomplete_details": ["max_output_tokens"], "model": 3}
    result = R.parse_response(json.dumps(body).encode())
    assert result.usage == EXPECTED and result.complete and result.stop_reason == "incomplete"
    assert result.model_served is None and result.tool_calls == 0
    result = R.parse_response(json.dumps({"status": ["completed"], "usage": "x", "output": []}).encode())
    assert result.usage == Usage() and not result.complete and result.stop_reason is None


SEARCH = {"type": "web_search_call", "id": "ws_1", "status": "completed",
          "action": {"type": "search", "query": "ci-guard"}}


def test_web_search_calls_are_counted_for_their_fee() -> None:
    body = response("completed", [SEARCH, {**SEARCH, "id": "ws_2"}, MSG], USAGE)
    result = R.parse_response(json.dumps(body).encode())
    assert result.web_searches == 2 and result.usage == EXPECTED
    final = response("completed", [SEARCH, MSG, CALL], USAGE)
    events = codex_stream({"type": "response.completed", "response": final})
    events.insert(2, {"type": "response.output_item.done", "output_index": 0, "item": SEARCH})
    meter = R.stream_meter()
    meter.feed(frames(events))
    assert meter.result().web_searches == 1
    cut = R.stream_meter()  # cut before the final event: the searches already done are still billed
    cut.feed(frames(events[:4]))
    assert cut.result().web_searches == 1
    assert R.parse_response(json.dumps(response("completed", [MSG], USAGE)).encode()).web_searches == 0


def test_the_serving_tier_is_read_from_the_response() -> None:
    final = {**response("completed", [MSG], USAGE), "service_tier": "priority"}
    assert R.parse_response(json.dumps(final).encode()).service_tier == "priority"
    meter = R.stream_meter()
    meter.feed(frames(codex_stream({"type": "response.completed", "response": final})))
    assert meter.result().service_tier == "priority"
    assert R.inspect({"model": "gpt-5", "input": "hi", "service_tier": "flex"}).service_tier == "flex"
