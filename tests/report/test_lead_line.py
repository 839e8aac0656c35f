"""The comment's lead line: this PR's spend against the repository's median PR, from the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.helpers import run_cli


def _seed(url: str, costs: dict[int, str]) -> None:
    from ci_guard.ledger import open_ledger
    from tests.ledger.factories import call, run

    now = datetime.now(UTC) - timedelta(hours=1)
    store = open_ledger(url)
    try:
        for pr, cost in costs.items():
            store.start_run(run(f"r{pr}", started_at=now, pr=pr, repo="acme/api", platform="github"))
            store.record_call(call(f"r{pr}", 1, cost, at=now))
    finally:
        store.close()


def test_lead_line_compares_with_the_median_pr(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    url = f"sqlite:///{tmp_path}/l.db"
    _seed(url, {1: "1", 2: "2", 3: "3", 4: "8"})
    code, out, err = run_cli(capsys, "comment", "--dry-run", "--ledger", url, "--platform", "github",
                             "--repo", "acme/api", "--pr", "4")
    assert code == 0, err
    # PRs 1-3 (not this one): median $2.00; this PR $8.00
    assert ("This pull request: **$8.00**, 4.0× the median PR of `acme/api` ($2.00 over its last 3 PRs in 30 days)."
            in out)
    code, out, _ = run_cli(capsys, "comment", "--dry-run", "--ledger", url, "--platform", "github",
                           "--repo", "acme/api", "--pr", "1")
    assert "33% of the median PR" in out  # $1.00 against the median of $2, $3 and $8: $3.00


def test_no_lead_line_without_enough_prs(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    url = f"sqlite:///{tmp_path}/l.db"
    _seed(url, {1: "1", 4: "8"})
    code, out, _ = run_cli(capsys, "comment", "--dry-run", "--ledger", url, "--platform", "github",
                           "--repo", "acme/api", "--pr", "4")
    assert code == 0 and "median" not in out
