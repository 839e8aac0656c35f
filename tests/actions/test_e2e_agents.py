"""The root action.yml runs the real agent CLIs the way a user writes it, installed into an empty venv.

Each test runs action.yml as the runner does (tests/actions/github_runner.py: steps in order, ``if:``
and ``${{ }}`` evaluated, GITHUB_OUTPUT / GITHUB_ENV applied between steps), including its install
step into a new virtual environment that holds nothing but pip, with the command as shell text the
action hands to ``bash -c``. The proof comes from the agents themselves: Claude Code's own JSON names
the model it asked for and what it thinks the run cost; Codex's requests reached the simulator with
the decided model. Before the presets configured the agents through their environment, Claude Code
ran on its own default model behind a proxy that rewrote it, and Codex never ran at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.simulator import server as sim_server
from tests.actions.fresh_install import (
    AGENT_POLICY,
    DECIDED_CLAUDE,
    DECIDED_CODEX,
    USER_CODEX_CONFIG,
    clean_path,
    copy_checkout,
    empty_venv,
)
from tests.actions.github_runner import ActionResult, ActionRunner, base_env
from tests.actions.scenario import (
    CLAUDE_ENV,
    GITHUB_TOKEN,
    PR,
    REAL_KEY,
    REPO,
    ledger_run,
    make_workspace,
    pull_request_event,
    write_event,
)
from tests.agents import CLAUDE, require_claude, require_codex
from tests.forges.fake_github import FakeGitHub

pytestmark = [pytest.mark.node, pytest.mark.slow]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the action's checkout, the bin directory of an empty venv) shared by this module's jobs."""
    root = tmp_path_factory.mktemp("action")
    return copy_checkout(root / "ci-guard"), empty_venv(root / "venv")


class Job:
    """One job of a `pull_request` workflow: a checkout of the PR, the runner's env, the action."""

    def __init__(self, tmp: Path, installed: tuple[Path, Path], github: FakeGitHub, sim: sim_server.Simulator) -> None:
        self.action_dir, venv_bin = installed
        self.ws = make_workspace(tmp / "workspace")
        (self.ws.path / self.ws.policy).write_text(AGENT_POLICY)
        self.temp = tmp / "runner-temp"
        self.temp.mkdir()
        self.home = tmp / "home"
        (self.home / ".codex").mkdir(parents=True)
        (self.home / ".codex" / "config.toml").write_text(USER_CODEX_CONFIG)
        self.ledger = f"sqlite:///{tmp}/ledger.db"
        event = write_event(tmp / "event.json", pull_request_event(self.ws))
        extra = {"GITHUB_API_URL": github.url, "GITHUB_SHA": self.ws.head_sha, "GITHUB_ACTOR": "alice",
                 "GITHUB_REF": f"refs/pull/{PR}/merge", "CI_GUARD_ANTHROPIC_UPSTREAM": sim.url,
                 "CI_GUARD_OPENAI_UPSTREAM": sim.openai_url, **CLAUDE_ENV}
        self.env = base_env(home=self.home, temp=self.temp, workspace=self.ws.path, event_path=event,
                            event_name="pull_request", repo=REPO, extra=extra)
        # The runner's PATH: the new venv (python, then ci-guard once installed) and the agent CLIs.
        self.env["PATH"] = clean_path(venv_bin, CLAUDE.parent)
        self.venv_bin = venv_bin
        self.installed_once = False
        self.github_ctx = {"token": GITHUB_TOKEN, "repository": REPO, "event_name": "pull_request",
                           "workspace": str(self.ws.path)}

    def run(self, **inputs: str) -> ActionResult:
        """One use of the action; the first installs ci-guard into the empty venv (later ones in the
        job use it, as `install: false` does)."""
        runner = ActionRunner(self.action_dir, self.env, self.github_ctx, self.ws.path, self.temp)
        given = {"policy": self.ws.policy, "ledger": self.ledger, "python-version": "",
                 "install": "false" if self.installed_once else "true", **inputs}
        result = runner.run(given)
        install = next(s for s in result.steps if s.name == "Install ci-guard")
        assert install.outcome == "success", result.log
        assert (self.venv_bin / "ci-guard").exists()  # installed from the action's own checkout
        self.installed_once = True
        return result

    def step(self, script: str) -> subprocess.CompletedProcess[str]:
        """A plain `run:` step of the job: bash with the job env (GITHUB_ENV applied)."""
        return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                              cwd=self.ws.path, env=self.env, capture_output=True, text=True, timeout=300)

    def ledger_run(self, run_id: str) -> tuple:
        return ledger_run(self.ledger, run_id)


