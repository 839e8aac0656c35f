"""The official anthropic SDK against the simulator: JSON, streams, tool loops, errors."""

from __future__ import annotations

import anthropic
import pytest

from ci_guard.simulator import Simulator, run_simulator

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # model deprecation notices
TOOLS = [{"name": "get_weather", "description": "Weather of a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
MODEL = "claude-sonnet-4-5"


def client(sim: Simulator) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim.url, api_key="test-key", max_retries=0)


def loop(sim: Simulator, stream: bool, cache: bool = False) -> list[anthropic.types.Message]:
    """Drive a whole tool loop as an agent would; return every reply."""
    c = client(sim)
    system = [{"type": "text", "text": "You are a test agent.", **({"cache_control": {"type": "ephemeral"}}
                                                                    if cache else {})}]
    messages: list = [{"role": "user", "content": "What is the weather in Paris?"}]
    replies = []
    for _ in range(10):
        kwargs = dict(model=MODEL, max_tokens=1000, system=system, tools=TOOLS, messages=messages)
        if stream:
            with c.messages.stream(**kwargs) as s:
                reply = s.get_final_message()
        else:
            reply = c.messages.create(**kwargs)
        replies.append(reply)
        if reply.stop_reason != "tool_use":
            break
        tool = next(b for b in reply.content if b.type == "tool_use")
        messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "sunny"}]}]
    return replies


@pytest.mark.parametrize("stream", [False, True])
def test_tool_loop_usage_matches_the_served_ledger(sim: Simulator, stream: bool) -> None:
    replies = loop(sim, stream)
    assert [r.stop_reason for r in replies] == ["tool_use"] * 3 + ["end_turn"]
    tool_use = replies[0].content[1]
    assert tool_use.name == "get_weather" and tool_use.input == {"city": "hi"}
    assert replies[-1].content[0].text == "Done: the task is complete."
    served = sim.served
    assert [s["turn"] for s in served] == [0, 1, 2, 3]
    for reply, record in zip(replies, served, strict=True):
        assert reply.usage.input_tokens == record["usage"]["input_tokens"]
        assert reply.usage.output_tokens == record["usage"]["output_tokens"]
        assert record["stream"] is stream and record["outcome"] == "ok"
    # context grows turn by turn
    inputs = [s["usage"]["input_tokens"] for s in served]
    assert inputs == sorted(inputs) and inputs[0] < inputs[-1]


def test_prompt_caching_reports_reads_of_the_previous_prefix(sim: Simulator) -> None:
    replies = loop(sim, stream=True, cache=True)
    first, second = replies[0].usage, replies[1].usage
    assert first.cache_read_input_tokens == 0 and first.cache_creation_input_tokens > 0
    assert first.cache_creation.ephemeral_5m_input_tokens == first.cache_creation_input_tokens
    total_first = first.input_tokens + first.cache_creation_input_tokens
    # the second call re-reads exactly what the first one sent
    assert second.cache_read_input_tokens == total_first
    assert second.input_tokens == 4 and second.cache_creation_input_tokens > 0


def test_one_hour_cache_writes_are_split(sim: Simulator) -> None:
    reply = client(sim).messages.create(
        model=MODEL, max_tokens=100,
        system=[{"type": "text", "text": "x" * 400, "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        messages=[{"role": "user", "content": "hi"}])
    assert reply.usage.cache_creation.ephemeral_1h_input_tokens == reply.usage.cache_creation_input_tokens > 0
    assert reply.usage.cache_creation.ephemeral_5m_input_tokens == 0


def test_count_tokens_equals_the_served_input(sim: Simulator) -> None:
    c = client(sim)
    messages = [{"role": "user", "content": "Count me"}]
    counted = c.messages.count_tokens(model=MODEL, messages=messages)
    reply = c.messages.create(model=MODEL, max_tokens=10, messages=messages)
    assert counted.input_tokens == reply.usage.input_tokens > 0
    assert len(sim.served) == 1  # count_tokens is not a generation call


def test_models_list_has_anthropic_shape(sim: Simulator) -> None:
    page = client(sim).models.list()
    assert any(m.id == MODEL for m in page.data)


@pytest.mark.parametrize(("status", "exc"), [
    (429, anthropic.RateLimitError), (500, anthropic.InternalServerError), (529, anthropic.OverloadedError),
])
def test_error_statuses_raise_the_sdk_exceptions(status: int, exc: type, tmp_path) -> None:
    scenario = {"name": "err", "fault": {"kind": "status", "status": status, "retry_after": 2}}
    with run_simulator(scenario) as sim:
        with pytest.raises(exc) as info:
            client(sim).messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
        assert info.value.status_code == status
        if status == 429:
            assert info.value.response.headers["retry-after"] == "2"
        assert sim.served[0]["outcome"] == "error" and sim.served[0]["usage"] is None


def test_dropped_stream_is_an_sdk_error_and_records_the_input_usage() -> None:
    with run_simulator("drop-mid-stream") as sim:
        # The SDK surfaces the cut as its transport's protocol error (httpx or httpx2).
        stream = client(sim).messages.stream(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
        with pytest.raises(Exception, match=r"incomplete|closed|Connection"), stream as s:
            s.get_final_message()
        record = sim.served[0]
        assert record["outcome"] == "dropped"
        assert record["usage"]["output_tokens"] == 1 and record["usage"]["input_tokens"] > 0


def test_api_key_is_enforced_when_configured() -> None:
    with run_simulator("tool-loop", api_key="the-real-key") as sim:
        with pytest.raises(anthropic.AuthenticationError):
            client(sim).messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
        ok = anthropic.Anthropic(base_url=sim.url, api_key="the-real-key", max_retries=0)
        assert ok.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]).id
