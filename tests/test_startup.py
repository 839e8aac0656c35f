"""ci_guard.startup: what ci-guard's own process skips at start-up, and that none of it leaks."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import pytest

from ci_guard import startup


def test_metadata_lookups_are_answered_without_importlib_metadata() -> None:
    # a fresh interpreter: this test process has long imported pydantic, psycopg and importlib.metadata
    probe = """
import json, os, sys
before = dict(os.environ)
from ci_guard.startup import skip_metadata_lookups
skip_metadata_lookups()
import psycopg, psycopg._cmodule
from pydantic import BaseModel
class M(BaseModel):
    x: int
M(x=1)
skipped = "importlib.metadata" not in sys.modules
from importlib import metadata
print(json.dumps({"skipped": skipped, "environ_unchanged": dict(os.environ) == before,
                  "psycopg": [psycopg.__version__, metadata.version("psycopg")],
                  "binary": [psycopg._cmodule.__version__, metadata.version("psycopg-binary")],
                  "validator": type(M.__pydantic_validator__).__name__}))
"""
    out = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)
    assert out["skipped"]
    assert out["environ_unchanged"]  # nothing for the agent to inherit: no PYDANTIC_DISABLE_PLUGINS
    assert out["psycopg"][0] == out["psycopg"][1]
    assert out["binary"][0] == out["binary"][1]
    assert out["validator"] == "SchemaValidator"  # no plugin wrapper


def test_a_pydantic_that_reads_more_from_its_plugin_loader_still_gets_it() -> None:
    """The stub answers get_plugins(); anything else comes from pydantic's real module."""
    probe = """
import sys
from ci_guard.startup import skip_metadata_lookups
skip_metadata_lookups()
from pydantic.plugin import _loader
print(list(_loader.get_plugins()), _loader.PYDANTIC_ENTRY_POINT_GROUP, "importlib.metadata" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["[]", "pydantic", "True"]  # the real module (and its importlib.metadata) only when asked


def test_a_version_that_cannot_be_read_is_left_to_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "nosuchpkg.version", raising=False)
    startup._preset_version("nosuchpkg")
    assert "nosuchpkg.version" not in sys.modules
    assert startup._dist_info_version("json") is None  # the standard library has no dist-info


def test_the_cli_gives_the_collector_back(capsys: pytest.CaptureFixture[str]) -> None:
    from ci_guard.cli import main

    assert gc.isenabled()
    with pytest.raises(SystemExit):
        main(["--version"])
    assert gc.isenabled()
    assert not startup.gc_paused()


def test_a_collector_paused_by_someone_else_stays_paused() -> None:
    gc.disable()
    try:
        startup.pause_gc()
        startup.resume_gc()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_event_loop_resumes_the_collector_after_freezing_start_up() -> None:
    from ci_guard.meter import loop

    async def enabled() -> bool:
        return gc.isenabled()

    startup.pause_gc()
    try:
        assert loop.run(enabled())
    finally:
        startup.resume_gc()
        gc.unfreeze()
    assert gc.isenabled()


def test_other_commands_run_with_the_collector(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ci_guard.cli import COMMANDS, LazyGroup, cli

    group = cli
    assert isinstance(group, LazyGroup)
    startup.pause_gc()
    try:
        group.get_command(None, "prices")  # type: ignore[arg-type]
        assert gc.isenabled()
        startup.pause_gc()
        group.get_command(None, "run")  # type: ignore[arg-type]
        assert not gc.isenabled()  # resumed by the event loop (or at exit)
    finally:
        startup.resume_gc()
    assert set(startup.GC_PAUSED_COMMANDS) <= set(COMMANDS)


def test_the_agent_gets_exactly_the_documented_environment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Start-up changes nothing the agent inherits: its environment is the caller's minus the provider
    keys, plus the proxy's variables (the same as before start-up skipped anything)."""
    import os

    policy = tmp_path / "policy.yml"
    policy.write_text("version: 1\ndefaults: {model: claude-sonnet-4-5, limits: {max_turns: 5}}\n"
                      "rules:\n  - {name: all, decision: allow}\n")
    dump = tmp_path / "env.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_GUARD_", "GITHUB_", "GITLAB_"))}
    env.update(ANTHROPIC_API_KEY="sk-ant-startup-test-0000000000000000", RUNNER_TEMP=str(tmp_path),
               CI_GUARD_ANTHROPIC_UPSTREAM="http://127.0.0.1:9")
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    agent = f"import json, os; open({str(dump)!r}, 'w').write(json.dumps(dict(os.environ)))"
    subprocess.run([sys.executable, "-m", "ci_guard", "run", "--policy", str(policy), "--ledger",
                    f"sqlite:///{tmp_path}/ledger.db", "--quiet", "--preset", "none", "--repo", "acme/app", "--",
                    sys.executable, "-c", agent], env=env, cwd=tmp_path, check=True, capture_output=True)
    seen = json.loads(dump.read_text())
    added = {"ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_KEY", "CI_GUARD_RUN_ID",
             "CI_GUARD_PROXY_URL", "CI_GUARD_MODEL", "CI_GUARD_MAX_TURNS"}
    assert {k: v for k, v in seen.items() if k not in added} == {k: v for k, v in env.items()
                                                                  if k != "ANTHROPIC_API_KEY"}
    assert "sk-ant-startup-test" not in dump.read_text()


def test_the_run_summary_models_are_not_built_before_the_agent_starts() -> None:
    probe = ("import sys, ci_guard.commands.run, ci_guard.meter.runner, ci_guard.meter.lifecycle, "
             "ci_guard.meter.session; print('ci_guard.meter.summary' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
