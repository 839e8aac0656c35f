"""The calls a run has in flight, journaled so that a ci-guard killed mid-call does not lose them.

A call's ledger row is written when the call ends. ci-guard killed with SIGKILL (or by the OOM
killer) while a call is in flight never writes it, and closing the dead run (owners.py) releases
its hold: the spend the upstream may already have served would escape the ledger. So before the
proxy forwards a call upstream it appends one line to ``<run_id>.inflight.jsonl`` in the spill
directory (outside the checkout, lifecycle.spill_dir): the call's run, sequence number, model and
worst case (the input estimate, the whole output cap, and their price).

The completion is the call's ledger row itself (keyed by run and sequence number, like the spill
replay), so a call costs one append, not two. When a dead run is closed, or a journal of a run
that is no longer running is replayed, every journaled call without a ledger row is charged at its
worst case as a ``cut`` call marked ``estimated``: the upstream may have served it, so it is never
free. Recording it is idempotent (the row is keyed by its sequence number): replaying twice, or
after the real row was written, charges nothing more.

No fsync: the line is in the page cache once ``write`` returns, which survives the death of the
process (the case this is for); only a crash of the whole host can lose it (measured in
BENCHMARKS.md, "In-flight journal"). The journal sits where the agent (same user) can write: a
forged line can only add spend to a run that has no row for that sequence number, never lower it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ci_guard.ledger.records import CallRecord
from ci_guard.pricing.usage import Usage

log = logging.getLogger("ci_guard.meter")

SUFFIX = ".inflight.jsonl"
NOTE = ("charged at its worst case: ci-guard died while this call was in flight (the upstream may have "
        "served it; its usage was never reported)")


def journal_path_for(spill_path: str) -> str:
    """The journal next to a run's spill file (``<run_id>.unrecorded.jsonl``)."""
    base = spill_path.removesuffix(".unrecorded.jsonl")
    return base + SUFFIX


class InflightJournal:
    """Appends one line per call before it goes upstream; removed when the run ends with every call settled."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1
        self._open: set[int] = set()  # seqs journaled and not settled yet
        self._failed = False

    def begin(self, *, run_id: str, seq: int, started_at: datetime, provider: str, endpoint: str,
              model_requested: str | None, model: str | None, input_tokens: int, output_tokens: int,
              cost_usd: Decimal | None, stream: bool) -> None:
        """Journal a call about to be forwarded (one ``write``, no fsync; see the module docstring)."""
        self._open.add(seq)
        line = json.dumps({
            "run_id": run_id, "seq": seq, "started_at": started_at.isoformat(), "provider": provider,
            "endpoint": endpoint, "model_requested": model_requested, "model": model,
            "input_tokens": input_tokens, "output_tokens": output_tokens,
            "cost_usd": None if cost_usd is None else str(cost_usd), "stream": stream,
        }, separators=(",", ":")) + "\n"
        try:
            if self._fd < 0:
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.write(self._fd, line.encode())  # O_APPEND: one write of one line, whole
        except OSError as exc:
            if not self._failed:  # once: the call still goes on, metered as ever while ci-guard lives
                self._failed = True
                log.warning("ci-guard: could not journal calls in flight to %s (a call in flight when "
                            "ci-guard is killed would not be charged): %s", self.path, exc)

    def settled(self, seq: int) -> None:
        """The call's row is queued for the ledger (or the spill file): it needs no journal line any more."""
        self._open.discard(seq)

    def close(self) -> None:
        """Close the journal; remove it when every journaled call was settled (its row written or spilled)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        if not self._open:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


def _positive(value: Any) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("negative token count")
    return number


def _charge_row(row: dict[str, Any], run_id: str) -> CallRecord:
    """The call a journal line stands for, charged at its worst case (checked: it can only add spend)."""
    if row.get("run_id") != run_id:  # a line naming another run: only that run's own journal charges it
        raise ValueError("another run's line")
    seq = int(row["seq"])
    if seq < 1:
        raise ValueError("bad seq")
    cost = Decimal(str(row["cost_usd"])) if row.get("cost_usd") is not None else None
    if cost is not None and (not cost.is_finite() or cost < 0):
        raise ValueError("negative or non-finite cost")
    usage = Usage(input_tokens=_positive(row["input_tokens"]), output_tokens=_positive(row["output_tokens"]))
    started = datetime.fromisoformat(row["started_at"])
    note = NOTE if cost is not None else NOTE + "; the model could not be priced, so only its tokens are recorded"
    return CallRecord(
        run_id=run_id, seq=seq, started_at=started, ended_at=started, provider=str(row["provider"]),
        endpoint=str(row["endpoint"]), model_requested=row.get("model_requested"), model_served=row.get("model"),
        usage=usage, cost_usd=cost if cost is not None else Decimal(0), status="cut", http_status=None,
        stream=bool(row.get("stream")), context_tokens=usage.input_tokens, error=note, estimated=True,
    )


def charge_inflight(store: Any, path: str | os.PathLike[str], run_id: str) -> int:
    """Charge every call journaled in ``path`` that has no ledger row; remove the journal. Returns
    how many were charged. Call only for a run that is no longer running (its process is gone)."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return 0
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("ci-guard: could not read the in-flight journal %s: %s", path, exc)
        return 0
    calls: dict[int, CallRecord] = {}
    for line in lines:
        if not line.strip():
            continue
        try:
            call = _charge_row(json.loads(line), run_id)
        except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError):
            log.warning("ci-guard: %s: skipped a malformed in-flight line", path)
            continue
        calls.setdefault(call.seq, call)  # the first line of a seq is the proxy's own
    recorded = {c.seq for c in store.list_calls(run_id, limit=1_000_000)} if calls else set()
    missing = [c for seq, c in sorted(calls.items()) if seq not in recorded]
    if missing:
        # idempotent: a row keyed by (run, seq) is written once, so a second replay adds nothing
        store.record_calls(missing)
        log.warning("ci-guard: run %s: %d call(s) in flight when its ci-guard died were charged at their "
                    "worst case ($%s)", run_id, len(missing), sum((c.cost_usd for c in missing), Decimal(0)))
    with contextlib.suppress(OSError):
        os.unlink(path)
    return len(missing)


def replay_inflight_files(store: Any, directory: str | os.PathLike[str]) -> int:
    """:func:`charge_inflight` for every journal in ``directory`` whose run this ledger knows and is
    no longer running (a live run's journal, or another ledger's, stays)."""
    charged = 0
    try:
        paths = sorted(Path(directory).glob("*" + SUFFIX))
    except OSError:
        return 0
    for path in paths:
        run_id = path.name.removesuffix(SUFFIX)
        try:
            run = store.get_run(run_id)
            if run is None or run.status == "running":
                continue
            charged += charge_inflight(store, path, run_id)
        except Exception as exc:  # the ledger is down: the journal stays for the next replay
            log.warning("ci-guard: could not replay the in-flight journal %s: %s", path, exc)
    return charged


__all__ = ["InflightJournal", "charge_inflight", "journal_path_for", "replay_inflight_files"]
