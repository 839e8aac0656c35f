"""FOCUS CSV lines of a month formatted by the database (`ci-guard ledger export`).

:func:`ci_guard.report.focus.write_focus_csv` is the definition (one dict per call through
``csv.DictWriter``). Here the database formats what costs most per call -- money from integer
micro-dollars, the whole-second charge period, the token sums and the SKU details JSON -- the way a
plain SQL dump formats its rows, in one sorted query streamed in pages inside one snapshot
(``Store.export_snapshot``). What SQL dialects write differently is built in Python, once per run:
the run's columns (its tags are JSON with sorted keys and escapes).

* SQLite: the query returns each call's columns; Python joins them with the run's columns, the
  CSV quoting of models, endpoints, providers and statuses memoised (:class:`_Lines`), while a
  second thread reads the next pages (SQLite evaluates the query's expressions without the GIL).
* PostgreSQL: the query (``COPY ... TO STDOUT``, streamed) returns each call's whole line, its
  run's columns left as placeholders that one ``bytes % mapping`` per page fills in (:func:`template_sql`):
  no Python per call. The few calls it cannot write -- a value CSV must quote or holding a ``%``, a
  service tier JSON must escape, a call whose context policy changed it (:func:`odd_sql`) -- are read
  first, built like SQLite's and written in their place by the server.

Byte for byte the output of :func:`ci_guard.report.focus.write_focus_csv` on both backends
(tests/ledger/test_export.py), including quotes, commas, newlines and control characters in names.
"""

from __future__ import annotations

import codecs
import json
import os
import queue
import re
import threading
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime
from typing import IO, Any, TypeVar

from ci_guard.ledger.sqlstore import EXPORT_ROW_RUN_COLS
from ci_guard.report.focus import _PROVIDERS, COLUMNS, _context_tags_of, _csv_field, _json, _run_columns

T = TypeVar("T")
PAGE = 20_000  # calls formatted and written at a time
QUOTE, BACKSLASH = "'\"'", "'\\'"  # SQL literals (no escapes in standard SQL strings)
# SkuPriceDetails' token counts, in its (sorted) key order: before service_tier and web_searches
SKU_TOKENS = ("cache_read_tokens", "cache_write_1h_tokens", "cache_write_tokens", "input_tokens", "output_tokens",
              "reasoning_tokens")
# PostgreSQL: the odd calls' lines held in memory at most (~1 kB each); a month with more (its calls
# mostly changed by a context policy) is written as SQLite's, streamed
ODD_MAX = 20_000
WHERE, ORDER = "c.started_at >= ? AND c.started_at < ?", "ORDER BY c.started_at, c.run_id, c.seq"


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

        return (f"CASE WHEN {micros} >= 0 THEN printf('%d.%06d', {micros} / 1000000, {micros} % 1000000)"
                f" ELSE printf('-%d.%06d', -{micros} / 1000000, -{micros} % 1000000) END")

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
    keys = SKU_TOKENS
    if d.pg:
        details = " || ".join(f"'{',' if i else ''}\"\"{k}\"\":' || {d.int_text(f'c.{k}')}" for i, k in enumerate(keys))
        details += " || ',\"\"service_tier\"\":'"
    else:  # one printf: one string, not one per ||
        fmt = ",".join(f'""{k}"":%d' for k in keys)
        details = f"printf('{fmt},\"\"service_tier\"\":', {', '.join(f'c.{k}' for k in keys)})"
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


