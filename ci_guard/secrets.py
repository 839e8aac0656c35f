"""Keep provider keys and forge tokens out of everything ci-guard writes.

Every secret ci-guard reads from its environment is registered here; :func:`redact` replaces any
registered value (and anything shaped like a well-known key) before text reaches a log line, an
error message, a ledger row, a summary or a comment.
"""

from __future__ import annotations

import os
import re

# Environment variables whose values are secrets. Read by ci-guard, never passed to the agent.
SECRET_ENV_VARS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "OPENAI_API_KEY",
    "CODEX_API_KEY",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GITLAB_TOKEN",
    "CI_JOB_TOKEN",
    "CI_GUARD_GITHUB_TOKEN",
    "CI_GUARD_GITLAB_TOKEN",
    "CI_GUARD_STOP_KEY",  # start/stop: authenticates the files the agent could rewrite
)

# Shapes of well-known credentials, as a second line of defence for values we never registered.
_KEY_PATTERNS = re.compile(
    r"(sk-ant-[A-Za-z0-9_\-]{8,}|sk-(?:proj-)?[A-Za-z0-9_\-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_\-]{16,}|cig_[A-Za-z0-9_\-]{16,})"
)

_registered: set[str] = set()
_registered_bytes: list[bytes] = []  # cache of registered_bytes()


def register(value: str | None) -> None:
    """Remember a secret value so that :func:`redact` hides it wherever it shows up.

    Every non-blank value, however short: a 4-character key is still a key (a short secret makes
    redaction replace more text than it should, which is the safe side).
    """
    if value and value.strip():
        _registered.add(value)
        _registered_bytes.clear()


def registered_bytes() -> list[bytes]:
    """The registered secrets as UTF-8 bytes, longest first (for redacting relayed bytes)."""
    if not _registered_bytes and _registered:
        _registered_bytes.extend(sorted((v.encode("utf-8", "surrogateescape") for v in _registered),
                                        key=len, reverse=True))
    return _registered_bytes


def redact_bytes(data: bytes) -> bytes:
    """``data`` with every registered secret replaced by ``[REDACTED]`` (bytes an upstream sent)."""
    for value in registered_bytes():
        if value in data:
            data = data.replace(value, b"[REDACTED]")
    return data


class StreamRedactor:
    """:func:`redact_bytes` for a stream relayed chunk by chunk.

    A secret split across two chunks must not slip through, so the bytes after the last newline of
    a chunk wait for the next one (a key has no newline in it; SSE chunks end with one, so in
    practice nothing waits). A line longer than ``max_line`` is released except for its last
    bytes, which could still start a secret.
    """

    def __init__(self, max_line: int = 64 * 1024) -> None:
        self._pending = b""
        self._max_line = max_line

    def feed(self, chunk: bytes) -> bytes:
        secrets_ = registered_bytes()
        if not secrets_:
            return chunk
        # Redact first, then hold back a tail: a secret whole in ``data`` is gone; only the start of
        # one that the next chunk completes can be in the tail, and it waits there.
        data = redact_bytes(self._pending + chunk if self._pending else chunk)
        cut = data.rfind(b"\n") + 1
        keep = len(secrets_[0]) - 1
        if len(data) - cut > max(self._max_line, keep):
            cut = len(data) - keep
        out, self._pending = data[:cut], data[cut:]
        return out

    def close(self) -> bytes:
        out, self._pending = self._pending, b""
        return redact_bytes(out)


def register_from_env(environ: dict[str, str] | None = None) -> None:
    env = os.environ if environ is None else environ
    for name in SECRET_ENV_VARS:
        register(env.get(name))


def redact(text: str) -> str:
    """Return ``text`` with every known secret replaced by ``[REDACTED]``."""
    if not text:
        return text
    for value in sorted(_registered, key=len, reverse=True):
        if value in text:
            text = text.replace(value, "[REDACTED]")
    return _KEY_PATTERNS.sub("[REDACTED]", text)
