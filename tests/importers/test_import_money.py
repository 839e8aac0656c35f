"""Imports price what the agent's records say, with the proxy's pricer (issue 11 #1, #8)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from ci_guard.importers import parse_usage_file
from ci_guard.importers.record import price_calls
from ci_guard.pricing.catalog import load_catalog


def _write(tmp_path: Path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_claude_code_json_honours_the_one_hour_split_and_us_inference(tmp_path: Path):
    result = {
        "type": "result", "subtype": "success", "is_error": False, "num_turns": 1, "session_id": "s",
        "usage": {"input_tokens": 1000, "cache_creation_input_tokens": 10000, "cache_read_input_tokens": 0,
                  "output_tokens": 1000, "inference_geo": "us",
                  "cache_creation": {"ephemeral_5m_input_tokens": 4000, "ephemeral_1h_input_tokens": 6000}},
        "modelUsage": {"claude-opus-4-6": {"inputTokens": 1000, "outputTokens": 1000, "cacheReadInputTokens": 0,
                                           "cacheCreationInputTokens": 10000}},
    }
    imported = parse_usage_file("claude-code-json", _write(tmp_path, "r.json", result))
    (priced,) = price_calls(imported, load_catalog())
    # Opus 4.6: 1,000 x 5 + 4,000 x 6.25 + 6,000 x 10 + 1,000 x 25 = $0.115; x 1.1 US-only = $0.1265
    assert priced.cost_usd == Decimal("0.126500")


def test_a_sum_of_calls_is_never_priced_with_a_per_request_tier(tmp_path: Path):
    # 12 Sonnet 4.5 calls summed by Claude Code: 356,656 tokens in total, every call under 200K
    result = {
        "type": "result", "subtype": "success", "is_error": False, "num_turns": 12, "session_id": "s",
        "modelUsage": {"claude-sonnet-4-5": {"inputTokens": 56, "outputTokens": 6600,
                                             "cacheReadInputTokens": 320000, "cacheCreationInputTokens": 30000}},
    }
    imported = parse_usage_file("claude-code-json", _write(tmp_path, "r.json", result))
    (priced,) = price_calls(imported, load_catalog())
    # base rates: 56 x 3 + 30,000 x 3.75 + 320,000 x 0.30 + 6,600 x 15 = 168 + 112,500 + 96,000 + 99,000
    assert priced.cost_usd == Decimal("0.307668")
    # the tier (6 / 7.50 / 0.60 / 22.50): 336 + 225,000 + 192,000 + 148,500 = $0.565836, $0.258168 more
    assert any("at most $0.258168 more" in note for note in imported.notes)


def test_a_codex_turn_is_a_sum_too(tmp_path: Path):
    events = [{"type": "turn.completed", "usage": {"input_tokens": 400_000, "cached_input_tokens": 380_000,
                                                   "output_tokens": 10_000, "reasoning_output_tokens": 4000}}]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events))
    imported = parse_usage_file("codex-jsonl", str(path), model="gpt-5.5")
    (priced,) = price_calls(imported, load_catalog())
    # gpt-5.5 base: 20,000 x 5 + 380,000 x 0.50 + 10,000 x 30 = 0.1 + 0.19 + 0.3 (not the >272K tier)
    assert priced.cost_usd == Decimal("0.590000")


def _assistant(req: str, msg: str, usage: dict, content: list | None = None, model: str = "claude-sonnet-4-5",
               at: str = "2026-12-04T10:00:00Z", **extra) -> dict:
    return {"type": "assistant", "requestId": req, "sessionId": "sess-1", "timestamp": at,
            "message": {"id": msg, "model": model, "usage": usage, "content": content or []}, **extra}


def test_claude_code_session_one_call_per_request_with_the_largest_counts(tmp_path: Path):
    start = {"input_tokens": 10, "cache_creation_input_tokens": 250_000, "cache_read_input_tokens": 0,
             "output_tokens": 1, "cache_creation": {"ephemeral_5m_input_tokens": 50_000,
                                                    "ephemeral_1h_input_tokens": 200_000}}
    final = {**start, "output_tokens": 2000}
    lines = [
        {"type": "user", "sessionId": "sess-1", "message": {"role": "user", "content": "hi"}},
        _assistant("req_1", "msg_1", start, [{"type": "thinking"}]),
        _assistant("req_1", "msg_1", final, [{"type": "tool_use", "id": "tu_1"}]),  # same request: merged
        _assistant("req_2", "msg_2", {"input_tokens": 100, "output_tokens": 50, "inference_geo": "us"},
                   model="claude-opus-4-6", at="2026-12-04T10:01:00Z"),
        _assistant("req_x", "msg_x", {"input_tokens": 0, "output_tokens": 0}, model="<synthetic>"),
    ]
    session = tmp_path / "proj" / "sess-1.jsonl"
    session.parent.mkdir()
    session.write_text("\n".join(json.dumps(x) for x in lines))
    # a subagent's sidechain repeats req_2 (it is read with the directory, and counted once)
    (tmp_path / "proj" / "agent-1.jsonl").write_text(json.dumps(_assistant(
        "req_2", "msg_2", {"input_tokens": 100, "output_tokens": 50, "inference_geo": "us"},
        model="claude-opus-4-6", at="2026-12-04T10:01:00Z", isSidechain=True)))
    imported = parse_usage_file("claude-code-session", str(tmp_path / "proj"))
    assert [c.model for c in imported.calls] == ["claude-sonnet-4-5", "claude-opus-4-6"]
    assert imported.session_id == "sess-1" and imported.turns == 2 and imported.tool_calls == 1
    first, second = price_calls(imported, load_catalog())
    # req_1 is above 200K (250,010 tokens): tier rates 6 / 7.50 / 12 / 22.50
    # 10 x 6 + 50,000 x 7.50 + 200,000 x 12 + 2,000 x 22.50 = 60 + 375,000 + 2,400,000 + 45,000
    assert first.cost_usd == Decimal("2.820060")
    # req_2, Opus 4.6 in the US: (100 x 5 + 50 x 25) x 1.1
    assert second.cost_usd == Decimal("0.001925")


def test_codex_rollout_from_older_versions_reads_token_count_events(tmp_path: Path):
    def count(total: int, last: dict) -> dict:
        return {"type": "event_msg", "timestamp": "2026-12-04T10:00:00Z",
                "payload": {"type": "token_count", "info": {"total_token_usage": {"total_tokens": total},
                                                            "last_token_usage": last}}}

    first = {"input_tokens": 300_000, "cached_input_tokens": 0, "output_tokens": 100}
    second = {"input_tokens": 10_000, "cached_input_tokens": 9_000, "output_tokens": 50}
    lines = [{"type": "session_meta", "payload": {"id": "th_1"}},
             {"type": "turn_context", "payload": {"model": "gpt-5.5"}},
             count(300_100, first), count(300_100, first),  # repeated event: one call
             count(310_150, second)]
    path = tmp_path / "rollout-1.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    imported = parse_usage_file("codex-session", str(path))
    assert len(imported.calls) == 2 and imported.session_id == "th_1"
    a, b = price_calls(imported, load_catalog())
    # the first request is above 272K on its own: 300,000 x 10 + 100 x 45
    assert a.cost_usd == Decimal("3.004500")
    # the second is not: 1,000 x 5 + 9,000 x 0.50 + 50 x 30
    assert b.cost_usd == Decimal("0.011000")


def test_the_import_command_says_a_sum_is_a_bound(tmp_path: Path, capsys):
    from tests.helpers import run_cli

    result = {"type": "result", "subtype": "success", "is_error": False, "num_turns": 12, "session_id": "s",
              "modelUsage": {"claude-sonnet-4-5": {"inputTokens": 56, "outputTokens": 6600,
                                                   "cacheReadInputTokens": 320000, "cacheCreationInputTokens": 30000}}}
    path = _write(tmp_path, "r.json", result)
    code, out, _ = run_cli(capsys, "import", "--format", "claude-code-json", path, "--agent", "x",
                           "--ledger", f"sqlite:///{tmp_path / 'l.db'}")
    assert code == 0 and "$0.307668" in out and "note:" in out and "at most $0.258168 more" in out
