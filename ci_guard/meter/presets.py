"""The agent's environment: pointed at the proxy, stripped of the real keys, configured by preset.

A preset never edits the command line. Whatever runs the agent (``bash -c``, ``sh -c``, a Makefile
target, ``npx``, a script of the team's own) passes the environment down unchanged, while a flag
appended to a shell's argv lands in ``$0 $1`` and one inserted after ``bash`` can turn the command
into a variable assignment that runs nothing. So everything a known agent CLI needs reaches it
through variables it reads or a configuration file named by one:

* ``claude-code``: ``ANTHROPIC_MODEL`` (the main loop), the alias variables
  (``ANTHROPIC_DEFAULT_{OPUS,SONNET,HAIKU}_MODEL``, ``ANTHROPIC_SMALL_FAST_MODEL``,
  ``CLAUDE_CODE_SUBAGENT_MODEL``) so that ``--model sonnet`` or a background call names a model the
  run may use, ``CLAUDE_CODE_MAX_TURNS`` (Claude Code 2.1+ reads it when ``--max-turns`` is absent),
  telemetry and other non-model traffic off. Claude Code's own ``total_cost_usd`` then prices the
  model that was served.
* ``codex``: Codex ignores ``OPENAI_BASE_URL`` and reads its provider from ``$CODEX_HOME/config.toml``.
  The preset writes a per-run ``CODEX_HOME`` whose ``config.toml`` is the user's own (from
  ``$CODEX_HOME`` or ``~/.codex``) with the proxy as ``model_provider`` and the decided ``model``.
  The user's ``auth.json`` is not copied (the proxy provider authenticates with the run token);
  the rest of the user's home (``sessions/``, ``log/``, rules) is linked in.

``none`` only points the standard variables at the proxy; ``auto`` picks a preset from the command,
looking through a shell's ``-c`` script and ``npx`` for ``claude`` or ``codex``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_guard.errors import InvalidInputError

PRESETS = ("none", "claude-code", "codex")

# Held by ci-guard only and removed from the agent's environment: model-provider credentials (the
# agent must go through the meter), the ledger URL (it may carry a password, and an agent that can
# write the ledger can settle its own budget) and ci-guard's own forge tokens.
PROVIDER_SECRET_VARS = (
    "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY", "CODEX_API_KEY",
    "AZURE_OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "MISTRAL_API_KEY", "OPENROUTER_API_KEY",
    "CI_GUARD_LEDGER", "PGPASSWORD", "CI_GUARD_GITHUB_TOKEN", "CI_GUARD_GITLAB_TOKEN", "CI_GUARD_STOP_KEY",
)
CODEX_PROVIDER_ID = "ci-guard"

# Claude Code variables that name a model: every one is set to a model the run may use, so no
# alias or background call asks for another one (the proxy would rewrite it, and Claude Code's own
# cost figure would then price a model that was never served).
CLAUDE_MODEL_VARS = ("ANTHROPIC_MODEL", "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL",
                     "CLAUDE_CODE_SUBAGENT_MODEL")
CLAUDE_SMALL_MODEL_VARS = ("ANTHROPIC_DEFAULT_HAIKU_MODEL", "ANTHROPIC_SMALL_FAST_MODEL")


@dataclass
class AgentLaunch:
    command: list[str]
    env: dict[str, str]


def agent_environment(base: Mapping[str, str], *, proxy_url: str, token: str, run_id: str,
                      model: str | None, max_turns: int | None, strip: Sequence[str] = ()) -> dict[str, str]:
    """The agent's environment: ours minus the real keys (and ``strip``), plus the proxy and the run token."""
    removed = set(PROVIDER_SECRET_VARS) | set(strip)
    env = {k: v for k, v in base.items() if k not in removed}
    env.update(proxy_environment(proxy_url=proxy_url, token=token, run_id=run_id, model=model,
                                 max_turns=max_turns))
    return env


