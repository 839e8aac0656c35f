"""Where the action, workflow and GitLab files of the repository live (shared by the action tests)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ACTION_FILES = [ROOT / "action.yml", *sorted((ROOT / "actions").glob("*/action.yml"))]
EXAMPLES = ROOT / "actions" / "examples"
WORKFLOW_FILES = sorted(p for p in EXAMPLES.glob("*.yml") if not p.name.startswith("gitlab-ci"))
GITLAB_COMPONENT = ROOT / "templates" / "ci-guard" / "template.yml"
GITLAB_OUTCOME_COMPONENT = ROOT / "templates" / "ci-guard-outcome" / "template.yml"
GITLAB_INCLUDE = ROOT / "gitlab-ci" / "ci-guard.gitlab-ci.yml"
GITLAB_EXAMPLE = EXAMPLES / "gitlab-ci.example.yml"
GITLAB_REPAIR_EXAMPLE = EXAMPLES / "gitlab-ci.test-repair.example.yml"
GITLAB_FILES = [GITLAB_COMPONENT, GITLAB_INCLUDE, GITLAB_EXAMPLE, GITLAB_REPAIR_EXAMPLE]
ACTION_SCRIPT = ROOT / "actions" / "lib" / "ci-guard-action.sh"
PRE_COMMIT_HOOKS = ROOT / ".pre-commit-hooks.yaml"

# How the examples refer to this action; the lint tests map these to the local files.
ACTION_REF = "ci-guard/ci-guard"
