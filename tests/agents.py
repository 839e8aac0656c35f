"""Launch the real agent CLIs (npm: Claude Code, Codex) against a local provider or proxy.

Both run fully offline with a throw-away HOME (and CODEX_HOME), a dummy key and telemetry off.
Tests call :func:`require_claude` / :func:`require_codex` first: skipped locally when the binary is
missing, a failure in CI. Environment passed to the CLI is built from scratch (PATH only) plus
``extra_env``, so no provider key from the test runner's environment can leak into it.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.helpers import require

# CI_GUARD_NPM_BIN points at another node_modules/.bin (a machine whose .tools/ is elsewhere).
BIN = Path(os.environ.get("CI_GUARD_NPM_BIN")
           or Path(__file__).resolve().parents[1] / ".tools" / "node_modules" / ".bin")
CLAUDE = BIN / "claude"
CODEX = BIN / "codex"


def require_claude() -> None:
    require(CLAUDE.exists(), f"Claude Code CLI not installed at {CLAUDE} (npm i @anthropic-ai/claude-code)")


def require_codex() -> None:
    require(CODEX.exists(), f"Codex CLI not installed at {CODEX} (npm i @openai/codex)")


def _base_env(home: str, extra_env: dict[str, str] | None) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8"}
    env.update(extra_env or {})
    return env


def run_claude(base_url: str, api_key: str, prompt: str, max_turns: int = 5,
               model: str = "claude-sonnet-4-5", cwd: str | Path | None = None,
               extra_env: dict[str, str] | None = None, timeout: float = 180,
               extra_args: list[str] | None = None) -> tuple[int, dict[str, Any] | None, str]:
    """``claude -p PROMPT --output-format json``; returns (exit code, parsed JSON or None, stderr).

    ``base_url`` is the Anthropic base URL (the simulator root, or the proxy's ``/anthropic``).
    """
    with tempfile.TemporaryDirectory(prefix="cig-claude-") as home:
        env = _base_env(home, {
            "ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": api_key, "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
            **(extra_env or {}),
        })
        args = [str(CLAUDE), "-p", prompt, "--output-format", "json", "--max-turns", str(max_turns),
                "--model", model, "--allowedTools", "Bash", *(extra_args or [])]
        proc = subprocess.run(args, cwd=str(cwd or home), env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
    try:
        parsed = json.loads(proc.stdout)
    except ValueError:
        parsed = None
    return proc.returncode, parsed, proc.stderr


def codex_config(base_url: str) -> str:
    """A CODEX_HOME config.toml whose provider points at ``base_url`` (an OpenAI ``/v1`` URL)."""
    return (
        'model_provider = "cig"\n'
        "[model_providers.cig]\n"
        'name = "cig"\n'
        f'base_url = "{base_url}"\n'
        'env_key = "OPENAI_API_KEY"\n'
        'wire_api = "responses"\n'
    )


def run_codex(base_url: str, api_key: str, prompt: str, model: str = "gpt-5",
              cwd: str | Path | None = None, extra_env: dict[str, str] | None = None,
              timeout: float = 180) -> tuple[int, list[dict[str, Any]], str]:
    """``codex exec --json``; returns (exit code, the JSONL events, stderr).

    ``base_url`` is the OpenAI base URL including ``/v1`` (simulator) or the proxy's
    ``/openai/v1``. A fresh CODEX_HOME holds the provider entry; Codex warns about a CODEX_HOME
    under /tmp and goes on.
    """
    with tempfile.TemporaryDirectory(prefix="cig-codex-") as home:
        codex_home = Path(home) / "codex"
        codex_home.mkdir()
        (codex_home / "config.toml").write_text(codex_config(base_url))
        env = _base_env(home, {"CODEX_HOME": str(codex_home), "OPENAI_API_KEY": api_key, **(extra_env or {})})
        args = [str(CODEX), "exec", "--json", "--skip-git-repo-check", "-m", model, prompt]
        proc = subprocess.run(args, cwd=str(cwd or home), env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
    events = []
    for line in proc.stdout.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return proc.returncode, events, proc.stderr


def codex_usage(events: list[dict[str, Any]]) -> dict[str, int]:
    """The sum of every ``turn.completed.usage`` in a Codex event list."""
    total: dict[str, int] = {}
    for event in events:
        if event.get("type") == "turn.completed":
            for key, value in (event.get("usage") or {}).items():
                total[key] = total.get(key, 0) + int(value)
    return total
