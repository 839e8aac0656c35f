"""The thin side of the warm launcher: runs before click or any library is imported.

Only the standard library, and only what a request needs: this module is the whole start-up of a
warm ``ci-guard run`` (see ci_guard/warm/__init__.py for the contract). It uses the standard
library's C modules (``_socket``, ``_json``, ``_signal``) rather than ``socket``, ``json`` and
``signal``: those build enums and compile regular expressions at import, ~10 ms of a ~25 ms client
start, which a fleet of launches pays once per run (BENCHMARKS.md, "The warm launcher").
"""

from __future__ import annotations

import _signal
import _socket
import os
import struct
import sys

try:  # CPython's JSON accelerator, which the json module itself uses
    from _json import encode_basestring_ascii as _quote
    from _json import make_scanner as _make_scanner
except ImportError:  # pragma: no cover - not CPython: the json module, a little slower to import
    from json.encoder import py_encode_basestring_ascii as _quote

    _make_scanner = None

ENV_VAR = "CI_GUARD_WARM"
PROTOCOL = 3  # 2: a request carries the client's umask; 3: its resource limits and niceness
# Commands the server runs warm; everything else starts cold (nothing to gain there).
WARM_COMMANDS = frozenset({"run"})
# (no SIGHUP, AF_UNIX or fork on Windows: there the warm launcher is not used at all)
FORWARDED_SIGNALS = tuple(getattr(_signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                          if hasattr(_signal, name))
SUPPORTED = hasattr(_socket, "AF_UNIX") and hasattr(os, "fork") and hasattr(_socket.socket, "sendmsg")
EXIT_RUN_INFRASTRUCTURE = 82  # ci_guard.errors' value, not imported: that module is not free to load
HEADER = struct.Struct("!I")  # a message: its length, then that much JSON (client and server)
MAX_REQUEST = 64 << 20


def identity(prefix: str | None = None) -> dict[str, str | int]:
    """What must match between client and server: a server loaded from another ci-guard, checkout,
    Python or environment (venv: its libraries) must not run this client's command. ``python`` ->
    ``python3`` symlinks are the same interpreter. ``prefix``: the environment, where ``sys.prefix``
    does not say it (the launcher's shim runs with ``-S``, which leaves a venv's prefix unset)."""
    from ci_guard import __version__

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return {"protocol": PROTOCOL, "version": __version__, "package": package, "prefix": prefix or sys.prefix,
            "python": os.path.realpath(sys.executable)}


def encode(value: object) -> str:
    """JSON text of ``value`` (dicts with str keys, lists, str, int, bool, None), as ``json.dumps``
    writes it with its defaults: non-ASCII and surrogate escapes (non-UTF-8 bytes of the
    environment) as ``\\uXXXX``."""
    if isinstance(value, str):
        return _quote(value)
    if value is None or isinstance(value, bool):
        return "null" if value is None else "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, dict):
        return "{" + ",".join(_quote(_str_key(k)) + ":" + encode(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(encode, value)) + "]"
    raise TypeError(f"a warm launcher message cannot carry {type(value).__name__}")


def _str_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"a warm launcher message's keys are strings, not {type(key).__name__}")
    return key


class _Strict:
    """What JSON's scanner reads of a decoder: strict, no hooks, no NaN or Infinity."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> object:
        raise ValueError(f"{name} is not allowed in a warm launcher message")


_scan = _make_scanner(_Strict()) if _make_scanner is not None else None


def decode(data: bytes) -> object:
    """``json.loads`` of a message (UTF-8), without importing ``json``; ValueError if it is not one
    JSON value."""
    text = data.decode("utf-8")
    if _scan is None:  # pragma: no cover - not CPython
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(" \t\n\r"))
    try:
        value, end = _scan(text, start)
    except StopIteration as exc:
        raise ValueError(f"a warm launcher message is not JSON (at character {exc.value})") from None
    if text[end:].strip(" \t\n\r"):
        raise ValueError(f"a warm launcher message has extra data at character {end}")
    return value


def send_message(sock: _socket.socket, message: dict[str, object], fds: list[int] | None = None) -> None:
    data = encode(message).encode()
    frame = HEADER.pack(len(data)) + data
    if fds:
        sent = sock.sendmsg([frame], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))])
        frame = frame[sent:]
    if frame:
        sock.sendall(frame)


def read_exact(sock: _socket.socket, n: int) -> bytes | None:
    """``n`` bytes, or None at EOF (a clean close before the first byte)."""
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            if chunks:
                raise ConnectionError("the connection closed inside a message")
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_message(sock: _socket.socket) -> dict[str, object] | None:
    header = read_exact(sock, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_REQUEST:
        raise ConnectionError(f"a message of {size} bytes is larger than allowed")
    data = read_exact(sock, size)
    if data is None:
        raise ConnectionError("the connection closed inside a message")
    message = decode(data)
    if not isinstance(message, dict):
        raise ConnectionError("a message is not a JSON object")
    return message


def process_settings() -> dict[str, object]:
    """What a process inherits besides its environment and a cold run would have had: the umask,
    the resource limits (``ulimit``) and the niceness. Read here, applied to the run."""
    import resource

    umask = os.umask(0o022)  # read by setting it, then put back
    os.umask(umask)
    limits = {name: list(resource.getrlimit(getattr(resource, name))) for name in dir(resource)
              if name.startswith("RLIMIT_") and name != "RLIMIT_OFILE"}  # (OFILE: NOFILE's other name)
    return {"umask": umask, "rlimits": limits, "nice": os.getpriority(os.PRIO_PROCESS, 0)}


def _note(text: str) -> None:
    sys.stderr.write(f"ci-guard: note: {text}\n")
    sys.stderr.flush()


def delegate(argv: list[str], prefix: str | None = None) -> None:
    """Run ``ci-guard <argv>`` in the warm server named by ``$CI_GUARD_WARM`` and exit as it did.

    Returns (without side effects beyond a note on stderr) when the command is not one the server
    runs, no server is named, or it cannot take this run: the caller then starts cold.
    """
    path = os.environ.get(ENV_VAR)
    if not path or not argv or argv[0] not in WARM_COMMANDS or not SUPPORTED:
        return
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
        # The environment is sent as str, as os.environ holds it: JSON carries surrogate escapes
        # (non-UTF-8 bytes) through unchanged.
        send_message(sock, {**identity(prefix), "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                            **process_settings()}, [0, 1, 2])
        reply = read_message(sock)
    except (OSError, ValueError) as exc:
        sock.close()
        _note(f"the warm launcher at {path} cannot be used ({exc.__class__.__name__}: {exc}); starting cold")
        return
    if reply is None or "pid" not in reply:
        sock.close()
        reason = (reply or {}).get("refused", "it closed the connection")
        _note(f"the warm launcher at {path} did not take this run ({reason}); starting cold")
        return
    _wait_for_run(sock)


def _wait_for_run(sock: _socket.socket) -> None:
    """Relay signals to the run until its exit status arrives, then exit with it."""

    def forward(signum: int, _frame: object) -> None:
        try:
            send_message(sock, {"signal": signum})
        except OSError:
            pass  # the server is gone; the run got SIGTERM from the kernel (PR_SET_PDEATHSIG)

    for sig in FORWARDED_SIGNALS:
        _signal.signal(sig, forward)
    try:
        reply = read_message(sock)
    except (OSError, ValueError):
        reply = None
    if reply is None or not isinstance(reply.get("exit"), int):
        _note("the warm launcher went away before the run ended; its outcome is in the ledger")
        sys.stderr.flush()
        os._exit(EXIT_RUN_INFRASTRUCTURE)
    status = reply["exit"]
    sys.stdout.flush()
    sys.stderr.flush()
    if status < 0:  # the run died of a signal: so does this process, as a cold run would have
        for sig in FORWARDED_SIGNALS:
            _signal.signal(sig, _signal.SIG_DFL)
        _signal.signal(-status, _signal.SIG_DFL)
        os.kill(os.getpid(), -status)
        status = 128 - status
    os._exit(status)
