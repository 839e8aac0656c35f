from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ci_guard.cli import main

POLICIES = Path(__file__).resolve().parents[2] / "policies"
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CI detected, no ledger, no tokens; cwd is an empty directory (not a git checkout)."""
    for name in list(os.environ):
        if name.startswith(("GITHUB_", "GITLAB_", "CI_", "CI_GUARD_")) or name in ("GH_TOKEN", "CI"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], clean_env: Path) -> Run:
    def invoke(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as info:
            main(list(args))
        out = capsys.readouterr()
        return int(info.value.code or 0), out.out, out.err

    return invoke
