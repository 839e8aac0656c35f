"""The launcher holds no secret, cannot be read by the agent, and serves only its own user."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from ci_guard.warm import server as warm_server
from tests.warm.conftest import CLI, KEY, TIMEOUT, Warm, base_env, server_pid, start_warm, stop_warm

GITHUB_TOKEN = "ghp_warmLauncherTestToken0123456789abcdefAB"


def test_the_launcher_keeps_no_provider_key_or_forge_token(tmp_path: Path):
    env = base_env(ANTHROPIC_API_KEY=KEY, GITHUB_TOKEN=GITHUB_TOKEN, OPENAI_API_KEY="sk-proj-warm-test-key-abcdef",
                   CI_GUARD_LEDGER="postgresql://u:hunter2@db/ci", PATH=os.environ["PATH"])
    warm = start_warm(tmp_path / "sock", env=env)
    try:
        environ_file = Path(f"/proc/{warm.pid}/environ")
        if os.geteuid() == 0:
            environ = environ_file.read_bytes()
            names = {entry.split(b"=", 1)[0].decode() for entry in environ.split(b"\0") if entry}
            assert b"PATH=" in environ  # the file was read: what Python needs is kept
            assert names <= set(warm_server.SERVER_ENV), names - set(warm_server.SERVER_ENV)
            for secret in (KEY, GITHUB_TOKEN, "hunter2", "sk-proj-warm"):
                assert secret.encode() not in environ
        else:
            with pytest.raises(PermissionError):  # not dumpable: not even its own user reads it
                environ_file.read_bytes()
        assert KEY.encode() not in Path(f"/proc/{warm.pid}/cmdline").read_bytes()
    finally:
        stop_warm(warm)


def test_the_default_socket_is_private(tmp_path: Path):
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    started = subprocess.run([*CLI, "warm", "start", "--idle-timeout", "60"], capture_output=True, text=True,
                             env=base_env(RUNNER_TEMP=str(runner_temp)), timeout=TIMEOUT)
    assert started.returncode == 0, started.stderr
    path = Path(started.stdout.strip())
    warm = Warm(str(path), server_pid(str(path)))
    try:
        assert path.parent.parent == runner_temp and path.parent.name.startswith("ci-guard-warm-")
        assert stat.S_ISSOCK(path.lstat().st_mode)
        assert stat.S_IMODE(path.lstat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        stop_warm(warm)
    assert not path.exists()


def test_an_explicit_socket_is_0600_too(warm: Warm):
    assert stat.S_IMODE(os.lstat(warm.socket).st_mode) == 0o600


def test_only_the_launchers_own_user_is_served(monkeypatch: pytest.MonkeyPatch):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        assert warm_server._same_user(ours) is True
        uid = os.getuid()
        monkeypatch.setattr(os, "getuid", lambda: uid + 1000)  # the launcher's user is now someone else
        assert warm_server._same_user(ours) is False
        assert warm_server._same_user(theirs) is False
    finally:
        ours.close()
        theirs.close()


def test_limits_or_a_priority_the_launcher_cannot_give_are_refused(monkeypatch: pytest.MonkeyPatch):
    """Not root, a process may lower its hard limits and priority, never raise them: a client whose
    limits are above the launcher's (or whose niceness is below) is refused and starts cold."""
    import resource

    from ci_guard.warm.client import process_settings
    from ci_guard.warm.server import _settings_refusal

    mine = process_settings()
    assert _settings_refusal(mine["rlimits"], mine["nice"]) is None
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert _settings_refusal(mine["rlimits"], mine["nice"]) is None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        higher = {**mine["rlimits"], "RLIMIT_NOFILE": [soft, hard + 1]}  # type: ignore[dict-item]
        assert "RLIMIT_NOFILE" in (_settings_refusal(higher, mine["nice"]) or "")
        unlimited = {**mine["rlimits"], "RLIMIT_NOFILE": [soft, resource.RLIM_INFINITY]}  # type: ignore[dict-item]
        assert "RLIMIT_NOFILE" in (_settings_refusal(unlimited, mine["nice"]) or "")
    assert "niceness" in (_settings_refusal(mine["rlimits"], int(mine["nice"]) - 1) or "")  # type: ignore[call-overload]
    assert _settings_refusal({"NOT_A_LIMIT": [1, 1]}, 0) == "the request is malformed"
    assert _settings_refusal(mine["rlimits"], "0") == "the request is malformed"
