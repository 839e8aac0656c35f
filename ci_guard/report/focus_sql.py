"""FOCUS CSV lines of a month with the call columns formatted by the database (`ci-guard ledger export`).

:func:`ci_guard.report.focus.write_focus_csv` is the definition (one dict per call through
``csv.DictWriter``). Here the query formats what costs most per call -- money from integer
micro-dollars, the whole-second charge period, the token sums and the SKU details JSON -- the way a
plain SQL dump formats its rows, and streams one sorted query (PostgreSQL: ``COPY ... TO STDOUT``).
Python joins those texts with what repeats: the run's columns (its tags are JSON with sorted keys
and escapes, which SQL dialects write differently) built once per run, and the CSV quoting of models,
endpoints, providers and statuses memoised. A call whose context policy changed it, or whose
service tier needs JSON escapes (both rare), gets that column from Python's json.

Byte for byte the output of :func:`ci_guard.report.focus.write_focus_csv` on both backends
(tests/ledger/test_export.py), including quotes, commas, newlines and control characters in names.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import IO, Any

from ci_guard.report.focus import _PROVIDERS, COLUMNS, _context_tags_of, _csv_field, _json, _run_columns

PAGE = 20_000  # calls formatted and written at a time
QUOTE, BACKSLASH = "'\"'", "'\\'"  # SQL literals (no escapes in standard SQL strings)


class _Dialect:
    """SQL for the few things the backends spell differently."""

    def __init__(self, backend: str) -> None:
        self.pg = backend == "postgres"

    def chr(self, code: int) -> str:
        return f"chr({code})" if self.pg else f"char({code})"

    def has(self, text: str, char: str) -> str:
        return f"strpos({text}, {char}) > 0" if self.pg else f"instr({text}, {char}) > 0"

    def csv(self, text: str) -> str:
        """``text`` as one CSV field, quoted as csv.writer's QUOTE_MINIMAL does (NULL stays NULL)."""
        needs = " OR ".join(self.has(text, c) for c in ("','", self.chr(10), self.chr(13)))
        return (f"CASE WHEN {self.has(text, QUOTE)} THEN '\"' || replace({text}, '\"', '\"\"')"
                f" || '\"' WHEN {needs} THEN '\"' || {text} || '\"' ELSE {text} END")

    def int_text(self, expr: str) -> str:
        return f"CAST({expr} AS TEXT)"

    def money(self, micros: str) -> str:
        """Integer micro-dollars as a six-decimal string (as ``f"{Decimal(m) / 10**6:.6f}"``)."""
        if self.pg:  # numeric division is exact here, and round(.., 6) writes six decimals
            return f"CAST(round({micros} / 1000000.0, 6) AS TEXT)"

        def positive(m: str) -> str:
            return f"({m} / 1000000) || '.' || substr('00000' || ({m} % 1000000), -6)"

        return f"CASE WHEN {micros} >= 0 THEN {positive(micros)} ELSE '-' || {positive(f'(-{micros})')} END"

    def plain_json(self, text: str) -> str:
        """True when ``text`` is its own JSON string body: no quote, backslash or control character.

        Those few values are escaped in Python (json.dumps): an SQL chain of 34 replace() calls
        overflows SQLite's parser stack, and the dialects' own JSON quoting differ across versions.
        """
        if self.pg:
            return f"{text} !~ '[\"\\\\\\x01-\\x1f]'"
        return (f"NOT ({self.has(text, QUOTE)} OR {self.has(text, BACKSLASH)}"
                f" OR {text} GLOB '*[' || char(1) || '-' || char(31) || ']*')")

    def second(self, column: str) -> str:
        """The time rounded down to the second, as format_time writes it."""
        if self.pg:
            return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
        return f"substr({column}, 1, 19) || 'Z'"

    def charge_end(self, started: str, ended: str) -> str:
        """The end rounded up to the second, and at least a second after the start (focus_row)."""
        if self.pg:  # to_char drops the microseconds: + 0.999999 s rounds up, + 1 s is the floor + 1 s
            return (f"to_char(GREATEST({ended} + interval '0.999999 second', {started} + interval '1 second')"
                    " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
        # stored as fixed-width "YYYY-MM-DDTHH:MM:SS.ffffffZ" (text order is time order). An end in a
        # later second than the start's is its own second, plus one if it has microseconds; any
        # other end gives the start's second plus one.
        up = (f"CASE WHEN substr({ended}, 21, 6) = '000000' THEN substr({ended}, 1, 19) || 'Z'"
              f" ELSE {self._next_second(ended)} END")
        return (f"CASE WHEN substr({ended}, 1, 19) > substr({started}, 1, 19) THEN {up}"
                f" ELSE {self._next_second(started)} END")

    def _next_second(self, at: str) -> str:
        """SQLite: the stored time's second plus one, as format_time writes it (the date functions
        only when the minute turns: they parse the text, ten times the cost of substr())."""
        return (f"CASE WHEN substr({at}, 18, 2) < '59' THEN substr({at}, 1, 17)"
                f" || substr('0' || (substr({at}, 18, 2) + 1), -2) || 'Z'"
                f" ELSE strftime('%Y-%m-%dT%H:%M:%SZ', substr({at}, 1, 19), '+1 second') END")

    def month_key(self, started: str) -> str:
        """The UTC calendar month of the start, "YYYY-MM"."""
        if self.pg:
            return f"to_char({started} AT TIME ZONE 'UTC', 'YYYY-MM')"
        return f"substr({started}, 1, 7)"


def line_sql(backend: str) -> tuple[str, ...]:
    """SQL expressions over ``calls c`` for the per-call columns of a FOCUS CSV line (see COLS)."""
    d = _Dialect(backend)
    plain = d.plain_json("c.service_tier")
    tier = f"CASE WHEN c.service_tier IS NULL THEN 'null' WHEN {plain} THEN '\"\"' || c.service_tier || '\"\"' END"
    details = (f"'\"\"cache_read_tokens\"\":' || {d.int_text('c.cache_read_tokens')} ||"
               f" ',\"\"cache_write_1h_tokens\"\":' || {d.int_text('c.cache_write_1h_tokens')} ||"
               f" ',\"\"cache_write_tokens\"\":' || {d.int_text('c.cache_write_tokens')} ||"
               f" ',\"\"input_tokens\"\":' || {d.int_text('c.input_tokens')} ||"
               f" ',\"\"output_tokens\"\":' || {d.int_text('c.output_tokens')} ||"
               f" ',\"\"reasoning_tokens\"\":' || {d.int_text('c.reasoning_tokens')} || ',\"\"service_tier\"\":'")
    # the tier (NULL when it needs JSON escapes: then the raw tier and web searches are read instead)
    rest = f"{tier} || ',\"\"web_searches\"\":' || {d.int_text('c.web_searches')} || '}}\",,,'"
    odd = f"CASE WHEN c.service_tier IS NOT NULL AND NOT ({plain}) THEN"
    return (
        d.money("c.cost_micros"),
        f"{d.second('c.started_at')} || ',' || {d.charge_end('c.started_at', 'c.ended_at')}",
        d.month_key("c.started_at"),
        d.int_text("c.input_tokens + c.cache_write_tokens + c.cache_read_tokens + c.output_tokens"),
        "c.provider", "c.model_served", "c.model_requested", "c.endpoint", "c.status", details, rest,
        f"{odd} c.service_tier END", f"{odd} c.web_searches END", "c.seq",
    )


def write_focus_csv_month(store: Any, start: datetime, end: datetime, out: IO[str], page: int = PAGE) -> int:
    """Every call started in ``[start, end)`` as FOCUS CSV (header first), oldest first; returns the count."""
    out.write(",".join(COLUMNS) + "\n")
    runs: dict[str, tuple[str, str, str, str, str, bool]] = {}
    models: dict[tuple[str | None, str | None, str], tuple[str, str, str, bool]] = {}
    providers: dict[str, str] = {}
    statuses: dict[str, str] = {}
    months: dict[Any, str] = {}
    count = 0
    for new_runs, rows in store.export_lines(start, end, line_sql(store.backend), page=page):
        for run_id, cols in new_runs.items():
            name, repo, tags, enforced = _run_columns(cols)
            qr, rid = _csv_field(repo or ""), _csv_field(run_id)
            runs[run_id] = (f"{rid},{_csv_field(name or '')},CI agent run,{qr},{qr},", _csv_field(tags), tags,
                            f"{rid},", f",{enforced}\n", rid == run_id)
        lines = []
        for (run_id, cost, times, month, tokens, provider, served, requested, endpoint, status, details, rest,
             odd_tier, searches, seq, ctx, saved) in rows:
            run_part, quoted_tags, tags, rid, enforced, plain_run = runs[run_id]
            key = (served, requested, endpoint)
            model = models.get(key)
            if model is None:
                name = served or requested
                desc = f"{name or 'unknown model'} {endpoint} call "
                qm, qe = _csv_field(name or ""), _csv_field(endpoint)
                model = models[key] = (f"{qm},{qe},\"{{", f",{qm},{_csv_field(requested or '')},{qe}", desc,
                                       _csv_field(desc) == desc)
            mid, tail, desc, plain_desc = model
            prov = providers.get(provider)
            if prov is None:
                company, service = _PROVIDERS.get(provider) or (provider, f"{provider} API")
                c = _csv_field(company)
                prov = providers[provider] = (f"USD,{_csv_field(provider)},,", f"Tokens,,,Standard,{c},{c},{c},{c},{c},"
                                              f"{_csv_field(service)},AI and Machine Learning,Generative AI,")
            period = months.get(month)
            if period is None:
                period = months[month] = _billing_period(month)
            qs = statuses.get(status)
            if qs is None:
                qs = statuses[status] = _csv_field(status)
            if ctx:
                quoted_tags = _csv_field(_json({**json.loads(tags), **_context_tags_of(json.loads(ctx), int(saved))}))
            if rest is None:
                rest = f'{_json(odd_tier).replace(chr(34), chr(34) * 2)},""web_searches"":{searches}}}",,,'
            description = (f"{desc}{seq} of CI agent run {run_id}" if plain_desc and plain_run
                           else _csv_field(f"{desc}{seq} of CI agent run {run_id}"))
            lines.append(f"{cost},{cost},{cost},{cost},{prov[0]}{period},{times},Usage,,{description},Usage-Based,"
                         f"{tokens},Tokens,{tokens},{prov[1]}{run_part}{mid}{details}{rest}{quoted_tags},{rid}{seq},"
                         f"{qs}{tail}{enforced}")
        out.write("".join(lines))
        count += len(rows)
    return count


def _billing_period(month: Any) -> str:
    """BillingPeriodStart,BillingPeriodEnd of the month key ("YYYY-MM")."""
    from ci_guard.ledger.periods import period_bounds
    from ci_guard.report.marker import format_time

    first = datetime.strptime(f"{month}-01", "%Y-%m-%d").replace(tzinfo=UTC)
    bounds = period_bounds("month", "UTC", first)
    return f"{format_time(bounds[0])},{format_time(bounds[1])}"
