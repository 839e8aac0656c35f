"""RunContext: everything the policy engine may know about one agent run."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ci_guard.text import clean

Platform = Literal["github", "gitlab", "local"]

# Triggers are normalised across forges so one policy serves GitHub and GitLab alike.
TRIGGERS = ("pull_request", "push", "schedule", "manual", "comment", "other")


class RunContext(BaseModel):
    """A description of the run being decided. ``None`` always means *unknown*, never *empty*.

    ``changed_paths`` is ``None`` when the changed files could not be determined; a ``paths`` or
    ``paths_only`` condition never matches an unknown list (an empty list must not make
    ``paths_only`` vacuously true).
    """

    model_config = ConfigDict(extra="forbid")

    platform: Platform = "local"
    repo: str | None = None  # "owner/name" (GitHub) or "group/sub/project" (GitLab)
    org: str | None = None  # the owner / top-level group
    pr: int | None = None  # pull request number / merge request IID
    trigger: str | None = None  # one of TRIGGERS
    event_name: str | None = None  # the raw event (pull_request_target, merge_request_event, ...)
    base_branch: str | None = None
    head_branch: str | None = None
    sha: str | None = None
    actor: str | None = None
    team: str | None = None  # resolved from the policy's `teams:` (or given explicitly)
    labels: list[str] = Field(default_factory=list)
    draft: bool | None = None
    fork: bool | None = None
    title: str | None = None
    diff_lines: int | None = None  # additions + deletions
    diff_files: int | None = None
    changed_paths: list[str] | None = None
    agent: str | None = None  # pr-review, test-repair, ...
    workflow: str | None = None
    job: str | None = None
    environment: str | None = None
    cohort: str | None = None  # free-form attribution (experiment arm, rollout wave)
    run_url: str | None = None
    notes: list[str] = Field(default_factory=list)  # what could not be detected, and why

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: object) -> object:
        # Branch names, titles, labels and paths come from PR authors, event files and argv (where
        # non-UTF-8 bytes arrive as lone surrogates): make them storable before anything uses them.
        if isinstance(value, str):
            return clean(value)
        if isinstance(value, list):
            return [clean(v) if isinstance(v, str) else v for v in value]
        return value

    def scope_key(self, scope: str) -> str | None:
        """The attribution key of this run for a budget scope (org, team, repo, user, workflow, agent)."""
        return {
            "org": self.org,
            "team": self.team,
            "repo": self.repo,
            "user": self.actor,
            "workflow": self.workflow,
            "agent": self.agent,
        }.get(scope)
