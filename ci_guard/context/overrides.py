"""Apply explicit values over a detected RunContext: a ``--context`` JSON file, then flags.

Everything here is user input, so every problem raises :class:`ContextError` (exit 2) naming the
flag or the ``file:line:column`` and field, and what was expected.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from ci_guard.context.model import TRIGGERS, RunContext
from ci_guard.errors import ContextError, Problem
from ci_guard.files import InputTooLarge, read_input_text
from ci_guard.text import clean_any

# Notes about unknown changed paths start with this, so an explicit --changed-file can retire them.
PATHS_UNKNOWN = "changed paths unknown"

# flag keyword -> RunContext field, for the plain string flags.
STRING_FLAGS = {
    "repo": "repo",
    "actor": "actor",
    "team": "team",
    "trigger": "trigger",
    "base_branch": "base_branch",
    "head_branch": "head_branch",
    "agent": "agent",
    "workflow": "workflow",
    "environment": "environment",
    "cohort": "cohort",
}
# flag keyword -> (RunContext field, smallest allowed value)
INT_FLAGS = {"diff_lines": ("diff_lines", 0), "diff_files": ("diff_files", 0), "pr": ("pr", 1)}
BOOL_FLAGS = {"draft": "draft", "fork": "fork"}


def flag_name(keyword: str) -> str:
    """The command-line spelling of a context keyword (``base_branch`` -> ``--base-branch``)."""
    special = {"changed_paths": "--changed-file", "labels": "--label", "context_file": "--context"}
    return special.get(keyword, "--" + keyword.replace("_", "-"))


def check_trigger(value: str, where: str) -> str:
    if value not in TRIGGERS:
        raise ContextError(f"{where}: expected one of {', '.join(TRIGGERS)}, got {value!r}")
    return value


def parse_count(value: object, where: str, minimum: int) -> int:
    """An integer >= ``minimum`` from a flag or environment value (bools are not integers)."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.lstrip("+").isdigit() or int(text) < minimum:
        raise ContextError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return int(text)


def _non_empty(value: str, where: str) -> str:
    if not value.strip():
        raise ContextError(f"{where}: expected a non-empty value (omit the flag when unknown)")
    return value


def _clean_list(values: Iterable[str], where: str) -> list[str]:
    result: list[str] = []
    for value in values:
        _non_empty(value, where)
        if value not in result:
            result.append(value)
    return result


def apply_flags(ctx: RunContext, options: Mapping[str, Any]) -> RunContext:
    """Return ``ctx`` with every flag that was given (not ``None``, not empty) applied over it."""
    update: dict[str, Any] = {}
    for key, field in STRING_FLAGS.items():
        value = options.get(key)
        if value is not None:
            update[field] = _non_empty(str(value), flag_name(key))
    if "trigger" in update:
        check_trigger(update["trigger"], "--trigger")
    if "repo" in update:
        update["org"] = update["repo"].split("/")[0]  # there is no --org: it follows the repo
    for key, (field, minimum) in INT_FLAGS.items():
        if options.get(key) is not None:
            update[field] = parse_count(options[key], flag_name(key), minimum)
    for key, field in BOOL_FLAGS.items():
        if options.get(key) is not None:
            update[field] = bool(options[key])
    if options.get("labels"):
        update["labels"] = _clean_list(options["labels"], "--label")
    if options.get("changed_paths"):
        update["changed_paths"] = _clean_list(options["changed_paths"], "--changed-file")
    return merge(ctx, update)


def merge(ctx: RunContext, update: dict[str, Any]) -> RunContext:
    """``ctx`` with ``update`` applied; notes are appended, and known paths retire "paths unknown"."""
    update = dict(update)
    if not update:
        return ctx
    notes = list(update.pop("notes", None) or [])
    if "changed_paths" in update and update["changed_paths"] is not None:
        # The paths are now known, so a note saying they are not would be misleading.
        kept = [n for n in ctx.notes if not n.startswith(PATHS_UNKNOWN)]
    else:
        kept = list(ctx.notes)
    update["notes"] = kept + [n for n in notes if n not in kept]
    # model_copy skips validation: clean here what argv (non-UTF-8 bytes as lone surrogates) gave
    return ctx.model_copy(update=clean_any(update))


