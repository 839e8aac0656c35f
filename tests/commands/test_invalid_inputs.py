"""Issue 12 #11 and #13: hostile or broken input files end with exit 2 and a message, never exit 70,
and never exhaust memory or time (YAML alias bombs, /dev/zero as a price file, deep JSON)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

CI_GUARD = str(Path(sys.executable).parent / "ci-guard")
OK_RULES = "rules:\n  - {name: a, decision: allow}\n"


def _bomb(levels: int = 9, width: int = 9) -> str:
    """The classic "billion laughs": each anchor aliases the previous one `width` times (~500 bytes)."""
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\nversion: 1\n" + OK_RULES


POLICIES = {
    "alias_bomb": _bomb(),
    "merge_bomb": "m0: &m0 {k0: 1}\n" + "".join(
        f"m{i}: &m{i} {{<<: [" + ", ".join(f"*m{j}" for j in range(i)) + f"], k{i}: 1}}\n" for i in range(1, 25))
        + "version: 1\n" + OK_RULES,
    "recursive_alias": "a: &a [*a]\nversion: 1\n" + OK_RULES,
    "unknown_tag": "version: 1\nrules: !!python/object/apply:os.system [echo pwned]\n",
    "custom_tag": "version: 1\nrules:\n  - !rule {name: a, decision: allow}\n",
    "deep_yaml": "version: 1\nrules: " + "[" * 5000 + "]" * 5000 + "\n",
    "nested_yaml": "version: 1\nrules: " + "[" * 300 + "]" * 300 + "\n",
    "money_overflow": "version: 1\nbudgets:\n  - {name: b, scope: repo, period: day, limit_usd: 1e999999999}\n"
                      + OK_RULES,
    "cap_overflow": "version: 1\ndefaults:\n  limits: {max_cost_usd: 9e99999999999}\n" + OK_RULES,
    "alert_overflow": "version: 1\nbudgets:\n  - {name: b, scope: repo, period: day, limit_usd: 5, "
                      "alert_at: ['1e999999%']}\n" + OK_RULES,
    "huge_int": "version: 1\ndefaults:\n  limits: {max_turns: " + "9" * 5000 + "}\n" + OK_RULES,
}


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GITLAB_", "CI_"))}
    return subprocess.run([CI_GUARD, *args], cwd=cwd, env={**base, **(env or {})}, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_a_hostile_policy_is_invalid_input_fast(tmp_path: Path, name: str):
    (tmp_path / "p.yml").write_text(POLICIES[name])
    t0 = time.monotonic()
    proc = _run(["check", "--policy", "p.yml", "--repo", "a/b"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "internal error" not in proc.stderr and "p.yml" in proc.stderr
    assert time.monotonic() - t0 < 10  # the alias bomb took 25 s and 3.3 GB before


def test_a_non_utf8_policy_is_invalid_input(tmp_path: Path):
    (tmp_path / "p.yml").write_bytes(b"version: 1\nrules: []\n# \xff\xfe\n")
    proc = _run(["check", "--policy", "p.yml"], tmp_path)
    assert proc.returncode == 2 and "internal error" not in proc.stderr


def test_dev_zero_as_a_price_file_is_refused_without_reading_it_all(tmp_path: Path):
    (tmp_path / "p.yml").write_text("version: 1\npricing:\n  files: [/dev/zero]\n" + OK_RULES)
    proc = _run(["prices", "--policy", "p.yml"], tmp_path)
    assert proc.returncode == 2 and "/dev/zero" in proc.stderr


@pytest.mark.parametrize("payload", [
    b'{"pull_request": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # deeper than the parser's stack
    b'{"pull_request": {"number": 1, "title": "\xff\xfe"}}',  # not UTF-8
])
def test_a_hostile_event_payload_is_invalid_input(tmp_path: Path, payload: bytes):
    (tmp_path / "p.yml").write_text("version: 1\n" + OK_RULES)
    (tmp_path / "event.json").write_bytes(payload)
    env = {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request", "GITHUB_REPOSITORY": "a/b",
           "GITHUB_EVENT_PATH": str(tmp_path / "event.json")}
    proc = _run(["check", "--policy", "p.yml"], tmp_path, env)
    assert proc.returncode == 2, proc.stderr
    assert "event.json" in proc.stderr and "internal error" not in proc.stderr


@pytest.mark.parametrize("payload", [b"[" * 100_000 + b"]" * 100_000, b'{"repo": "\xff"}'])
def test_a_hostile_context_file_or_snapshot_is_invalid_input(tmp_path: Path, payload: bytes):
    (tmp_path / "p.yml").write_text("version: 1\n" + OK_RULES)
    (tmp_path / "in.json").write_bytes(payload)
    for args in (["--context", "in.json"], ["--budget-snapshot", "in.json"]):
        proc = _run(["check", "--policy", "p.yml", "--repo", "a/b", *args], tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "internal error" not in proc.stderr
