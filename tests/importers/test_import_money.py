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
