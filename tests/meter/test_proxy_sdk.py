"""The proxy driven by the official anthropic and openai SDKs, in front of the simulator."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from ci_guard.meter.caps import MAX_TURNS, RETRY_STORM
from ci_guard.policy.decision import Enforcement, Limits
from ci_guard.simulator.server import run_simulator
from tests.meter.harness import REAL_KEY, proxied

TOOLS = [{"name": "read_file", "description": "Read a file",
          "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}]
USER = [{"role": "user", "content": "x"}]
OPENAI_TOOLS = [{"type": "function", "function": {"name": "read_file", "description": "Read a file", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}]


def anthropic_client(p) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=p.anthropic_url, api_key=p.token, max_retries=0)


def openai_client(p) -> openai.OpenAI:
    return openai.OpenAI(base_url=p.openai_url, api_key=p.token, max_retries=0)


def served_usage(sim) -> list[dict]:
    return [r["usage"] for r in sim.served if r["usage"]]


@pytest.fixture
def sim():
    with run_simulator("tool-loop", api_key=REAL_KEY) as s:
        yield s


def test_anthropic_non_streaming_tool_loop_is_metered_exactly(sim):
    with proxied(sim.url) as p:
        client = anthropic_client(p)
        messages = [{"role": "user", "content": "Review the change"}]
        for _ in range(6):
            msg = client.messages.create(model="claude-sonnet-4-5", max_tokens=1024, tools=TOOLS, messages=messages)
            messages.append({"role": "assistant", "content": [b.model_dump() for b in msg.content]})
            uses = [b for b in msg.content if b.type == "tool_use"]
            if not uses:
                break
            messages.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": u.id, "content": "file contents"} for u in uses]})
        assert msg.stop_reason == "end_turn"
        wire = served_usage(sim)
        assert len(p.calls) == len(wire) == 4  # 3 tool turns + the final answer
        for call, usage in zip(p.calls, wire, strict=True):
            assert call.usage.input_tokens == usage["input_tokens"]
            assert call.usage.cache_read_tokens == usage.get("cache_read_input_tokens", 0)
            assert call.usage.cache_write_tokens == usage.get("cache_creation_input_tokens", 0)
            assert call.usage.output_tokens == usage["output_tokens"]
            assert call.status == "ok" and call.http_status == 200
        assert sum(c.tool_calls for c in p.calls) == 3
        assert p.session.guard.turns == 4
        assert p.session.guard.cost_usd > 0


def test_anthropic_streaming_usage_equals_final_message_usage(sim):
    with proxied(sim.url) as p:
        client = anthropic_client(p)
        with client.messages.stream(model="claude-sonnet-4-5", max_tokens=1024, tools=TOOLS,
                                    messages=[{"role": "user", "content": "go"}]) as stream:
            final = stream.get_final_message()
        call = p.calls[0]
        assert call.stream and call.status == "ok"
        assert call.usage.input_tokens == final.usage.input_tokens
        assert call.usage.output_tokens == final.usage.output_tokens
        assert call.usage.cache_read_tokens == (final.usage.cache_read_input_tokens or 0)
        assert call.tool_calls == sum(1 for b in final.content if b.type == "tool_use") == 1


def test_openai_chat_stream_gets_usage_injected_and_stripped(sim):
    with proxied(sim.url) as p:
        client = openai_client(p)
        chunks = list(client.chat.completions.create(
            model="gpt-5", stream=True, tools=OPENAI_TOOLS, messages=[{"role": "user", "content": "go"}]))
        # the client did not ask for usage, so it must not see the usage chunk
        assert all(getattr(c, "usage", None) is None for c in chunks)
        assert all(c.choices for c in chunks)
        wire = served_usage(sim)[0]
        call = p.calls[0]
        cached = (wire.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        assert call.usage.input_tokens == wire["prompt_tokens"] - cached
        assert call.usage.cache_read_tokens == cached
        assert call.usage.output_tokens == wire["completion_tokens"]
        assert call.tool_calls == 1


def test_openai_chat_stream_with_client_usage_keeps_the_chunk(sim):
    with proxied(sim.url) as p:
        chunks = list(openai_client(p).chat.completions.create(
            model="gpt-5", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "go"}]))
        usage_chunks = [c for c in chunks if c.usage is not None]
        assert len(usage_chunks) == 1
        assert p.calls[0].usage.output_tokens == usage_chunks[0].usage.completion_tokens


def test_openai_chat_non_streaming(sim):
    with proxied(sim.url) as p:
        resp = openai_client(p).chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
        assert p.calls[0].usage.output_tokens == resp.usage.completion_tokens
        assert p.calls[0].endpoint == "chat.completions" and not p.calls[0].stream


def test_openai_responses_stream_like_codex(sim):
    with proxied(sim.url, model="gpt-5") as p:
        client = openai_client(p)
        with client.responses.stream(model="gpt-5", input="fix the tests",
                                     tools=[{"type": "function", "name": "exec_command", "parameters": {
                                         "type": "object", "properties": {"cmd": {"type": "string"}}}}]) as s:
            final = s.get_final_response()
        call = p.calls[0]
        cached = final.usage.input_tokens_details.cached_tokens
        assert call.usage.input_tokens == final.usage.input_tokens - cached
        assert call.usage.output_tokens == final.usage.output_tokens
        assert call.usage.reasoning_tokens == final.usage.output_tokens_details.reasoning_tokens
        assert call.endpoint == "responses" and call.tool_calls == 1


def test_wrong_token_is_rejected_with_the_provider_error_shape(sim):
    with proxied(sim.url) as p:
        client = anthropic.Anthropic(base_url=p.anthropic_url, api_key="not-the-token", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError):
            client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=USER)
        bearer = openai.OpenAI(base_url=p.openai_url, api_key="nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bearer.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "x"}])
        assert p.calls == []


def test_bearer_auth_style_is_accepted_for_anthropic(sim):
    with proxied(sim.url) as p:
        client = anthropic.Anthropic(base_url=p.anthropic_url, auth_token=p.token, api_key=None, max_retries=0)
        msg = client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=USER)
        assert msg.usage.output_tokens == p.calls[0].usage.output_tokens


def test_max_turns_refuses_with_a_non_retryable_error(sim):
    with proxied(sim.url, limits=Limits(max_turns=2)) as p:
        client = anthropic_client(p)
        for i in range(2):
            client.messages.create(model="claude-sonnet-4-5", max_tokens=10,
                                   messages=[{"role": "user", "content": f"turn {i}"}])
        with pytest.raises(anthropic.BadRequestError) as err:
            client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=USER)
        assert "max_turns" in str(err.value)
        assert p.stops and p.stops[0][0] == MAX_TURNS
        assert [c.status for c in p.calls] == ["ok", "ok", "refused"]
        assert len(sim.served) == 2  # the refused call never reached the provider


def test_model_is_rewritten_to_the_decided_model(sim):
    with proxied(sim.url, model="claude-haiku-4-5") as p:
        anthropic_client(p).messages.create(model="claude-opus-4-5", max_tokens=10,
                                            messages=[{"role": "user", "content": "x"}])
        assert sim.served[0]["model"] == "claude-haiku-4-5"
        assert p.calls[0].model_requested == "claude-opus-4-5"


def test_model_reject_mode_refuses_other_models(sim):
    with proxied(sim.url, model="claude-haiku-4-5", enforcement=Enforcement(model_enforcement="reject")) as p:
        with pytest.raises(anthropic.BadRequestError) as err:
            anthropic_client(p).messages.create(model="claude-opus-4-5", max_tokens=10,
                                                messages=[{"role": "user", "content": "x"}])
        assert "not allowed" in str(err.value)
        assert sim.served == []


def test_unmetered_post_is_refused_and_get_passes(sim):
    with proxied(sim.url) as p:
        r = httpx.post(f"{p.openai_url}/embeddings", headers={"authorization": f"Bearer {p.token}"},
                       json={"model": "text-embedding-3-small", "input": "x"})
        assert r.status_code == 403 and "not a metered endpoint" in r.json()["error"]["message"]
        models = openai_client(p).models.list()
        assert len(models.data) > 0


def test_upstream_errors_reach_the_agent_unchanged_and_a_storm_is_stopped():
    with run_simulator("retry-storm", api_key=REAL_KEY) as sim, proxied(
            sim.url, limits=Limits(max_identical_retries=3)) as p:
        client = anthropic_client(p)
        direct = httpx.post(f"{sim.url}/v1/messages", headers={"x-api-key": REAL_KEY},
                            json={"model": "claude-sonnet-4-5", "max_tokens": 5,
                                  "messages": [{"role": "user", "content": "same"}]})
        statuses = []
        for _ in range(6):
            try:
                client.messages.create(model="claude-sonnet-4-5", max_tokens=5,
                                       messages=[{"role": "user", "content": "same"}])
            except anthropic.APIStatusError as exc:
                statuses.append(exc.status_code)
                if exc.status_code == 529:
                    assert exc.response.json()["error"]["type"] == direct.json()["error"]["type"]
        assert statuses[:4] == [529, 529, 529, 529]
        assert statuses[4:] == [400, 400]
        assert p.session.guard.stop_reason == RETRY_STORM


def test_stream_dropped_mid_way_is_recorded_and_the_proxy_survives():
    with run_simulator("drop-mid-stream", api_key=REAL_KEY) as sim, proxied(sim.url) as p:
        client = anthropic_client(p)
        with pytest.raises((anthropic.APIError, httpx.HTTPError)), client.messages.stream(
                model="claude-sonnet-4-5", max_tokens=100, messages=USER) as stream:
            stream.get_final_message()
        cut = p.calls[0]
        assert cut.status == "cut"
        assert cut.usage.input_tokens > 0  # message_start already reported the input
        httpx.put(f"{sim.url}/_sim/scenario", json="tool-loop")
        msg = client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=USER)
        assert msg.usage.output_tokens == p.calls[1].usage.output_tokens


def test_malformed_sse_does_not_crash_the_meter():
    with run_simulator("malformed-sse", api_key=REAL_KEY) as sim, proxied(sim.url) as p:
        r = httpx.post(f"{p.anthropic_url}/v1/messages", headers={"x-api-key": p.token},
                       json={"model": "claude-sonnet-4-5", "max_tokens": 10, "stream": True,
                             "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 200
        assert len(p.calls) == 1 and p.calls[0].usage.input_tokens > 0
        assert httpx.get(f"{p.url}/_ci_guard/health", headers={"x-api-key": p.token}).status_code == 200