def template_sql(periods: list[str]) -> str:
    """PostgreSQL: a call's line over ``calls c``, its run's columns (ResourceId to SubAccountName, Tags,
    x_Enforced and the newline) left as the placeholders ``%(h<run_id>)s``, ``%(t<run_id>)s``,
    ``%(e<run_id>)s`` that Python's ``bytes % mapping`` fills for a whole chunk of lines at once (in C:
    no Python per call). ``periods`` are BillingPeriodStart,BillingPeriodEnd of each month (with more
    than one, a ``?`` per month's end but the last's comes first). Right for a call that is not odd
    (:func:`odd_sql`): nothing here quotes for CSV, and no value holds a ``%`` the mapping would read."""
    d = _Dialect("postgres")
    if len(periods) > 1:
        period = "CASE " + " ".join(f"WHEN c.started_at < ? THEN '{p}'" for p in periods[:-1]) + \
            f" ELSE '{periods[-1]}' END"
    else:
        period = f"'{periods[0] if periods else ''}'"
    known = " ".join(f"WHEN '{p}' THEN '{_provider_columns(p)[1]}'" for p in _PROVIDERS)
    provider = (f"CASE c.provider {known} ELSE replace('Tokens,,,Standard,#,#,#,#,#,# API,AI and Machine Learning,"
                "Generative AI,', '#', c.provider) END")
    details = ",".join(f'""{key}"":{{{key}}}' for key in (*SKU_TOKENS, "service_tier", "web_searches"))
    return _format(
        "{cost},{cost},{cost},{cost},USD,{provider},,{period},{start},{end},Usage,,{desc} {endpoint} call {seq} of"
        " CI agent run {run_id},Usage-Based,{tokens},Tokens,{tokens},{provider_columns}%(h{run_id})s{name},{endpoint},"
        '"{' + details + '}",,,%(t{run_id})s,{run_id},{seq},{status},{name},{model_requested},{endpoint},%(e{run_id})s',
        cost=d.money("c.cost_micros"), provider="c.provider", period=period, start=d.second("c.started_at"),
        end=d.charge_end("c.started_at", "c.ended_at"),
        desc="COALESCE(NULLIF(c.model_served, ''), NULLIF(c.model_requested, ''), 'unknown model')",
        endpoint="c.endpoint", seq="c.seq", run_id="c.run_id",
        tokens="c.input_tokens + c.cache_write_tokens + c.cache_read_tokens + c.output_tokens",
        provider_columns=provider, name="COALESCE(NULLIF(c.model_served, ''), c.model_requested, '')",
        **{t: f"c.{t}" for t in SKU_TOKENS},
        service_tier="CASE WHEN c.service_tier IS NULL THEN 'null' ELSE '\"\"' || c.service_tier || '\"\"' END",
        web_searches="c.web_searches", status="c.status", model_requested="c.model_requested",
    )


def _format(template: str, **args: str) -> str:
    """PostgreSQL's format() of ``template``, each ``{name}`` in it the SQL expression ``args[name]`` (as
    ``%N$s``: a NULL one is written as nothing): the literal text costs nothing per row, unlike
    concat()'s literal arguments, and an argument used twice is computed once. ``%`` is doubled twice:
    format() reads it, then psycopg."""
    assert "'" not in template
    names = list(dict.fromkeys(re.findall(r"\{(\w+)\}", template)))
    assert sorted(names) == sorted(args), (names, sorted(args))
    sql = re.sub(r"\{(\w+)\}", lambda m: f"%{names.index(m.group(1)) + 1}$s", template.replace("%", "%%"))
    return f"format('{sql.replace('%', '%%')}', {', '.join(args[n] for n in names)})"


def odd_sql() -> str:
    """PostgreSQL: true for a call whose line :func:`template_sql` does not write (built in Python instead):
    a value CSV must quote or holding a ``%``, a run ID with a parenthesis (the placeholders' keys end
    at the first unbalanced one), a service tier JSON must escape, a context policy's tags."""
    tier = _Dialect("postgres").plain_json("c.service_tier")
    names = "c.provider || COALESCE(c.model_served, '') || COALESCE(c.model_requested, '') || c.endpoint || c.status"
    return (f"c.context_json IS NOT NULL OR (c.service_tier IS NOT NULL AND NOT ({tier} AND strpos(c.service_tier,"
            f" '%%') = 0)) OR {names} ~ '[\",\n\r%%]' OR c.run_id ~ '[\",\n\r%%()]'")


