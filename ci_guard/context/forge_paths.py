"""Changed files of a PR/MR from the forge API, for when the checkout cannot tell.

Used only when git history is missing (shallow clones) or the event has no diff (issue_comment).
PyGithub and python-gitlab are imported lazily so ``ci-guard check`` does not pay for them. Every
failure becomes an :class:`ApiUnavailable` with a redacted, secret-free reason; callers turn it into
a note, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ci_guard.secrets import redact

API_TIMEOUT_S = 10
# GitHub's "list pull request files" endpoint returns at most 3000 files.
GITHUB_FILES_CAP = 3000


class ApiUnavailable(Exception):
    """The forge API could not answer; the message is safe to show (no secrets)."""


@dataclass
class PullFacts:
    """What the forge says about one PR/MR. ``None`` means the API did not say."""

    lines: int | None = None
    files: int | None = None
    paths: list[str] | None = None
    base_branch: str | None = None
    head_branch: str | None = None
    base_sha: str | None = None
    head_sha: str | None = None
    draft: bool | None = None
    fork: bool | None = None
    title: str | None = None
    labels: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    def fill(self, fields: dict[str, Any]) -> None:
        """Give the API's answers to whatever ``fields`` still lacks (detected values win)."""
        pairs = {
            "diff_lines": self.lines, "diff_files": self.files, "changed_paths": self.paths,
            "base_branch": self.base_branch, "head_branch": self.head_branch, "draft": self.draft,
            "fork": self.fork, "title": self.title, "sha": self.head_sha,
        }
        for key, value in pairs.items():
            if fields.get(key) is None and value is not None:
                fields[key] = value
        if not fields.get("labels") and self.labels:
            fields["labels"] = list(self.labels)


def _fail(forge: str, exc: BaseException) -> ApiUnavailable:
    status = getattr(exc, "status", None) or getattr(exc, "response_code", None)
    detail = f"HTTP {status}" if status else f"{type(exc).__name__}: {exc}"
    return ApiUnavailable(redact(f"{forge} API request failed ({detail})"[:300]))


# --- GitHub -----------------------------------------------------------------------------------


def github_pull(api_url: str, repo: str, number: int, token: str,
                timeout: int = API_TIMEOUT_S) -> PullFacts:
    """Facts about pull request ``number`` of ``repo`` (``owner/name``) through PyGithub.

    Calls ``GET /repos/{repo}/pulls/{number}`` and the paginated ``.../files`` (100 per page).
    """
    try:
        from github import Auth, Github

        gh = Github(base_url=api_url.rstrip("/"), auth=Auth.Token(token), timeout=timeout, retry=None,
                    per_page=100, seconds_between_requests=None, seconds_between_writes=None, lazy=True)
        pull = gh.get_repo(repo).get_pull(number)
        facts = _github_meta(pull)
        files = list(pull.get_files())
    except Exception as exc:  # PyGithub, requests and socket errors alike: degrade, never crash
        raise _fail("GitHub", exc) from exc
    paths: list[str] = []
    for f in files:
        for name in (getattr(f, "previous_filename", None), f.filename):
            if name and name not in paths:
                paths.append(name)
    if facts.files is not None and len(files) < facts.files:
        facts.notes.append(
            f"changed paths unknown: the GitHub API listed {len(files)} of {facts.files} changed files "
            f"(it returns at most {GITHUB_FILES_CAP})"
        )
    else:
        facts.paths = paths
    if facts.files is None:
        facts.files = len(files)
    return facts


def _github_meta(pull: Any) -> PullFacts:
    head_repo = pull.head.repo
    base_repo = pull.base.repo
    fork = head_repo is None or (
        base_repo is not None and head_repo.full_name != base_repo.full_name
    )
    return PullFacts(
        lines=pull.additions + pull.deletions if pull.additions is not None else None,
        files=pull.changed_files,
        base_branch=pull.base.ref,
        head_branch=pull.head.ref,
        base_sha=pull.base.sha,
        head_sha=pull.head.sha,
        draft=pull.draft,
        fork=fork,
        title=pull.title,
        labels=[label.name for label in pull.labels],
    )


# --- GitLab -----------------------------------------------------------------------------------


def gitlab_mr(server_url: str, project_id: str, iid: int, *, private_token: str | None = None,
              job_token: str | None = None, timeout: int = API_TIMEOUT_S) -> PullFacts:
    """Facts about merge request ``iid`` of project ``project_id`` through python-gitlab.

    One call: ``GET /projects/:id/merge_requests/:iid/changes?access_raw_diffs=true`` (the MR
    fields plus its changes). ``CI_JOB_TOKEN`` may read merge requests, so it is accepted too.
    """
    try:
        import gitlab

        gl = gitlab.Gitlab(url=server_url.rstrip("/"), private_token=private_token, job_token=job_token,
                           timeout=timeout, retry_transient_errors=False)
        mr = gl.projects.get(project_id, lazy=True).mergerequests.get(iid, lazy=True)
        data = mr.changes(access_raw_diffs=True)
    except Exception as exc:  # python-gitlab, requests and socket errors alike
        raise _fail("GitLab", exc) from exc
    if not isinstance(data, dict):
        raise ApiUnavailable("GitLab API returned an unexpected merge request changes body")
    return _gitlab_facts(data)


def _gitlab_facts(data: dict[str, Any]) -> PullFacts:
    changes = data.get("changes") or []
    facts = PullFacts(
        base_branch=data.get("target_branch"),
        head_branch=data.get("source_branch"),
        draft=data.get("draft", data.get("work_in_progress")),
        title=data.get("title"),
        labels=[str(x) for x in data.get("labels") or []],
    )
    if data.get("source_project_id") is not None and data.get("target_project_id") is not None:
        facts.fork = data["source_project_id"] != data["target_project_id"]
    refs = data.get("diff_refs") or {}
    facts.base_sha, facts.head_sha = refs.get("base_sha"), refs.get("head_sha")
    if data.get("overflow"):
        facts.notes.append(
            f"changed paths unknown: GitLab truncated the merge request changes "
            f"(changes_count {data.get('changes_count')!s})"
        )
        return facts
    paths: list[str] = []
    for change in changes:
        for name in (change.get("old_path"), change.get("new_path")):
            if name and name not in paths:
                paths.append(name)
    facts.paths, facts.files = paths, len(changes)
    facts.lines = _gitlab_lines(changes)
    return facts


def _gitlab_lines(changes: list[dict[str, Any]]) -> int | None:
    """Added + deleted lines counted from the unified diffs; ``None`` if any diff was withheld."""
    total = 0
    for change in changes:
        if change.get("too_large") or change.get("collapsed"):
            return None
        in_hunk = False  # skip any "--- a/x" / "+++ b/x" header before the first hunk
        for line in (change.get("diff") or "").splitlines():
            if line.startswith("@@"):
                in_hunk = True
            elif in_hunk and line[:1] in ("+", "-"):
                total += 1
    return total
