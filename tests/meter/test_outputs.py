"""GitHub command files: what one step exports to the job's later steps."""

from __future__ import annotations

from pathlib import Path

from ci_guard.meter.outputs import append_github_env
from tests.actions.github_runner import parse_command_file


def test_github_env_lines_and_a_value_with_a_line_break(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("EARLIER=1\n")
    append_github_env({"CI_GUARD_WARM": "/tmp/x/sock", "ODD": "first\nINJECTED=1"}, path=str(env_file))
    text = env_file.read_text()
    assert text.startswith("EARLIER=1\nCI_GUARD_WARM=/tmp/x/sock\nODD<<ci_guard_")
    # as the runner reads it: the line break stays inside ODD, no variable INJECTED appears
    assert parse_command_file(env_file) == {"EARLIER": "1", "CI_GUARD_WARM": "/tmp/x/sock", "ODD": "first\nINJECTED=1"}


def test_no_github_env_no_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("GITHUB_ENV", raising=False)
    append_github_env({"A": "b"})  # outside GitHub Actions: nothing to write, no error
    assert list(tmp_path.iterdir()) == []
