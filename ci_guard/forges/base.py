"""What ci-guard needs from a forge to keep one cost comment per PR/MR, and its errors.

Each forge adapter (github.py, gitlab.py) wraps the official client library, maps every error
of that library to :class:`ForgeRequestError`, and never retries on its own: retries live in
one place (:mod:`ci_guard.forges.sticky`), with an injectable sleep.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ci_guard.errors import ForgeError
from ci_guard.secrets import redact

BEHAVIORS = ("update", "new", "hide-and-new", "delete-and-new")


@dataclass
class ForgeComment:
    id: int
    body: str
    author: str | None
    created_at: datetime | None = None
    node_id: str | None = None  # GitHub GraphQL id (for minimizeComment)
    handle: Any = None  # the client library's object


@dataclass
class PullState:
    """What a handoff reads of a PR/MR before it changes anything (so re-runs change nothing twice)."""

    author: str | None
    labels: list[str]
    reviewers: list[str]  # logins whose review is requested
    teams: list[str]  # team slugs whose review is requested (GitHub)


class Forge(Protocol):
    name: str  # "github" | "gitlab"
    max_chars: int
    supports_hide: bool

    def identity(self) -> str:
        """The login/username the token acts as; only its comments are ever touched."""
        ...

    def list_comments(self) -> list[ForgeComment]:
        """Every comment of the PR/MR, oldest first (all pages)."""
        ...

    def create(self, body: str) -> ForgeComment:
        ...

    def update(self, comment: ForgeComment, body: str) -> None:
        ...

    def delete(self, comment: ForgeComment) -> None:
        ...

    def hide(self, comment: ForgeComment) -> None:
        ...

    def pull_state(self) -> PullState:
        """Author, labels and requested reviewers of the PR/MR, read fresh."""
        ...

    def add_labels(self, labels: list[str]) -> None:
        ...

    def request_review(self, users: list[str], teams: list[str]) -> None:
        """Ask ``users`` (logins) and ``teams`` (slugs; GitHub only) for a review."""
        ...


class ForgeRequestError(ForgeError):
    """A forge request failed; ``retryable`` says whether trying again can help."""

    def __init__(self, forge: str, action: str, status: int | None, detail: str, *,
                 retryable: bool = False, retry_after: float | None = None, hint: str | None = None) -> None:
        self.forge = forge
        self.action = action
        self.status = status
        self.detail = redact(detail or "")
        self.retryable = retryable
        self.retry_after = retry_after
        self.hint = hint
        code = f"HTTP {status}" if status else "no response"
        text = f"{forge}: {action} failed ({code}): {self.detail}".rstrip(": ")
        super().__init__(redact(text + (f". {hint}" if hint else "")))


def header(headers: Any, name: str) -> str | None:
    """A response header, case-insensitively, from whatever mapping a client library hands us."""
    if not headers:
        return None
    lname = name.lower()
    for key, value in dict(headers).items():
        if str(key).lower() == lname:
            return str(value)
    return None


def seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