def write_focus_csv_month(store: Any, start: datetime, end: datetime, out: IO[str], page: int = PAGE) -> int:
    """Every call started in ``[start, end)`` as FOCUS CSV (header first), oldest first; returns the count.

    SQLite: the database formats each call's columns and Python joins them with the rest of the line
    (:class:`_Lines`). PostgreSQL: the database writes each call's line, its run's columns filled in
    by Python a page at a time (:func:`_write_lines`), unless more than ``ODD_MAX`` calls are odd:
    then as SQLite.
    """
    out.write(",".join(COLUMNS) + "\n")
    runs_sql = (f"SELECT run_id, {', '.join(EXPORT_ROW_RUN_COLS)} FROM runs WHERE run_id IN"
                f" (SELECT c.run_id FROM calls c WHERE {WHERE})")
    lines = _Lines()
    count = 0
    with store.export_snapshot() as snap:
        period = (snap.ts(start), snap.ts(end))
        runs = snap.all(runs_sql, period)
        if snap.backend == "postgres":
            odd = snap.all(f"SELECT {_columns(snap.backend)} FROM calls c WHERE {WHERE} AND ({odd_sql()})"
                           f" LIMIT {ODD_MAX + 1}", period)
            if len(odd) <= ODD_MAX:
                return _write_lines(snap, lines, runs, odd, start, end, out, page)
        # the next pages are read (the SQL formatting runs, without the GIL) while Python joins these
        pages = _read_ahead(snap.rows(f"SELECT {_columns(snap.backend)} FROM calls c WHERE {WHERE} {ORDER}",
                                      period, page))
        try:
            lines.add_runs(runs)
            for rows in pages:
                out.write("".join(lines.of(rows)))
                count += len(rows)
        finally:
            pages.close()
    return count


def _write_lines(snap: Any, lines: _Lines, runs: list[tuple[Any, ...]], odd_rows: list[tuple[Any, ...]],
                 start: datetime, end: datetime, out: IO[str], page: int) -> int:
    """PostgreSQL: the calls' lines from :func:`template_sql`, read as the server's bytes ``page`` calls
    at a time, their runs' columns filled in by one ``bytes % mapping`` per page. The odd calls' lines
    (:func:`odd_sql`), read first as ``odd_rows``, are built by :class:`_Lines` and written in their
    place by the server (``%`` doubled: they are formatted with the page).

    The pages are read on a thread (:func:`_read_ahead`) from before the runs' columns are built: the
    server writes lines while Python builds them (~0.4 s for 50,000 runs), and the writes to ``out``
    (the GIL released) overlap the reads."""
    enc = snap.encoding
    period = (snap.ts(start), snap.ts(end))
    months = _months(start, end)
    line, params = template_sql([p for _, p in months]), [snap.ts(month_end) for month_end, _ in months[:-1]]
    if odd_rows:  # keyed "<run_id> <seq>" (the seq has no space)
        odd_runs = {row[0] for row in odd_rows}
        lines.add_runs([run for run in runs if run[0] in odd_runs])
        odd = {f"{row[0]} {row[14]}": text.replace("%", "%%") for row, text in
               zip(odd_rows, lines.of(odd_rows), strict=True)}
        line, params = f"COALESCE(?::jsonb ->> (c.run_id || ' ' || c.seq), {line})", [json.dumps(odd), *params]
    pages = _read_ahead(snap.lines(f"SELECT {line} FROM calls c WHERE {WHERE} {ORDER}", [*params, *period], page))
    try:
        lines.add_runs(runs)
        mapping = {}
        for run_id, (head, tags, _, _, enforced, _) in lines.runs.items():
            key = run_id.encode(enc)
            mapping[b"h" + key], mapping[b"t" + key] = head.encode(enc), tags.encode(enc)
            mapping[b"e" + key] = enforced[1:].encode(enc)  # after the line's last comma: x_Enforced, newline
        write = _byte_writer(out, enc)
        count = 0
        for rows, data in pages:
            write(data % mapping)
            count += rows
        return count
    finally:
        pages.close()


