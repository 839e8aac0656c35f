"""What the per-call importers share: reading session files and their JSON lines, untrusted.

Session files are the agent's own (any process on the runner may have written them): every value
is checked before use, and a broken line is an error naming the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ci_guard.errors import InvalidInputError, Problem


def read_paths(path: str) -> list[tuple[str, str]]:
    """(file name, text) of ``path``, or of every ``*.jsonl`` below it when it is a directory."""
    root = Path(path)
    files = sorted(root.rglob("*.jsonl")) if root.is_dir() else [root]
    if root.is_dir() and not files:
        raise InvalidInputError(f"{path}: no *.jsonl session files in this directory")
    out = []
    for file in files:
        try:
            out.append((str(file), file.read_text(encoding="utf-8")))
        except FileNotFoundError as exc:
            raise InvalidInputError(f"{file}: usage file not found") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{file}: cannot read usage file: {exc}") from exc
    return out


def json_lines(text: str, name: str, title: str, objects_only: bool = False) -> Iterable[tuple[int, Mapping[str, Any]]]:
    """(line number, object) of each JSON object line; blank lines are skipped.

    ``objects_only``: lines that do not start with ``{`` are skipped too (Codex interleaves other
    output); otherwise any line that is not JSON is an error titled ``title``.
    """
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or (objects_only and not line.startswith("{")):
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(title, [Problem(f"invalid JSON: {exc.msg}", name, lineno, exc.colno)]) from exc
        if isinstance(value, Mapping):
            yield lineno, value


def as_str(value: Any) -> str | None:
    """``value`` when it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def as_time(value: Any) -> datetime | None:
    """An ISO 8601 time with a timezone (``Z`` accepted), else None: naive times are not guessed at."""
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else None
