"""Large request bodies are split at their top level only, and meter exactly like the whole parse."""

from __future__ import annotations

import base64
import json
import random
import sys

import httpx
import pytest

from ci_guard.meter.loop import release_free_memory
from ci_guard.meter.providers.anthropic import AnthropicMessages
from ci_guard.meter.providers.base import RequestInfo
from ci_guard.meter.providers.body import LAZY_MIN_BYTES, RequestBody, encode_request, parse_request
from ci_guard.meter.providers.openai_chat import OpenAIChat
from ci_guard.meter.providers.openai_responses import OpenAIResponses
from ci_guard.meter.request_checks import BadRequest, parse_body
from ci_guard.policy.decision import Limits
from tests.meter.harness import echo_upstream, proxied


def history(turns: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    words = ["def", "return", "é", "→", "日本", "tab\there", "quote\"d", "back\\slash", "line\nbreak", "x"]
    out = []
    for i in range(turns):
        text = " ".join(rng.choice(words) for _ in range(400))
        out.append({"role": "assistant", "content": [{"type": "text", "text": text[:300]},
                    {"type": "tool_use", "id": f"t{i}", "name": "Bash", "input": {"command": "ls", "n": i, "f": 0.5}}]})
        out.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": text}]})
    return out


def anthropic_body(turns: int = 60, **extra: object) -> dict:
    return {"model": "claude-sonnet-4-5", "max_tokens": 4096, "stream": True, "system": "You are Claude Code.",
            "tools": [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}],
            "metadata": {"user_id": "u"}, "messages": history(turns), **extra}


