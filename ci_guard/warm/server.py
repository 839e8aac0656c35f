"""The warm server: loads ci-guard once, then forks one child per ``ci-guard run`` request.

One thread, one ``selectors`` loop: the listening socket, one connection per run (its client's
signals and EOF), and a wake-up pipe for SIGCHLD. No thread is ever started here, so a fork is
safe; the child drops everything of the server's before it runs the command (see ``_child``).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
import traceback
from dataclasses import dataclass
from typing import IO

from ci_guard.errors import LauncherError
from ci_guard.warm.client import (
    EXIT_RUN_INFRASTRUCTURE,
    FORWARDED_SIGNALS,
    HEADER,
    MAX_REQUEST,
    identity,
    send_message,
)

# What a run imports, loaded once here. A module missing from this list is imported by each
# child (correct, just slower); aiohttp is left out on purpose: only an env-configured proxy needs it.
PRELOAD = (
    "ci_guard.cli", "ci_guard.commands.run", "ci_guard.commands.options", "ci_guard.context.detect",
    "ci_guard.meter.runner", "ci_guard.meter.lifecycle", "ci_guard.meter.proxy", "ci_guard.meter.summary",
    "ci_guard.meter.outputs", "ci_guard.ledger.postgres", "ci_guard.ledger.sqlite", "ci_guard.ledger.analytics",
    "ci_guard.policy.loader", "ci_guard.policy.decide", "ci_guard.pricing.catalog", "ci_guard.tokens.estimate",
    "ci_guard.tokens.media", "ci_guard.context.local", "ci_guard.context.git", "ci_guard.policy.lint",
    "ci_guard.policy.model_prices", "encodings.ascii",
)
OPTIONAL_PRELOAD = ("uvloop",)  # the proxy's event loop where it is installed (ci_guard/meter/loop.py)
# The only variables the server keeps from the environment it was started in: what Python and
# ci-guard need to load. Provider keys, forge tokens and ledger URLs never reach it; each run's
# environment arrives with its request and lives only in that run's child.
SERVER_ENV = ("PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH",
              "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONUTF8", "PYTHONIOENCODING", "VIRTUAL_ENV")
REPLY_TIMEOUT_S = 1.0  # a reply is a few bytes; a client that never reads them is not waited for
_PEERCRED = struct.Struct("3i")
# A connection that has not sent a whole request by then is dropped (and its descriptors closed).
PENDING_TIMEOUT_S = 10.0


def server_environment(environ: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k in SERVER_ENV}


def shim_dir(path: str) -> str:
    """The directory of the launcher's own ``ci-guard`` (ci_guard/warm/shim.py) for socket ``path``."""
    return path + ".bin"


def write_shim(path: str, launcher: dict[str, str | int] | None = None) -> str | None:
    """Write the launcher's ``ci-guard`` beside its socket; its directory, or None where this Python
    cannot be named on a ``#!`` line (runs then use the installed script, a little slower).

    ``ci-guard`` is the compiled client (ci_guard/warm/_shim.c) where it was built, with its
    settings in ``ci-guard.conf`` (``launcher``: the identity its requests carry, this process's by
    default); it hands whatever it does not take to ``ci-guard.py``, the Python
    shim, which is ``ci-guard`` itself where there is no compiled one.
    """
    import shutil

    from ci_guard.files import write_text_atomic
    from ci_guard.warm import shim

    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(shim.__file__))))
    variables = shim.import_vars(dict(os.environ))
    text = shim.script(sys.executable, sys.prefix, variables, package_parent)
    if text is None:
        return None
    directory = shim_dir(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    target = os.path.join(directory, shim.NAME)
    settings = shim.compiled_settings(launcher or identity(), sys.executable, sys.prefix, variables)
    compiled = shim.compiled_client()
    if compiled is None or settings is None:
        write_text_atomic(target, text, mode=0o700)
        return directory
    write_text_atomic(os.path.join(directory, shim.NAME + ".py"), text, mode=0o700)
    write_text_atomic(os.path.join(directory, shim.NAME + ".conf"), settings, mode=0o600)
    partial = target + ".partial"
    shutil.copyfile(compiled, partial)
    os.chmod(partial, 0o700)
    os.replace(partial, target)
    return directory


def remove_shim(path: str) -> None:
    from ci_guard.warm import shim

    directory = shim_dir(path)
    for name in (shim.NAME, shim.NAME + ".py", shim.NAME + ".conf"):
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, name))
    with contextlib.suppress(OSError):
        os.rmdir(directory)


