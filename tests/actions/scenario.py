"""Shared pieces of the end-to-end tests: a git workspace with a PR, a policy, event payloads."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_guard.ledger import open_ledger

REAL_KEY = "sk-ant-api03-E2E-real-key-kept-by-ci-guard-0123456789"
GITHUB_TOKEN = "tok-e2e-github-0000000000"
GITLAB_TOKEN = "glpat-e2e-gitlab-000000000"
REPO = "acme/app"
PR = 12
MR = 7

POLICY = """\
version: 1
models: {large: claude-sonnet-4-5}
budgets:
  - {name: repo-monthly, scope: repo, period: month, limit_usd: 50}
defaults:
  model: large
  limits: {max_turns: 8, max_cost_usd: 2.00, max_runtime: 10m}
rules:
  - name: skip-drafts
    when: {draft: true}
    decision: skip
    reason: Draft pull requests are not reviewed automatically.
  - name: review
    when: {trigger: pull_request, agent: pr-review}
    decision: allow
  - name: everything-else
    decision: deny
    reason: No rule allows this run.
"""

# What Claude Code needs to run offline against a local provider (see notes/agent-behaviour.md).
CLAUDE_ENV = {"DISABLE_TELEMETRY": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
              "DISABLE_AUTOUPDATER": "1"}


@dataclass
class Workspace:
    path: Path
    base_sha: str
    head_sha: str
    policy: str = ".github/ci-guard.yml"


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@example.com",
           "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def make_workspace(root: Path) -> Workspace:
    """A repository whose HEAD is a pull request's head: one commit changing src/app.py on main."""
    root.mkdir(parents=True, exist_ok=True)
    _git(root, "init", "-q", "-b", "main")
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("def add(a, b):\n    return a + b\n")
    (root / ".github").mkdir()
    (root / ".github" / "ci-guard.yml").write_text(POLICY)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "base")
    base = _git(root, "rev-parse", "HEAD")
    (root / "src" / "app.py").write_text("def add(a, b):\n    # sum\n    return a + b\n\n\ndef sub(a, b):\n"
                                         "    return a - b\n")
    _git(root, "commit", "-q", "-am", "feature")
    return Workspace(root, base, _git(root, "rev-parse", "HEAD"))


def pull_request_event(ws: Workspace, *, fork: bool = False, draft: bool = False) -> dict[str, Any]:
    """A `pull_request` (opened) webhook payload with the fields GitHub sends that ci-guard reads."""
    head_repo = {"full_name": "mallory/app" if fork else REPO, "fork": fork,
                 "owner": {"login": "mallory" if fork else "acme"}}
    return {
        "action": "opened", "number": PR,
        "pull_request": {
            "number": PR, "title": "Add sub() `@everyone`", "draft": draft, "state": "open",
            "additions": 5, "deletions": 0, "changed_files": 1, "commits": 1,
            "labels": [{"name": "ai:review"}], "user": {"login": "mallory" if fork else "alice"},
            "author_association": "CONTRIBUTOR" if fork else "MEMBER",
            "head": {"ref": "feature/sub", "sha": ws.head_sha, "repo": head_repo},
            "base": {"ref": "main", "sha": ws.base_sha, "repo": {"full_name": REPO, "fork": False}},
            "html_url": f"https://github.com/{REPO}/pull/{PR}",
        },
        "repository": {"full_name": REPO, "name": "app", "owner": {"login": "acme"}},
        "sender": {"login": "mallory" if fork else "alice"},
    }


def write_event(path: Path, event: dict[str, Any]) -> Path:
    path.write_text(json.dumps(event))
    return path


def ledger_run(url: str, run_id: str) -> tuple:
    """(the run's row, its calls) as the ledger at ``url`` recorded them."""
    store = open_ledger(url)
    try:
        return store.get_run(run_id), store.list_calls(run_id)
    finally:
        store.close()
