"""Versioned schema migrations, one SQL file per version and backend.

Files are ``<backend>/<NNNN>_<name>.sql``; a version is applied once, inside one transaction
together with its row in ``schema_version``. To change the schema, add the next numbered file for
*both* backends; never edit a released one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def load(backend: str) -> list[Migration]:
    """The migrations of ``backend`` ("sqlite" or "postgres"), in version order."""
    folder = resources.files(__name__).joinpath(backend)
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), split(entry.read_text("utf-8"))))
    return sorted(found, key=lambda m: m.version)


@cache
def versions(backend: str) -> frozenset[int]:
    """Every version ``backend`` has a migration for (from the file names: nothing is read or parsed,
    as every ledger open checks this). Listed once per process: the files ship with the package
    and do not change while it is loaded (a warm launcher lists them once for all its runs)."""
    folder = resources.files(__name__).joinpath(backend)
    return frozenset(int(match.group(1)) for entry in folder.iterdir() if (match := _NAME.match(entry.name)))


def latest_version(backend: str) -> int:
    migrations = load(backend)
    return migrations[-1].version if migrations else 0


def split(sql: str) -> tuple[str, ...]:
    """Statements of a migration file: ``;`` at the end of a line ends one; ``--`` lines are comments."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    parts = re.split(r";\s*$", "\n".join(lines), flags=re.M)
    return tuple(p.strip() for p in parts if p.strip())
