"""The agent's environment and command line: pointed at the proxy, stripped of the real keys.

Presets add what a known agent CLI needs to be metered and capped:

* ``claude-code``: ``--model`` and ``--max-turns`` when absent; telemetry and other non-model
  traffic off (only model calls should leave the runner).
* ``codex``: Codex ignores ``OPENAI_BASE_URL`` and speaks only the Responses API, so a
  ``model_providers`` entry pointing at the proxy is passed as ``-c`` overrides, plus ``-m``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

PRESETS = ("none", "claude-code", "codex")

# Held by ci-guard only and removed from the agent's environment: model-provider credentials (the
# agent must go through the meter), the ledger URL (it may carry a password, and an agent that can
# write the ledger can settle its own budget) and ci-guard's own forge tokens.
PROVIDER_SECRET_VARS = (
    "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY", "CODEX_API_KEY",
    "AZURE_OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "MISTRAL_API_KEY", "OPENROUTER_API_KEY",
    "CI_GUARD_LEDGER", "PGPASSWORD", "CI_GUARD_GITHUB_TOKEN", "CI_GUARD_GITLAB_TOKEN",
)
CODEX_PROVIDER_ID = "ci-guard"


@dataclass
class AgentLaunch:
    command: list[str]
    env: dict[str, str]


def agent_environment(base: Mapping[str, str], *, proxy_url: str, token: str, run_id: str,
                      model: str | None, max_turns: int | None, strip: Sequence[str] = ()) -> dict[str, str]:
    """The agent's environment: ours minus the real keys (and ``strip``), plus the proxy and the run token."""
    removed = set(PROVIDER_SECRET_VARS) | set(strip)
    env = {k: v for k, v in base.items() if k not in removed}
    env.update({
        "ANTHROPIC_BASE_URL": f"{proxy_url}/anthropic",
        "ANTHROPIC_API_KEY": token,
        "OPENAI_BASE_URL": f"{proxy_url}/openai/v1",
        "OPENAI_API_KEY": token,
        "CI_GUARD_RUN_ID": run_id,
        "CI_GUARD_PROXY_URL": proxy_url,
    })
    if model:
        env["CI_GUARD_MODEL"] = model
    if max_turns is not None:
        env["CI_GUARD_MAX_TURNS"] = str(max_turns)
    return env


def apply_preset(preset: str, command: Sequence[str], env: dict[str, str], *, proxy_url: str,
                 model: str | None, max_turns: int | None) -> AgentLaunch:
    cmd = list(command)
    if preset == "claude-code":
        return AgentLaunch(_claude_command(cmd, model, max_turns), _claude_env(env))
    if preset == "codex":
        return AgentLaunch(_codex_command(cmd, proxy_url, model), _codex_env(env))
    return AgentLaunch(cmd, env)


def _has_flag(cmd: Sequence[str], *names: str) -> bool:
    return any(arg == n or arg.startswith(n + "=") for arg in cmd for n in names)


def _claude_command(cmd: list[str], model: str | None, max_turns: int | None) -> list[str]:
    if model and not _has_flag(cmd, "--model"):
        cmd += ["--model", model]
    if max_turns is not None and not _has_flag(cmd, "--max-turns"):
        cmd += ["--max-turns", str(max_turns)]
    return cmd


def _claude_env(env: dict[str, str]) -> dict[str, str]:
    env = dict(env)
    env.setdefault("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    env.setdefault("DISABLE_TELEMETRY", "1")
    return env


def _codex_command(cmd: list[str], proxy_url: str, model: str | None) -> list[str]:
    provider = CODEX_PROVIDER_ID
    overrides = [
        f'model_provider="{provider}"',
        f'model_providers.{provider}.name="ci-guard metering proxy"',
        f'model_providers.{provider}.base_url="{proxy_url}/openai/v1"',
        f'model_providers.{provider}.env_key="OPENAI_API_KEY"',
        f'model_providers.{provider}.wire_api="responses"',
    ]
    extra: list[str] = []
    for item in overrides:
        extra += ["-c", item]
    if model and not _has_flag(cmd, "-m", "--model"):
        extra += ["-m", model]
    # Config overrides go right after the subcommand (`codex exec -c ...`) or the program name.
    at = 1
    if len(cmd) > 1 and cmd[1] in ("exec", "e", "review"):
        at = 2
    return cmd[:at] + extra + cmd[at:]


def _codex_env(env: dict[str, str]) -> dict[str, str]:
    env = dict(env)
    # `codex exec` prefers CODEX_API_KEY over the provider's env_key: make both the run token.
    env["CODEX_API_KEY"] = env["OPENAI_API_KEY"]
    return env


def detect_preset(command: Sequence[str]) -> str:
    """Guess the preset from the program name (``auto``)."""
    if not command:
        return "none"
    name = os.path.basename(command[0])
    if name == "claude":
        return "claude-code"
    if name == "codex":
        return "codex"
    return "none"
