"""A one-line cost footer on the agent's own comment, instead of a second bot comment.

The footer sits at the end of the agent's comment between two hidden HTML comments::

    <!-- ci-guard-footer:TAG valid-at=2026-03-02T10:30:00Z -->
    <sub>💸 ci-guard on this pull request: **2 agent runs** · **$1.23** in total</sub>
    <!-- /ci-guard-footer:TAG -->

A re-run replaces that block (or leaves it when it is already up to date, or describes a newer
run), so the comment never collects two footers; everything outside the block is the agent's and
stays as it is. Which comment is the agent's: the newest one by a login (``claude[bot]``), or
containing a text (``marker:TEXT``, e.g. the agent's own hidden marker), and never ci-guard's own
cost comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from ci_guard.forges.base import Forge, ForgeComment
from ci_guard.forges.sticky import MAX_CLOCK_SKEW
from ci_guard.report.marker import find_marker, format_time, parse_time
from ci_guard.report.render import comment_length

MARKER_PREFIX = "marker:"


@dataclass(frozen=True)
class FooterTarget:
    """``--footer-on``: an author login, or ``marker:TEXT`` (a text the agent's comment contains)."""

    author: str | None = None
    marker: str | None = None

    @classmethod
    def parse(cls, value: str) -> FooterTarget:
        value = value.strip()
        if value.startswith(MARKER_PREFIX):
            text = value[len(MARKER_PREFIX):]
            if not text.strip():
                raise ValueError("--footer-on marker: needs a text to look for")
            return cls(marker=text)
        if not value:
            raise ValueError("--footer-on needs an author login or marker:TEXT")
        return cls(author=value.removeprefix("@"))

    def describe(self) -> str:
        return f"by {self.author}" if self.author else f"containing {self.marker!r}"

    def matches(self, comment: ForgeComment) -> bool:
        if self.author is not None:
            return (comment.author or "").lower() == self.author.lower()
        return self.marker is not None and self.marker in comment.body


def _block_re(tag: str) -> re.Pattern[str]:
    t = re.escape(tag)
    return re.compile(rf"\n*<!-- ci-guard-footer:{t}(?: valid-at=(?P<at>[0-9TZ:.+-]+))? -->.*?"
                      rf"<!-- /ci-guard-footer:{t} -->[ \t]*\n?", re.DOTALL)


def block(tag: str, line: str, valid_at: datetime) -> str:
    return (f"<!-- ci-guard-footer:{tag} valid-at={format_time(valid_at)} -->\n<sub>{line}</sub>\n"
            f"<!-- /ci-guard-footer:{tag} -->")


def strip_footer(body: str, tag: str) -> str:
    """``body`` without any footer block of ``tag`` (a stray start or end marker goes as well)."""
    t = re.escape(tag)
    text = _block_re(tag).sub("\n", body)
    text = re.sub(rf"<!-- /?ci-guard-footer:{t}(?: valid-at=[0-9TZ:.+-]+)? -->", "", text)
    return text.rstrip()


def footer_time(body: str, tag: str) -> datetime | None:
    """The ``valid-at`` of the newest footer block in ``body``, if any."""
    times = [parse_time(m.group("at")) for m in _block_re(tag).finditer(body)]
    return max((t for t in times if t is not None), default=None)


@dataclass
class FooterResult:
    action: str  # updated | unchanged | skipped-newer | not-found | too-long
    comment_id: int | None = None

    def describe(self, forge: str, target: FooterTarget) -> str:
        return {
            "updated": f"{forge}: put the cost footer on comment {self.comment_id} ({target.describe()})",
            "unchanged": f"{forge}: the cost footer on comment {self.comment_id} is already up to date",
            "skipped-newer": f"{forge}: the footer on comment {self.comment_id} describes a newer run; left as is",
            "not-found": f"{forge}: no comment {target.describe()} to put the cost footer on",
            "too-long": f"{forge}: comment {self.comment_id} has no room for the cost footer",
        }[self.action]


def agent_comment(forge: Forge, target: FooterTarget, tag: str) -> ForgeComment | None:
    """The newest comment that matches ``target`` and is not ci-guard's own cost comment."""
    found = [c for c in forge.list_comments() if target.matches(c) and find_marker(c.body, tag) is None]
    found.sort(key=lambda c: (c.created_at.timestamp() if c.created_at else 0.0, c.id))
    return found[-1] if found else None


def put_footer(forge: Forge, target: FooterTarget, tag: str, line: str, valid_at: datetime,
               now: datetime) -> FooterResult:
    """Append or replace the footer on the agent's comment; raises ForgeRequestError from the forge."""
    comment = agent_comment(forge, target, tag)
    if comment is None:
        return FooterResult("not-found")
    existing = footer_time(comment.body, tag)
    if existing is not None and valid_at < existing <= now + MAX_CLOCK_SKEW:
        return FooterResult("skipped-newer", comment.id)
    body = f"{strip_footer(comment.body, tag)}\n\n{block(tag, line, valid_at)}\n"
    if body == comment.body:
        return FooterResult("unchanged", comment.id)
    if comment_length(body) > forge.max_chars:
        return FooterResult("too-long", comment.id)
    forge.update(comment, body)
    return FooterResult("updated", comment.id)
