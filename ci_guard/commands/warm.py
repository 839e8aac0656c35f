"""`ci-guard warm`: start, serve and stop the warm launcher (ci_guard/warm, docs/warm.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import click

DEFAULT_IDLE_TIMEOUT_S = 3600.0


@click.group()
def warm() -> None:
    """A launcher that starts `ci-guard run` warm: ci-guard loaded once, each run forked from it.

    \b
    For jobs and machines that start many runs: a run then costs ~50 ms of CPU before and around
    its agent instead of ~0.3 s. `start` prints the socket; runs use it when CI_GUARD_WARM names
    it, and start cold (with a note) whenever it cannot be used.

    \b
      eval "$(ci-guard warm start --format shell)"   # CI_GUARD_WARM, and its own ci-guard on PATH
      ci-guard run --policy ci-guard.yml -- claude -p "review" &   # any number of runs
      ci-guard warm stop
    """


@warm.command()
@click.option("--socket", "socket_path", metavar="PATH",
              help="Where to listen (default: a new private directory under $RUNNER_TEMP or the system's temp dir).")
@click.option("--idle-timeout", type=click.FloatRange(min=0), default=DEFAULT_IDLE_TIMEOUT_S, show_default=True,
              help="Seconds without a run after which the launcher exits (0: never).")
@click.option("--format", "fmt", type=click.Choice(["text", "shell", "github"]), default="text", show_default=True,
              help="text: print the socket path; shell: print `export` lines for CI_GUARD_WARM and PATH (for "
                   "eval); github: also append CI_GUARD_WARM to $GITHUB_ENV and the launcher's own `ci-guard` "
                   "to $GITHUB_PATH for the job's later steps.")
def start(socket_path: str | None, idle_timeout: float, fmt: str) -> int:
    """Start the warm launcher in the background and print its socket once it serves.

    The launcher keeps only PATH, HOME, the locale and Python's own variables of this environment:
    never a provider key. Each run brings its own environment.
    """
    import shlex
    import tempfile

    from ci_guard.errors import LauncherError
    from ci_guard.files import scratch_parent
    from ci_guard.warm.server import server_environment, serving, shim_dir

    if socket_path is None:
        socket_path = os.path.join(tempfile.mkdtemp(prefix="ci-guard-warm-", dir=scratch_parent(os.environ)), "sock")
    socket_path = os.path.abspath(socket_path)
    if serving(socket_path):
        raise LauncherError(f"a warm launcher already serves at {socket_path}; stop it first (ci-guard warm stop)")
    log_path = socket_path + ".log"
    with open(log_path, "ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "ci_guard", "warm", "serve", "--socket", socket_path,
             "--idle-timeout", str(idle_timeout)],
            env=server_environment(dict(os.environ)), cwd="/", stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
        )
    deadline = time.monotonic() + 60.0
    while not serving(socket_path):
        if server.poll() is not None or time.monotonic() > deadline:
            if server.poll() is None:
                server.kill()
            tail = _tail(log_path)
            raise LauncherError(f"the warm launcher did not start (see {log_path}){': ' + tail if tail else ''}")
        time.sleep(0.01)
    # The launcher's own `ci-guard` (ci_guard/warm/shim.py): a faster client, where it could write one
    shim = shim_dir(socket_path) if os.path.isdir(shim_dir(socket_path)) else None
    if shim and ("\n" in shim or "\r" in shim):
        shim = None  # PATH and $GITHUB_PATH hold a directory per line
    if fmt == "shell":
        click.echo(f"export CI_GUARD_WARM={shlex.quote(socket_path)}")
        if shim:
            click.echo(f'export PATH={shlex.quote(shim)}:"$PATH"')
    else:
        click.echo(socket_path)
    if fmt == "github":
        from ci_guard.meter.outputs import append_github_env, append_github_path

        append_github_env({"CI_GUARD_WARM": socket_path})
        if shim:
            append_github_path(shim)
    return 0


@warm.command()
@click.option("--socket", "socket_path", metavar="PATH", required=True, help="Where to listen.")
@click.option("--idle-timeout", type=click.FloatRange(min=0), default=DEFAULT_IDLE_TIMEOUT_S, show_default=True,
              help="Seconds without a run after which the launcher exits (0: never).")
def serve(socket_path: str, idle_timeout: float) -> int:
    """Serve in the foreground (what `start` runs in the background; for a supervisor or container)."""
    from ci_guard.meter.hardening import make_undumpable
    from ci_guard.warm.server import WarmServer, preload

    make_undumpable()
    preload()
    server = WarmServer(os.path.abspath(socket_path), idle_timeout_s=idle_timeout)
    server.bind()
    click.echo(f"ci-guard warm: serving at {server.path} (pid {os.getpid()})", err=True)
    server.serve_forever()
    return 0


@warm.command()
@click.option("--socket", "socket_path", metavar="PATH", envvar="CI_GUARD_WARM",
              help="The launcher's socket (default: $CI_GUARD_WARM).")
def stop(socket_path: str | None) -> int:
    """Stop the warm launcher: it takes no new run; runs in progress finish and report as usual."""
    import socket

    from ci_guard.errors import InvalidInputError, LauncherError
    from ci_guard.warm.client import identity, read_message, send_message

    if not socket_path:
        raise InvalidInputError("no warm launcher named: give --socket or set CI_GUARD_WARM")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(socket_path)
        send_message(sock, {**identity(), "stop": True})
        reply = read_message(sock) or {}
    except OSError:
        click.echo(f"ci-guard: no warm launcher at {socket_path}; nothing to stop", err=True)
        return 0
    finally:
        sock.close()
    running = reply.get("stopping")
    if not isinstance(running, int):
        raise LauncherError(f"the warm launcher at {socket_path} did not stop: {reply.get('refused', reply)}")
    click.echo(f"ci-guard: the warm launcher at {socket_path} is stopping"
               + (f"; {running} run(s) still finishing" if running else ""), err=True)
    return 0


def _tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return " | ".join(fh.read().strip().splitlines()[-lines:])
    except OSError:
        return ""