def _served(sim: sim_server.Simulator) -> list[dict]:
    return [r for r in sim.served if r["usage"]]


def _tokens(calls: list) -> dict[str, int]:
    return {"input": sum(c.usage.input_tokens for c in calls), "cache_write": sum(c.usage.cache_write_tokens
                                                                                  for c in calls),
            "cache_read": sum(c.usage.cache_read_tokens for c in calls),
            "output": sum(c.usage.output_tokens for c in calls)}


def _served_tokens(served: list[dict]) -> dict[str, int]:
    keys = ("input", "cache_write", "cache_read", "output")
    return {k: sum(int(r["tokens"][f"{k}_tokens"]) for r in served) for k in keys}


def _assert_claude_cost(cost_usd: Decimal, reported: dict, calls: int) -> None:
    # Claude Code prices summed usage in floats (6 decimals); ci-guard rounds each call to the micro-dollar.
    drift = abs(cost_usd - Decimal(str(reported["total_cost_usd"])))
    assert drift <= Decimal("0.0000005") * (calls + 1), (cost_usd, reported["total_cost_usd"])


def test_action_claude_code_through_bash_runs_on_the_decided_model_with_the_turn_cap(tmp_path, installed, github):
    """`command:` is shell text (bash -c, with a redirection); Claude Code still gets the decided model
    and the turn cap: its own JSON says so, and the endless tool loop ends at the cap by Claude Code itself."""
    require_claude()
    with sim_server.run_simulator("endless-loop", api_key=REAL_KEY) as sim:
        job = Job(tmp_path, installed, github, sim)
        out_file = job.temp / "claude.json"
        result = job.run(agent="pr-review", preset="claude-code", comment="update",
                         command=f'claude -p "Review this pull request" --output-format json --allowedTools Bash '
                                 f'> "{out_file}"', **{"anthropic-api-key": REAL_KEY})
        served = _served(sim)
    out = result.outputs
    assert out["decision"] == "allow" and out["model"] == DECIDED_CLAUDE and out["max-turns"] == "3", result.log
    reported = json.loads(out_file.read_text())
    # Claude Code ran on the decided model: every model it used, main loop and side calls, is that one.
    assert set(reported["modelUsage"]) == {DECIDED_CLAUDE}, reported["modelUsage"]
    # The turn cap reached Claude Code (no --max-turns in the command): it stopped itself after 3 calls.
    assert reported["subtype"] == "error_max_turns" and len(served) == 3
    # Claude Code exits 1 at its own turn cap; the cap is ci-guard's, so the run is stopped by max_turns
    # (exit 81, a warning unless fail-on-cap), not a failed agent.
    assert out["status"] == "stopped" and out["stop-reason"] == "max_turns" and out["exit-code"] == "81", result.log
    assert not result.failed, result.log

    run, calls = job.ledger_run(out["run-id"])
    assert len(calls) == 3 and all(c.model_requested == DECIDED_CLAUDE for c in calls)  # nothing was rewritten
    assert all(r["model"] == DECIDED_CLAUDE for r in served)
    assert _tokens(calls) == _served_tokens(served)
    assert Decimal(out["cost-usd"]) == run.cost_usd == sum((c.cost_usd for c in calls), Decimal(0)) > 0
    _assert_claude_cost(Decimal(out["cost-usd"]), reported, len(calls))
    (comment,) = github.visible(PR)
    assert DECIDED_CLAUDE in comment.body and REAL_KEY not in comment.body + result.log