def compact(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def reference(adapter, raw: bytes) -> RequestInfo:
    """What inspect gave before: the body decoded whole by json.loads."""
    return adapter.inspect(json.loads(raw))


def test_a_large_compact_body_meters_exactly_as_the_whole_parse() -> None:
    raw = compact(anthropic_body())
    assert len(raw) > LAZY_MIN_BYTES
    lazy = parse_request(raw)
    assert isinstance(lazy, RequestBody)
    got, want = AnthropicMessages().inspect(lazy), reference(AnthropicMessages(), raw)
    assert got.estimated_input_tokens == want.estimated_input_tokens
    assert (got.model, got.stream, got.max_output_tokens) == (want.model, want.stream, want.max_output_tokens)
    assert dict(lazy) == json.loads(raw)  # every value decodes as json.loads would


@pytest.mark.parametrize("adapter, body", [
    (OpenAIChat(), {"model": "gpt-5", "max_completion_tokens": 500, "stream": True, "messages": history(60)}),
    (OpenAIResponses(), {"model": "gpt-5", "max_output_tokens": 900, "instructions": "be brief", "input": history(60)}),
])
def test_openai_adapters_too(adapter, body) -> None:
    raw = compact(body)
    got, want = adapter.inspect(parse_request(raw)), reference(adapter, raw)
    assert (got.estimated_input_tokens, got.max_output_tokens) == (want.estimated_input_tokens, want.max_output_tokens)


def test_non_compact_or_escaped_json_is_never_counted_lower() -> None:
    body = anthropic_body()
    for raw in (json.dumps(body).encode(), json.dumps(body, indent=2).encode()):  # spaces, \\u escapes
        got, want = AnthropicMessages().inspect(parse_request(raw)), reference(AnthropicMessages(), raw)
        assert got.estimated_input_tokens >= want.estimated_input_tokens
    spaced = json.dumps(body, ensure_ascii=False, indent=1).encode()  # whitespace alone: the same count
    assert AnthropicMessages().inspect(parse_request(spaced)).estimated_input_tokens == \
        reference(AnthropicMessages(), spaced).estimated_input_tokens


def test_media_in_a_large_body_count_per_item_as_before() -> None:
    image = base64.b64encode(random.Random(2).randbytes(300_000)).decode()
    body = anthropic_body(10)
    body["messages"].append({"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image}}]})
    raw = compact(body)
    got, want = AnthropicMessages().inspect(parse_request(raw)), reference(AnthropicMessages(), raw)
    assert got.estimated_input_tokens == want.estimated_input_tokens < len(raw) // 4 - 50_000


def test_retries_share_a_fingerprint_and_other_requests_do_not() -> None:
    body = anthropic_body()
    a = AnthropicMessages().inspect(parse_request(compact(body)))
    again = AnthropicMessages().inspect(parse_request(compact({**body, "metadata": {"user_id": "v"}})))
    other = AnthropicMessages().inspect(parse_request(compact({**body, "messages": body["messages"][:-1]})))
    assert a.fingerprint == again.fingerprint != other.fingerprint


@pytest.mark.parametrize("raw", [
    b'{"model":"a","max_tokens":5,"max_tokens":9000000,"pad":"' + b"x" * LAZY_MIN_BYTES + b'"}',  # repeated key
    b'{"m\\u006fdel":"a","pad":"' + b"x" * LAZY_MIN_BYTES + b'"}',  # an escaped key
    b'{"model":"a","t":NaN,"pad":"' + b"x" * LAZY_MIN_BYTES + b'"}',  # json.loads accepts NaN
    b'{"model":"a","t":"\\ud800","pad":"' + b"x" * LAZY_MIN_BYTES + b'"}',  # a lone surrogate
    b'{"model":"a","pad":"\xed\xa0\x80' + b"x" * LAZY_MIN_BYTES + b'"}',  # surrogate bytes (surrogatepass)
])
def test_whatever_the_split_cannot_judge_goes_to_json_loads(raw: bytes) -> None:
    got = parse_request(raw)
    assert type(got) is dict and got == json.loads(raw)


@pytest.mark.parametrize("raw", [
    b'{"model":"a","pad":"' + b"x" * LAZY_MIN_BYTES + b'"',  # truncated
    b'{"model":"a","pad":"\xff' + b"x" * LAZY_MIN_BYTES + b'"}',  # not UTF-8
    b'{"model":"a","pad":"' + b"x" * LAZY_MIN_BYTES + b'"} trailing',
])
def test_invalid_large_bodies_are_refused_as_before(raw: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(raw)
    with pytest.raises(ValueError):
        parse_request(raw)


def test_a_changed_request_is_built_from_the_exact_values() -> None:
    raw = compact(anthropic_body(thinking={"type": "enabled", "budget_tokens": 3000}))
    lazy = parse_request(raw)
    clamped = AnthropicMessages().clamp_output(lazy, 2000)
    # still split: the conversation keeps the agent's bytes, only the changed caps are written anew
    assert type(clamped) is RequestBody and clamped.raw("messages") == lazy.raw("messages")
    assert clamped["max_tokens"] == 2000
    assert clamped["thinking"]["budget_tokens"] == 1999
    sent = encode_request(clamped)
    expected = {**json.loads(raw), "max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 1999}}
    assert json.loads(sent) == expected
    assert list(json.loads(sent)) == list(expected)  # the keys keep their places
    assert sent.count(lazy.raw("messages")) == 1  # the conversation's bytes are the agent's, untouched


# -- through the proxy: a large request keeps today's caps, and goes upstream as sent ------------
def _post(p, raw: bytes):
    return httpx.post(p.anthropic_url + "/v1/messages", content=raw, timeout=30,
                      headers={"x-api-key": p.token, "anthropic-version": "2023-06-01",
                               "content-type": "application/json"})


def test_a_large_request_meets_the_context_cap_exactly_where_the_whole_parse_did() -> None:
    raw = compact(anthropic_body(40, stream=False))
    assert len(raw) > LAZY_MIN_BYTES
    estimate = reference(AnthropicMessages(), raw).estimated_input_tokens
    with echo_upstream() as up:
        with proxied(up.url, limits=Limits(max_context_tokens=estimate)) as p:
            assert _post(p, raw).status_code == 200
            assert up.requests[-1]["raw"] == raw  # the agent's own bytes
        with proxied(up.url, limits=Limits(max_context_tokens=estimate - 1)) as p:
            refused = _post(p, raw)
            assert refused.status_code == 400 and "max_context" in refused.text
        assert len(up.requests) == 1


def test_a_large_request_for_another_model_is_rewritten_from_the_exact_values() -> None:
    raw = compact(anthropic_body(40, model="claude-opus-4-1", stream=False))
    with echo_upstream() as up, proxied(up.url, model="claude-sonnet-4-5") as p:
        assert _post(p, raw).status_code == 200
        assert p.calls[-1].model_requested == "claude-opus-4-1"
    sent = up.requests[-1]["json"]
    assert sent["model"] == "claude-sonnet-4-5"
    assert {k: v for k, v in sent.items() if k != "model"} == \
        {k: v for k, v in json.loads(raw).items() if k != "model"}


def test_freed_memory_can_be_given_back() -> None:
    assert release_free_memory() is sys.platform.startswith("linux")


@pytest.mark.parametrize(("extra", "message"), [
    (b'"max_tokens":5,"max_tokens":50000,', "duplicate key 'max_tokens'"),  # at the top level
    (b'"thinking":{"type":"enabled","budget_tokens":1,"budget_tokens":90000},', "duplicate key 'budget_tokens'"),
    (b'"max_tokens":-1,', "max_tokens must be between"),
    (b'"stream":"yes",', "stream must be true or false"),
])
def test_large_bodies_keep_the_request_checks(extra: bytes, message: str) -> None:
    base = {k: v for k, v in anthropic_body(40).items() if k not in ("max_tokens", "stream")}
    raw = b"{" + extra + compact(base)[1:]
    assert len(raw) > LAZY_MIN_BYTES
    with pytest.raises(BadRequest, match=message):
        parse_body(raw)


def test_a_large_body_passes_the_request_checks_lazily() -> None:
    body = parse_body(compact(anthropic_body(40)))
    assert isinstance(body, RequestBody) and body["max_tokens"] == 4096