def preload() -> None:
    """Import what a run imports (pydantic builds the policy models here, once)."""
    for module in PRELOAD:
        importlib.import_module(module)
    for module in OPTIONAL_PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    from ci_guard.meter import loop

    loop.libc_functions()  # looked up (ctypes) once here, not in every run; none is called
    from ci_guard.meter.upstream_client import default_tls_context

    default_tls_context()  # the system's CA store, loaded once (~27 ms) for every run that uses it
    # What every run reads from the package itself and caches: the bundled price catalog, the
    # migrations' versions. Nothing of a run's own (policy, environment, ledger) is loaded here.
    from ci_guard.ledger import migrations
    from ci_guard.pricing.catalog import load_catalog

    load_catalog()
    for backend in ("sqlite", "postgres"):
        migrations.versions(backend)
    gc.collect()
    gc.freeze()  # keep the collector off these pages, so children share them copy-on-write


class _Inbox:
    """Messages of one connection, read without ever blocking: a client that stalls mid-message
    holds up nobody (the loop reads what has arrived and comes back when more has)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.fds: list[int] = []  # every descriptor received, closed by the owner whatever happens
        self.since = time.monotonic()

    def read(self, conn: socket.socket) -> bool:
        """Take what has arrived; False at EOF."""
        try:
            data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 8)
        except (BlockingIOError, InterruptedError):
            return True
        self.fds.extend(fds)
        self.buffer += data
        if len(self.buffer) >= HEADER.size and _frame_size(self.buffer) > MAX_REQUEST:
            raise ConnectionError(f"a message of {_frame_size(self.buffer)} bytes is larger than allowed")
        return bool(data)

    def next_message(self) -> dict[str, object] | None:
        """The next complete message, or None while it is still arriving."""
        if len(self.buffer) < HEADER.size or len(self.buffer) < HEADER.size + _frame_size(self.buffer):
            return None
        end = HEADER.size + _frame_size(self.buffer)
        body = bytes(self.buffer[HEADER.size:end])
        del self.buffer[:end]
        message = json.loads(body)
        if not isinstance(message, dict):
            raise ConnectionError("a message is not a JSON object")
        return message

    def close_fds(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []


@dataclass
class _Run:
    pid: int
    conn: socket.socket | None
    inbox: _Inbox


class WarmServer:
    def __init__(self, path: str, idle_timeout_s: float = 0.0) -> None:
        self.path = path
        self.idle_timeout_s = idle_timeout_s
        self.runs: dict[int, _Run] = {}
        self.stopping = False
        self.identity = identity()
        self._sel = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._lock: IO[str] | None = None
        self._last_active = time.monotonic()
        self.shim: str | None = None  # the directory of its own `ci-guard`, once bound

    # -- set-up ------------------------------------------------------------------------------
    def bind(self) -> None:
        # One launcher per socket, even when two start at the same instant: the lock beside the
        # socket is held for the launcher's life (the kernel drops it when the launcher is gone).
        import fcntl

        self._lock = open(self.path + ".lock", "a")  # noqa: SIM115 - held until the process ends
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise LauncherError(f"a warm launcher already serves at {self.path}; stop it first "
                                "(ci-guard warm stop)") from None
        if serving(self.path):
            raise LauncherError(f"a warm launcher already serves at {self.path}; stop it first (ci-guard warm stop)")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            if _is_socket(self.path):
                os.unlink(self.path)  # the socket of a server that is gone: nothing answers on it
        old_umask = os.umask(0o177)
        try:
            listener.bind(self.path)
        finally:
            os.umask(old_umask)
        listener.listen(128)
        listener.setblocking(False)
        self._listener = listener
        self.shim = write_shim(self.path, self.identity)  # its requests carry this launcher's identity
        self._sel.register(listener, selectors.EVENT_READ, "accept")
        for sock in (self._wake_r, self._wake_w):
            sock.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        signal.set_wakeup_fd(self._wake_w.fileno())
        signal.signal(signal.SIGCHLD, _ignore)  # a Python handler, so that SIGCHLD writes to the wake-up pipe
        for sig in FORWARDED_SIGNALS:
            signal.signal(sig, self._on_stop_signal)

    def _on_stop_signal(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    # -- the loop ----------------------------------------------------------------------------
    def serve_forever(self) -> None:
        try:
            while True:
                if self.stopping:
                    self._close_listener()
                    if not self.runs:
                        return
                # drop connections that sent no whole request in time; wake up for the rest
                timeout: float | None = PENDING_TIMEOUT_S if self._drop_stalled() else None
                if self.idle_timeout_s > 0 and not self.runs and not self.stopping:
                    idle_left = max(0.0, self._last_active + self.idle_timeout_s - time.monotonic())
                    timeout = idle_left if timeout is None else min(timeout, idle_left)
                    if idle_left == 0.0:
                        self.stopping = True
                        continue
                for key, _ in self._sel.select(timeout):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        with contextlib.suppress(BlockingIOError):
                            while self._wake_r.recv(512):
                                pass
                    elif isinstance(key.data, _Inbox):
                        self._request_data(key.fileobj, key.data)  # type: ignore[arg-type]
                    else:
                        self._from_client(key.fileobj, key.data)  # type: ignore[arg-type]
                self._reap()
        finally:
            self._close_listener()
            signal.set_wakeup_fd(-1)

    def _close_listener(self) -> None:
        if self._listener is None:
            return
        self._sel.unregister(self._listener)
        self._listener.close()
        self._listener = None
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        remove_shim(self.path)

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                conn, _ = self._listener.accept()
            except BlockingIOError:
                return
            if not _same_user(conn):
                conn.close()
                continue
            # The request is read as it arrives: a client that connects and sends nothing (a
            # readiness probe) or stalls holds up nobody.
            conn.setblocking(False)
            self._sel.register(conn, selectors.EVENT_READ, _Inbox())

    def _drop_stalled(self) -> bool:
        """Drop the connections whose request has been arriving for too long; True if any other
        request is still arriving."""
        now, arriving = time.monotonic(), False
        for key in list(self._sel.get_map().values()):
            if isinstance(key.data, _Inbox):
                if now - key.data.since > PENDING_TIMEOUT_S:
                    self._drop(key.fileobj, key.data, "no whole request in time")  # type: ignore[arg-type]
                else:
                    arriving = True
        return arriving

    def _drop(self, conn: socket.socket, inbox: _Inbox, why: str) -> None:
        _log(f"request dropped: {why}")
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn)
        inbox.close_fds()
        conn.close()

    def _request_data(self, conn: socket.socket, inbox: _Inbox) -> None:
        try:
            open_ = inbox.read(conn)
            message = inbox.next_message()
        except (OSError, ValueError) as exc:  # one bad client never takes the server down
            self._drop(conn, inbox, f"{exc.__class__.__name__}: {exc}")
            return
        if message is None:
            if not open_ and inbox.buffer:
                self._drop(conn, inbox, "closed before a whole request")
            elif not open_:
                self._forget(conn, inbox)
            return
        self._sel.unregister(conn)
        try:
            self._handle_request(conn, message, inbox.fds)
        except Exception as exc:
            _log(f"request dropped: {exc.__class__.__name__}: {exc}")
            conn.close()
        finally:
            inbox.close_fds()

    def _forget(self, conn: socket.socket, inbox: _Inbox) -> None:
        """A connection closed without a byte (a readiness probe): nothing to log."""
        self._sel.unregister(conn)
        inbox.close_fds()
        conn.close()

    def _handle_request(self, conn: socket.socket, message: dict[str, object], fds: list[int]) -> None:
        refusal = self._refusal(message, fds)
        if message.get("stop") is True and refusal is None:
            self.stopping = True
            _reply(conn, {"stopping": len(self.runs)})
            conn.close()
            return
        if refusal is not None:
            _reply(conn, {"refused": refusal})
            conn.close()
            return
        self._fork_run(conn, message, fds)

    def _refusal(self, message: dict[str, object], fds: list[int]) -> str | None:
        if message.get("stop") is True:
            return None  # any ci-guard of this user may stop it
        theirs = {k: message.get(k) for k in self.identity}
        if theirs != self.identity:
            differences = [f"{k} {self.identity[k]!s} there, {theirs[k]!s} here"
                           for k in self.identity if theirs[k] != self.identity[k]]
            return "it runs another ci-guard or Python: " + ", ".join(differences)
        if self.stopping:
            return "it is stopping"
        argv, cwd, env, umask = message.get("argv"), message.get("cwd"), message.get("env"), message.get("umask")
        if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv) and isinstance(cwd, str)
                and isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
                and type(umask) is int and 0 <= umask <= 0o777):
            return "the request is malformed"
        if len(fds) != 3:
            return "the request did not carry stdin, stdout and stderr"
        return _settings_refusal(message.get("rlimits"), message.get("nice"))

    def _fork_run(self, conn: socket.socket, message: dict[str, object], fds: list[int]) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        server_pid = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns (measured by the tests end to end)
            _child(self, conn, message, fds, server_pid)
        run = self.runs[pid] = _Run(pid, conn, _Inbox())
        self._last_active = time.monotonic()
        try:
            _reply(conn, {"pid": pid})
        except OSError:  # the client is already gone: the run ends the way a cancelled one does
            self._client_gone(run)
            return
        self._sel.register(conn, selectors.EVENT_READ, run)

    def _from_client(self, conn: socket.socket, run: _Run) -> None:
        """The client's signals, relayed to its run; its EOF (killed) cancels the run."""
        try:
            open_ = run.inbox.read(conn)
            run.inbox.close_fds()  # a client has no business sending descriptors now
            while (message := run.inbox.next_message()) is not None:
                sig = message.get("signal")
                if type(sig) is int and sig in {int(s) for s in FORWARDED_SIGNALS}:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(run.pid, sig)
        except (OSError, ValueError):
            open_ = False
        if not open_:
            self._client_gone(run)

    def _client_gone(self, run: _Run) -> None:
        """The client was killed (or closed its end): cancel the run, as a cancelled CI job would."""
        if run.conn is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(run.conn)
            run.conn.close()
            run.conn = None
        with contextlib.suppress(ProcessLookupError):
            os.kill(run.pid, signal.SIGTERM)

    def _reap(self) -> None:
        while self.runs:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            run = self.runs.pop(pid, None)
            self._last_active = time.monotonic()
            if run is None or run.conn is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(run.conn)
            with contextlib.suppress(OSError):
                _reply(run.conn, {"exit": os.waitstatus_to_exitcode(status)})
            run.conn.close()


