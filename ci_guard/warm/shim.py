"""The launcher's own ``ci-guard``: the warm client without the interpreter's site set-up.

A warm ``ci-guard run`` through the installed console script spends ~20 ms of CPU before it
sends its request: the interpreter, ``site`` (and an editable install's finder) and the script's
own ``import re``. The launcher writes a script beside its socket that starts Python with
``-I -S`` and runs :func:`main`: ~9 ms. It is ``<socket>.bin/ci-guard``, or, where the compiled
client (``_shim.c``) was built, ``<socket>.bin/ci-guard.py``, to which that client hands whatever
it does not send itself. ``ci-guard warm start --format github|shell`` puts the directory first on
the job's ``PATH`` (docs/warm.md).

It must never change *what* runs, only how fast: for anything but a ``run`` the launcher can take,
it ``exec``s the ``ci-guard`` the job would have run without it: the next one on ``PATH``, or, if
there is none, the launcher's own installation (``python -P -m ci_guard``). A ``run`` goes warm only
when that next one is the launcher's own installation; another installation gets its own start.
"""

from __future__ import annotations

import os
import sys

from ci_guard.warm.client import ENV_VAR, SUPPORTED, WARM_COMMANDS, delegate

NAME = "ci-guard"
# What decides which code a Python imports: a client whose values differ from the launcher's could
# be meant to run another ci-guard, so it is left to the installed script (and its identity check).
IMPORT_VARS = ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONNOUSERSITE", "PYTHONUSERBASE",
               "PYTHONPLATLIBDIR")
# Linux reads at most 255 bytes of a "#!" line (BINPRM_BUF_SIZE); a longer one is cut, silently
SHEBANG_MAX = 255


def main(python: str, prefix: str, python_vars: dict[str, str]) -> None:
    """The shim's entry point, with the launcher's interpreter as started, its ``sys.prefix``
    (``-S`` leaves a venv's unset) and its :data:`IMPORT_VARS`."""
    argv = sys.argv[1:]
    shadowed = next_on_path(os.path.dirname(os.path.abspath(sys.argv[0])))
    env = None
    if (SUPPORTED and os.environ.get(ENV_VAR) and argv and argv[0] in WARM_COMMANDS
            and (shadowed is None or runs_in(shadowed, python, prefix))
            and import_vars(dict(os.environ)) == python_vars):
        delegate(argv, prefix=prefix)  # exits with the run's status, or returns to start cold
        # It has said why in a note; the cold start must not try (and note) again.
        env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    if shadowed is not None:
        _exec(shadowed, [shadowed, *argv], env)
    # no other ci-guard: the launcher's own (-P: not a ci_guard directory that the cwd may hold)
    _exec(python, [python, "-P", "-m", "ci_guard", *argv], env)


def import_vars(environ: dict[str, str]) -> dict[str, str]:
    return {k: environ[k] for k in IMPORT_VARS if k in environ}


def next_on_path(skip_dir: str) -> str | None:
    """The ``ci-guard`` that ``PATH`` names after this shim's own directory (however spelled: never
    itself, which would ``exec`` itself for ever), or None."""
    own = os.stat(skip_dir)
    for entry in os.environ.get("PATH", os.defpath).split(os.pathsep):
        directory = os.path.abspath(entry or ".")
        try:
            if directory == skip_dir or _same_inode(os.stat(directory), own):
                continue
        except OSError:
            continue
        candidate = os.path.join(directory, NAME)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def runs_in(script_path: str, python: str, prefix: str) -> bool:
    """Whether a console script runs the launcher's interpreter in the launcher's environment: its
    ``#!`` names that interpreter, from that prefix (a venv is its own). Anything else (another
    venv, a ``/bin/sh`` trampoline) is not known to be the same installation."""
    try:
        with open(script_path, "rb") as fh:
            line = fh.readline(512)
    except OSError:
        return False
    words = line[2:].split() if line.startswith(b"#!") else []
    if not words:
        return False
    interpreter = os.path.abspath(os.fsdecode(words[0]))
    return (os.path.dirname(os.path.dirname(interpreter)) == prefix
            and os.path.realpath(interpreter) == os.path.realpath(python))


def _same_inode(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _exec(path: str, argv: list[str], env: dict[str, str] | None) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        if env is None:
            os.execv(path, argv)
        os.execve(path, argv, env)
    except OSError as exc:
        sys.stderr.write(f"ci-guard: cannot start {path}: {exc}\n")
        sys.exit(127)


def script(python: str, prefix: str, python_vars: dict[str, str], package_parent: str) -> str | None:
    """The shim's text for a launcher, or None where a ``#!`` line cannot carry its Python."""
    shebang = f"#!{python} -IS"
    if len(shebang.encode()) > SHEBANG_MAX or any(c.isspace() for c in python):
        return None
    return (f"{shebang}\n"
            "# Written by `ci-guard warm` for the runs that use it; removed when it stops (docs/warm.md).\n"
            "import sys\n"
            f"sys.path.insert(0, {package_parent!r})\n"
            "from ci_guard.warm.shim import main\n"
            f"main(python={python!r}, prefix={prefix!r}, python_vars={python_vars!r})\n")


# The compiled client (ci_guard/warm/_shim.c), built beside this module by setup.py on Linux.
COMPILED = "ci-guard-shim"


def compiled_client() -> str | None:
    """The compiled client's path, where it was built (Linux, with a C compiler), else None."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), COMPILED)
    return path if sys.platform.startswith("linux") and os.path.isfile(path) else None


def compiled_settings(identity: dict[str, str | int], python: str, prefix: str,
                      python_vars: dict[str, str]) -> str | None:
    """``ci-guard.conf`` for the compiled client: a setting per line. None where a value holds a
    line break (it then is not used: the Python shim is ``ci-guard``)."""
    from ci_guard.warm.client import encode

    lines = [f"identity {encode(identity)}", f"python {python}", f"prefix {prefix}",
             *(f"import {name}={value}" for name, value in python_vars.items())]
    if any("\n" in line or "\r" in line or "\0" in line for line in lines):
        return None
    return "\n".join(lines) + "\n"
