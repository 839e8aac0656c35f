"""The hidden marker that identifies ci-guard's comment on a PR/MR.

It is a markdown link reference definition, which GitHub and GitLab render as nothing (the same
form Infracost uses)::

    [//]: <> (ci-guard-comment, valid-at=2026-01-01T00:00:00Z)

``tag`` lets several independent comments live on one PR (``--tag``); ``valid-at`` is the time
of the newest run the comment describes, so a slow, older pipeline never overwrites a newer one.

The marker counts only as the *first line* of a body: ci-guard always writes it there, while a
comment that merely quotes it (an agent's own ``gh pr comment`` under the shared
``github-actions[bot]`` identity, say) has it further down and is left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from ci_guard.errors import InvalidInputError

DEFAULT_TAG = "ci-guard-comment"
_TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_MARKER_RE = re.compile(
    r"^\[//\]: <> \((?P<tag>[A-Za-z0-9][A-Za-z0-9_.:-]{0,63})(?:, valid-at=(?P<at>[0-9TZ:.+-]+))?\)[ \t]*$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Marker:
    tag: str
    valid_at: datetime | None


def check_tag(tag: str) -> str:
    """Validate a ``--tag``: letters, digits, ``_ . : -``; at most 64 characters."""
    if not _TAG_RE.fullmatch(tag or ""):
        raise InvalidInputError(
            f"--tag: {tag!r} is not a valid comment tag; expected letters, digits, '_', '.', ':' or '-' "
            "(at most 64 characters, starting with a letter or digit)"
        )
    return tag


def format_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def marker_line(tag: str, valid_at: datetime) -> str:
    return f"[//]: <> ({check_tag(tag)}, valid-at={format_time(valid_at)})"


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def find_marker(body: str | None, tag: str) -> Marker | None:
    """The marker with ``tag`` when it is the first line of ``body``, else ``None``."""
    first = (body or "").split("\n", 1)[0].rstrip("\r")
    match = _MARKER_RE.fullmatch(first)
    if match is None or match.group("tag") != tag:
        return None
    return Marker(tag=tag, valid_at=parse_time(match.group("at")))


def strip_markers(body: str) -> str:
    """The body without marker lines (for the step summary, which needs no marker)."""
    return _MARKER_RE.sub("", body).lstrip("\n")
