"""The ledger writer process: ``python -m ci_guard.meter.ledger_writer FD`` (started by the recorder).

It reads messages from the socket FD, in order, and applies them to the store:

* ``(url, spill_path, secrets)`` first: open the store, answer ``("ready", None)`` or
  ``("error", message)``;
* ``("record", CallRecord)``: write the call now (spill it if the database refuses), no answer;
* ``("call", method, args, kwargs)``: run a store method, answer ``("ok", result)`` or ``("error", message)``;
* ``("flush",)``: answer ``("ok", None)`` once everything before it is written;
* ``("close",)``: close the store, answer ``("ok", failures)`` and exit.

It ignores SIGINT and SIGTERM: a cancelled CI job signals the whole process group, and the writer
must still write what it received. It leaves when the proxy does (end of file on the socket).
"""

from __future__ import annotations

import signal
import sys
from multiprocessing.connection import Connection
from typing import Any


def main(argv: list[str]) -> int:
    from ci_guard.meter.hardening import make_undumpable

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    make_undumpable()  # it holds the ledger URL, which may carry a password
    conn = Connection(int(argv[1]))
    try:
        return serve(conn)
    except EOFError:
        return 0
    finally:
        conn.close()


def serve(conn: Connection) -> int:
    from ci_guard.errors import CiGuardError
    from ci_guard.ledger import open_ledger
    from ci_guard.meter.recorder import LedgerWriter
    from ci_guard.secrets import redact, register

    url, spill_path, secrets = conn.recv()
    for secret in secrets:
        register(secret)
    try:
        store = open_ledger(url)
    except Exception as exc:
        text = exc.render() if isinstance(exc, CiGuardError) else f"{type(exc).__name__}: {exc}"
        conn.send(("error", redact(text)))
        return 1
    writer = LedgerWriter(store, spill_path)
    conn.send(("ready", None))
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:  # the proxy is gone: everything it sent has been written
                return 0
            kind = message[0]
            if kind == "record":
                writer.record_call(message[1])
            elif kind == "call":
                conn.send(_call(store, message[1], message[2], message[3], redact))
            elif kind == "flush":
                conn.send(("ok", None))
            elif kind == "close":
                failures = writer.failures
                writer.close()
                writer = None
                conn.send(("ok", failures))
                return 0
    finally:
        if writer is not None:
            writer.close()


def _call(store: Any, method: str, args: tuple[Any, ...], kwargs: dict[str, Any],
          redact: Any) -> tuple[str, Any]:
    from ci_guard.errors import CiGuardError

    try:
        return ("ok", getattr(store, method)(*args, **kwargs))
    except CiGuardError as exc:
        return ("error", redact(exc.render()))
    except Exception as exc:
        return ("error", redact(f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