def test_action_codex_through_bash_runs_and_reaches_the_upstream(tmp_path, installed, github):
    """`preset: codex` used to insert `-c model_provider=...` after `bash`, which made the command a
    variable assignment: Codex never ran and the run looked completed at $0. Now a per-run CODEX_HOME
    (the user's config merged) points Codex at the proxy; the proxy's turn cap stops the endless loop."""
    require_codex()
    with sim_server.run_simulator("endless-loop", api_key=REAL_KEY) as sim:
        job = Job(tmp_path, installed, github, sim)
        out_file = job.temp / "codex.jsonl"
        result = job.run(agent="test-repair", preset="codex", comment="off",
                         command=f'codex exec --json --skip-git-repo-check "Fix the failing tests" > "{out_file}"',
                         **{"openai-api-key": REAL_KEY})
        served = _served(sim)
    out = result.outputs
    assert out["decision"] == "allow" and out["model"] == DECIDED_CODEX, result.log
    events = [json.loads(line) for line in out_file.read_text().splitlines() if line.startswith("{")]
    assert any(e.get("type") == "thread.started" for e in events)  # Codex itself ran
    # Its calls reached the upstream, with the real key (the simulator accepts no other), on the decided
    # model although the user's own config.toml says o3 through another provider.
    assert len(served) == 3 and all(r["endpoint"] == "responses" and r["model"] == DECIDED_CODEX for r in served)
    assert out["status"] == "stopped" and out["stop-reason"] == "max_turns" and out["exit-code"] == "81"
    run, calls = job.ledger_run(out["run-id"])
    metered = [c for c in calls if c.usage.output_tokens]
    assert len(metered) == 3 and all(c.model_requested == DECIDED_CODEX for c in metered)
    assert _tokens(metered) == _served_tokens(served)
    assert Decimal(out["cost-usd"]) == run.cost_usd == sum((c.cost_usd for c in calls), Decimal(0)) > 0
    assert REAL_KEY not in result.log
    # The user's own configuration is untouched, and the run's generated one is gone.
    assert (job.home / ".codex" / "config.toml").read_text() == USER_CODEX_CONFIG
    assert not list(job.temp.glob("ci-guard-agent-*"))


def test_action_start_then_a_plain_claude_step_then_stop(tmp_path, installed, github):
    """mode: start exports the preset through GITHUB_ENV; a plain `claude -p` step with no flags runs
    on the decided model under the cap; mode: stop settles, and its cost is Claude Code's own figure."""
    require_claude()
    with sim_server.run_simulator("tool-loop", api_key=REAL_KEY) as sim:
        job = Job(tmp_path, installed, github, sim)
        started = job.run(mode="start", agent="pr-review-long", preset="claude-code",
                          **{"anthropic-api-key": REAL_KEY})
        assert not started.failed, started.log
        exported = started.env_exported
        assert exported["ANTHROPIC_MODEL"] == DECIDED_CLAUDE and exported["CLAUDE_CODE_MAX_TURNS"] == "8"
        assert exported["ANTHROPIC_API_KEY"] != REAL_KEY
        job.env.update(exported)  # later steps of the job see GITHUB_ENV
        job.env.pop("CI_GUARD_ANTHROPIC_UPSTREAM")
        step = job.step('claude -p "Review this pull request" --output-format json --allowedTools Bash')
        assert step.returncode == 0, step.stderr
        reported = json.loads(step.stdout)
        stopped = job.run(mode="stop", comment="update", **{"stop-key": started.outputs["stop-key"]})
        served = _served(sim)
    assert not stopped.failed, stopped.log
    assert set(reported["modelUsage"]) == {DECIDED_CLAUDE}, reported["modelUsage"]
    assert reported["subtype"] == "success" and len(served) == 4 <= 8  # tool-loop: 3 tool turns, one answer
    out = stopped.outputs
    assert out["run-id"] == started.outputs["run-id"] and out["status"] == "completed"
    run, calls = job.ledger_run(out["run-id"])
    assert len(calls) == 4 and all(c.model_requested == DECIDED_CLAUDE for c in calls)
    assert _tokens(calls) == _served_tokens(served)
    assert Decimal(out["cost-usd"]) == run.cost_usd > 0
    _assert_claude_cost(run.cost_usd, reported, len(calls))
    assert len(github.visible(PR)) == 1


