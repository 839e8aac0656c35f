"""`--help` tells the truth: every ledger subcommand listed and with examples, every exit code named."""

from __future__ import annotations

import re

import click

from ci_guard.cli import COMMANDS
from tests.helpers import run_cli


def _ledger_group() -> click.Group:
    from ci_guard.commands.ledger import ledger

    return ledger


def test_top_level_help_lists_every_ledger_subcommand(capsys) -> None:
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    (line,) = [line for line in out.splitlines() if line.strip().startswith("ledger ")]
    listed = set(re.findall(r"[a-z-]+", line.split(":", 1)[1]))
    assert set(_ledger_group().commands) <= listed, (line, sorted(_ledger_group().commands))
    assert set(_ledger_group().commands) <= set(re.findall(r"[a-z-]+", COMMANDS["ledger"][1]))


def test_every_ledger_subcommand_has_examples(capsys) -> None:
    for name in _ledger_group().commands:
        code, out, _ = run_cli(capsys, "ledger", name, "--help")
        assert code == 0 and "Examples:" in out, name
        assert re.search(r"^\s+ci-guard ", out.split("Examples:", 1)[1], re.M), name


def test_run_and_start_help_name_their_exit_codes(capsys) -> None:
    _, out, _ = run_cli(capsys, "run", "--help")
    text = " ".join(out.split())
    for code in ("80", "81", "82", "2"):
        assert re.search(rf"\b{code}\b", text), code
    assert "infrastructure failure" in text
    _, out, _ = run_cli(capsys, "start", "--help")
    assert "82" in out and "80" in out
