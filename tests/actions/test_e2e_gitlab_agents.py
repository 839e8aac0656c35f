"""The GitLab component's job runs the real agent CLIs, installed by its own `pip-spec` into an empty venv.

The component's ``spec: inputs`` are rendered (tests/actions/test_e2e_gitlab.py), and its script
runs with ``sh`` as a runner would, the command as shell text it hands to ``sh -c``. As for the
Action, the agents' own output proves they ran on the decided model under the turn cap.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from ci_guard import __version__
from ci_guard.simulator import server as sim_server
from tests.actions.fresh_install import AGENT_POLICY, USER_CODEX_CONFIG, clean_path, copy_checkout, empty_venv
from tests.actions.layout import GITLAB_COMPONENT
from tests.actions.scenario import GITLAB_TOKEN, MR, REAL_KEY, REPO, _git, ledger_run, make_workspace
from tests.actions.test_e2e_gitlab import gitlab_env, interpolate_component, run_job
from tests.agents import CLAUDE, require_claude, require_codex
from tests.forges.fake_gitlab import FakeGitLab

pytestmark = [pytest.mark.node, pytest.mark.slow]

REPO_URL = "https://github.com/ci-guard/ci-guard"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(the component's default pip-spec pointed at a local clone of ci-guard's repository, an empty venv).

    The clone is a git repository tagged like a release, so the default `name @ git+URL@vX.Y.Z` is
    installed exactly as written, only from a file:// URL instead of the public one.
    """
    root = tmp_path_factory.mktemp("component")
    repo = copy_checkout(root / "ci-guard")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "release")
    _git(repo, "tag", f"v{__version__}")
    spec_text = GITLAB_COMPONENT.read_text().split("\n---\n", 1)[0]
    default = yaml.safe_load(spec_text)["spec"]["inputs"]["pip-spec"]["default"]
    assert default == f"ci-guard-agents @ git+{REPO_URL}@v{__version__}"
    # (file://localhost/...: a git+file URL with no host is not a valid URL in a PEP 508 requirement)
    return default.replace(REPO_URL, f"file://localhost{repo}"), empty_venv(root / "venv")


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with FakeGitLab(path=REPO, tokens={GITLAB_TOKEN: "ci-bot"}, iids=(MR,)) as fake:
        yield fake


def _job(tmp: Path, installed: tuple[str, Path], gitlab: FakeGitLab, sim: sim_server.Simulator,
         **inputs: str) -> tuple[dict, dict[str, str], Path]:
    pip_spec, venv_bin = installed
    ws = make_workspace(tmp / "project")
    (ws.path / ws.policy).write_text(AGENT_POLICY)
    home = tmp / "home"
    (home / ".codex").mkdir(parents=True)
    (home / ".codex" / "config.toml").write_text(USER_CODEX_CONFIG)
    _, job = interpolate_component({"policy": ws.policy, "pip-spec": pip_spec, **inputs})
    env = {**gitlab_env(ws, gitlab, home, sim.url), "ANTHROPIC_API_KEY": REAL_KEY, "OPENAI_API_KEY": REAL_KEY,
           "CI_GUARD_OPENAI_UPSTREAM": sim.openai_url, "GITLAB_TOKEN": GITLAB_TOKEN,
           "CI_GUARD_LEDGER": f"sqlite:///{tmp}/ledger.db"}
    env["PATH"] = clean_path(venv_bin, CLAUDE.parent)
    return job, env, ws.path


def test_component_claude_code_through_sh_runs_on_the_decided_model(tmp_path, installed, gitlab):
    require_claude()
    with sim_server.run_simulator("endless-loop", api_key=REAL_KEY) as sim:
        job, env, cwd = _job(tmp_path, installed, gitlab, sim, agent="pr-review", preset="claude-code",
                             command='claude -p "Review merge request !$CI_MERGE_REQUEST_IID" --output-format json '
                                     '--allowedTools Bash > claude.json')
        proc = run_job(job, env, cwd)
        served = [r for r in sim.served if r["usage"]]
    # Claude Code ends itself at the turn cap ci-guard gave it (its own exit 1): the run is stopped by
    # max_turns (81), a note and a green job unless fail-on-cap.
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "a cap stopped the agent" in proc.stdout + proc.stderr
    reported = json.loads((cwd / "claude.json").read_text())
    assert set(reported["modelUsage"]) == {"claude-sonnet-4-5"}, reported["modelUsage"]
    assert reported["subtype"] == "error_max_turns" and len(served) == 3
    summary = json.loads((cwd / "ci-guard-summary.json").read_text())
    assert (summary["status"], summary["stop_reason"]) == ("stopped", "max_turns")
    run, calls = ledger_run(env["CI_GUARD_LEDGER"], summary["run_id"])
    assert all(c.model_requested == "claude-sonnet-4-5" for c in calls) and len(calls) == 3
    assert Decimal(summary["cost_usd"]) == run.cost_usd > 0
    drift = abs(run.cost_usd - Decimal(str(reported["total_cost_usd"])))
    assert drift <= Decimal("0.0000005") * (len(calls) + 1)
    (note,) = gitlab.visible(MR)
    assert "claude-sonnet-4-5" in note.body and REAL_KEY not in note.body + proc.stdout + proc.stderr


def test_component_codex_through_sh_reaches_the_upstream(tmp_path, installed, gitlab):
    require_codex()
    with sim_server.run_simulator("endless-loop", api_key=REAL_KEY) as sim:
        job, env, cwd = _job(tmp_path, installed, gitlab, sim, agent="test-repair", preset="auto", comment="off",
                             command='codex exec --json --skip-git-repo-check "Fix the failing tests" > codex.jsonl')
        proc = run_job(job, env, cwd)
        served = [r for r in sim.served if r["usage"]]
    assert proc.returncode == 0, proc.stdout + proc.stderr  # a cap stop is a warning unless fail-on-cap
    assert "a cap stopped the agent" in proc.stdout
    events = [json.loads(line) for line in (cwd / "codex.jsonl").read_text().splitlines() if line.startswith("{")]
    assert any(e.get("type") == "thread.started" for e in events)
    assert len(served) == 3 and all(r["endpoint"] == "responses" and r["model"] == "gpt-5" for r in served)
    summary = json.loads((cwd / "ci-guard-summary.json").read_text())
    assert summary["status"] == "stopped" and summary["stop_reason"] == "max_turns"
    run, calls = ledger_run(env["CI_GUARD_LEDGER"], summary["run_id"])
    assert Decimal(summary["cost_usd"]) == run.cost_usd > 0
    assert sum(c.usage.output_tokens for c in calls) == sum(r["tokens"]["output_tokens"] for r in served)
