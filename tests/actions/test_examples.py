"""The example workflows' own scripts, run for real against ci-guard (no agent, no network).

Each test takes a step's `run:` text out of the example file and runs it with bash as GitHub would
(`bash -eo pipefail`), with the env: the step declares filled in; the `pip install ci-guard` steps
are not run (the package under test is already installed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from ci_guard.ledger import open_ledger
from tests.actions.layout import ACTION_SCRIPT, EXAMPLES, ROOT
from tests.helpers import require


def _step(example: str, name: str) -> dict[str, Any]:
    workflow = yaml.safe_load((EXAMPLES / example).read_text())
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if step.get("name") == name:
                return step
    raise AssertionError(f"no step {name!r} in {example}")


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=cwd,
                          env={"PATH": path, "HOME": str(cwd), "LANG": "C.UTF-8", **env},
                          capture_output=True, text=True, timeout=120)


def _usage_csv(tmp_path: Path) -> str:
    path = tmp_path / "usage.csv"
    path.write_text("model,input_tokens,output_tokens\nclaude-sonnet-4-5,1000,100\n")
    return str(path)


def test_record_outcome_marks_every_run_of_the_pr(tmp_path: Path) -> None:
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    for pr in (12, 12, 13):
        subprocess.run(["ci-guard", "import", "--format", "csv", _usage_csv(tmp_path), "--ledger", ledger,
                        "--repo", "acme/app", "--pr", str(pr), "--agent", "pr-review"],
                       check=True, capture_output=True, env={**os.environ, "GITHUB_ACTIONS": ""})
    step = _step("record-outcome.yml", "Record the outcome")
    proc = _bash(step["run"], tmp_path, {"CI_GUARD_LEDGER": ledger, "REPO": "acme/app", "PR_NUMBER": "12",
                                         "MERGED": "true"})
    assert proc.returncode == 0, proc.stderr
    report = subprocess.run(["ci-guard", "report", "--ledger", ledger, "--since", "1d", "--by", "repo",
                             "--format", "json"], check=True, capture_output=True, text=True)
    row = json.loads(report.stdout)["rows"][0]
    # both runs of PR 12 inherit "merged" (one merged PR); PR 13 has no outcome
    assert (row["runs"], row["merged_prs"], row["abandoned_runs"]) == (3, 1, 0)
    store = open_ledger(ledger)
    try:
        facts = {f.run_id: (f.pr, f.outcome) for f in store.period_runs(*_today())}
    finally:
        store.close()
    assert sorted(facts.values()) == [(12, "merged"), (12, "merged"), (13, None)]


def _today():
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    return now - timedelta(days=1), now + timedelta(days=1)


def test_budget_report_writes_the_job_summary(tmp_path: Path) -> None:
    (tmp_path / ".github").mkdir()
    shutil.copy(ROOT / "policies" / "default.yml", tmp_path / ".github" / "ci-guard.yml")
    summary = tmp_path / "summary.md"
    step = _step("budget-report.yml", "Budget status")
    env = {"CI_GUARD_LEDGER": f"sqlite:///{tmp_path}/ledger.db", "GITHUB_STEP_SUMMARY": str(summary)}
    proc = _bash(step["run"], tmp_path, env)
    # A wrong or missing ledger is an error, never a clean "$0 spent" report from a new empty file.
    assert proc.returncode == 2 and "does not exist" in proc.stderr and not (tmp_path / "ledger.db").exists()
    from ci_guard.ledger import open_ledger

    open_ledger(env["CI_GUARD_LEDGER"]).close()
    proc = _bash(step["run"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    text = summary.read_text()
    assert text.startswith("## AI agent budgets") and "org-monthly" in text


def _policy_repo(tmp_path: Path) -> Path:
    (tmp_path / "policies" / "tests").mkdir(parents=True)
    shutil.copy(ROOT / "policies" / "default.yml", tmp_path / "policies" / "default.yml")
    shutil.copy(ROOT / "policies" / "default.tests.yml", tmp_path / "policies" / "tests" / "default.yml")
    return tmp_path


def test_policy_repository_workflow_validates_and_tests(tmp_path: Path) -> None:
    repo = _policy_repo(tmp_path)
    for name in ("Validate", "Test"):
        proc = _bash(_step("policy-repository.yml", name)["run"], repo, {})
        assert proc.returncode == 0, (name, proc.stdout, proc.stderr)
    (repo / "policies" / "broken.yml").write_text("version: 1\nrules:\n  - name: x\n    decision: maybe\n")
    proc = _bash(_step("policy-repository.yml", "Validate")["run"], repo, {})
    assert proc.returncode != 0 and "broken.yml" in proc.stdout + proc.stderr


# --- the action's step script, phase by phase ----------------------------------------------------


def _phase(phase: str, tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], str]:
    out = tmp_path / f"{phase}.out"
    out.write_text("")
    proc = _bash(f'bash "{ACTION_SCRIPT}" {phase}', tmp_path,
                 {"GITHUB_OUTPUT": str(out), "RUNNER_TEMP": str(tmp_path), **env})
    return proc, out.read_text()


def test_install_phase_pip_installs_the_actions_own_checkout(tmp_path: Path) -> None:
    shims = tmp_path / "shims"
    shims.mkdir()
    log = tmp_path / "calls.log"
    # A `python` shim that records its arguments; `ci-guard --version` must still work afterwards.
    (shims / "python").write_text(f'#!/bin/sh\necho "$@" >> "{log}"\n')
    (shims / "python").chmod(0o755)
    env = {"CIG_INSTALL": "true", "CIG_SOURCE": "/actions/ci-guard/v1",
           "PATH": os.pathsep.join([str(shims), str(Path(sys.executable).parent), os.environ["PATH"]])}
    proc = subprocess.run(["bash", str(ACTION_SCRIPT), "install"], env={**os.environ, **env}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert log.read_text().split() == ["-m", "pip", "install", "--disable-pip-version-check", "--quiet",
                                       "/actions/ci-guard/v1"]
    assert "ci-guard" in proc.stdout  # the version line


def test_install_false_requires_ci_guard_on_path(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(ACTION_SCRIPT), "install"], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "CIG_INSTALL": "false", "HOME": str(tmp_path)})
    assert proc.returncode == 2 and "::error title=ci-guard::install is false" in proc.stdout


def test_cache_key_follows_the_pyproject(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d, version in ((a, "1"), (b, "2")):
        d.mkdir()
        (d / "pyproject.toml").write_text(f'[project]\nversion = "{version}"\n')
    keys = []
    for d in (a, b, a):
        proc, out = _phase("cache-key", tmp_path, {"CIG_SOURCE": str(d)})
        assert proc.returncode == 0, proc.stderr
        keys.append(dict(line.split("=", 1) for line in out.splitlines())["key"])
    assert keys[0] == keys[2] != keys[1]


def test_preflight_skips_only_forks_without_the_needed_key(tmp_path: Path) -> None:
    def event(fork: bool) -> str:
        path = tmp_path / f"event-{fork}.json"
        head = {"full_name": "mallory/app" if fork else "acme/app"}
        path.write_text(json.dumps({"pull_request": {"number": 5, "head": {"repo": head},
                                                     "base": {"repo": {"full_name": "acme/app"}}}}))
        return str(path)

    cases = [  # (fork, key, expected skip)
        (True, "", "true"), (True, "sk-ant-x", "false"), (False, "", "false"),
    ]
    for fork, key, expected in cases:
        _, out = _phase("preflight", tmp_path, {"GITHUB_EVENT_PATH": event(fork), "CIG_MODE": "run",
                                                "CIG_COMMAND": "claude -p hi", "CIG_PRESET": "claude-code",
                                                "CIG_ANTHROPIC_API_KEY": key})
        values = dict(line.split("=", 1) for line in out.splitlines())
        assert values["skip"] == expected, (fork, key, out)
        assert values["fork"] == ("true" if fork else "false") and values["pr"] == "5"
        # a skipped fork reports its status and exit code as a policy skip does; a run that goes ahead sets neither here
        assert (values.get("status"), values.get("exit-code")) == (("skipped", "80") if expected == "true" else
                                                                   (None, None))
    # stop mode after that skipped start (no state file, no stop key): skipped too; after a start
    # that was denied (not a keyless fork) this step cannot know why, and leaves the status to it
    for fork, expected in ((True, ("skipped", "80")), (False, (None, None))):
        _, out = _phase("preflight", tmp_path, {"GITHUB_EVENT_PATH": event(fork), "CIG_MODE": "stop",
                                                "CIG_PRESET": "claude-code", "CIG_ANTHROPIC_API_KEY": ""})
        values = dict(line.split("=", 1) for line in out.splitlines())
        assert values["skip"] == "true" and (values.get("status"), values.get("exit-code")) == expected, out
    # check-only runs need no key, so a fork PR is still decided
    _, out = _phase("preflight", tmp_path, {"GITHUB_EVENT_PATH": event(True), "CIG_MODE": "run", "CIG_COMMAND": ""})
    assert "skip=false" in out


# --- the two-stage fork comment: the target comes from the event, never from the artifact ------------


def _fake_gh(tmp_path: Path, pages: list[list[dict]]) -> Path:
    """A `gh` on PATH that answers `gh api --paginate .../pulls...` with the given pages."""
    shims = tmp_path / "shims"
    shims.mkdir(exist_ok=True)
    data = tmp_path / "pages.json"
    data.write_text("".join(json.dumps(page) + "\n" for page in pages))  # --paginate: arrays back to back
    (shims / "gh").write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/gh.log"\ncat "{data}"\n')
    (shims / "gh").chmod(0o755)
    return shims


def _find_pr(tmp_path: Path, pages: list[list[dict]], sha: str, head_repo: str) -> tuple[str, str]:
    shims = _fake_gh(tmp_path, pages)
    out = tmp_path / "out.txt"
    out.write_text("")
    step = _step("fork-pr-comment.yml", "Find the pull request")
    proc = _bash(step["run"], tmp_path, {"PATH": os.pathsep.join([str(shims), os.environ["PATH"]]),
                                         "GITHUB_OUTPUT": str(out), "GITHUB_REPOSITORY": "acme/app",
                                         "GH_TOKEN": "t", "HEAD_SHA": sha, "HEAD_REPO": head_repo})
    assert proc.returncode == 0, proc.stderr
    return out.read_text(), proc.stdout


def _pull(number: int, sha: str, head_repo: str) -> dict:
    return {"number": number, "head": {"sha": sha, "repo": {"full_name": head_repo}}}


def test_fork_comment_finds_the_pr_by_the_runs_head_repository_and_sha(tmp_path: Path) -> None:
    require(shutil.which("jq") is not None, "jq is not installed")
    pages = [[_pull(1, "a" * 40, "acme/app"), _pull(2, "b" * 40, "eve/app")],  # same SHA, other fork
             [_pull(3, "b" * 40, "mallory/app")]]
    out, _ = _find_pr(tmp_path, pages, "b" * 40, "mallory/app")
    assert out == "number=3\n"
    assert "repos/acme/app/pulls?state=open&per_page=100" in (tmp_path / "gh.log").read_text()


def test_fork_comment_posts_nothing_without_a_matching_open_pr(tmp_path: Path) -> None:
    require(shutil.which("jq") is not None, "jq is not installed")
    out, stdout = _find_pr(tmp_path, [[_pull(1, "a" * 40, "acme/app")]], "c" * 40, "mallory/app")
    assert out == "" and "::notice title=ci-guard::no open pull request" in stdout


def test_fork_comment_targets_come_from_trusted_event_data() -> None:
    step = _step("fork-pr-comment.yml", "Cost comment")
    assert step["uses"].startswith("ci-guard/ci-guard/actions/comment@")
    assert step["with"]["repo"] == "${{ github.repository }}"
    assert step["with"]["pr"] == "${{ steps.pr.outputs.number }}"
    find = _step("fork-pr-comment.yml", "Find the pull request")
    assert find["env"]["HEAD_SHA"] == "${{ github.event.workflow_run.head_sha }}"
    assert find["env"]["HEAD_REPO"] == "${{ github.event.workflow_run.head_repository.full_name }}"
