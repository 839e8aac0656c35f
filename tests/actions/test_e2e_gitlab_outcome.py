"""The GitLab outcome component (templates/ci-guard-outcome), run as a runner would run its job.

Its inputs are interpolated, its variables and a default-branch pipeline's predefined variables form
the environment, and its script runs with ``sh`` against a ledger with agent runs on three merge
requests and a local GitLab API that knows which were merged or closed.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ci_guard.ledger import open_ledger
from tests.actions.layout import GITLAB_INCLUDE, GITLAB_OUTCOME_COMPONENT
from tests.actions.scenario import GITLAB_TOKEN, REPO
from tests.actions.test_e2e_gitlab import _interpolate, run_job
from tests.forges.fake_gitlab import PROJECT_ID, FakeGitLab


def interpolate(inputs: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """GitLab's include-time step for the outcome component: (job name, job, spec inputs)."""
    spec_text, body = GITLAB_OUTCOME_COMPONENT.read_text().split("\n---\n", 1)
    spec = yaml.safe_load(spec_text)["spec"]["inputs"]
    assert not set(inputs) - set(spec)
    values = {name: inputs.get(name, item.get("default")) for name, item in spec.items()}
    ((name, job),) = _interpolate(yaml.safe_load(body), values).items()
    return name, job, spec


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
        return
    import psycopg

    from tests.helpers import require
    from tests.ledger.conftest import PG_SERVER, pg_available, pg_url

    require(pg_available(), f"PostgreSQL is not reachable at {PG_SERVER}")
    schema = f"cig_outcome_{os.getpid()}_{secrets.token_hex(3)}"
    yield pg_url(schema)
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def ledger(ledger_url: str, tmp_path: Path) -> str:
    """Agent runs on merge requests 7, 8 and 9 of acme/app (imported usage, one run each)."""
    url = ledger_url
    usage = tmp_path / "usage.csv"
    usage.write_text("model,input_tokens,output_tokens\nclaude-sonnet-4-5,1000,100\n")
    for mr in (7, 8, 9):
        subprocess.run(["ci-guard", "import", "--format", "csv", str(usage), "--ledger", url, "--repo", REPO,
                        "--pr", str(mr), "--agent", "pr-review"], check=True, capture_output=True,
                       env={**os.environ, "GITHUB_ACTIONS": "", "GITLAB_CI": ""})
    return url


def outcomes(url: str) -> dict[int, str | None]:
    now = datetime.now(UTC)
    store = open_ledger(url)
    try:
        return {f.pr: f.outcome for f in store.period_runs(now - timedelta(days=1), now + timedelta(days=1))}
    finally:
        store.close()


