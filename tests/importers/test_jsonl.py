"""The JSON-lines reading both per-call importers share (Claude Code sessions, Codex rollouts)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ci_guard.errors import InvalidInputError
from ci_guard.importers.jsonl import as_str, as_time, json_lines


def test_strict_reading_names_the_file_and_line_of_a_broken_line() -> None:
    text = '{"a": 1}\n\n[1]\nnot json\n'
    with pytest.raises(InvalidInputError) as err:
        list(json_lines(text, "s.jsonl", "invalid Claude Code session file"))
    assert err.value.problems[0].line == 4 and err.value.problems[0].file == "s.jsonl"


def test_objects_only_skips_other_output_and_keeps_line_numbers() -> None:
    text = 'starting codex\n{"a": 1}\n[1]\n\n{"b": 2}\n'
    assert list(json_lines(text, "r.jsonl", "invalid Codex session file", objects_only=True)) == [
        (2, {"a": 1}), (5, {"b": 2})]


def test_values_are_checked_not_trusted() -> None:
    assert as_str("") is None and as_str(3) is None and as_str("x") == "x"
    assert as_time("2026-03-01T12:00:00Z") == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert as_time("2026-03-01T12:00:00") is None and as_time("soon") is None and as_time(1) is None
