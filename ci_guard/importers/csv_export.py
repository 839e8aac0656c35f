"""Vendor usage exports as CSV: one row per request or per billed line.

Column names are matched case-insensitively against the spellings vendors use, for example

* Cursor's dashboard export: ``Date, Model, Input (w/ Cache Write), Input (w/o Cache Write),
  Cache Read, Output Tokens, Total Tokens, Cost`` (``Input (w/ Cache Write)`` are the input tokens
  written to the cache, ``Input (w/o Cache Write)`` the fresh ones);
* GitHub Copilot's usage report: ``date, username, product, sku, model, quantity, unit_type,
  gross_amount, net_amount`` (premium requests: no tokens, only what was billed);
* a generic export with ``model, input_tokens, output_tokens, cache_read_tokens,
  cache_write_tokens, cost_usd``.

Tokens are priced with the catalog like every metered call; a vendor cost column is used only for
rows whose tokens are absent or whose model the catalog cannot price.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from ci_guard.errors import InvalidInputError, Problem
from ci_guard.importers.model import ImportedCall, ImportedUsage
from ci_guard.pricing.usage import Usage

# field -> accepted header spellings (normalised: lower case, single spaces)
COLUMNS: dict[str, tuple[str, ...]] = {
    "date": ("date", "timestamp", "time", "created_at", "created at", "usage_date"),
    "model": ("model", "model name", "model_name"),
    "user": ("user", "username", "user_login", "email", "user email"),
    "input": ("input (w/o cache write)", "input_tokens", "input tokens", "fresh input tokens", "prompt_tokens"),
    "cache_write": ("input (w/ cache write)", "cache_write_tokens", "cache write", "cache_creation_input_tokens",
                    "cache write tokens"),
    "cache_read": ("cache read", "cache_read_tokens", "cache read tokens", "cached_tokens",
                   "cache_read_input_tokens", "cached input tokens"),
    "output": ("output tokens", "output_tokens", "output", "completion_tokens"),
    "cost": ("net_amount", "net amount", "cost_usd", "cost (usd)", "cost ($)", "cost", "gross_amount", "amount"),
}
TOKEN_FIELDS = ("input", "cache_write", "cache_read", "output")


def _norm(header: str) -> str:
    return re.sub(r"\s+", " ", header.strip().lower())


def parse(text: str, path: str, default_model: str | None = None, *, since: datetime | None = None,
          user: str | None = None) -> ImportedUsage:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if not reader.fieldnames:
        raise InvalidInputError("no usage to import", [Problem("the CSV file has no header row", path, 1, 1)])
    columns = _map_columns(reader.fieldnames)
    if not any(f in columns for f in TOKEN_FIELDS) and "cost" not in columns:
        known = sorted({s for spellings in COLUMNS.values() for s in spellings})
        raise InvalidInputError("unrecognised usage export", [Problem(
            f"no token or cost column; expected some of: {', '.join(known)}", path, 1, 1)])
    imported = ImportedUsage(source="csv", path=path)
    for lineno, row in enumerate(reader, 2):
        call = _row(row, columns, path, lineno, default_model)
        if call is None or (since and call.started_at and call.started_at < since):
            continue
        if user and "user" in columns and (row.get(columns["user"]) or "").strip() != user:
            continue
        imported.calls.append(call)
    if not imported.calls:
        raise InvalidInputError("no usage to import", [Problem("no usage rows (after the filters)", path, 2, 1)])
    imported.notes.append(f"imported from a vendor CSV export ({len(imported.calls)} rows)")
    return imported


def _map_columns(fieldnames: list[str]) -> dict[str, str]:
    normalised = {_norm(name): name for name in fieldnames}
    mapping: dict[str, str] = {}
    for field, spellings in COLUMNS.items():
        for spelling in spellings:  # in order of preference
            if spelling in normalised:
                mapping[field] = normalised[spelling]
                break
    return mapping


def _row(row: Mapping[str, str | None], columns: dict[str, str], path: str, lineno: int,
         default_model: str | None) -> ImportedCall | None:
    values = {f: (row.get(col) or "").strip() for f, col in columns.items()}
    if not any(values.get(f) for f in (*TOKEN_FIELDS, "cost")):
        return None  # a blank or summary line
    tokens = {f: _count(values.get(f, ""), columns.get(f, f), path, lineno) for f in TOKEN_FIELDS}
    usage = Usage(input_tokens=tokens["input"], cache_write_tokens=tokens["cache_write"],
                  cache_read_tokens=tokens["cache_read"], output_tokens=tokens["output"])
    return ImportedCall(
        model=values.get("model") or default_model, usage=usage,
        vendor_cost_usd=_money(values.get("cost", ""), columns.get("cost", "cost"), path, lineno),
        started_at=_date(values.get("date", ""), columns.get("date", "date"), path, lineno),
    )


def _count(text: str, column: str, path: str, lineno: int) -> int:
    cleaned = text.replace(",", "").replace("_", "")
    if not cleaned or cleaned == "-":
        return 0
    if not cleaned.isdigit():
        raise InvalidInputError("invalid usage export", [
            Problem(f"expected a token count, got {text!r}", path, lineno, None, column)])
    return int(cleaned)


def _money(text: str, column: str, path: str, lineno: int) -> Decimal | None:
    cleaned = text.replace("$", "").replace(",", "").strip()
    if not cleaned or cleaned.lower() in ("-", "included", "free", "n/a"):
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation as exc:
        raise InvalidInputError("invalid usage export", [
            Problem(f"expected an amount in USD, got {text!r}", path, lineno, None, column)]) from exc
    if value < 0:
        raise InvalidInputError("invalid usage export", [
            Problem(f"expected a non-negative amount, got {text!r}", path, lineno, None, column)])
    return value


def _date(text: str, column: str, path: str, lineno: int) -> datetime | None:
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInputError("invalid usage export", [
            Problem(f"expected an ISO 8601 date or time, got {text!r}", path, lineno, None, column)]) from exc
    return at if at.tzinfo else at.replace(tzinfo=UTC)