# --- the --context JSON file ------------------------------------------------------------------


def context_file_fields(path: str) -> dict[str, Any]:
    """The validated fields of the JSON object in ``path`` (only the keys it has)."""
    text = _read(path)
    try:
        data = json.loads(text)
    except RecursionError:
        raise ContextError("invalid context file", [Problem("JSON nested too deeply", path)]) from None
    except json.JSONDecodeError as exc:
        raise ContextError(
            "invalid context file",
            [Problem(f"invalid JSON: {exc.msg}", path, exc.lineno, exc.colno)],
        ) from exc
    if not isinstance(data, dict):
        raise ContextError(
            "invalid context file",
            [Problem(f"expected a JSON object with RunContext fields, got {_json_type(data)}", path, 1, 1)],
        )
    return _validate(data, text, path)


def _read(path: str) -> str:
    try:
        return read_input_text(path)
    except FileNotFoundError as exc:
        raise ContextError(f"{path}: context file not found") from exc
    except (OSError, UnicodeDecodeError, InputTooLarge) as exc:
        raise ContextError(f"{path}: cannot read context file: {exc}") from exc


def _validate(data: dict[str, Any], text: str, path: str) -> dict[str, Any]:
    """Validate the given fields strictly (no "12" for 12) and return them, located on error."""
    problems: list[Problem] = []
    try:
        # Strict: a JSON string is not silently taken for a number or a boolean.
        RunContext.model_validate(data, strict=True)
    except ValidationError as exc:
        positions = _key_positions(text)
        for err in exc.errors():
            problems.append(_problem(err, positions, text, path))
    if "trigger" in data and isinstance(data["trigger"], str) and data["trigger"] not in TRIGGERS:
        line, col = _line_col(text, _key_positions(text).get("trigger", 0))
        expected = f"expected one of {', '.join(TRIGGERS)}, got {data['trigger']!r}"
        problems.append(Problem(expected, path, line, col, "trigger"))
    for key in ("pr", "diff_lines", "diff_files"):
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value < (1 if key == "pr" else 0):
            line, col = _line_col(text, _key_positions(text).get(key, 0))
            problems.append(Problem(f"expected an integer >= {1 if key == 'pr' else 0}, got {value}",
                                    path, line, col, key))
    if problems:
        raise ContextError("invalid context file", problems)
    fields = dict(data)
    if fields.get("repo") and "org" not in fields:
        fields["org"] = fields["repo"].split("/")[0]  # keep org consistent with the new repo
    return fields


def _problem(err: Mapping[str, Any], positions: dict[str, int], text: str, path: str) -> Problem:
    loc = err.get("loc") or ()
    key = str(loc[0]) if loc else None
    field = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")
    line, col = _line_col(text, positions.get(key, 0) if key else 0)
    if err.get("type") == "extra_forbidden":
        known = ", ".join(RunContext.model_fields)
        message = f"unknown field (expected one of: {known})"
    else:
        message = f"{err.get('msg', 'invalid value')}, got {_json_type(err.get('input'))}"
    return Problem(message, path, line, col, field or None)


def _key_positions(text: str) -> dict[str, int]:
    """Offsets of the top-level keys of a JSON object (json.loads does not keep positions)."""
    decoder = json.JSONDecoder()
    positions: dict[str, int] = {}
    idx = text.index("{") + 1
    while True:
        idx = _skip_ws(text, idx)
        if idx >= len(text) or text[idx] != '"':
            return positions
        key, end = json.decoder.scanstring(text, idx + 1)  # type: ignore[attr-defined]
        positions.setdefault(key, idx)
        idx = _skip_ws(text, end) + 1  # past ':'
        _, idx = decoder.raw_decode(text, _skip_ws(text, idx))
        idx = _skip_ws(text, idx) + 1  # past ',' (or '}')


def _skip_ws(text: str, idx: int) -> int:
    while idx < len(text) and text[idx] in " \t\r\n":
        idx += 1
    return idx


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _json_type(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "an array", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)
