"""Append markdown to the GitHub Actions job summary (``$GITHUB_STEP_SUMMARY``).

GitHub accepts at most 1 MiB per step summary; above that the upload fails with an annotation
(the step itself still passes). The file is per step, so what the step already wrote counts too.
"""

from __future__ import annotations

import os
from pathlib import Path

from ci_guard.report.marker import strip_markers

STEP_SUMMARY_LIMIT = 1024 * 1024  # bytes
CUT_NOTE = "\n\n_(ci-guard cut this summary to stay under GitHub's 1 MiB step summary limit.)_\n"


def fit_bytes(markdown: str, room: int) -> str:
    """``markdown`` cut (on a character boundary, with a note) to at most ``room`` UTF-8 bytes."""
    data = markdown.encode("utf-8")
    if len(data) <= room:
        return markdown
    keep = max(0, room - len(CUT_NOTE.encode("utf-8")))
    return data[:keep].decode("utf-8", "ignore") + CUT_NOTE if keep else ""


def write_step_summary(markdown: str, environ: dict[str, str] | None = None) -> Path | None:
    """Append ``markdown`` to ``$GITHUB_STEP_SUMMARY``; return the file, or ``None`` when not on GitHub.

    Raises ``OSError`` if the file cannot be written; callers treat that as a warning.
    """
    env = os.environ if environ is None else environ
    target = env.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    used = path.stat().st_size if path.exists() else 0
    text = fit_bytes(strip_markers(markdown).rstrip("\n") + "\n\n", STEP_SUMMARY_LIMIT - used)
    if text:
        with path.open("a", encoding="utf-8") as fh:  # appending is what GitHub documents for this file
            fh.write(text)
    return path
