"""One comment per PR/MR, kept up to date: the update / new / hide-and-new / delete-and-new behaviours.

Rules (after Infracost's `comment` and marocchino/sticky-pull-request-comment):

* only comments written by the token's own identity *and* starting with our marker (same tag, on
  the first line) are ever edited, hidden or deleted; everybody else's comments are left alone,
  marker or not. With GitHub Actions' GITHUB_TOKEN that identity (github-actions[bot]) is shared
  by every workflow of the repository, an agent's own ``gh pr comment`` included;
* a comment whose marker has a newer ``valid-at`` than ours wins: an older pipeline finishing
  late changes nothing. A ``valid-at`` more than :data:`MAX_CLOCK_SKEW` in the future is no run
  that has happened (a forged or broken marker) and wins nothing, so it cannot freeze the comment;
* a body identical to our newest comment is not posted again, whatever the behaviour, so reruns
  of the same job never create duplicates;
* the whole operation is retried on retryable errors (rate limits, 5xx, network): it starts by
  listing comments again, so a create that did reach the forge before failing is found and not
  repeated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from ci_guard.forges.base import BEHAVIORS, Forge, ForgeComment, ForgeRequestError
from ci_guard.report.marker import find_marker
from ci_guard.report.render import RenderedComment

Sleep = Callable[[float], None]
# how far ahead of our clock another runner's clock may plausibly be
MAX_CLOCK_SKEW = timedelta(minutes=10)
T = TypeVar("T")


@dataclass
class PublishResult:
    action: str  # created | updated | unchanged | skipped-newer
    comment_id: int | None
    behavior: str
    hidden: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    attempts: int = 1
    notes: list[str] = field(default_factory=list)

    def describe(self, forge: str) -> str:
        text = {
            "created": f"created comment {self.comment_id}",
            "updated": f"updated comment {self.comment_id}",
            "unchanged": f"comment {self.comment_id} is already up to date",
            "skipped-newer": f"comment {self.comment_id} describes a newer run; left as is",
        }[self.action]
        if self.hidden:
            text += f"; hid {len(self.hidden)} older"
        if self.deleted:
            text += f"; deleted {len(self.deleted)} older"
        return f"{forge}: {text}"


@dataclass
class RetryPolicy:
    attempts: int = 4
    backoff_s: float = 1.0  # 1, 2, 4, ... when the forge gives no Retry-After
    max_wait_s: float = 60.0  # never sleep longer than this for one retry
    sleep: Sleep = time.sleep


def retrying(fn: Callable[[], T], retry: RetryPolicy | None = None) -> tuple[T, int]:
    """``fn()`` and the attempt it took, trying again on a retryable ForgeRequestError.

    Waits the forge's Retry-After, else ``backoff_s`` doubling; gives up (re-raises) after
    ``attempts`` or when a wait would exceed ``max_wait_s``.
    """
    retry = retry or RetryPolicy()
    for attempt in range(1, retry.attempts + 1):
        try:
            return fn(), attempt
        except ForgeRequestError as exc:
            if not exc.retryable or attempt == retry.attempts:
                raise
            wait = exc.retry_after if exc.retry_after is not None else retry.backoff_s * 2 ** (attempt - 1)
            if wait > retry.max_wait_s:
                raise
            retry.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def our_comments(forge: Forge, tag: str) -> list[ForgeComment]:
    """Comments by our identity carrying our marker, oldest first."""
    me = forge.identity()
    mine = [c for c in forge.list_comments() if c.author == me and find_marker(c.body, tag)]
    return sorted(mine, key=lambda c: (c.created_at.timestamp() if c.created_at else 0.0, c.id))


def describes_newer_run(existing: ForgeComment, comment: RenderedComment, now: datetime) -> bool:
    """True when ``existing`` describes a run newer than ``comment``'s and not from the future."""
    marker = find_marker(existing.body, comment.tag)
    if marker is None or marker.valid_at is None:
        return False
    return comment.valid_at < marker.valid_at <= now + MAX_CLOCK_SKEW


def _publish_once(forge: Forge, comment: RenderedComment, behavior: str, now: datetime,
                  renew_unless: str | None = None) -> PublishResult:
    ours = our_comments(forge, comment.tag)
    newest = ours[-1] if ours else None
    # the same listing decides a renewal: reading the comments twice would cost a second paged GET
    if renew_unless and behavior == "update" and newest is not None and renew_unless not in newest.body:
        behavior = "hide-and-new" if forge.supports_hide else "delete-and-new"
    if newest is not None:
        if describes_newer_run(newest, comment, now):
            return PublishResult("skipped-newer", newest.id, behavior)
        if newest.body == comment.body:
            return PublishResult("unchanged", newest.id, behavior)
    if behavior == "update" and newest is not None:
        forge.update(newest, comment.body)
        return PublishResult("updated", newest.id, behavior)
    created = forge.create(comment.body)
    result = PublishResult("created", created.id, behavior)
    # the new comment exists before any old one disappears: a failure never leaves none
    for old in ours:
        if behavior == "hide-and-new":
            forge.hide(old)
            result.hidden.append(old.id)
        elif behavior == "delete-and-new":
            forge.delete(old)
            result.deleted.append(old.id)
    return result


def publish(forge: Forge, comment: RenderedComment, behavior: str = "update",
            retry: RetryPolicy | None = None, *, now: datetime | None = None,
            renew_unless: str | None = None) -> PublishResult:
    """Post ``comment`` with ``behavior``; raises :class:`ForgeRequestError` when it finally fails.

    ``now`` (default: the clock) bounds how far in the future a marker's ``valid-at`` may be.
    ``renew_unless``: with ``update``, post a new comment (hiding or deleting the old one) when our
    newest comment does not contain this text yet -- a handoff's mention, because the forges notify
    people mentioned in a new comment, not in an edit.
    """
    if behavior not in BEHAVIORS:
        raise ValueError(f"unknown behaviour {behavior!r}")
    notes = []
    if behavior == "hide-and-new" and not forge.supports_hide:
        notes.append(f"{forge.name} cannot hide comments; used delete-and-new instead")
        behavior = "delete-and-new"
    result, attempts = retrying(
        lambda: _publish_once(forge, comment, behavior, now or datetime.now(UTC), renew_unless), retry)
    result.attempts = attempts
    if result.behavior != behavior:
        notes.append(f"posted a new comment (instead of an edit) so that the handoff's mention notifies; "
                     f"the old one was {'hidden' if result.behavior == 'hide-and-new' else 'deleted'}")
    result.notes = notes
    return result
