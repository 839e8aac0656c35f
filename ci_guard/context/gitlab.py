"""RunContext for GitLab CI, from the predefined ``CI_*`` variables (merge request pipelines included).

Choices worth knowing (documented in docs/context.md):

* ``repo`` is the merge request's target project (``CI_MERGE_REQUEST_PROJECT_PATH``) in MR pipelines,
  so a fork MR pipeline that runs in the fork is still attributed to the project it targets;
  otherwise ``CI_PROJECT_PATH``. ``org`` is the root group of ``repo``.
* ``fork`` is true when ``CI_MERGE_REQUEST_SOURCE_PROJECT_ID`` differs from the MR's project
  (``CI_MERGE_REQUEST_PROJECT_ID``) or from the project running the job (``CI_PROJECT_ID``).
* ``draft`` comes from ``CI_MERGE_REQUEST_DRAFT`` (GitLab 17.10+), else from the title prefix rules
  GitLab itself uses (``Draft:``, ``[Draft]``, ``(Draft)``).
* In merged-results / merge-train pipelines the diff is ``DIFF_BASE_SHA...SOURCE_BRANCH_SHA`` (or
  the merge commit against its first parent), never against the merge commit ``CI_COMMIT_SHA``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ci_guard.context.forge_paths import ApiUnavailable, gitlab_mr
from ci_guard.context.git import DiffStats, diff_or_reason, merge_parents
from ci_guard.context.model import RunContext
from ci_guard.context.overrides import PATHS_UNKNOWN

TRIGGERS = {
    "merge_request_event": "pull_request",
    "external_pull_request_event": "pull_request",
    "push": "push",
    "schedule": "schedule",
    "web": "manual",
    "api": "manual",
    "trigger": "manual",
    "webide": "manual",
    "chat": "manual",
    "note": "comment",
}
DRAFT_PREFIXES = ("draft:", "[draft]", "(draft)", "draft -")
# CI_MERGE_REQUEST_EVENT_TYPE values whose CI_COMMIT_SHA is a merge commit, not the source head.
MERGED_EVENT_TYPES = ("merged_result", "merge_train")


def gitlab_context(env: Mapping[str, str], cwd: str, token: str | None,
                   job_token: str | None = None) -> RunContext:
    """Build the context of a GitLab CI job (see the module docstring for the choices)."""
    source = _get(env, "CI_PIPELINE_SOURCE")
    notes: list[str] = []
    is_mr = bool(_get(env, "CI_MERGE_REQUEST_IID"))
    repo = (_get(env, "CI_MERGE_REQUEST_PROJECT_PATH") if is_mr else None) or _get(env, "CI_PROJECT_PATH")
    fields: dict[str, Any] = {
        "platform": "gitlab",
        "repo": repo,
        "org": repo.split("/")[0] if repo else _get(env, "CI_PROJECT_ROOT_NAMESPACE"),
        "event_name": source,
        "trigger": TRIGGERS.get(source or "", "other") if source else None,
        "actor": _get(env, "GITLAB_USER_LOGIN"),
        "sha": _get(env, "CI_COMMIT_SHA"),
        "workflow": _get(env, "CI_PIPELINE_NAME"),
        "job": _get(env, "CI_JOB_NAME"),
        "environment": _get(env, "CI_ENVIRONMENT_NAME"),
        "run_url": _get(env, "CI_PIPELINE_URL") or _get(env, "CI_JOB_URL"),
    }
    if is_mr:
        fields.update(_mr_fields(env, notes))
        _mr_diff(fields, env, cwd, token, job_token, notes)
    elif _get(env, "CI_EXTERNAL_PULL_REQUEST_IID"):
        fields.update(_external_pr_fields(env))
        notes.append(f"{PATHS_UNKNOWN}: external (GitHub) pull request pipelines carry no diff base")
    else:
        branch = _get(env, "CI_COMMIT_BRANCH")
        fields["base_branch"] = fields["head_branch"] = branch
        if source == "push":
            _push_diff(fields, env, cwd, notes)
        else:
            notes.append(f"{PATHS_UNKNOWN}: a {source or 'non-MR'} pipeline has no diff")
    return RunContext(**fields, notes=notes)


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _mr_fields(env: Mapping[str, str], notes: list[str]) -> dict[str, Any]:
    title = _get(env, "CI_MERGE_REQUEST_TITLE")
    labels = [x.strip() for x in (env.get("CI_MERGE_REQUEST_LABELS") or "").split(",") if x.strip()]
    return {
        "pr": _int(_get(env, "CI_MERGE_REQUEST_IID")),
        "title": title,
        "labels": labels,
        "draft": _draft(env, title, notes),
        "fork": _fork(env),
        "base_branch": _get(env, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME"),
        "head_branch": _get(env, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"),
        # In merged-results pipelines CI_COMMIT_SHA is the merge commit; the source head is this one.
        "sha": _get(env, "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA") or _get(env, "CI_COMMIT_SHA"),
    }


def _external_pr_fields(env: Mapping[str, str]) -> dict[str, Any]:
    source_repo = _get(env, "CI_EXTERNAL_PULL_REQUEST_SOURCE_REPOSITORY")
    target_repo = _get(env, "CI_EXTERNAL_PULL_REQUEST_TARGET_REPOSITORY")
    return {
        "pr": _int(_get(env, "CI_EXTERNAL_PULL_REQUEST_IID")),
        "base_branch": _get(env, "CI_EXTERNAL_PULL_REQUEST_TARGET_BRANCH_NAME"),
        "head_branch": _get(env, "CI_EXTERNAL_PULL_REQUEST_SOURCE_BRANCH_NAME"),
        "fork": source_repo != target_repo if source_repo and target_repo else None,
    }


def _draft(env: Mapping[str, str], title: str | None, notes: list[str]) -> bool | None:
    flag = _get(env, "CI_MERGE_REQUEST_DRAFT")
    if flag is not None:
        return flag.lower() == "true"
    if title is None:
        notes.append("draft unknown: neither CI_MERGE_REQUEST_DRAFT nor CI_MERGE_REQUEST_TITLE is set")
        return None
    return title.strip().lower().startswith(DRAFT_PREFIXES)


def _fork(env: Mapping[str, str]) -> bool | None:
    source = _get(env, "CI_MERGE_REQUEST_SOURCE_PROJECT_ID")
    others = [x for x in (_get(env, "CI_MERGE_REQUEST_PROJECT_ID"), _get(env, "CI_PROJECT_ID")) if x]
    if source is None or not others:
        return None
    return any(source != other for other in others)


def _mr_git_diff(env: Mapping[str, str], cwd: str) -> tuple[DiffStats | None, str | None]:
    """The MR's own changes from the checkout, or why they cannot be had.

    In merged-results and merge-train pipelines ``CI_COMMIT_SHA`` is a merge commit GitLab made of
    the source branch into the *current* target (or the previous train commit), so
    ``DIFF_BASE_SHA...CI_COMMIT_SHA`` would count what the target gained since the MR forked as
    MR changes. There the MR is ``DIFF_BASE_SHA...SOURCE_BRANCH_SHA`` (GitLab's own "Changes"), else
    the merge commit against its first parent.
    """
    base = _get(env, "CI_MERGE_REQUEST_DIFF_BASE_SHA")
    commit = _get(env, "CI_COMMIT_SHA")
    source = _get(env, "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA")
    merged = (_get(env, "CI_MERGE_REQUEST_EVENT_TYPE") in MERGED_EVENT_TYPES
              or (source is not None and commit is not None and source != commit))
    if not merged:
        return diff_or_reason(cwd, base, commit or "HEAD")
    reason = "the source branch commit is unknown (CI_MERGE_REQUEST_SOURCE_BRANCH_SHA is empty)"
    if source is not None:
        stats, reason = diff_or_reason(cwd, base, source)
        if stats is not None:
            return stats, None
    head = commit or "HEAD"
    parents = merge_parents(cwd, head)
    if parents is None or (source is not None and parents[1] != source):
        return None, (f"{reason}, and {head[:12]} is not a merge commit of the source branch "
                      f"with its parents in the clone")
    return diff_or_reason(cwd, parents[0], head)


def _mr_diff(fields: dict[str, Any], env: Mapping[str, str], cwd: str, token: str | None,
             job_token: str | None, notes: list[str]) -> None:
    stats, reason = _mr_git_diff(env, cwd)
    if stats is not None:
        fields["diff_lines"], fields["diff_files"], fields["changed_paths"] = (
            stats.lines, stats.files, stats.paths)
        return
    server = _get(env, "CI_SERVER_URL") or (_get(env, "CI_API_V4_URL") or "").removesuffix("/api/v4")
    project = _get(env, "CI_MERGE_REQUEST_PROJECT_ID") or _get(env, "CI_PROJECT_ID")
    if not (token or job_token) or not server or not project or not fields.get("pr"):
        missing = "no API token" if not (token or job_token) else "no server URL or project id"
        notes.append(f"{PATHS_UNKNOWN}: {reason} and {missing}")
        return
    try:
        facts = gitlab_mr(server, project, fields["pr"], private_token=token,
                          job_token=None if token else job_token)
    except ApiUnavailable as exc:
        notes.append(f"{PATHS_UNKNOWN}: {reason} and {exc}")
        return
    facts.fill(fields)
    notes.extend(facts.notes)


def _push_diff(fields: dict[str, Any], env: Mapping[str, str], cwd: str, notes: list[str]) -> None:
    stats, reason = diff_or_reason(cwd, _get(env, "CI_COMMIT_BEFORE_SHA"), _get(env, "CI_COMMIT_SHA") or "HEAD")
    if stats is None:
        notes.append(f"{PATHS_UNKNOWN}: {reason}")
        return
    fields["diff_lines"], fields["diff_files"], fields["changed_paths"] = stats.lines, stats.files, stats.paths
