"""Presets configure the agent through its environment and never touch the command line."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ci_guard.errors import InvalidInputError
from ci_guard.meter.presets import CODEX_PROVIDER_ID, apply_preset, detect_preset, merge_codex_config

PROXY = "http://127.0.0.1:9999"


def _launch(preset: str, command: list[str], env: dict[str, str], tmp: Path, **kw):
    return apply_preset(preset, command, env, proxy_url=PROXY, token="cig-run-token", model=kw.get("model", "m-1"),
                        max_turns=kw.get("max_turns", 7), allowed_models=kw.get("allowed", ()), scratch=tmp)


@pytest.mark.parametrize("preset", ["claude-code", "codex", "none"])
def test_the_command_is_never_changed(tmp_path, preset):
    command = ["bash", "-c", 'claude -p "x" | tee out']
    assert _launch(preset, command, {"HOME": str(tmp_path)}, tmp_path).command == command


def test_claude_code_gets_model_aliases_and_turn_cap_from_the_environment(tmp_path):
    env = _launch("claude-code", ["claude"], {"ANTHROPIC_MODEL": "claude-opus-4-1"}, tmp_path,
                  model="claude-sonnet-4-5", allowed=("claude-haiku-4-5",)).env
    assert env["ANTHROPIC_MODEL"] == "claude-sonnet-4-5"  # the decision wins over the job's own setting
    assert env["ANTHROPIC_DEFAULT_OPUS_MODEL"] == env["ANTHROPIC_DEFAULT_SONNET_MODEL"] == "claude-sonnet-4-5"
    assert env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == env["ANTHROPIC_SMALL_FAST_MODEL"] == "claude-haiku-4-5"
    assert env["CLAUDE_CODE_MAX_TURNS"] == "7" and env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    plain = _launch("claude-code", ["claude"], {}, tmp_path, model="claude-sonnet-4-5", max_turns=None).env
    assert plain["ANTHROPIC_SMALL_FAST_MODEL"] == "claude-sonnet-4-5" and "CLAUDE_CODE_MAX_TURNS" not in plain


def test_codex_home_merges_the_users_config(tmp_path):
    user = tmp_path / "user-codex"
    user.mkdir()
    (user / "config.toml").write_text('model = "o3"\nmodel_provider = "openai"\nprofile = "work"\n'
                                      '[profiles.work]\nmodel = "o4"\nmodel_provider = "corp"\n'
                                      '[mcp_servers.docs]\ncommand = "docs-mcp"\n')
    (user / "AGENTS.md").write_text("Be brief.")
    (user / "auth.json").write_text('{"OPENAI_API_KEY": "sk-real"}')
    env = _launch("codex", ["make", "fix"], {"CODEX_HOME": str(user), "OPENAI_API_KEY": "cig-run-token"},
                  tmp_path / "scratch", model="gpt-5").env
    home = Path(env["CODEX_HOME"])
    assert home != user and env["CODEX_API_KEY"] == env["OPENAI_API_KEY"] == "cig-run-token"
    config = tomllib.loads((home / "config.toml").read_text())
    assert config["model"] == "gpt-5" and config["model_provider"] == CODEX_PROVIDER_ID
    assert config["profiles"]["work"] == {"model": "gpt-5", "model_provider": CODEX_PROVIDER_ID}
    assert config["model_providers"][CODEX_PROVIDER_ID]["base_url"] == f"{PROXY}/openai/v1"
    assert config["model_providers"][CODEX_PROVIDER_ID]["wire_api"] == "responses"
    assert config["mcp_servers"] == {"docs": {"command": "docs-mcp"}}  # the rest of the user's setup stays
    assert (home / "AGENTS.md").read_text() == "Be brief." and not (home / "auth.json").exists()
    assert not (home / "AGENTS.md").is_symlink()  # a copy: the run cannot edit the user's instructions
    # Codex's sessions and logs land in the user's own home, where `ci-guard import` finds them
    assert (home / "sessions").resolve() == (user / "sessions").resolve() and (user / "sessions").is_dir()
    assert (home / "config.toml").stat().st_mode & 0o077 == 0
    assert "sk-real" not in (home / "config.toml").read_text()
    assert tomllib.loads((user / "config.toml").read_text())["model"] == "o3"  # untouched


def test_codex_without_a_user_config(tmp_path):
    merged = merge_codex_config({}, {"name": "p"}, None)
    assert merged == {"model_providers": {CODEX_PROVIDER_ID: {"name": "p"}}, "model_provider": CODEX_PROVIDER_ID}
    env = _launch("codex", ["codex"], {"HOME": str(tmp_path / "nohome")}, tmp_path / "s").env
    assert tomllib.loads(Path(env["CODEX_HOME"], "config.toml").read_text())["model"] == "m-1"


def test_a_broken_codex_config_is_invalid_input(tmp_path):
    (tmp_path / "config.toml").write_text('model = "o3\n')
    with pytest.raises(InvalidInputError, match=r"config.toml: the Codex configuration is not valid TOML"):
        _launch("codex", ["codex"], {"CODEX_HOME": str(tmp_path)}, tmp_path / "s")


def test_run_refuses_a_broken_codex_config_before_deciding(tmp_path):
    (tmp_path / "codex").mkdir()
    (tmp_path / "codex" / "config.toml").write_text("[x\n")
    (tmp_path / "p.yml").write_text("version: 1\nrules:\n  - {name: all, decision: allow}\n")
    env = {**os.environ, "CODEX_HOME": str(tmp_path / "codex"), "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "ci_guard", "run", "--policy", "p.yml", "--preset", "codex",
                           "--ledger", f"sqlite:///{tmp_path}/l.db", "--", "true"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "not valid TOML" in proc.stderr and not (tmp_path / "l.db").exists()


@pytest.mark.parametrize(("command", "preset"), [
    (["claude", "-p", "x"], "claude-code"),
    (["/usr/local/bin/codex", "exec"], "codex"),
    (["bash", "-c", 'claude -p "Review" --output-format json'], "claude-code"),
    (["sh", "-c", "cd app && codex exec --json fix"], "codex"),
    (["bash", "-c", "echo claudette; ./run-codex.sh"], "none"),
    (["npx", "-y", "@anthropic-ai/claude-code@2.1.197", "-p", "x"], "claude-code"),
    (["npx", "@openai/codex", "exec"], "codex"),
    (["make", "review"], "none"),
    ([], "none"),
])
def test_auto_detection_looks_through_shells_and_npx(command, preset):
    assert detect_preset(command) == preset


def test_the_agent_of_run_never_inherits_a_stop_key_or_the_ledger():
    """A job that sets CI_GUARD_STOP_KEY (start/stop) or CI_GUARD_LEDGER for its ci-guard steps and
    then runs `ci-guard run` in the same shell: the agent gets neither."""
    from ci_guard.meter.presets import agent_environment

    env = agent_environment({"CI_GUARD_STOP_KEY": "cig_stop_abcdefghijklmnopqrstuvwxyz", "CI_GUARD_LEDGER": "x",
                             "PATH": "/usr/bin"}, proxy_url="http://127.0.0.1:1", token="cig_t", run_id="r",
                            model=None, max_turns=None)
    assert "CI_GUARD_STOP_KEY" not in env and "CI_GUARD_LEDGER" not in env and env["PATH"] == "/usr/bin"