def _child(server: WarmServer, conn: socket.socket, message: dict[str, object], fds: list[int],
           server_pid: int) -> None:
    """In the forked child: become the client's ``ci-guard <argv>`` and exit with its code."""
    code = 70
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from ci_guard.meter.hardening import die_with_parent

        die_with_parent(signal.SIGTERM)  # the server gone, the run ends as a cancelled one does
        if os.getppid() != server_pid:  # it died before that took hold: nothing started yet, end here
            os._exit(EXIT_RUN_INFRASTRUCTURE)
        for sock in (server._listener, server._wake_r, server._wake_w, conn, server._lock):
            if sock is not None:
                sock.close()  # (the lock's: a run outliving its launcher must not keep the socket taken)
        # Other clients' connections and the descriptors of requests still arriving: a run holds
        # nothing of another (a kept stdout would keep that client's pipe open).
        for key in list(server._sel.get_map().values()):
            if isinstance(key.data, (_Inbox, _Run)):
                (key.data if isinstance(key.data, _Inbox) else key.data.inbox).close_fds()
            key.fileobj.close()  # type: ignore[union-attr]
        server._sel.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        # The server's sys.std* wrappers now write to the client's descriptors; stdout is
        # line-buffered on a terminal, as the interpreter would have made it.
        with contextlib.suppress(AttributeError, OSError, ValueError):
            sys.stdout.reconfigure(line_buffering=os.isatty(1))  # type: ignore[union-attr]
        os.chdir(message["cwd"])  # type: ignore[arg-type]
        _apply_settings(message)  # the client's umask, limits and niceness, as a cold run has them
        os.environ.clear()
        os.environ.update(message["env"])  # type: ignore[arg-type]
        import tempfile

        tempfile.tempdir = None  # chosen again from this run's TMPDIR
        argv = list(message["argv"])  # type: ignore[call-overload]
        sys.argv = ["ci-guard", *argv]
        from ci_guard.cli import main

        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc.code)
    except BaseException:
        with contextlib.suppress(Exception):
            sys.stderr.write(f"ci-guard: internal error in the warm launcher's run:\n{traceback.format_exc()}")
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(code)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    sys.stderr.write(f"{code}\n")
    return 1


