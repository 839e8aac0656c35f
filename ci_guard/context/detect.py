"""Detect the RunContext of the current CI job (placeholder: local only, replaced below)."""

from __future__ import annotations

from collections.abc import Mapping

from ci_guard.context.model import RunContext


def detect_context(env: Mapping[str, str] | None = None, cwd: str | None = None, *,
                   api_token: str | None = None) -> RunContext:
    return RunContext(platform="local")
