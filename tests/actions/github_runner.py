"""Run a composite action's steps the way the GitHub runner does, on this machine.

For each step in order: evaluate ``if:`` (an implicit ``success()`` unless a status function is
used), substitute ``${{ ... }}`` in ``env:`` (inputs, ``github.*``, ``steps.<id>.outputs.*``,
``runner.*``, ``env.*``), give the step fresh ``GITHUB_OUTPUT``, ``GITHUB_ENV`` and
``GITHUB_STEP_SUMMARY`` files, run ``run:`` with ``bash --noprofile --norc -eo pipefail`` (GitHub's
``shell: bash``), then read the outputs and the exported environment back and delete those files,
as the runner does before the next step. ``uses:`` steps
(actions/setup-python, actions/cache) cannot run here and are recorded as skipped: the test
environment already provides the Python they would set up.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.actions.expressions import Evaluator, _text

_HEREDOC = re.compile(r"^([^=\s<]+)<<(.+)$")


def parse_command_file(path: Path) -> dict[str, str]:
    """Read a GITHUB_OUTPUT / GITHUB_ENV file: ``name=value`` lines and ``name<<DELIM`` blocks."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    lines = path.read_text().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _HEREDOC.match(line)
        if m:
            name, delim = m.group(1), m.group(2)
            end = lines.index(delim, i + 1)
            values[name] = "\n".join(lines[i + 1:end])
            i = end + 1
            continue
        if "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
        i += 1
    return values


@dataclass
class StepResult:
    name: str
    id: str | None
    outcome: str  # success | failure | skipped
    outputs: dict[str, str] = field(default_factory=dict)
    log: str = ""
    exit_code: int | None = None
    env_added: dict[str, str] = field(default_factory=dict)  # appended to GITHUB_ENV
    summary: str = ""  # appended to GITHUB_STEP_SUMMARY


@dataclass
class ActionResult:
    steps: list[StepResult]
    outputs: dict[str, str]
    env_exported: dict[str, str]  # what the action appended to GITHUB_ENV, for later steps of the job
    summary: str

    @property
    def failed(self) -> bool:
        return any(s.outcome == "failure" for s in self.steps)

    @property
    def log(self) -> str:
        return "\n".join(f"--- {s.name} [{s.outcome}]\n{s.log}" for s in self.steps)

    def step(self, step_id: str) -> StepResult:
        return next(s for s in self.steps if s.id == step_id)


class ActionRunner:
    def __init__(self, action_dir: Path, env: dict[str, str], github: dict[str, Any], workdir: Path,
                 temp: Path) -> None:
        self.action_dir = action_dir
        self.meta = yaml.safe_load((action_dir / "action.yml").read_text())
        self.env = dict(env)  # the job's environment
        self.github = {**github, "action_path": str(action_dir)}
        self.workdir = workdir
        self.temp = temp

    def _inputs(self, given: dict[str, str]) -> dict[str, str]:
        unknown = set(given) - set(self.meta.get("inputs") or {})
        if unknown:
            raise ValueError(f"inputs not declared by the action: {sorted(unknown)}")
        base = Evaluator({"github": self.github})
        values = {}
        for name, spec in (self.meta.get("inputs") or {}).items():
            if name in given:
                values[name] = given[name]
            elif spec.get("required"):
                raise ValueError(f"missing required input {name}")
            else:
                values[name] = base.substitute(_text(spec.get("default", "")))
        return values

    def run(self, inputs: dict[str, str]) -> ActionResult:
        values = self._inputs(inputs)
        steps: dict[str, dict[str, Any]] = {}
        results: list[StepResult] = []
        env = dict(self.env)
        exported: dict[str, str] = {}
        summaries: list[str] = []
        state = {"status": "success"}
        for n, step in enumerate(self.meta["runs"]["steps"]):
            contexts = {"inputs": values, "github": self.github, "steps": steps, "env": env,
                        "runner": {"os": "Linux", "temp": env.get("RUNNER_TEMP", "")}}
            ev = Evaluator(contexts, lambda: state["status"])
            name = step.get("name") or step.get("uses") or f"step {n}"
            if not ev.condition(step.get("if")):
                results.append(StepResult(name, step.get("id"), "skipped"))
                continue
            if "uses" in step:
                results.append(StepResult(name, step.get("id"), "skipped", log=f"uses: {step['uses']} (not run)"))
                continue
            result = self._run_step(n, step, name, ev, env)
            results.append(result)
            if step.get("id"):
                steps[step["id"]] = {"outputs": result.outputs, "outcome": result.outcome}
            exported.update(result.env_added)
            env.update(result.env_added)
            summaries.append(result.summary)
            if result.outcome == "failure":
                state["status"] = "failure"
        final = Evaluator({"inputs": values, "github": self.github, "steps": steps, "env": env})
        outputs = {k: _text(final.substitute(_text(v["value"]))) for k, v in (self.meta.get("outputs") or {}).items()}
        return ActionResult(results, outputs, exported, "".join(summaries))

    def _run_step(self, n: int, step: dict[str, Any], name: str, ev: Evaluator, env: dict[str, str]) -> StepResult:
        assert step.get("shell") == "bash", f"step {name!r} needs shell: bash"
        files = {k: self.temp / f"step{n}-{k}" for k in ("output", "env", "summary", "script")}
        for key in ("output", "env", "summary"):
            files[key].write_text("")
        step_env = {k: ev.substitute(_text(v)) for k, v in (step.get("env") or {}).items()}
        full = {**env, **step_env, "GITHUB_ACTION_PATH": str(self.action_dir),
                "GITHUB_ACTION": step.get("id") or f"__run_{n}", "GITHUB_OUTPUT": str(files["output"]),
                "GITHUB_ENV": str(files["env"]), "GITHUB_STEP_SUMMARY": str(files["summary"])}
        files["script"].write_text(ev.substitute(step["run"]))
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(files["script"])],
                              cwd=self.workdir, env=full, capture_output=True, text=True, timeout=600)
        result = StepResult(name, step.get("id"), "success" if proc.returncode == 0 else "failure",
                            parse_command_file(files["output"]), proc.stdout + proc.stderr, proc.returncode,
                            parse_command_file(files["env"]), files["summary"].read_text())
        # The runner deletes a step's command files before the next step runs (actions/runner,
        # FileCommandManager.InitializeFiles): a later step never reads an earlier one's outputs.
        for key in ("output", "env", "summary"):
            files[key].unlink()
        return result


def base_env(*, home: Path, temp: Path, workspace: Path, event_path: Path, event_name: str,
             repo: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The variables a GitHub-hosted runner sets for a job, pointed at local files."""
    import sys

    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")])
    env = {
        "PATH": path, "HOME": str(home), "LANG": "C.UTF-8", "CI": "true", "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event_name, "GITHUB_EVENT_PATH": str(event_path), "GITHUB_REPOSITORY": repo,
        "GITHUB_REPOSITORY_OWNER": repo.split("/")[0], "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_WORKFLOW": "AI PR review", "GITHUB_JOB": "review", "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_ATTEMPT": "1", "GITHUB_SERVER_URL": "https://github.com", "RUNNER_OS": "Linux",
        "RUNNER_TEMP": str(temp), "RUNNER_ARCH": "X64",
    }
    env.update(extra or {})
    return env
