"""Migration numbers are pre-assigned to parallel work, so a lower number can be released after a
higher one: a ledger that has 1, 2 and 8 must still get 4 and 7 (and any later gap) on open."""

from __future__ import annotations

from ci_guard.ledger import migrations, open_ledger


def test_a_version_released_after_a_higher_one_is_still_applied(ledger_url):
    store = open_ledger(ledger_url)
    store.close()
    present = sorted(migrations.versions("sqlite"))
    gap = [v for v in present if 1 < v < max(present)]
    assert gap, "needs a migration between the first and the last"
    missing = gap[0]
    name = next(m for m in migrations.load("sqlite") if m.version == missing).name
    # simulate a ledger migrated before `missing` was released: drop what it added, forget it
    import sqlite3

    if ledger_url.startswith("sqlite"):
        conn = sqlite3.connect(ledger_url.removeprefix("sqlite:///"))
        conn.execute("DELETE FROM schema_version WHERE version = ?", (missing,))
        conn.commit()
        conn.close()
    else:
        import psycopg

        from tests.ledger.conftest import PG_SERVER

        schema = ledger_url.rsplit("schema=", 1)[1]
        with psycopg.connect(PG_SERVER, autocommit=True) as conn:
            conn.execute(f"DELETE FROM {schema}.schema_version WHERE version = %s", (missing,))
    statements = next(m for m in migrations.load(store.backend) if m.version == missing).statements
    undo = [s for s in statements if s.upper().startswith(("ALTER TABLE", "CREATE TABLE", "CREATE INDEX"))]
    assert undo, name
    reopened = open_ledger(ledger_url, auto_migrate=False)
    try:
        assert missing not in reopened._applied()
    finally:
        reopened.close()
    # re-applying needs the objects gone; drop the ones the migration creates
    _drop(ledger_url, statements)
    healed = open_ledger(ledger_url)
    try:
        assert migrations.versions(healed.backend) <= healed._applied()
    finally:
        healed.close()


def _drop(ledger_url: str, statements) -> None:
    import re

    drops = []
    for s in statements:
        m = re.match(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", s, re.I)
        if m:
            drops.append(f"ALTER TABLE {m.group(1)} DROP COLUMN {m.group(2)}")
        m = re.match(r"CREATE TABLE (\w+)", s, re.I)
        if m:
            drops.append(f"DROP TABLE {m.group(1)}")
        m = re.match(r"CREATE INDEX (\w+)", s, re.I)
        if m:
            drops.append(f"DROP INDEX {m.group(1)}")
    drops.sort(key=lambda d: not d.startswith("DROP INDEX"))  # indexes before their columns
    if ledger_url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(ledger_url.removeprefix("sqlite:///"))
        for d in drops:
            conn.execute(d)
        conn.commit()
        conn.close()
    else:
        import psycopg

        from tests.ledger.conftest import PG_SERVER

        schema = ledger_url.rsplit("schema=", 1)[1]
        with psycopg.connect(PG_SERVER, autocommit=True, options=f"-c search_path={schema}") as conn:
            for d in drops:
                conn.execute(d)
