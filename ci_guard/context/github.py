"""RunContext for GitHub Actions: ``GITHUB_*`` variables plus the event payload at ``GITHUB_EVENT_PATH``.

Choices worth knowing (documented in docs/context.md):

* ``actor`` is who triggered the run (``GITHUB_ACTOR``), not the PR author: spend is attributed to the
  person whose action started the agent (for a re-run, the original actor).
* ``repo``/``org`` are the repository the workflow runs in (the PR's base repository).
* For non-PR runs (push, schedule, manual) both ``base_branch`` and ``head_branch`` are the branch
  the run is on, so ``base_branch: main`` matches a push to main.
* ``pull_request_review`` and ``pull_request_review_comment`` are comments on a PR (trigger
  ``comment``); ``merge_group`` (merge queue) and ``workflow_run`` keep trigger ``other`` but take
  their branches, PR and fork from their own payload objects.
* A PR diff never counts what the base branch gained after ``pull_request.base.sha``: the merge
  commit at HEAD is diffed against its first parent, else ``base.sha...head.sha``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ci_guard.context.forge_paths import ApiUnavailable, github_pull
from ci_guard.context.git import DiffStats, diff_or_reason, merge_parents
from ci_guard.context.model import RunContext
from ci_guard.context.overrides import PATHS_UNKNOWN
from ci_guard.errors import ContextError, Problem
from ci_guard.files import InputTooLarge, read_input_text

TRIGGERS = {
    "pull_request": "pull_request",
    "pull_request_target": "pull_request",
    "push": "push",
    "schedule": "schedule",
    "workflow_dispatch": "manual",
    "repository_dispatch": "manual",
    "issue_comment": "comment",
    "pull_request_review": "comment",
    "pull_request_review_comment": "comment",
}
# The triggering run of a workflow_run was for a pull request (its pull_requests list may be empty).
PR_EVENTS = ("pull_request", "pull_request_target")
# GitHub's push payload lists at most this many commits; with more, the file lists are incomplete.
PUSH_COMMITS_CAP = 20


def github_context(env: Mapping[str, str], cwd: str, token: str | None) -> RunContext:
    """Build the context of a GitHub Actions job (see the module docstring for the choices)."""
    event = env.get("GITHUB_EVENT_NAME") or None
    notes: list[str] = []
    payload = _load_payload(env.get("GITHUB_EVENT_PATH"), notes)
    repo = env.get("GITHUB_REPOSITORY") or None
    fields: dict[str, Any] = {
        "platform": "github",
        "repo": repo,
        "org": env.get("GITHUB_REPOSITORY_OWNER") or (repo.split("/")[0] if repo else None),
        "event_name": event,
        "trigger": TRIGGERS.get(event or "", "other") if event else None,
        "actor": env.get("GITHUB_ACTOR") or _login(payload.get("sender")),
        "sha": env.get("GITHUB_SHA") or payload.get("after") or None,
        "workflow": env.get("GITHUB_WORKFLOW") or None,
        "job": env.get("GITHUB_JOB") or None,
        "run_url": _run_url(env),
    }
    _event_fields(fields, payload, env, cwd, token, notes)
    return RunContext(**fields, notes=notes)


def _event_fields(fields: dict[str, Any], payload: dict[str, Any], env: Mapping[str, str], cwd: str,
                  token: str | None, notes: list[str]) -> None:
    """PR, branches, fork, draft and diff from whichever object this event's payload carries."""
    event = fields["event_name"]
    pull, issue = payload.get("pull_request"), payload.get("issue")
    group, run = payload.get("merge_group"), payload.get("workflow_run")
    if isinstance(pull, dict):  # pull_request*, including reviews and review comments
        fields.update(_pull_fields(pull))
        _pull_diff(fields, pull, env, cwd, token, notes)
    elif isinstance(issue, dict) and issue.get("pull_request"):
        fields.update(_issue_fields(issue))
        _api_only_diff(fields, env, token, "an issue_comment event carries no diff", notes)
    elif event == "merge_group" and isinstance(group, dict):
        fields.update(_merge_group_fields(group))
        _git_only_diff(fields, cwd, group.get("base_sha"), group.get("head_sha"), notes)
    elif event == "workflow_run" and isinstance(run, dict):
        fields.update(_workflow_run_fields(run, payload, fields["repo"]))
        _workflow_run_diff(fields, run, env, cwd, token, notes)
    else:
        branch = _branch(env)
        fields["base_branch"] = fields["head_branch"] = branch
        if event == "push":
            _push_diff(fields, payload, cwd, notes)
        elif fields["trigger"] == "pull_request":
            notes.append(f"{PATHS_UNKNOWN}: the event payload has no pull_request object")
        else:
            notes.append(f"{PATHS_UNKNOWN}: a {event or 'non-PR'} run has no diff")


# --- payload parsing --------------------------------------------------------------------------


