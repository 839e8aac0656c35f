"""What a new user's runner has: a clean checkout of the action and an empty virtual environment.

The end-to-end tests of the Action and the GitLab component install ci-guard with the wrapper's own
install step into a virtual environment that holds nothing but pip, from a copy of the repository's
files (what a checkout of the action's ref holds), with no other ``ci-guard`` anywhere on PATH. So a
dependency missing from pyproject.toml, a file missing from the package, or a step that only works
because the test's own environment has ci-guard installed fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.actions.layout import ROOT

# A policy whose decisions differ from what each agent CLI would pick by itself (Claude Code's default
# is an Opus model; Codex's is its own codex model), with turn caps the tests can observe.
# the models AGENT_POLICY decides for Claude Code and for Codex (its `large` and `codex` tiers)
DECIDED_CLAUDE, DECIDED_CODEX = "claude-sonnet-4-5", "gpt-5"
AGENT_POLICY = textwrap.dedent("""\
    version: 1
    models: {large: claude-sonnet-4-5, codex: gpt-5}
    budgets:
      - {name: repo-monthly, scope: repo, period: month, limit_usd: 50}
    defaults:
      model: large
      limits: {max_turns: 8, max_cost_usd: 2.00, max_runtime: 10m}
    rules:
      - name: review
        when: {agent: pr-review}
        decision: allow
        limits: {max_turns: 3}
      - name: review-long
        when: {agent: pr-review-long}
        decision: allow
      - name: repair
        when: {agent: test-repair}
        decision: allow
        model: codex
        limits: {max_turns: 3}
      - name: everything-else
        decision: deny
        reason: No rule allows this run.
""")

# A user's own Codex configuration: the preset must merge it, and the decided model and the proxy
# provider must win over what it says.
USER_CODEX_CONFIG = textwrap.dedent("""\
    model = "o3"
    model_provider = "openai"
    approval_policy = "never"

    [model_providers.corp]
    name = "corp"
    base_url = "https://llm.corp.example/v1"
    env_key = "CORP_KEY"
""")


def copy_checkout(dest: Path) -> Path:
    """The repository's files (tracked and new, not ignored), as a checkout of the action's ref has them."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        if rel.startswith(".tools"):
            continue
        src = ROOT / rel
        if not src.is_file():
            continue  # deleted in the work tree
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    return dest


def empty_venv(dest: Path) -> Path:
    """A new virtual environment with pip only; returns its bin directory."""
    subprocess.run([sys.executable, "-m", "venv", str(dest)], check=True, capture_output=True, timeout=300)
    bin_dir = dest / "bin"
    assert not (bin_dir / "ci-guard").exists()
    return bin_dir


def clean_path(*first: Path) -> str:
    """PATH with ``first`` in front and no directory that holds another ``ci-guard``."""
    rest = [d for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
            if d and not (Path(d) / "ci-guard").exists() and Path(d) != Path(sys.executable).parent]
    return os.pathsep.join([*(str(p) for p in first), *rest])
