"""The real agent CLIs (Claude Code, Codex from npm) against the simulator, multi-turn with tools."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ci_guard.simulator import run_simulator
from tests.agents import codex_usage, require_claude, require_codex, run_claude, run_codex

pytestmark = pytest.mark.node

# Sonnet 4.5 list prices per million tokens (input, 5m cache write, cache read, output).
SONNET = (Decimal(3), Decimal("3.75"), Decimal("0.30"), Decimal(15))


def _sum(records: list[dict], key: str) -> int:
    return sum(r["usage"][key] for r in records)


def test_claude_code_tool_loop_usage_equals_what_was_served(tmp_path) -> None:
    require_claude()
    with run_simulator("tool-loop") as sim:
        code, result, stderr = run_claude(sim.url, "dummy", "Say hi with bash", max_turns=5, cwd=tmp_path)
        served = list(sim.served)
    assert code == 0, stderr
    assert result is not None and result["is_error"] is False
    assert result["result"] == "Done: the task is complete."
    assert len(served) == 4 and [s["tool_calls"] for s in served] == [1, 1, 1, 0]
    assert all(s["stream"] and s["session"] for s in served)  # streaming, with X-Claude-Code-Session-Id
    usage = result["usage"]
    for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"):
        assert usage[key] == _sum(served, key), key
    cost = sum((Decimal(_sum(served, k)) * p for k, p in zip(
        ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"), SONNET,
        strict=True)), Decimal(0)) / 1_000_000
    # Claude Code sums floats; equal up to float noise
    assert abs(Decimal(str(result["total_cost_usd"])) - cost) < Decimal("1e-12")


def test_claude_code_stops_at_its_own_max_turns(tmp_path) -> None:
    require_claude()
    with run_simulator("endless-loop") as sim:
        code, result, _ = run_claude(sim.url, "dummy", "loop", max_turns=2, cwd=tmp_path)
        assert len(sim.served) == 2
    assert code == 1 and result is not None and result["subtype"] == "error_max_turns"


def test_codex_tool_loop_usage_equals_what_was_served(tmp_path) -> None:
    require_codex()
    with run_simulator({"name": "codex-loop", "turns": 2, "reasoning_tokens": 5}) as sim:
        code, events, stderr = run_codex(sim.openai_url, "dummy", "say hi", cwd=tmp_path)
        served = list(sim.served)
    assert code == 0, stderr
    kinds = [e["type"] for e in events]
    assert "turn.completed" in kinds and "turn.failed" not in kinds
    commands = [e["item"] for e in events if e["type"] == "item.completed"
                and e["item"]["type"] == "command_execution"]
    assert len(commands) == 2 and all("echo hi" in c["command"] for c in commands)
    assert len(served) == 3 and all(s["endpoint"] == "responses" and s["stream"] for s in served)
    usage = codex_usage(events)
    assert usage["input_tokens"] == _sum(served, "input_tokens")
    assert usage["cached_input_tokens"] == sum(s["usage"]["input_tokens_details"]["cached_tokens"] for s in served)
    assert usage["output_tokens"] == _sum(served, "output_tokens")
    assert usage["reasoning_output_tokens"] == 5 * 3


def test_neither_cli_retries_a_400(tmp_path) -> None:
    """Why caps answer 400 invalid_request_error: both agents stop at once instead of retrying."""
    require_claude()
    require_codex()
    with run_simulator({"fault": {"kind": "status", "status": 400}}) as sim:
        code, result, _ = run_claude(sim.url, "dummy", "hi", max_turns=3, cwd=tmp_path)
        assert code == 1 and result is not None and result["is_error"] and len(sim.served) == 1
        sim.reset()
        code, events, _ = run_codex(sim.openai_url, "dummy", "hi", cwd=tmp_path)
        assert code == 1 and events[-1]["type"] == "turn.failed" and len(sim.served) == 1
