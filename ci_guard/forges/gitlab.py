"""GitLab merge request notes through python-gitlab.

Endpoints (doc/api/notes.md): ``GET|POST /projects/:id/merge_requests/:iid/notes`` and
``PUT|DELETE .../notes/:note_id``. ``CI_JOB_TOKEN`` may only *read* notes, so posting needs a
project/group/personal access token with ``api`` scope (``GITLAB_TOKEN``). GitLab cannot hide
(minimize) a note, so ``hide-and-new`` falls back to ``delete-and-new``. python-gitlab's own
429/5xx retries are off; ci_guard.forges.sticky retries the whole operation.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import gitlab
import requests
from gitlab.v4.objects import CurrentUserManager

from ci_guard.forges.base import ForgeComment, ForgeRequestError, PullState, header, seconds
from ci_guard.secrets import register

DEFAULT_URL = "https://gitlab.com"
MAX_CHARS = 1_000_000
NO_RETRY = {"obey_rate_limit": False, "retry_transient_errors": False, "max_retries": 0}
T = TypeVar("T")

FORBIDDEN_HINT = (
    "The token may not write notes on this merge request: use a project or group access token with the "
    "`api` scope and at least the Developer role in GITLAB_TOKEN (CI_JOB_TOKEN can only read notes)"
)


class GitLabForge:
    name = "gitlab"
    max_chars = MAX_CHARS
    supports_hide = False

    def __init__(self, project: str | int, mr_iid: int, token: str, url: str | None = None, *,
                 timeout: float = 15) -> None:
        register(token)
        self.project_id = project
        self.mr_iid = mr_iid
        # python-gitlab's errors drop the response headers; a hook keeps the last ones (Retry-After)
        session = requests.Session()
        session.hooks["response"].append(self._remember)
        self._last_headers: Any = None
        self.gl = gitlab.Gitlab(_server_url(url or DEFAULT_URL), private_token=token, timeout=timeout,
                                retry_transient_errors=False, per_page=100, session=session)
        self._username: str | None = None
        self._mr: Any = None

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last_headers = response.headers

    def _call(self, action: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except gitlab.exceptions.GitlabError as exc:
            raise map_error(exc, action, f"{self.project_id}!{self.mr_iid}", self._last_headers) from None
        except requests.RequestException as exc:
            raise ForgeRequestError("gitlab", action, None, type(exc).__name__, retryable=True) from None

    def mr(self) -> Any:
        if self._mr is None:
            def load() -> Any:
                project = self.gl.projects.get(self.project_id, **NO_RETRY)
                return project.mergerequests.get(self.mr_iid, **NO_RETRY)
            self._mr = self._call("read the merge request", load)
        return self._mr

    def identity(self) -> str:
        if self._username is None:
            # what gl.auth() does, without python-gitlab's own retry on 429
            user = self._call("identify the token", lambda: CurrentUserManager(self.gl).get(**NO_RETRY))
            self.gl.user = user
            self._username = str(user.username)
        return self._username

    def list_comments(self) -> list[ForgeComment]:
        def fetch() -> list[ForgeComment]:
            notes = self.mr().notes.list(iterator=True, per_page=100, order_by="created_at", sort="asc",
                                         **NO_RETRY)
            return [_comment(n) for n in notes if not n.attributes.get("system")]
        return self._call("list notes", fetch)

    def create(self, body: str) -> ForgeComment:
        return _comment(self._call("create a note", lambda: self.mr().notes.create({"body": body}, **NO_RETRY)))

    def update(self, comment: ForgeComment, body: str) -> None:
        self._call("update a note", lambda: self.mr().notes.update(comment.id, {"body": body}, **NO_RETRY))

    def delete(self, comment: ForgeComment) -> None:
        self._call("delete a note", lambda: self.mr().notes.delete(comment.id, **NO_RETRY))

    def hide(self, comment: ForgeComment) -> None:
        raise ForgeRequestError("gitlab", "hide a note", None, "GitLab has no way to hide a note")


    # handoff ----------------------------------------------------------------------------------
    def _fresh_mr(self) -> Any:
        self._mr = None
        return self.mr()

    def pull_state(self) -> PullState:
        attrs = self._fresh_mr().attributes
        return PullState(author=(attrs.get("author") or {}).get("username"), labels=list(attrs.get("labels") or []),
                         reviewers=[r.get("username") for r in attrs.get("reviewers") or [] if r.get("username")],
                         teams=[])

    def _update_mr(self, action: str, data: dict[str, Any]) -> None:
        self._call(action, lambda: self.mr().manager.update(self.mr_iid, data, **NO_RETRY))

    def add_labels(self, labels: list[str]) -> None:
        # add_labels keeps the labels already there (PUT /projects/:id/merge_requests/:iid)
        self._update_mr("add a label", {"add_labels": ",".join(labels)})

    def request_review(self, users: list[str], teams: list[str]) -> None:
        if teams:
            raise ForgeRequestError("gitlab", "request a review", None,
                                    f"GitLab requests reviews from users, not groups ({', '.join(teams)})")
        if not users:
            return
        ids = [int(r["id"]) for r in self.mr().attributes.get("reviewers") or [] if r.get("id") is not None]
        for name in users:
            found = self._call("look up a reviewer", lambda n=name: self.gl.users.list(username=n, **NO_RETRY))
            if not found:
                raise ForgeRequestError("gitlab", "request a review", 404, f"no GitLab user {name!r}")
            if int(found[0].id) not in ids:
                ids.append(int(found[0].id))
        # reviewer_ids replaces the list: the reviewers already requested are part of it
        self._update_mr("request a review", {"reviewer_ids": ids})


def _server_url(url: str) -> str:
    """python-gitlab wants the server URL; CI_API_V4_URL ends in /api/v4."""
    url = url.rstrip("/")
    return url[: -len("/api/v4")] if url.endswith("/api/v4") else url


def _comment(note: Any) -> ForgeComment:
    attrs = note.attributes
    created = attrs.get("created_at")
    try:
        created_at = datetime.fromisoformat(created.replace("Z", "+00:00")) if created else None
    except ValueError:
        created_at = None
    return ForgeComment(id=int(attrs["id"]), body=attrs.get("body") or "",
                        author=(attrs.get("author") or {}).get("username"), created_at=created_at, handle=note)


def map_error(exc: gitlab.exceptions.GitlabError, action: str, target: str,
              headers: Any = None) -> ForgeRequestError:
    status = exc.response_code
    message = str(exc.error_message or "")
    retry_after = seconds(header(headers, "retry-after"))

    def err(retryable: bool = False, hint: str | None = None) -> ForgeRequestError:
        return ForgeRequestError("gitlab", action, status, message, retryable=retryable,
                                 retry_after=retry_after, hint=hint)

    if status == 401:
        return err(hint="GitLab rejected the token: set GITLAB_TOKEN to an access token with the `api` scope")
    if status == 403:
        return err(hint=FORBIDDEN_HINT)
    if status == 404:
        return err(hint=f"{target} was not found, or the token cannot see it (check the project, the MR IID "
                        "and the token's project membership)")
    if status == 429:
        return err(retryable=True, hint="GitLab rate limit reached")
    return err(retryable=status is not None and status >= 500)


def from_env(project: str | int | None, mr_iid: int, token_env: str = "GITLAB_TOKEN",
             environ: dict[str, str] | None = None, **kwargs: Any) -> GitLabForge:
    env = os.environ if environ is None else environ
    token = env.get(token_env)
    if not token:
        hint = "a project or group access token with the `api` scope is needed; CI_JOB_TOKEN cannot post notes"
        raise ForgeRequestError("gitlab", "authenticate", None, f"{token_env} is not set", hint=hint)
    url = env.get("CI_API_V4_URL") or env.get("CI_SERVER_URL") or DEFAULT_URL
    return GitLabForge(project or env.get("CI_PROJECT_ID") or env.get("CI_PROJECT_PATH") or "", mr_iid, token,
                       url, **kwargs)


def finished_merge_requests(project: str | int, token: str, url: str, since: datetime, *,
                            timeout: float = 15) -> list[tuple[int, str]]:
    """``(iid, "merged" | "closed")`` of the project's merge requests merged or closed since ``since``.

    ``GET /projects/:id/merge_requests?state=merged|closed&updated_after=…`` (all pages); a merge
    request closed without merging only shows up here: GitLab runs no pipeline when it closes.
    """
    register(token)
    gl = gitlab.Gitlab(_server_url(url), private_token=token, timeout=timeout, retry_transient_errors=False,
                       per_page=100)
    target = f"project {project}"
    out = []
    for state in ("merged", "closed"):
        try:
            mrs = gl.projects.get(project, lazy=True).mergerequests.list(
                state=state, updated_after=since.isoformat(), iterator=True, **NO_RETRY)
            out += [(int(mr.iid), state) for mr in mrs]
        except gitlab.exceptions.GitlabError as exc:
            raise map_error(exc, f"list {state} merge requests", target) from None
        except requests.RequestException as exc:
            raise ForgeRequestError("gitlab", f"list {state} merge requests", None, type(exc).__name__,
                                    retryable=True) from None
    return out
