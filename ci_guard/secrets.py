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
)

# Shapes of well-known credentials, as a second line of defence for values we never registered.
_KEY_PATTERNS = re.compile(
    r"(sk-ant-[A-Za-z0-9_\-]{8,}|sk-(?:proj-)?[A-Za-z0-9_\-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_\-]{16,}|cig_[A-Za-z0-9_\-]{16,})"
)

_registered: set[str] = set()


def register(value: str | None) -> None:
    """Remember a secret value so that :func:`redact` hides it wherever it shows up."""
    if value and len(value) >= 6:
        _registered.add(value)


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
