from __future__ import annotations

import pytest

from ci_guard.errors import InvalidInputError, LedgerUnavailableError
from ci_guard.ledger import default_url, ledger_url, open_ledger
from ci_guard.ledger.urls import parse_ledger_url, redact_url


def test_sqlite_relative_and_absolute_paths():
    assert parse_ledger_url("sqlite:///.ci-guard/ledger.db").path == ".ci-guard/ledger.db"
    assert parse_ledger_url("sqlite:////var/lib/ci/ledger.db").path == "/var/lib/ci/ledger.db"
    plain = parse_ledger_url("/var/lib/ci/ledger.db")  # a plain absolute path is a SQLite file
    assert (plain.backend, plain.path) == ("sqlite", "/var/lib/ci/ledger.db")


def test_postgres_schema_default_custom_and_invalid():
    url = parse_ledger_url("postgresql://ci@db.internal:5433/ledger?sslmode=require")
    assert (url.backend, url.schema) == ("postgres", "ci_guard")
    assert url.conninfo == "postgresql://ci@db.internal:5433/ledger?sslmode=require"
    url = parse_ledger_url("postgres://ci@db/ledger?schema=Team_A&connect_timeout=3")
    assert url.schema == "team_a" and "schema" not in url.conninfo and "connect_timeout=3" in url.conninfo
    with pytest.raises(InvalidInputError) as info:
        parse_ledger_url("postgresql://ci@db/ledger?schema=x;drop")
    assert "is not a plain identifier" in info.value.render()


@pytest.mark.parametrize("bad", ["mysql://x/y", "ledger.db", "sqlite://relative.db", "sqlite:///"])
def test_unknown_urls_are_invalid_input(bad):
    with pytest.raises(InvalidInputError):
        parse_ledger_url(bad)


def test_passwords_never_show():
    url = parse_ledger_url("postgresql://ci:s3cr3t-pw@db:5432/ledger?schema=x")
    assert "s3cr3t-pw" not in url.redacted and "ci:***@db:5432" in url.redacted
    assert "hunter22" not in redact_url("postgresql://ci@db/l?password=hunter22")


def test_unreachable_postgres_is_a_clear_secret_free_error():
    with pytest.raises(LedgerUnavailableError) as info:
        open_ledger("postgresql://ci:topsecret-pw@127.0.0.1:1/ledger?connect_timeout=2")
    message = info.value.render()
    assert "cannot reach the PostgreSQL ledger postgresql://ci:***@127.0.0.1:1/ledger" in message
    assert "topsecret-pw" not in message
    assert info.value.exit_code == 3


def test_unwritable_sqlite_path_is_unavailable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(LedgerUnavailableError, match="cannot open the SQLite ledger"):
        open_ledger(f"sqlite:///{blocker}/ledger.db")


def test_url_resolution_order(monkeypatch, tmp_path):
    monkeypatch.delenv("CI_GUARD_LEDGER", raising=False)
    monkeypatch.setenv("RUNNER_TEMP", str(tmp_path / "runner-temp"))
    assert ledger_url() == default_url() == f"sqlite:///{tmp_path}/runner-temp/ci-guard/ledger.db"
    monkeypatch.setenv("CI_GUARD_LEDGER", "sqlite:////tmp/env.db")
    assert ledger_url() == "sqlite:////tmp/env.db"
    assert ledger_url("sqlite:///flag.db") == "sqlite:///flag.db"


def test_the_default_ledger_is_outside_the_checkout(tmp_path, monkeypatch):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    monkeypatch.chdir(checkout)
    monkeypatch.delenv("CI_GUARD_LEDGER", raising=False)
    monkeypatch.setenv("RUNNER_TEMP", str(tmp_path / "runner-temp"))  # GitHub: one per job, every step
    open_ledger().close()
    assert (tmp_path / "runner-temp" / "ci-guard" / "ledger.db").is_file()
    monkeypatch.delenv("RUNNER_TEMP")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # GitLab, a laptop
    open_ledger().close()
    assert (tmp_path / "state" / "ci-guard" / "ledger.db").is_file()
    assert list(checkout.iterdir()) == []  # nothing in the agent's working directory


def test_a_relative_sqlite_path_never_creates_directories_in_the_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInputError) as info:
        open_ledger("sqlite:///nonexistent/dir/l.db")
    text = info.value.render()
    assert "relative to the working directory" in text and "sqlite:////nonexistent/dir/l.db" in text
    assert not (tmp_path / "nonexistent").exists()
    (tmp_path / "here").mkdir()
    open_ledger("sqlite:///here/l.db").close()  # an existing directory is fine
    open_ledger(f"{tmp_path}/abs/dir/l.db").close()  # absolute paths (plain or sqlite:////) create theirs
    open_ledger(f"sqlite:///{tmp_path}/abs2/l.db").close()
    assert (tmp_path / "here" / "l.db").is_file() and (tmp_path / "abs" / "dir" / "l.db").is_file()
    assert (tmp_path / "abs2" / "l.db").is_file()


def test_read_only_opening_never_creates_a_ledger(tmp_path, monkeypatch):
    from ci_guard.errors import EXIT_INVALID, LedgerNotFoundError

    monkeypatch.delenv("CI_GUARD_LEDGER", raising=False)
    monkeypatch.setenv("RUNNER_TEMP", str(tmp_path))
    with pytest.raises(LedgerNotFoundError, match="no ledger configured") as info:
        open_ledger(create=False)
    assert info.value.exit_code == EXIT_INVALID
    with pytest.raises(LedgerNotFoundError, match="the file does not exist"):
        open_ledger(f"sqlite:///{tmp_path}/x/l.db", create=False)
    assert list(tmp_path.iterdir()) == []
