"""The importers read what the agents and vendors really write, and refuse what they cannot read."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.errors import InvalidInputError
from ci_guard.importers import parse_usage_file
from ci_guard.pricing.usage import Usage

RESULT = {
    "type": "result", "subtype": "success", "is_error": False, "duration_ms": 12500, "num_turns": 3,
    "session_id": "9f1c", "total_cost_usd": 0.0542,
    "usage": {"input_tokens": 12, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 2000,
              "output_tokens": 300},
    "modelUsage": {
        "claude-sonnet-4-5": {"inputTokens": 12, "outputTokens": 300, "cacheReadInputTokens": 2000,
                              "cacheCreationInputTokens": 1000, "costUSD": 0.008886},
        "claude-haiku-4-5": {"inputTokens": 400, "outputTokens": 20, "cacheReadInputTokens": 0,
                             "cacheCreationInputTokens": 0, "costUSD": 0.0005},
    },
}


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_claude_code_json_result_gives_one_call_per_model(tmp_path: Path) -> None:
    imported = parse_usage_file("claude-code-json", _write(tmp_path, "r.json", json.dumps(RESULT)))
    by_model = {c.model: c for c in imported.calls}
    assert by_model["claude-sonnet-4-5"].usage == Usage(input_tokens=12, cache_write_tokens=1000,
                                                        cache_read_tokens=2000, output_tokens=300)
    assert by_model["claude-haiku-4-5"].usage.input_tokens == 400
    assert imported.turns == 3 and imported.session_id == "9f1c"
    assert imported.reported_cost_usd == Decimal("0.0542")  # exact, not a float artefact
    assert imported.runtime_s == 12.5


def test_claude_code_stream_json_uses_the_last_result_and_counts_tool_uses(tmp_path: Path) -> None:
    lines = [
        {"type": "system", "subtype": "init", "model": "claude-sonnet-4-5", "session_id": "9f1c"},
        {"type": "assistant", "message": {"content": [{"type": "tool_use", "name": "Bash", "input": {}}]}},
        {"type": "user", "message": {"content": [{"type": "tool_result", "content": "ok"}]}},
        {**RESULT, "modelUsage": None},
    ]
    text = "\n".join(json.dumps(x) for x in lines)
    imported = parse_usage_file("claude-code-json", _write(tmp_path, "s.jsonl", text))
    (call,) = imported.calls
    assert call.model == "claude-sonnet-4-5"  # from the init message, since modelUsage is absent
    assert call.usage.cache_read_tokens == 2000
    assert imported.tool_calls == 1


def test_claude_code_action_execution_file_is_an_array(tmp_path: Path) -> None:
    messages = [{"type": "system", "subtype": "init", "model": "claude-sonnet-4-5"}, RESULT]
    imported = parse_usage_file("claude-code-json", _write(tmp_path, "exec.json", json.dumps(messages)))
    assert len(imported.calls) == 2


def test_claude_code_without_a_result_is_invalid_input(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.json", json.dumps({"type": "assistant"}))
    with pytest.raises(InvalidInputError) as exc:
        parse_usage_file("claude-code-json", path)
    assert "--output-format json" in exc.value.render() and path in exc.value.render()


def test_codex_jsonl_sums_turns_and_splits_cached_input(tmp_path: Path) -> None:
    events = [
        {"type": "thread.started", "thread_id": "th_1"},
        {"type": "turn.started"},
        {"type": "item.completed", "item": {"type": "command_execution", "command": "pytest", "exit_code": 0}},
        {"type": "item.completed", "item": {"type": "agent_message", "text": "done"}},
        {"type": "turn.completed", "usage": {"input_tokens": 5000, "cached_input_tokens": 3000,
                                             "output_tokens": 700, "reasoning_output_tokens": 200}},
    ]
    text = "WARNING: something\n" + "\n".join(json.dumps(e) for e in events)
    imported = parse_usage_file("codex-jsonl", _write(tmp_path, "c.jsonl", text), model="gpt-5-codex")
    (call,) = imported.calls
    assert call.model == "gpt-5-codex"
    assert call.usage == Usage(input_tokens=2000, cache_read_tokens=3000, output_tokens=700, reasoning_tokens=200)
    assert imported.session_id == "th_1" and imported.tool_calls == 1 and imported.turns == 1


def test_codex_bad_line_is_located(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.jsonl", '{"type": "turn.started"}\n{"type": "turn.completed", \n')
    with pytest.raises(InvalidInputError) as exc:
        parse_usage_file("codex-jsonl", path)
    assert f"{path}:2:" in exc.value.render()


def test_cursor_csv_maps_cache_columns(tmp_path: Path) -> None:
    text = ("Date,Kind,Model,Max Mode,Input (w/ Cache Write),Input (w/o Cache Write),Cache Read,Output Tokens,"
            "Total Tokens,Cost\n"
            '2026-11-28T10:00:00Z,Included,claude-4.5-sonnet,No,"1,000",200,5000,300,6500,$0.02\n'
            "2026-11-27T10:00:00Z,Included,claude-4.5-sonnet,No,10,10,10,10,40,Included\n")
    path = _write(tmp_path, "cursor.csv", text)
    imported = parse_usage_file("csv", path)
    first = imported.calls[0]
    assert first.usage == Usage(input_tokens=200, cache_write_tokens=1000, cache_read_tokens=5000, output_tokens=300)
    assert first.vendor_cost_usd == Decimal("0.02")
    assert imported.calls[1].vendor_cost_usd is None  # "Included" is not a price
    since = parse_usage_file("csv", path, since=first.started_at)
    assert len(since.calls) == 1


def test_copilot_csv_has_cost_without_tokens(tmp_path: Path) -> None:
    text = ("date,username,product,sku,model,quantity,unit_type,applied_cost_per_quantity,gross_amount,"
            "discount_amount,net_amount\n"
            "2026-11-28,octocat,copilot,copilot_premium_request,Claude Sonnet 4.5,3,requests,0.04,0.12,0,0.12\n"
            "2026-11-28,hubot,copilot,copilot_premium_request,GPT-5,1,requests,0.04,0.04,0,0.04\n")
    imported = parse_usage_file("csv", _write(tmp_path, "copilot.csv", text), user="octocat")
    (call,) = imported.calls
    assert call.vendor_cost_usd == Decimal("0.12") and call.usage == Usage()


def test_csv_without_usable_columns_names_what_it_expects(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.csv", "a,b\n1,2\n")
    with pytest.raises(InvalidInputError) as exc:
        parse_usage_file("csv", path)
    assert "output_tokens" in exc.value.render()


def test_csv_bad_number_is_located(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.csv", "model,input_tokens,output_tokens\nm,12,lots\n")
    with pytest.raises(InvalidInputError) as exc:
        parse_usage_file("csv", path)
    rendered = exc.value.render()
    assert f"{path}:2:" in rendered and "output_tokens" in rendered and "'lots'" in rendered


def test_missing_file_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not found"):
        parse_usage_file("csv", str(tmp_path / "nope.csv"))