def _load_payload(path: str | None, notes: list[str]) -> dict[str, Any]:
    if not path:
        notes.append("GITHUB_EVENT_PATH is not set: PR details unknown")
        return {}
    try:
        text = read_input_text(path)
    except OSError as exc:
        notes.append(f"event payload {path} unreadable ({exc.strerror or exc}): PR details unknown")
        return {}
    except (UnicodeDecodeError, InputTooLarge) as exc:
        raise ContextError("invalid GitHub event payload", [Problem(f"not a UTF-8 JSON file: {exc}", path)]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContextError("invalid GitHub event payload",
                           [Problem(f"invalid JSON: {exc.msg}", path, exc.lineno, exc.colno)]) from exc
    except RecursionError:
        raise ContextError("invalid GitHub event payload", [Problem("JSON nested too deeply", path)]) from None
    if not isinstance(data, dict):
        raise ContextError("invalid GitHub event payload", [Problem("expected a JSON object", path, 1, 1)])
    return data


def _pull_fields(pull: dict[str, Any]) -> dict[str, Any]:
    head, base = _obj(pull.get("head")), _obj(pull.get("base"))
    head_repo, base_repo = head.get("repo"), base.get("repo")
    # A deleted fork leaves head.repo null; treat it as a fork (the cautious answer).
    fork = head_repo is None or _full_name(head_repo) != _full_name(base_repo)
    return {
        "pr": _int(pull.get("number")),
        "draft": pull.get("draft") if isinstance(pull.get("draft"), bool) else None,
        "fork": fork,
        "title": pull.get("title"),
        "labels": _labels(pull.get("labels")),
        "base_branch": base.get("ref"),
        "head_branch": head.get("ref"),
        "sha": head.get("sha") or None,
    }


def _issue_fields(issue: dict[str, Any]) -> dict[str, Any]:
    draft = issue.get("draft")
    return {
        "pr": _int(issue.get("number")),
        "title": issue.get("title"),
        "labels": _labels(issue.get("labels")),
        "draft": draft if isinstance(draft, bool) else None,
        "sha": None,  # GITHUB_SHA is the default branch here, not the PR head
    }


def _merge_group_fields(group: dict[str, Any]) -> dict[str, Any]:
    """A merge queue group: it will land on ``base_ref``; ``head_ref`` is the temporary
    ``gh-readonly-queue/<base>/pr-<n>-<sha>`` branch. Fork and draft are not in the payload."""
    return {
        "base_branch": _strip_heads(group.get("base_ref")),
        "head_branch": _strip_heads(group.get("head_ref")),
        "sha": group.get("head_sha") or None,
    }


def _workflow_run_fields(run: dict[str, Any], payload: dict[str, Any], repo: str | None) -> dict[str, Any]:
    """A run triggered by another workflow's run: the branch, PR and fork are those of that run.

    GitHub lists no ``pull_requests`` for a run of a fork's PR, so there the PR number and base
    branch stay unknown; a push-like run is on its own branch, like other non-PR runs.
    """
    head_branch = run.get("head_branch") or None
    prs = run.get("pull_requests")
    first = prs[0] if isinstance(prs, list) and prs and isinstance(prs[0], dict) else None
    if first is not None:
        base_branch = _obj(first.get("base")).get("ref")
    else:
        base_branch = None if run.get("event") in PR_EVENTS else head_branch
    here = _full_name(run.get("repository")) or _full_name(payload.get("repository")) or repo
    head_repo = run.get("head_repository", {})
    # A null head repository is a deleted fork (as for pull_request); an absent one is unknown.
    fork = True if head_repo is None else (
        _full_name(head_repo) != here if _full_name(head_repo) and here else None)
    return {
        "pr": _int(first.get("number")) if first else None,
        "fork": fork,
        "base_branch": base_branch,
        "head_branch": head_branch,
        "sha": run.get("head_sha") or None,
    }


def _strip_heads(ref: Any) -> str | None:
    if not isinstance(ref, str):
        return None
    return ref.removeprefix("refs/heads/") or None


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _labels(raw: Any) -> list[str]:
    if not isinstance(raw, list):
        return []
    return [str(x["name"]) for x in raw if isinstance(x, dict) and x.get("name")]


def _full_name(repo: Any) -> str | None:
    return repo.get("full_name") if isinstance(repo, dict) else None


def _login(user: Any) -> str | None:
    return user.get("login") if isinstance(user, dict) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _branch(env: Mapping[str, str]) -> str | None:
    ref = env.get("GITHUB_REF", "")
    if ref.startswith("refs/heads/"):
        return ref.removeprefix("refs/heads/")
    if not ref and env.get("GITHUB_REF_NAME"):
        return env["GITHUB_REF_NAME"]
    return None  # a tag or an unknown ref is not a branch


def _run_url(env: Mapping[str, str]) -> str | None:
    server, repo, run = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")
    if not (server and repo and run):
        return None
    return f"{server.rstrip('/')}/{repo}/actions/runs/{run}"


# --- diff: git first, then the payload's counts, then the API ---------------------------------


def _pr_git_diff(cwd: str, base_sha: str | None, head_sha: str | None) -> tuple[DiffStats | None, str | None]:
    """The PR's own changes from the checkout.

    actions/checkout of ``refs/pull/N/merge`` puts GitHub's test merge commit at HEAD: first parent
    the base branch *as it is now*, second parent the PR head. HEAD^1...HEAD is then the PR's diff
    even when the base moved after ``base.sha`` (a ``labeled`` event with ``fetch-depth: 0`` would
    otherwise count the base's new commits), and needs only ``fetch-depth: 2``. Any other checkout
    (``pull_request_target`` is on the base branch) gets ``base.sha...head.sha``.
    """
    parents = merge_parents(cwd, "HEAD") if head_sha else None
    if parents is not None and parents[1] == head_sha:
        return diff_or_reason(cwd, parents[0], "HEAD")
    return diff_or_reason(cwd, base_sha, head_sha)


def _pull_diff(fields: dict[str, Any], pull: dict[str, Any], env: Mapping[str, str], cwd: str,
               token: str | None, notes: list[str]) -> None:
    stats, reason = _pr_git_diff(cwd, _obj(pull.get("base")).get("sha"), _obj(pull.get("head")).get("sha"))
    if stats is not None:
        _set_stats(fields, stats)
        return
    additions, deletions = _int(pull.get("additions")), _int(pull.get("deletions"))
    if additions is not None and deletions is not None:
        fields["diff_lines"] = additions + deletions
    fields["diff_files"] = _int(pull.get("changed_files"))
    _api_only_diff(fields, env, token, reason or "git history unavailable", notes)


def _api_only_diff(fields: dict[str, Any], env: Mapping[str, str], token: str | None, reason: str,
                   notes: list[str]) -> None:
    """Fill what git could not give from the API, or note why the paths stay unknown."""
    if not token or not fields.get("repo") or not fields.get("pr"):
        missing = "no API token" if not token else "no repository or PR number"
        notes.append(f"{PATHS_UNKNOWN}: {reason} and {missing}")
        return
    api_url = env.get("GITHUB_API_URL") or "https://api.github.com"
    try:
        facts = github_pull(api_url, fields["repo"], fields["pr"], token)
    except ApiUnavailable as exc:
        notes.append(f"{PATHS_UNKNOWN}: {reason} and {exc}")
        return
    facts.fill(fields)
    notes.extend(facts.notes)


def _git_only_diff(fields: dict[str, Any], cwd: str, base: Any, head: Any, notes: list[str]) -> None:
    """``base...head`` from the checkout, or a note (events with no PR number for the API)."""
    stats, reason = diff_or_reason(cwd, base if isinstance(base, str) else None,
                                   head if isinstance(head, str) else None)
    if stats is not None:
        _set_stats(fields, stats)
    else:
        notes.append(f"{PATHS_UNKNOWN}: {reason}")


def _workflow_run_diff(fields: dict[str, Any], run: dict[str, Any], env: Mapping[str, str], cwd: str,
                       token: str | None, notes: list[str]) -> None:
    """The triggering PR's diff: its shas if fetched (the checkout is the default branch), else the API."""
    prs = run.get("pull_requests")
    first = prs[0] if isinstance(prs, list) and prs and isinstance(prs[0], dict) else None
    if first is None:
        notes.append(f"{PATHS_UNKNOWN}: the workflow_run event lists no pull request")
        return
    stats, reason = diff_or_reason(cwd, _obj(first.get("base")).get("sha"), _obj(first.get("head")).get("sha"))
    if stats is not None:
        _set_stats(fields, stats)
        return
    _api_only_diff(fields, env, token, reason or "git history unavailable", notes)


def _set_stats(fields: dict[str, Any], stats: DiffStats) -> None:
    fields["diff_lines"], fields["diff_files"], fields["changed_paths"] = stats.lines, stats.files, stats.paths


def _push_diff(fields: dict[str, Any], payload: dict[str, Any], cwd: str, notes: list[str]) -> None:
    before, after = payload.get("before"), payload.get("after")
    stats, reason = diff_or_reason(cwd, before, after)
    if stats is not None:
        _set_stats(fields, stats)
        return
    commits = payload.get("commits")
    if isinstance(commits, list) and commits and len(commits) < PUSH_COMMITS_CAP:
        paths: list[str] = []
        for commit in commits:
            for key in ("added", "removed", "modified"):
                for path in _obj(commit).get(key) or []:
                    if path not in paths:
                        paths.append(path)
        fields["changed_paths"], fields["diff_files"] = paths, len(paths)
        notes.append(f"diff lines unknown: {reason}; changed paths taken from the push payload")
        return
    notes.append(f"{PATHS_UNKNOWN}: {reason} and the push payload does not list every commit")