def test_action_fails_the_step_when_the_ledger_cannot_be_reached(tmp_path, installed, github):
    """An unreachable ledger is an infrastructure failure: an ::error:: and a red step, even with
    fail-on-deny false (it used to look like a policy deny: a notice and a green step)."""
    with sim_server.run_simulator("tool-loop", api_key=REAL_KEY) as sim:
        job = Job(tmp_path, installed, github, sim)
        unreachable = "postgresql://ci@127.0.0.1:1/ledger?connect_timeout=2"
        ran = job.run(agent="pr-review", preset="claude-code", comment="off", ledger=unreachable,
                      command='claude -p "Review"', **{"anthropic-api-key": REAL_KEY, "fail-on-deny": "false"})
        checked = job.run(agent="pr-review", comment="off", ledger=unreachable)
        assert sim.served == []
    assert ran.failed and ran.outputs["exit-code"] == "82", ran.log
    assert "::error title=ci-guard::ci-guard could not run the agent because of an infrastructure failure" in ran.log
    assert "::notice" not in ran.step("run").log
    assert checked.failed and checked.step("check").exit_code == 3, checked.log
    assert "::error title=ci-guard::ci-guard check could not decide because of an infrastructure failure" \
        in checked.log


def test_presets_pass_through_wrappers(tmp_path):
    """The same environment reaches the agent through every wrapper a team uses: a Makefile, a script,
    sh -c, env. (A flag appended to the wrapper's argv would reach none of them.)"""
    require_claude()
    (tmp_path / "Makefile").write_text("review:\n\tclaude -p 'Review' --output-format json --allowedTools Bash\n")
    (tmp_path / "review.sh").write_text("#!/bin/sh\nexec claude -p 'Review' --output-format json --allowedTools Bash\n")
    (tmp_path / "review.sh").chmod(0o755)
    (tmp_path / "policy.yml").write_text(AGENT_POLICY)
    wrappers = {
        "make": ["make", "-s", "review"],
        "script": ["./review.sh"],
        "sh": ["sh", "-c", "claude -p 'Review' --output-format json --allowedTools Bash"],
    }
    for name, command in wrappers.items():
        with sim_server.run_simulator("endless-loop", api_key=REAL_KEY) as sim:
            env = {"PATH": os.pathsep.join([str(CLAUDE.parent), os.environ["PATH"]]), "HOME": str(tmp_path),
                   "LANG": "C.UTF-8", "ANTHROPIC_API_KEY": REAL_KEY, "CI_GUARD_ANTHROPIC_UPSTREAM": sim.url,
                   "CI_GUARD_LEDGER": f"sqlite:///{tmp_path}/{name}.db"}
            argv = [sys.executable, "-m", "ci_guard", "run", "--policy", "policy.yml", "--agent", "pr-review",
                    "--repo", REPO, "--preset", "claude-code", "--", *command]
            proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                                  stdin=subprocess.DEVNULL)
            served = _served(sim)
        reported = json.loads(proc.stdout)
        assert set(reported["modelUsage"]) == {DECIDED_CLAUDE}, (name, proc.stderr)
        assert reported["subtype"] == "error_max_turns" and len(served) == 3, name


def test_codex_home_is_exported_by_start(tmp_path, installed, github):
    """mode: start with preset codex exports a CODEX_HOME whose config makes the proxy the provider:
    a plain `codex exec` step reaches the upstream on the decided model until the proxy's turn cap."""
    require_codex()
    with sim_server.run_simulator("endless-loop", api_key=REAL_KEY) as sim:
        job = Job(tmp_path, installed, github, sim)
        started = job.run(mode="start", agent="test-repair", preset="codex", **{"openai-api-key": REAL_KEY})
        assert not started.failed, started.log
        exported = started.env_exported
        assert Path(exported["CODEX_HOME"], "config.toml").is_file()
        job.env.update(exported)
        step = job.step('codex exec --json --skip-git-repo-check "Fix the tests" < /dev/null')
        stopped = job.run(mode="stop", comment="off", **{"stop-key": started.outputs["stop-key"]})
        served = _served(sim)
    events = [json.loads(line) for line in step.stdout.splitlines() if line.startswith("{")]
    failed = [e for e in events if e.get("type") == "turn.failed"]
    assert failed and "max_turns" in failed[0]["error"]["message"], step.stdout + step.stderr
    assert len(served) == 3 and all(r["model"] == DECIDED_CODEX for r in served)
    out = stopped.outputs
    assert not stopped.failed, stopped.log
    assert out["status"] == "stopped" and out["stop-reason"] == "max_turns" and Decimal(out["cost-usd"]) > 0
    assert not Path(exported["CODEX_HOME"]).exists()  # stop removed the generated configuration