def proxy_environment(*, proxy_url: str, token: str, run_id: str, model: str | None,
                      max_turns: int | None) -> dict[str, str]:
    """The variables every agent gets, preset or not: the proxy's base URLs and the run token."""
    env = {
        "ANTHROPIC_BASE_URL": f"{proxy_url}/anthropic",
        "ANTHROPIC_API_KEY": token,
        "OPENAI_BASE_URL": f"{proxy_url}/openai/v1",
        "OPENAI_API_KEY": token,
        "CI_GUARD_RUN_ID": run_id,
        "CI_GUARD_PROXY_URL": proxy_url,
    }
    if model:
        env["CI_GUARD_MODEL"] = model
    if max_turns is not None:
        env["CI_GUARD_MAX_TURNS"] = str(max_turns)
    return env


def preset_environment(preset: str, base: Mapping[str, str], *, proxy_url: str, token: str, model: str | None,
                       max_turns: int | None, allowed_models: Sequence[str] = (),
                       scratch: Path | None = None) -> dict[str, str]:
    """What ``preset`` adds to the agent's environment (a subset to export, e.g. through GITHUB_ENV).

    ``base`` is the environment the agent would otherwise get (for the user's own ``CODEX_HOME``
    and ``HOME``); ``scratch`` is a directory for the generated Codex configuration, which must live
    as long as the agent runs.
    """
    if preset == "claude-code":
        return _claude_env(base, model, max_turns, allowed_models)
    if preset == "codex":
        if scratch is None:
            raise ValueError("the codex preset needs a scratch directory for its CODEX_HOME")
        return _codex_env(base, proxy_url=proxy_url, token=token, model=model, home=scratch / "codex-home")
    return {}


def apply_preset(preset: str, command: Sequence[str], env: dict[str, str], *, proxy_url: str, token: str,
                 model: str | None, max_turns: int | None, allowed_models: Sequence[str] = (),
                 scratch: Path | None = None) -> AgentLaunch:
    """The launch of ``command`` with ``preset``: the command unchanged, the environment configured."""
    extra = preset_environment(preset, env, proxy_url=proxy_url, token=token,
                               model=model, max_turns=max_turns, allowed_models=allowed_models, scratch=scratch)
    return AgentLaunch(list(command), {**env, **extra})


def check_preset(preset: str, base: Mapping[str, str]) -> None:
    """Fail on bad input the preset would read (a broken Codex config) before anything is decided."""
    if preset == "codex":
        source = _user_codex_home(base)
        if source:
            _read_codex_config(source / "config.toml")