def _settings_refusal(rlimits: object, nice: object) -> str | None:
    """Why a run with the client's resource limits and niceness cannot be forked from here (a
    process may lower its hard limits and its priority, not raise them), or None."""
    import resource

    if not (isinstance(rlimits, dict) and type(nice) is int and all(
            isinstance(name, str) and name.startswith("RLIMIT_") and isinstance(pair, list) and len(pair) == 2
            and all(type(v) is int for v in pair) for name, pair in rlimits.items())):
        return "the request is malformed"
    if os.geteuid() == 0:
        return None
    for name, (_soft, hard) in rlimits.items():
        if hasattr(resource, name):
            ours = resource.getrlimit(getattr(resource, name))[1]
            if ours != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > ours):
                return f"this client's hard {name} ({hard}) is above the launcher's ({ours})"
    if nice < os.getpriority(os.PRIO_PROCESS, 0):
        return f"this client's niceness ({nice}) is below the launcher's"
    return None


def _apply_settings(message: dict[str, object]) -> None:
    """In the child: the client's umask, resource limits and niceness, as a cold run has them."""
    import resource

    os.umask(message["umask"])  # type: ignore[arg-type]
    for name, (soft, hard) in message["rlimits"].items():  # type: ignore[attr-defined]
        which = getattr(resource, name, None)
        if which is not None and resource.getrlimit(which) != (soft, hard):
            try:
                resource.setrlimit(which, (soft, hard))
            except (OSError, ValueError) as exc:  # checked before the fork; say so if it still fails
                sys.stderr.write(f"ci-guard: warning: the warm launcher could not set {name} to "
                                 f"{(soft, hard)} for this run: {exc}\n")
    if os.getpriority(os.PRIO_PROCESS, 0) != message["nice"]:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, message["nice"])  # type: ignore[arg-type]


def _frame_size(buffer: bytearray) -> int:
    return int(HEADER.unpack_from(buffer)[0])


def _reply(conn: socket.socket, message: dict[str, object]) -> None:
    """A few bytes to a client that reads them: sent blocking, with a bound for one that does not."""
    conn.settimeout(REPLY_TIMEOUT_S)
    try:
        send_message(conn, message)
    finally:
        conn.setblocking(False)


def serving(path: str) -> bool:
    """Whether a server accepts connections at ``path`` (the probe sends nothing: costs it nothing)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def _same_user(conn: socket.socket) -> bool:
    if not hasattr(socket, "SO_PEERCRED"):
        return True  # elsewhere the socket's private directory is the only guard
    _pid, uid, _gid = _PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    return uid == os.getuid()


def _is_socket(path: str) -> bool:
    import stat

    return stat.S_ISSOCK(os.lstat(path).st_mode)


def _ignore(_signum: int, _frame: object) -> None:
    pass


def _log(text: str) -> None:
    with contextlib.suppress(Exception):
        sys.stderr.write(f"ci-guard warm: {text}\n")
        sys.stderr.flush()
