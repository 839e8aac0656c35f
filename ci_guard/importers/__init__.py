"""Usage of agents whose model calls cannot go through the metering proxy (Cursor's CLI, GitHub
Copilot's coding agent, or a Claude Code / Codex run outside ``ci-guard run``), read from the
agent's output or the vendor's usage export and recorded as a run marked *not enforced*.

    imported = parse_usage_file("claude-code-json", "result.json")
    summary = record_import(imported, ctx=ctx, policy=policy, policy_path=path, ledger_url=None)
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from ci_guard.errors import InvalidInputError
from ci_guard.importers.model import ImportedCall, ImportedUsage

FORMATS = ("claude-code-session", "claude-code-json", "codex-session", "codex-jsonl", "csv")


def parse_usage_file(fmt: str, path: str, *, model: str | None = None, since: datetime | None = None,
                     user: str | None = None) -> ImportedUsage:
    """Read ``path`` in format ``fmt``; ``model`` names the model where the file does not."""
    if fmt in ("claude-code-session", "codex-session"):
        # per-call records; a directory is read whole (a session and its subagents)
        if fmt == "claude-code-session":
            from ci_guard.importers import claude_session as per_call
        else:
            from ci_guard.importers import codex_session as per_call  # type: ignore[no-redef]
        return per_call.parse(per_call.read_paths(path), path, model)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InvalidInputError(f"{path}: usage file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path}: cannot read usage file: {exc}") from exc
    if fmt == "claude-code-json":
        from ci_guard.importers import claude_code

        return claude_code.parse(text, path, model)
    if fmt == "codex-jsonl":
        from ci_guard.importers import codex

        return codex.parse(text, path, model)
    if fmt == "csv":
        from ci_guard.importers import csv_export

        return csv_export.parse(text, path, model, since=since, user=user)
    raise InvalidInputError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")


__all__ = ["FORMATS", "ImportedCall", "ImportedUsage", "parse_usage_file"]
