"""What a policy decision saw, stored with the run so `ci-guard what-if` can decide it again.

A live decision reads two things: the run context (before the policy's ``teams:`` resolved the
team, so a proposal with other teams resolves it its own way) and the budget statuses of that
moment. :func:`decision_inputs` turns them into plain JSON for the ledger's
``runs.decision_inputs_json``; :func:`context_from_inputs` and :func:`budgets_from_inputs` read it
back.

Everything in a context can come from a PR author (title, labels, branch, paths), so the stored
JSON is made safe before it is written: every string passes through :func:`ci_guard.secrets.redact`,
long strings and long lists are cut (and the cut is recorded, so a replay knows it is
approximated), and the JSON is ASCII-only (control characters and bidi overrides are escaped, NUL
never reaches PostgreSQL's TEXT). Rendering is the reader's job (comments escape it again).
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ci_guard.context.model import RunContext
from ci_guard.policy.decision import BudgetStatus, Decision
from ci_guard.secrets import redact
from ci_guard.text import clean

VERSION = 1
MAX_STRING = 1000  # characters of one string (a PR title, a path)
MAX_LIST = 5000  # entries of one list (changed paths, labels)


def decision_inputs(context: RunContext, decision: Decision, now: datetime) -> dict[str, Any]:
    """The JSON-ready inputs of ``decision`` (``context`` is the one given to the engine)."""
    truncated: list[str] = []
    ctx = _clean(context.model_dump(mode="json"), "context", truncated)
    return {
        "version": VERSION,
        "decided_at": now.isoformat(),
        "context": ctx,
        "budgets": [_clean(b.as_json(), "budgets", truncated) for b in decision.budgets],
        "truncated": sorted(set(truncated)),
    }


def dumps(inputs: dict[str, Any] | None) -> str | None:
    """The column value: compact, key-sorted, ASCII-only JSON (or NULL)."""
    if inputs is None:
        return None
    return json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


# RunContext fields by JSON type, for reading stored contexts without pydantic's per-field work
# (`what-if` reads one per run of a month); tests check this covers every RunContext field.
STR_FIELDS = frozenset({"repo", "org", "trigger", "event_name", "base_branch", "head_branch", "sha", "actor",
                        "team", "title", "agent", "workflow", "job", "environment", "cohort", "run_url"})
INT_FIELDS = frozenset({"pr", "diff_lines", "diff_files"})
BOOL_FIELDS = frozenset({"draft", "fork"})
LIST_FIELDS = frozenset({"labels", "changed_paths", "notes"})
PLATFORMS = ("github", "gitlab", "local")


def context_from_inputs(inputs: dict[str, Any]) -> RunContext | None:
    """The stored context, or None when the JSON is not one this version can read."""
    if not isinstance(inputs, dict) or inputs.get("version") != VERSION:
        return None
    data = inputs.get("context") or {}
    fast = _trusted_shape(data)
    if fast is not None:
        return RunContext.model_construct(**fast)
    try:
        return RunContext.model_validate(data)
    except ValueError:
        return None


def _trusted_shape(data: Any) -> dict[str, Any] | None:
    """``data`` with clean strings when every field has the type RunContext declares, else None
    (then full validation decides). What ci-guard wrote always has; a hand-edited row may not."""
    if not isinstance(data, dict):
        return None
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            if key in LIST_FIELDS and key != "changed_paths":
                return None
            if key not in STR_FIELDS and key not in INT_FIELDS and key not in BOOL_FIELDS and key not in LIST_FIELDS:
                return None
            out[key] = None
        elif key in STR_FIELDS and type(value) is str:
            out[key] = clean(value)
        elif (key in INT_FIELDS and type(value) is int) or (key in BOOL_FIELDS and type(value) is bool):
            out[key] = value
        elif key in LIST_FIELDS and type(value) is list and all(type(v) is str for v in value):
            out[key] = [clean(v) for v in value]
        elif key == "platform" and value in PLATFORMS:
            out[key] = value
        else:
            return None
    return out


def budgets_from_inputs(inputs: dict[str, Any]) -> dict[tuple[str, str | None, str | None], tuple[Decimal, Decimal]]:
    """(budget, scope key, period start ISO) -> (spent, reserved) as the live decision read them."""
    out: dict[tuple[str, str | None, str | None], tuple[Decimal, Decimal]] = {}
    for b in inputs.get("budgets") or []:
        try:
            key = (str(b["name"]), b.get("scope_key"), b.get("period_start"))
            out[key] = (Decimal(b.get("spent_usd") or 0), Decimal(b.get("reserved_usd") or 0))
        except (KeyError, TypeError, InvalidOperation):
            continue
    return out


def status_key(status: BudgetStatus) -> tuple[str, str | None, str | None]:
    return status.name, status.scope_key, status.period_start.isoformat() if status.period_start else None


def is_exact(inputs: dict[str, Any] | None) -> bool:
    """Whether a replay from ``inputs`` decides exactly as the live check did (nothing was cut)."""
    return context_from_inputs(inputs or {}) is not None and not (inputs or {}).get("truncated")


def _clean(value: Any, path: str, truncated: list[str]) -> Any:
    if isinstance(value, str):
        text = clean(redact(value))
        if len(text) > MAX_STRING:
            truncated.append(path)
            text = text[:MAX_STRING]
        return text
    if isinstance(value, list):
        if len(value) > MAX_LIST:
            truncated.append(path)
            value = value[:MAX_LIST]
        return [_clean(v, path, truncated) for v in value]
    if isinstance(value, dict):
        return {str(k): _clean(v, f"{path}.{k}", truncated) for k, v in value.items()}
    return value
