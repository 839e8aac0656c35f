"""GitHub pull request comments through PyGithub (github.com and GitHub Enterprise Server).

PR conversation comments are issue comments: ``GET/POST /repos/{o}/{r}/issues/{n}/comments``,
``PATCH/DELETE /repos/{o}/{r}/issues/comments/{id}``. Hiding uses the GraphQL mutation
``minimizeComment(input: {subjectId, classifier: OUTDATED})`` on the comment's ``node_id``.
PyGithub's own urllib3 retries are off (``retry=None``): ci_guard.forges.sticky retries the
whole operation, so nothing is retried twice.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from github import Auth, Github, GithubException

from ci_guard.forges.base import ForgeComment, ForgeRequestError, PullState, header, seconds
from ci_guard.secrets import register

DEFAULT_API_URL = "https://api.github.com"
MAX_CHARS = 65_536
T = TypeVar("T")

FORBIDDEN_HINT = (
    "The token may not write to this pull request: give the workflow `permissions: pull-requests: write` "
    "(and `issues: write`); on a pull_request from a fork GitHub only grants a read-only token, so post "
    "from a workflow_run or label-gated pull_request_target job instead (see docs/comments.md)"
)


class GitHubForge:
    name = "github"
    max_chars = MAX_CHARS
    supports_hide = True

    def __init__(self, repo: str, number: int, token: str, api_url: str | None = None, *,
                 timeout: int = 15, throttle: bool = True) -> None:
        register(token)
        self.repo_name = repo
        self.number = number
        kwargs: dict[str, Any] = {
            "auth": Auth.Token(token), "base_url": (api_url or DEFAULT_API_URL).rstrip("/"),
            "timeout": timeout, "retry": None, "per_page": 100,
        }
        if not throttle:  # PyGithub pauses between writes by default; tests turn that off
            kwargs.update(seconds_between_requests=None, seconds_between_writes=None)
        self.gh = Github(**kwargs)
        self._login: str | None = None
        self._issue: Any = None
        self._pull_handle: Any = None  # the PullRequest pull_state() read; the handoff writes through it

    # helpers ---------------------------------------------------------------------------------
    def _call(self, action: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except GithubException as exc:
            raise map_error(exc, action, f"{self.repo_name}#{self.number}") from None
        except requests.RequestException as exc:
            raise ForgeRequestError("github", action, None, type(exc).__name__, retryable=True) from None

    def issue(self) -> Any:
        if self._issue is None:
            self._issue = self._call(
                "read the pull request", lambda: self.gh.get_repo(self.repo_name).get_issue(self.number))
        return self._issue

    # Forge protocol --------------------------------------------------------------------------
    def identity(self) -> str:
        if self._login is None:
            try:
                self._login = self._call("identify the token", lambda: self.gh.get_user().login)
            except ForgeRequestError as exc:
                if exc.status != 403 or exc.retryable:
                    raise
                # GitHub Actions' GITHUB_TOKEN is an app installation token: GET /user answers 403
                # "Resource not accessible by integration"; GraphQL `viewer` still names the bot.
                self._login = self._call("identify the token", self._viewer_login)
        return self._login

    def _viewer_login(self) -> str:
        _, data = self.gh.requester.graphql_query("query { viewer { login } }", {})
        return str(data["data"]["viewer"]["login"])

    def list_comments(self) -> list[ForgeComment]:
        return self._call("list comments", lambda: [_comment(c) for c in self.issue().get_comments()])

    def create(self, body: str) -> ForgeComment:
        return _comment(self._call("create a comment", lambda: self.issue().create_comment(body)))

    def update(self, comment: ForgeComment, body: str) -> None:
        self._call("update a comment", lambda: comment.handle.edit(body))

    def delete(self, comment: ForgeComment) -> None:
        self._call("delete a comment", comment.handle.delete)

    def hide(self, comment: ForgeComment) -> None:
        if not comment.node_id:
            raise ForgeRequestError("github", "hide a comment", None, f"comment {comment.id} has no node_id")
        self._call("hide a comment", lambda: self.gh.requester.graphql_named_mutation(
            "minimizeComment", {"subjectId": comment.node_id, "classifier": "OUTDATED"},
            "minimizedComment { isMinimized }",
        ))


    # handoff ----------------------------------------------------------------------------------
    def _pull(self) -> Any:
        return self._call("read the pull request", lambda: self.gh.get_repo(self.repo_name).get_pull(self.number))

    def pull_state(self) -> PullState:
        pull = self._pull()
        self._pull_handle = pull

        def read() -> PullState:
            return PullState(author=pull.user.login if pull.user else None,
                             labels=[label.name for label in pull.labels],
                             reviewers=[u.login for u in pull.requested_reviewers],
                             teams=[t.slug for t in pull.requested_teams])
        return self._call("read the pull request", read)

    def _handle(self) -> Any:
        if self._pull_handle is None:
            self._pull_handle = self._pull()
        return self._pull_handle

    def add_labels(self, labels: list[str]) -> None:
        # POST .../issues/{n}/labels adds to the labels already there (a label that does not exist is created)
        self._call("add a label", lambda: self._handle().add_to_labels(*labels))

    def request_review(self, users: list[str], teams: list[str]) -> None:
        kwargs: dict[str, Any] = {}
        if users:
            kwargs["reviewers"] = users
        if teams:
            kwargs["team_reviewers"] = teams
        self._call("request a review", lambda: self._handle().create_review_request(**kwargs))


def _comment(c: Any) -> ForgeComment:
    # attributes only: `raw_data` would re-fetch each comment (one GET per comment)
    return ForgeComment(id=int(c.id), body=c.body or "", author=c.user.login if c.user else None,
                        created_at=c.created_at, node_id=c.node_id, handle=c)


def map_error(exc: GithubException, action: str, target: str) -> ForgeRequestError:
    """Turn a PyGithub error into a ForgeRequestError that says what to do about it."""
    status = exc.status
    data = exc.data if isinstance(exc.data, dict) else {}
    message = str(data.get("message") or exc.message or "")
    retry_after = seconds(header(exc.headers, "retry-after"))

    def err(retryable: bool = False, wait: float | None = None, hint: str | None = None) -> ForgeRequestError:
        return ForgeRequestError("github", action, status, message, retryable=retryable, retry_after=wait,
                                 hint=hint)

    if status == 401:
        return err(hint="GitHub rejected the token: check GITHUB_TOKEN (or the variable named by --token-env)")
    if status == 429 or (status == 403 and _rate_limited(exc, message, retry_after)):
        return err(retryable=True, wait=_rate_limit_wait(exc, message, retry_after),
                   hint="GitHub rate limit reached")
    if status == 403:
        return err(hint=FORBIDDEN_HINT)
    if status == 404:
        return err(hint=f"{target} was not found, or the token cannot see it (check --repo/--pr and the "
                        "token's repository access)")
    if status == 422:
        return err(hint="GitHub refused the request as invalid")
    return err(retryable=status >= 500)


def _rate_limited(exc: GithubException, message: str, retry_after: float | None) -> bool:
    return (header(exc.headers, "x-ratelimit-remaining") == "0" or retry_after is not None
            or "rate limit" in message.lower())


def _rate_limit_wait(exc: GithubException, message: str, retry_after: float | None) -> float | None:
    if retry_after is not None:
        return retry_after
    if header(exc.headers, "x-ratelimit-remaining") == "0":
        reset = seconds(header(exc.headers, "x-ratelimit-reset"))
        if reset is not None:
            return max(0.0, reset - time.time()) + 1
    if "secondary rate limit" in message.lower():
        return 60.0  # GitHub: wait at least a minute when no header says how long
    return None


def from_env(repo: str, number: int, token_env: str = "GITHUB_TOKEN",
             environ: dict[str, str] | None = None, **kwargs: Any) -> GitHubForge:
    env = os.environ if environ is None else environ
    token = env.get(token_env)
    if not token:
        raise ForgeRequestError("github", "authenticate", None, f"{token_env} is not set",
                                hint="a token with pull-requests: write is needed to post the comment")
    return GitHubForge(repo, number, token, env.get("GITHUB_API_URL") or DEFAULT_API_URL, **kwargs)
