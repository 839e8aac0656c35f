"""Writing files whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_text_file(path: str | Path) -> Iterator[IO[str]]:
    """Write to a temporary file next to ``path`` and rename it over ``path`` only on success.

    A failure half-way (a database error, Ctrl-C) leaves ``path`` as it was and no temporary
    file behind, so a reader never sees half an export.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