def pipeline_env(tmp_path: Path, ledger: str, fake: FakeGitLab | None, message: str = "") -> dict[str, str]:
    """A push pipeline on the default branch after a merge."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {"PATH": path, "HOME": str(tmp_path), "LANG": "C.UTF-8", "CI": "true", "GITLAB_CI": "true",
           "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main",
           "CI_PROJECT_ID": str(PROJECT_ID), "CI_PROJECT_PATH": REPO, "CI_COMMIT_MESSAGE": message,
           "CI_JOB_TOKEN": "job-token-read-only-000", "CI_GUARD_LEDGER": ledger}
    if fake is not None:
        env.update({"GITLAB_TOKEN": GITLAB_TOKEN, "CI_SERVER_URL": fake.url, "CI_API_V4_URL": f"{fake.url}/api/v4"})
    return env


def test_merged_and_closed_merge_requests_are_recorded_from_the_api(tmp_path: Path, ledger: str) -> None:
    _, job, _ = interpolate({"pip-spec": ""})
    now = datetime.now(UTC)
    with FakeGitLab(tokens={GITLAB_TOKEN: "project_42_bot"}) as fake:
        fake.finished = {7: ("merged", now - timedelta(hours=1)), 8: ("closed", now - timedelta(days=2)),
                         9: ("closed", now - timedelta(days=40)),  # outside `since`
                         11: ("merged", now)}  # no agent runs: not written
        proc = run_job(job, pipeline_env(tmp_path, ledger, fake), tmp_path)
        lists = [r for r in fake.requests if r.path.endswith(f"/projects/{PROJECT_ID}/merge_requests")]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{REPO}!7: outcome merged" in proc.stdout and f"{REPO}!8: outcome closed" in proc.stdout
    assert "2 merge request outcomes recorded from the GitLab API (1 without agent runs skipped)" in proc.stdout
    assert outcomes(ledger) == {7: "merged", 8: "closed", 9: None}
    assert sorted(r.query["state"] for r in lists) == ["closed", "merged"]
    assert all(r.headers["private-token"] == GITLAB_TOKEN for r in lists)
    assert GITLAB_TOKEN not in proc.stdout + proc.stderr


def test_without_a_token_the_merge_commit_names_the_merged_request(tmp_path: Path, ledger: str) -> None:
    _, job, _ = interpolate({"pip-spec": ""})
    # an MR description quoted into the message may name another MR; GitLab's own line comes last
    message = ("Merge branch 'feat/sub' into 'main'\n\nAdd sub()\n\nSee merge request acme/app!9\n\n"
               "Closes #3\n\nSee merge request other/project!8\n\nSee merge request acme/app!7\n")
    proc = run_job(job, pipeline_env(tmp_path, ledger, None, message), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 merge request outcomes recorded from the merge commit" in proc.stdout
    assert outcomes(ledger) == {7: "merged", 8: None, 9: None}


def test_hostile_commit_message_is_data(tmp_path: Path, ledger: str) -> None:
    _, job, _ = interpolate({"pip-spec": ""})
    canary = tmp_path / "pwned"
    message = f'$(touch {canary})\n`touch {canary}`\n"; touch {canary}; "\nSee merge request acme/app!7'
    proc = run_job(job, pipeline_env(tmp_path, ledger, None, message), tmp_path)
    assert proc.returncode == 0 and not canary.exists()
    assert outcomes(ledger)[7] == "merged"


def test_api_failure_warns_and_never_fails_the_pipeline(tmp_path: Path, ledger: str) -> None:
    _, job, _ = interpolate({"pip-spec": ""})
    with FakeGitLab(tokens={GITLAB_TOKEN: "project_42_bot"}) as fake:
        fake.fail("GET", rf"/api/v4/projects/{PROJECT_ID}/merge_requests", 403, {"message": "403 Forbidden"})
        proc = run_job(job, pipeline_env(tmp_path, ledger, fake), tmp_path)
    assert proc.returncode == 0 and "merge request outcomes were not recorded" in proc.stdout
    assert job["allow_failure"] is True and set(outcomes(ledger).values()) == {None}


def test_no_ledger_records_nothing(tmp_path: Path) -> None:
    _, job, _ = interpolate({"pip-spec": ""})
    env = pipeline_env(tmp_path, "", None, "See merge request acme/app!7")
    proc = run_job(job, env, tmp_path)
    assert proc.returncode == 0 and "CI_GUARD_LEDGER is not set" in proc.stdout


def test_job_runs_after_merges_and_on_schedules_and_matches_the_include(tmp_path: Path) -> None:
    name, job, spec = interpolate({})
    assert name == "ci-guard-outcome" and job["stage"] == ".post" and job["needs"] == []
    assert job["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH'},
                            {"if": '$CI_PIPELINE_SOURCE == "schedule"'}]
    assert spec["rules"]["type"] == "array"
    include = yaml.safe_load(GITLAB_INCLUDE.read_text())[".ci-guard-outcome"]
    assert include["script"] == job["script"] and include["rules"] == job["rules"]
    assert include["variables"]["CI_GUARD_PIP_SPEC"] == job["variables"]["CI_GUARD_PIP_SPEC"]
    # GitLab's CI schema accepts the interpolated job and the spec document
    docs = []
    for i, doc in enumerate([yaml.safe_load(GITLAB_OUTCOME_COMPONENT.read_text().split("\n---\n")[0]), {name: job}]):
        path = tmp_path / f"outcome-{i}.json"
        path.write_text(json.dumps(doc))
        docs.append(str(path))
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.gitlab-ci", *docs],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