_END = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _read_ahead(pages: Iterator[T], depth: int = 4) -> Generator[T, None, None]:
    """``pages``, iterated on a thread up to ``depth`` ahead of the caller (whose work then overlaps
    the reads: the thread waits on the socket without the GIL). Its errors are raised here; closing
    the generator stops the thread (which closes ``pages``) and waits for it, so nothing touches the
    connection after the caller is done."""
    ahead: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in pages:
                if not put(item):
                    break
            else:
                put(_END)
        except BaseException as exc:  # handed to the caller, raised there
            put(_Failed(exc))
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    reader = threading.Thread(target=read, name="ci-guard-export-reader", daemon=True)
    reader.start()
    try:
        while (item := ahead.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        reader.join()


def _byte_writer(out: IO[str], enc: str) -> Callable[[bytes], Any]:
    """Writes bytes in ``enc`` to ``out``: straight to its binary buffer when it has one in the same
    encoding and translates no newline (a month is ~1 GB: no decoding to str and encoding back)."""
    buffer = getattr(out, "buffer", None)
    if buffer is not None and os.linesep == "\n" and codecs.lookup(out.encoding).name == codecs.lookup(enc).name:
        out.flush()
        return buffer.write  # type: ignore[no-any-return]
    return lambda data: out.write(data.decode(enc))


def _columns(backend: str) -> str:
    """What :meth:`_Lines.of` reads of each call."""
    return f"c.run_id, {', '.join(line_sql(backend))}, c.context_json, c.context_saved_micros"


class _Lines:
    """FOCUS CSV lines from :func:`line_sql`'s columns, with what repeats built once: each run's
    columns, and the quoting of models, endpoints, providers, statuses and months."""

    def __init__(self) -> None:
        self.runs: dict[str, tuple[str, str, str, str, str, bool]] = {}
        self._models: dict[tuple[str | None, str | None, str], tuple[str, str, str, bool]] = {}
        self._providers: dict[str, tuple[str, str]] = {}
        self._statuses: dict[str, str] = {}
        self._months: dict[Any, str] = {}

    def add_runs(self, rows: list[tuple[Any, ...]]) -> None:
        """Runs as ``(run_id, *EXPORT_ROW_RUN_COLS)``."""
        for row in rows:
            run_id = row[0]
            name, repo, tags, enforced = _run_columns(row[1:])
            qr, rid = _csv_field(repo or ""), _csv_field(run_id)
            self.runs[run_id] = (f"{rid},{_csv_field(name or '')},CI agent run,{qr},{qr},", _csv_field(tags), tags,
                                 f"{rid},", f",{enforced}\n", rid == run_id)

    def of(self, rows: list[tuple[Any, ...]]) -> list[str]:
        """The lines ("\\n" ended) of calls as ``(run_id, *line_sql columns, context_json, saved)``."""
        runs, models, providers, statuses, months = (self.runs, self._models, self._providers, self._statuses,
                                                     self._months)
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
                prov = providers[provider] = _provider_columns(provider)
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
        return lines


def _provider_columns(provider: str) -> tuple[str, str]:
    """(BillingCurrency to BillingAccountName, PricingUnit to ServiceSubcategory), each with the comma
    after, of a provider."""
    company, service = _PROVIDERS.get(provider) or (provider, f"{provider} API")
    c = _csv_field(company)
    return (f"USD,{_csv_field(provider)},,", f"Tokens,,,Standard,{c},{c},{c},{c},{c},{_csv_field(service)},"
                                            "AI and Machine Learning,Generative AI,")


def _billing_period(month: Any) -> str:
    """BillingPeriodStart,BillingPeriodEnd of the month key ("YYYY-MM")."""
    return _months(datetime.strptime(f"{month}-01", "%Y-%m-%d").replace(tzinfo=UTC))[0][1]


def _months(start: datetime, end: datetime | None = None) -> list[tuple[datetime, str]]:
    """(end, "BillingPeriodStart,BillingPeriodEnd") of each UTC month from ``start``'s until ``end``
    (just ``start``'s without one)."""
    from ci_guard.ledger.periods import period_bounds
    from ci_guard.report.marker import format_time

    months = []
    first = period_bounds("month", "UTC", start)[0]
    while True:
        lo, hi = period_bounds("month", "UTC", first)
        months.append((hi, f"{format_time(lo)},{format_time(hi)}"))
        first = hi
        if end is None or hi >= end:
            return months
