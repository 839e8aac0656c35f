"""Writing files whole or not at all: summaries, state files, exports, comments, schemas."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_text_file(path: str | Path, mode: int | None = None) -> Iterator[IO[str]]:
    """Write to a temporary file next to ``path`` and rename it over ``path`` only on success.

    A failure half-way (a database error, Ctrl-C) leaves ``path`` as it was and no temporary
    file behind, so a reader never sees half a file. ``mode`` sets the permissions (0o600 for a
    file holding a token) before anything is written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str, mode: int | None = None) -> None:
    """:func:`atomic_text_file` for a text already in hand."""
    with atomic_text_file(path, mode) as out:
        out.write(text)


MAX_INPUT_BYTES = 16 * 1024 * 1024  # policy, price, event and snapshot files: far above any real one


class InputTooLarge(ValueError):
    """A file ci-guard reads as input is larger than :data:`MAX_INPUT_BYTES` (or endless: /dev/zero)."""


def scratch_parent(env: Mapping[str, str]) -> str | None:
    """Where a job's scratch directories go: $RUNNER_TEMP on GitHub (cleaned with the job), else
    None, i.e. the system's temp directory (``tempfile``'s ``dir=None``)."""
    runner_temp = env.get("RUNNER_TEMP")
    return runner_temp if runner_temp and os.path.isdir(runner_temp) else None


def read_input_text(path: str | Path, limit: int = MAX_INPUT_BYTES) -> str:
    """Read a UTF-8 input file of at most ``limit`` bytes.

    Raises OSError, UnicodeDecodeError or :class:`InputTooLarge` (never reads more than ``limit``
    + 1 bytes, so ``/dev/zero`` or a FIFO that never ends cannot exhaust memory).
    """
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise InputTooLarge(f"{path}: larger than {limit // (1024 * 1024)} MiB; not a ci-guard input file")
    return data.decode("utf-8")
