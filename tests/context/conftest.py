"""Helpers for context tests: real temporary git repositories and CI environments from fixtures."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events"

# Keep the developer's or CI's own git config out of the test repositories.
_GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_DATE": "2026-05-04T10:00:00Z",
    "GIT_COMMITTER_DATE": "2026-05-04T10:00:00Z",
}


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _GIT_ENV.items():
        monkeypatch.setenv(name, value)


def git(cwd: Path | str, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                         env={**os.environ, **_GIT_ENV})
    return out.stdout.strip()


def write(root: Path, rel: str, text: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


def commit_all(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


def make_repo(root: Path, user: str | None = "Alice Example", email: str | None = "alice@acme.example") -> Path:
    """A repository on ``main`` with one commit (README.md, src/app.py, docs/guide.md)."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    if user:
        git(root, "config", "user.name", user)
    if email:
        git(root, "config", "user.email", email)
    write(root, "README.md", "# demo\n")
    write(root, "src/app.py", "".join(f"line {i}\n" for i in range(20)))
    write(root, "docs/guide.md", "guide\n")
    commit_all(root, "initial")
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def pr_change(root: Path) -> tuple[str, str]:
    """On a branch feature/x: modify src/app.py (+2 -1), add a binary, rename docs/guide.md.

    Returns (base sha, head sha). Expected numstat: 3 files; lines 2+1 (app.py) + 0 (binary)
    + 0 (pure rename) = 3; paths src/app.py, assets/logo.png, docs/guide.md, docs/manual.md.
    """
    base = git(root, "rev-parse", "HEAD")
    git(root, "checkout", "-q", "-b", "feature/x")
    lines = (root / "src/app.py").read_text().splitlines(keepends=True)
    lines[3] = "changed 3\n"
    lines.append("added\n")
    (root / "src/app.py").write_text("".join(lines))
    write(root, "assets/logo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00binary\x00data")
    git(root, "mv", "docs/guide.md", "docs/manual.md")
    head = commit_all(root, "feature")
    return base, head


def load_payload(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def github_env(tmp_path: Path, event: str, payload: dict[str, Any] | str, **extra: str) -> dict[str, str]:
    """The environment of a GitHub Actions step for ``event``, with the payload written to a file."""
    data = load_payload(payload) if isinstance(payload, str) else payload
    path = tmp_path / "event.json"
    path.write_text(json.dumps(data))
    env = {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(path),
        "GITHUB_REPOSITORY": "acme/payments-api",
        "GITHUB_REPOSITORY_OWNER": "acme",
        "GITHUB_ACTOR": "alice",
        "GITHUB_WORKFLOW": "AI review",
        "GITHUB_JOB": "review",
        "GITHUB_RUN_ID": "9123456789",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": "https://api.github.com",
        "GITHUB_SHA": "e7a9c0d1f2e3a4b5c6d7e8f90a1b2c3d4e5f6a7b",
        "GITHUB_REF": "refs/pull/42/merge",
    }
    env.update(extra)
    return env


def gitlab_env(name: str, **extra: str) -> dict[str, str]:
    env = load_payload(name)
    env.pop("CI_JOB_TOKEN", None)  # tests opt in to tokens explicitly
    env.update(extra)
    return env