def _claude_env(base: Mapping[str, str], model: str | None, max_turns: int | None,
                allowed_models: Sequence[str]) -> dict[str, str]:
    # Only model traffic should leave the runner, unless the job says otherwise (set, even empty).
    quiet = {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1"}
    env = {name: value for name, value in quiet.items() if name not in base}
    if model:
        for name in CLAUDE_MODEL_VARS:
            env[name] = model
        # Background calls (titles, summaries) may use a cheaper model the policy also allows.
        small = next((m for m in allowed_models if "haiku" in m), model)
        for name in CLAUDE_SMALL_MODEL_VARS:
            env[name] = small
    if max_turns is not None:
        env["CLAUDE_CODE_MAX_TURNS"] = str(max_turns)
    return env


def _codex_env(base: Mapping[str, str], *, proxy_url: str, token: str, model: str | None,
               home: Path) -> dict[str, str]:
    source = _user_codex_home(base)
    config = _read_codex_config(source / "config.toml") if source else {}
    provider = {"name": "ci-guard metering proxy", "base_url": f"{proxy_url}/openai/v1",
                "env_key": "OPENAI_API_KEY", "wire_api": "responses"}
    merged = merge_codex_config(config, provider, model)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    import tomli_w

    _write_private(home / "config.toml", tomli_w.dumps(merged))
    if source:
        _link_user_codex_home(source, home)
    # `codex exec` prefers CODEX_API_KEY over the provider's env_key: make both the run token.
    return {"CODEX_HOME": str(home), "CODEX_API_KEY": token, "OPENAI_API_KEY": token}


# Codex keeps its sessions (the rollouts `ci-guard import --format codex-session` reads), logs and
# history in CODEX_HOME: they must land in the user's own one, as without ci-guard.
_CODEX_STATE_DIRS = ("sessions", "log")
_NOT_LINKED = frozenset({"config.toml", "auth.json"})


def _link_user_codex_home(source: Path, home: Path) -> None:
    """Make the per-run home show the user's: everything but config.toml (merged) and auth.json."""
    try:
        for name in _CODEX_STATE_DIRS:
            (source / name).mkdir(parents=True, exist_ok=True)
        entries = list(source.iterdir())
    except OSError:
        return  # an unwritable or missing home: Codex then keeps its state in the per-run one
    for entry in entries:
        target = home / entry.name
        if entry.name in _NOT_LINKED or target.exists() or target.is_symlink():
            continue
        if entry.name == "AGENTS.md" and entry.is_file():
            shutil.copyfile(entry, target)  # global instructions: a copy, so the run cannot edit the user's
            continue
        target.symlink_to(entry)


def merge_codex_config(config: dict[str, Any], provider: dict[str, str], model: str | None) -> dict[str, Any]:
    """The user's Codex config with the proxy as its model provider (and the decided model).

    A selected ``profile`` overrides top-level keys in Codex, so the profile gets the same settings.
    """
    merged = dict(config)
    providers = dict(merged.get("model_providers") or {})
    providers[CODEX_PROVIDER_ID] = provider
    merged["model_providers"] = providers
    targets = [merged]
    profile = merged.get("profile")
    if isinstance(profile, str) and isinstance(merged.get("profiles"), dict) and profile in merged["profiles"]:
        profiles = dict(merged["profiles"])
        profiles[profile] = dict(profiles[profile])
        merged["profiles"] = profiles
        targets.append(profiles[profile])
    for target in targets:
        target["model_provider"] = CODEX_PROVIDER_ID
        if model:
            target["model"] = model
    return merged


def _user_codex_home(base: Mapping[str, str]) -> Path | None:
    if base.get("CODEX_HOME"):
        return Path(base["CODEX_HOME"])
    if base.get("HOME"):
        return Path(base["HOME"]) / ".codex"
    return None


def _read_codex_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the Codex configuration: {exc.strerror}") from exc
    import tomllib  # only the codex preset reads TOML: not on every launch

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"{path}: the Codex configuration is not valid TOML ({exc}); the codex "
                                f"preset merges it into the run's own CODEX_HOME") from exc


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash"})
_AGENT_WORD = re.compile(r"(?:^|[\s;&|(`/])(claude|codex)(?=$|[\s;&|)`])")
_NPX_PACKAGES = {"@anthropic-ai/claude-code": "claude-code", "@openai/codex": "codex"}


def detect_preset(command: Sequence[str]) -> str:
    """Guess the preset (``auto``): the program, a shell's ``-c`` script, or ``npx``'s package."""
    if not command:
        return "none"
    name = os.path.basename(command[0])
    if name == "claude":
        return "claude-code"
    if name == "codex":
        return "codex"
    if name in _SHELLS and "-c" in command[1:]:
        at = list(command).index("-c", 1)
        if at + 1 < len(command):
            m = _AGENT_WORD.search(command[at + 1])
            if m:
                return "claude-code" if m.group(1) == "claude" else "codex"
    if name in ("npx", "bunx", "pnpx"):
        for arg in command[1:]:
            package = arg.rsplit("@", 1)[0] if arg.rfind("@") > 0 else arg  # drop an @version
            if package in _NPX_PACKAGES:
                return _NPX_PACKAGES[package]
            if arg in ("claude", "codex"):
                return "claude-code" if arg == "claude" else "codex"
    return "none"
