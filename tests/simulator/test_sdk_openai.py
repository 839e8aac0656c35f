"""The official openai SDK against the simulator: Chat Completions and Responses."""

from __future__ import annotations

import json

import openai
import pytest

from ci_guard.simulator import Simulator, run_simulator

CHAT_TOOLS = [{"type": "function", "function": {
    "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"},
                                                                       "n": {"type": "integer"}},
                                     "required": ["q", "n"]}}}]
RESP_TOOLS = [{"type": "function", "name": "exec_command",
               "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}}]


def client(sim: Simulator) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.openai_url, api_key="test-key", max_retries=0)


def chat_loop(sim: Simulator, stream: bool) -> list[dict]:
    c = client(sim)
    messages: list = [{"role": "user", "content": "find it"}]
    usages = []
    for _ in range(10):
        if stream:
            chunks = list(c.chat.completions.create(model="gpt-5", messages=messages, tools=CHAT_TOOLS,
                                                    stream=True, stream_options={"include_usage": True}))
            usages.append(chunks[-1].usage.model_dump())
            assert chunks[-1].choices == []
            calls: dict[int, dict] = {}
            for ch in chunks:
                for choice in ch.choices:
                    for tc in choice.delta.tool_calls or []:
                        entry = calls.setdefault(tc.index, {"id": tc.id, "name": "", "arguments": ""})
                        entry["name"] += tc.function.name or ""
                        entry["arguments"] += tc.function.arguments or ""
            tool_calls = list(calls.values())
        else:
            r = c.chat.completions.create(model="gpt-5", messages=messages, tools=CHAT_TOOLS)
            usages.append(r.usage.model_dump())
            tool_calls = [{"id": t.id, "name": t.function.name, "arguments": t.function.arguments}
                          for t in r.choices[0].message.tool_calls or []]
        if not tool_calls:
            break
        assert tool_calls[0]["name"] == "lookup"
        assert json.loads(tool_calls[0]["arguments"]) == {"q": "hi", "n": 1}
        messages += [{"role": "assistant", "content": None, "tool_calls": [
            {"id": t["id"], "type": "function", "function": {"name": t["name"], "arguments": t["arguments"]}}
            for t in tool_calls]}]
        messages += [{"role": "tool", "tool_call_id": t["id"], "content": "found"} for t in tool_calls]
    return usages


@pytest.mark.parametrize("stream", [False, True])
def test_chat_tool_loop(sim: Simulator, stream: bool) -> None:
    usages = chat_loop(sim, stream)
    assert len(usages) == 4
    served = [s["usage"] for s in sim.served]
    for got, record in zip(usages, served, strict=True):
        assert got["prompt_tokens"] == record["prompt_tokens"]
        assert got["completion_tokens"] == record["completion_tokens"]
        assert got["prompt_tokens_details"]["cached_tokens"] == record["prompt_tokens_details"]["cached_tokens"]
    # later turns re-read the earlier conversation from the (simulated) cache
    assert usages[0]["prompt_tokens_details"]["cached_tokens"] == 0
    assert usages[1]["prompt_tokens_details"]["cached_tokens"] == usages[0]["prompt_tokens"]


def test_chat_stream_without_include_usage_carries_no_usage(sim: Simulator) -> None:
    chunks = list(client(sim).chat.completions.create(
        model="gpt-5", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert all(ch.usage is None for ch in chunks) and chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("stream", [False, True])
def test_responses_function_call_and_reasoning_usage(stream: bool) -> None:
    with run_simulator({"name": "r", "turns": 1, "reasoning_tokens": 12}) as sim:
        c = client(sim)
        kwargs = dict(model="gpt-5", input=[{"role": "user", "content": "run"}], tools=RESP_TOOLS)
        if stream:
            with c.responses.stream(**kwargs) as s:
                kinds = [e.type for e in s]
                response = s.get_final_response()
            assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        else:
            response = c.responses.create(**kwargs)
        call = next(item for item in response.output if item.type == "function_call")
        assert call.name == "exec_command" and json.loads(call.arguments) == {"cmd": "echo hi"}
        assert response.usage.output_tokens_details.reasoning_tokens == 12
        assert response.usage.output_tokens > 12
        assert sim.served[0]["usage"]["output_tokens"] == response.usage.output_tokens
        # second turn: the function call's output is back in the input, the answer is final text
        follow = c.responses.create(model="gpt-5", tools=RESP_TOOLS, input=[
            {"role": "user", "content": "run"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "hi"}])
        assert follow.output_text == "Done: the task is complete."
        assert follow.usage.input_tokens_details.cached_tokens > 0
        assert [s["turn"] for s in sim.served] == [0, 1]


@pytest.mark.parametrize(("status", "exc"), [(429, openai.RateLimitError), (500, openai.InternalServerError)])
def test_openai_errors(status: int, exc: type) -> None:
    with run_simulator({"fault": {"kind": "status", "status": status}}) as sim:
        with pytest.raises(exc) as info:
            client(sim).chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "x"}])
        assert info.value.status_code == status
        with pytest.raises(exc):
            client(sim).responses.create(model="gpt-5", input="x")


def test_retry_storm_defaults_to_500_for_openai() -> None:
    with run_simulator("retry-storm") as sim:
        with pytest.raises(openai.InternalServerError):
            client(sim).responses.create(model="gpt-5", input="x")
        assert sim.served[0]["status"] == 500


def test_models_list_has_openai_shape(sim: Simulator) -> None:
    assert "gpt-5" in [m.id for m in client(sim).models.list()]
