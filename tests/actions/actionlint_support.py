"""Run actionlint over composite actions and example workflows.

actionlint only understands workflows, so a composite action is checked as the workflow GitHub
would effectively run: a ``workflow_call`` workflow whose inputs are the action's inputs, one job
whose steps are the action's steps and whose outputs are the action's outputs. That checks every
expression (``inputs.*``, ``steps.*.outputs.*``, ``github.action_path``), the ``if:`` conditions,
script injection in ``run:`` and, through shellcheck, each script.

Example workflows are checked in a scratch repository where ``uses: ci-guard/ci-guard...@ref`` is
rewritten to the local action directories, so actionlint also checks every ``with:`` against the
action's declared inputs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.actions.layout import ACTION_REF, ROOT


def actionlint_binary() -> str | None:
    return shutil.which("actionlint")


def shellcheck_available() -> bool:
    return shutil.which("shellcheck") is not None


def action_as_workflow(action: dict[str, Any]) -> dict[str, Any]:
    """The workflow equivalent of a composite action's metadata, for actionlint."""
    inputs = {
        name: {"type": "string", "required": False, "description": spec.get("description", "")}
        for name, spec in (action.get("inputs") or {}).items()
    }
    outputs = {name: spec["value"] for name, spec in (action.get("outputs") or {}).items()}
    job: dict[str, Any] = {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}
    if outputs:
        job["outputs"] = outputs
    return {"name": action.get("name", "action"), "on": {"workflow_call": {"inputs": inputs}},
            "permissions": {}, "jobs": {"action": job}}


_REF = re.compile(r"uses:\s*" + re.escape(ACTION_REF) + r"(/(?P<sub>[\w./-]+))?@\S+")


def localise_uses(text: str) -> str:
    """Point ``uses: ci-guard/ci-guard[/actions/x]@ref`` at the local copy of the action."""
    return _REF.sub(lambda m: "uses: ./" + (m.group("sub") or ""), text)


def scratch_repo(tmp: Path, workflows: dict[str, str]) -> Path:
    """A repository with this project's actions and the given workflows under .github/workflows."""
    shutil.copy(ROOT / "action.yml", tmp / "action.yml")
    shutil.copytree(ROOT / "actions", tmp / "actions", ignore=shutil.ignore_patterns("examples"))
    wf_dir = tmp / ".github" / "workflows"
    wf_dir.mkdir(parents=True)
    for name, text in workflows.items():
        (wf_dir / name).write_text(text)
    # actionlint finds the project root (and so local actions) through the .git directory.
    subprocess.run(["git", "init", "-q", str(tmp)], check=True, capture_output=True)
    return wf_dir


def run_actionlint(cwd: Path, files: list[Path]) -> subprocess.CompletedProcess[str]:
    binary = actionlint_binary()
    assert binary is not None
    # -shellcheck= with no value would disable it; leave the default so it runs when installed.
    return subprocess.run(
        [binary, "-no-color", "-oneline", "-pyflakes=", *[str(f) for f in files]],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )


def dump_workflow(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, width=200)
