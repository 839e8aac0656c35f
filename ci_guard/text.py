"""Make untrusted strings safe to store, encode and print.

Strings from the agent (JSON bodies may hold lone ``\\udXXX`` escapes, headers are decoded with
``surrogateescape``), from the command line and environment (non-UTF-8 bytes become lone
surrogates) and from event payloads reach ledger rows, summaries, comments and logs. A lone
surrogate cannot be encoded as UTF-8 (SQLite and psycopg raise ``UnicodeEncodeError``) and
PostgreSQL text cannot hold NUL. :func:`clean` replaces both with U+FFFD, so a hostile string can
change what is *shown*, never whether a call is recorded.
"""

from __future__ import annotations

import re
from typing import Any

_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")
REPLACEMENT = "\ufffd"


def clean(text: str) -> str:
    """``text`` with lone surrogates and NUL replaced by U+FFFD (the same object when nothing changes)."""
    if text.isascii() and "\x00" not in text:
        return text
    return _UNSTORABLE.sub(REPLACEMENT, text)


def clean_opt(text: str | None) -> str | None:
    return None if text is None else clean(text)


def clean_any(value: Any) -> Any:
    """:func:`clean` applied to every string inside JSON-like data (dicts, lists, keys included).

    ``value`` itself when nothing needed cleaning (no copy: this runs on every recorded call)."""
    if not _unclean(value):
        return value
    return _clean_copy(value)


def _unclean(value: Any) -> bool:
    if isinstance(value, str):
        return clean(value) is not value
    if isinstance(value, dict):
        return any(_unclean(k) or _unclean(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_unclean(v) for v in value)
    return False


def _clean_copy(value: Any) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {_clean_copy(k): _clean_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_copy(v) for v in value]
    return value


__all__ = ["REPLACEMENT", "clean", "clean_any", "clean_opt"]
