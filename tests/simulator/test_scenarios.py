"""Each named scenario, YAML scenarios and their validation, over raw HTTP."""

from __future__ import annotations

import time

import httpx
import pytest
from click.testing import CliRunner

from ci_guard.errors import InvalidInputError
from ci_guard.simulator import NAMED, load_scenario, run_simulator

HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
BASH = [{"name": "Task", "input_schema": {"type": "object", "properties": {"prompt": {"type": "string"}}}},
        {"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}]


def messages_body(turns: int, stream: bool = False) -> dict:
    """A conversation that already holds ``turns`` assistant replies."""
    msgs: list = [{"role": "user", "content": "go"}]
    for i in range(turns):
        msgs += [{"role": "assistant", "content": [{"type": "tool_use", "id": f"t{i}", "name": "Bash",
                                                    "input": {"command": "echo hi"}}]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": "hi"}]}]
    return {"model": "claude-sonnet-4-5", "max_tokens": 32000, "tools": BASH, "messages": msgs, "stream": stream}


def post(url: str, body: dict) -> httpx.Response:
    return httpx.post(url + "/v1/messages?beta=true", json=body, headers=HEADERS, timeout=10)


def test_every_named_scenario_loads() -> None:
    for name in NAMED:
        assert load_scenario(name).name == name


def test_tool_loop_turn_comes_from_the_request_not_from_state() -> None:
    with run_simulator("tool-loop") as sim:
        # out of order and repeated: the answer depends only on the conversation
        kinds = [post(sim.url, messages_body(t)).json()["stop_reason"] for t in (3, 0, 2, 0, 5)]
        assert kinds == ["end_turn", "tool_use", "tool_use", "tool_use", "end_turn"]
        # Claude Code's Bash tool is preferred over the first declared tool
        block = post(sim.url, messages_body(0)).json()["content"][1]
        assert block["name"] == "Bash" and block["input"]["command"] == "echo hi"


def test_endless_loop_never_answers() -> None:
    with run_simulator("endless-loop") as sim:
        assert all(post(sim.url, messages_body(t)).json()["stop_reason"] == "tool_use" for t in (0, 10, 50))


def test_growing_context_grows_the_reply_each_turn() -> None:
    with run_simulator("growing-context") as sim:
        out = [post(sim.url, messages_body(t)).json()["usage"]["output_tokens"] for t in (0, 1, 2)]
        assert out[0] > 2000 and out[1] - out[0] >= 1999 and out[2] - out[1] >= 1999


def test_output_never_exceeds_the_request_cap_like_a_real_provider() -> None:
    with run_simulator("growing-context") as sim:
        body = {**messages_body(2), "max_tokens": 150}
        reply = post(sim.url, body).json()
        assert reply["usage"]["output_tokens"] == 150
        assert reply["stop_reason"] == "max_tokens"
        assert all(block["type"] == "text" for block in reply["content"])  # a cut reply has no tool call


def test_flaky_fails_every_second_call() -> None:
    with run_simulator("flaky") as sim:
        statuses = [post(sim.url, messages_body(0)).status_code for _ in range(4)]
        assert statuses == [200, 500, 200, 500]
        assert [s["call"] for s in sim.served] == [1, 2, 3, 4]


def test_malformed_sse_has_one_broken_event_and_full_usage() -> None:
    with run_simulator("malformed-sse") as sim:
        text = post(sim.url, messages_body(0, stream=True)).text
        assert '"delta": {"ty\n\n' in text and "event: message_stop" in text
        assert sim.served[0]["outcome"] == "malformed" and sim.served[0]["usage"]["output_tokens"] > 1


def test_drop_mid_stream_cuts_after_message_start() -> None:
    with run_simulator("drop-mid-stream") as sim:
        with pytest.raises(httpx.HTTPError):
            post(sim.url, messages_body(0, stream=True))
        with pytest.raises(httpx.HTTPError):  # non-streaming calls get no reply at all
            post(sim.url, messages_body(0))
        first, second = sim.served
        assert first["outcome"] == second["outcome"] == "dropped"
        assert first["usage"]["output_tokens"] == 1 and second["usage"] is None


def test_slow_streams_wait_between_events() -> None:
    with run_simulator({"turns": 0, "delay": {"first_byte": 0.1, "per_event": 0.02}}) as sim:
        start = time.monotonic()
        post(sim.url, messages_body(0, stream=True))
        assert time.monotonic() - start >= 0.1 + 0.02 * 5


def test_yaml_scenario_with_extends(tmp_path) -> None:
    path = tmp_path / "mine.yml"
    path.write_text("extends: tool-loop\nturns: 1\ntool: {name: Bash, input: {command: ls}}\nmodel: served-x\n")
    scenario = load_scenario(str(path))
    assert scenario.name == "mine" and scenario.turns == 1 and scenario.model == "served-x"
    with run_simulator(scenario) as sim:
        reply = post(sim.url, messages_body(0)).json()
        assert reply["content"][1]["input"] == {"command": "ls"} and reply["model"] == "served-x"


def test_bad_yaml_scenario_names_file_line_and_field(tmp_path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("turns: 2\nfault:\n  kind: explode\n")
    with pytest.raises(InvalidInputError) as info:
        load_scenario(str(path))
    rendered = info.value.render()
    assert f"{path}:3:" in rendered and "fault.kind" in rendered


def test_unknown_scenario_name() -> None:
    with pytest.raises(InvalidInputError, match="unknown scenario"):
        load_scenario("no-such-scenario")


def test_scenario_can_be_switched_and_ledger_cleared() -> None:
    with run_simulator("tool-loop") as sim:
        post(sim.url, messages_body(0))
        assert httpx.put(sim.url + "/_sim/scenario", json="retry-storm").json() == {"scenario": "retry-storm"}
        assert post(sim.url, messages_body(0)).status_code == 529
        assert len(httpx.get(sim.url + "/_sim/usage").json()) == 2
        httpx.delete(sim.url + "/_sim/usage")
        assert httpx.get(sim.url + "/_sim/usage").json() == []
        assert httpx.put(sim.url + "/_sim/scenario", json="nope").status_code == 400
        # a JSON scenario may extend a named one, as a YAML file can (docs/simulator.md)
        put = httpx.put(sim.url + "/_sim/scenario", json={"extends": "retry-storm", "name": "storm-429",
                                                          "fault": {"kind": "status", "status": 429}})
        assert put.json() == {"scenario": "storm-429"}
        assert post(sim.url, messages_body(0)).status_code == 429
        bad = httpx.put(sim.url + "/_sim/scenario", json={"extends": "retry-strom", "turnz": 1})
        assert bad.status_code == 400
        assert bad.json()["problems"] == [{"field": "extends", "message": (
            "unknown scenario 'retry-strom' (did you mean 'retry-storm'?); expected one of "
            + ", ".join(NAMED))}]
        typo = httpx.put(sim.url + "/_sim/scenario", json={"extends": "tool-loop", "turnz": 1})
        assert typo.json()["problems"][0]["message"].startswith("unknown key 'turnz' (did you mean 'turns'?)")
        assert httpx.put(sim.url + "/_sim/scenario", json=[1]).status_code == 400
        assert httpx.put(sim.url + "/_sim/scenario", content=b"{nope").status_code == 400


def test_simulate_command_lists_and_rejects() -> None:
    from ci_guard.commands.simulate import simulate

    runner = CliRunner()
    listed = runner.invoke(simulate, ["--list"], standalone_mode=False)
    assert listed.return_value == 0 and "retry-storm" in listed.output
    bad = runner.invoke(simulate, ["--scenario", "nope"], standalone_mode=False)
    assert isinstance(bad.exception, InvalidInputError)


def test_simulator_inside_a_running_event_loop() -> None:
    import asyncio

    from ci_guard.simulator import Simulator

    async def main() -> tuple[int, int]:
        async with Simulator("tool-loop") as sim:
            async with httpx.AsyncClient() as client:
                response = await client.post(sim.url + "/v1/messages", json=messages_body(0), headers=HEADERS)
            return response.status_code, len(sim.served)

    assert asyncio.run(main()) == (200, 1)
