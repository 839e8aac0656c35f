"""summaries_for_pr against an in-memory Store (the protocol's read side)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ci_guard.ledger.records import CallRecord, RunRecord
from ci_guard.pricing.usage import Usage
from ci_guard.report.comment import merge_summaries
from ci_guard.report.history import summaries_for_pr
from tests.report import builders as b

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class MemoryStore:
    url = "memory://"

    def __init__(self) -> None:
        self.runs: list[RunRecord] = []
        self.calls: list[CallRecord] = []
        self.list_runs_args: list[dict] = []

    def list_runs(self, *, repo=None, pr=None, since=None, status=None, limit=50):  # type: ignore[no-untyped-def]
        self.list_runs_args.append({"repo": repo, "pr": pr, "limit": limit})
        rows = [r for r in self.runs if (repo is None or r.repo == repo) and (pr is None or r.pr == pr)]
        return sorted(rows, key=lambda r: r.started_at, reverse=True)[:limit]

    def list_calls(self, run_id=None, *, limit=1000):  # type: ignore[no-untyped-def]
        return [c for c in self.calls if c.run_id == run_id][:limit]

    def close(self) -> None:
        pass


def _run(run_id: str, minutes: int, pr: int = 12, repo: str = "acme/app", **kw: object) -> RunRecord:
    start = T0 + timedelta(minutes=minutes)
    return RunRecord(run_id=run_id, started_at=start, ended_at=start + timedelta(seconds=90), status="completed",
                     repo=repo, pr=pr, agent="pr-review", rule="default", model="claude-sonnet-4-5",
                     limits={"max_turns": 30, "max_cost_usd": "5"}, turns=2, tool_calls=3,
                     cost_usd=Decimal("0.25"), usage=Usage(input_tokens=10, cache_read_tokens=20, output_tokens=5),
                     **kw)  # type: ignore[arg-type]


def _call(run_id: str, seq: int) -> CallRecord:
    return CallRecord(run_id=run_id, seq=seq, started_at=T0, ended_at=T0, provider="anthropic", endpoint="messages",
                      model_requested="claude-sonnet-4-5", model_served="claude-sonnet-4-5-20250929",
                      usage=Usage(input_tokens=5, output_tokens=2), cost_usd=Decimal("0.125"), http_status=200)


def test_summaries_for_pr_oldest_first_with_calls() -> None:
    store = MemoryStore()
    store.runs = [_run("r2", 30), _run("r1", 0), _run("other-pr", 10, pr=13), _run("other-repo", 5, repo="x/y")]
    store.calls = [_call("r1", 2), _call("r1", 1), _call("r2", 1)]
    out = summaries_for_pr(store, "acme/app", 12)  # type: ignore[arg-type]
    assert [s.run_id for s in out] == ["r1", "r2"]
    assert store.list_runs_args[0]["repo"] == "acme/app" and store.list_runs_args[0]["pr"] == 12
    first = out[0]
    assert [c.seq for c in first.calls] == [1, 2]
    assert first.calls[0].model == "claude-sonnet-4-5-20250929"
    assert first.cost_usd == Decimal("0.25") and first.runtime_s == 90
    assert first.tokens["cache_read"] == 20
    assert first.decision["rule"] == "default" and first.decision["context"]["agent"] == "pr-review"
    assert first.decision["limits"]["max_turns"] == 30


def test_current_summary_wins_over_its_ledger_copy() -> None:
    current = b.normal()
    ledger_copy = current.model_copy(update={"cost_usd": Decimal("0")})
    merged = merge_summaries([current], [ledger_copy, b.denied()])
    assert [s.run_id for s in merged] == ["run-normal", "run-denied"]
    assert merged[0].cost_usd == current.cost_usd


def test_history_from_a_real_sqlite_ledger_and_the_comment_command(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import io
    import json

    from ci_guard.ledger import open_ledger
    from ci_guard.report.publish import CommentOptions, run_comment

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = open_ledger(url)
    try:
        for i, run_id in enumerate(["old-1", "old-2"]):
            record = _run(run_id, 60 * i)
            record.turns, record.tool_calls, record.cost_usd, record.usage = 0, 0, Decimal(0), Usage()
            store.start_run(record)
            store.record_call(_call(run_id, 1))
            store.record_call(_call(run_id, 2))
            store.finish_run(run_id, "completed", None, record.started_at + timedelta(minutes=2))
        store.start_run(_run("elsewhere", 5, pr=99))
        got = summaries_for_pr(store, "acme/app", 12)
    finally:
        store.close()
    assert [s.run_id for s in got] == ["old-1", "old-2"]
    assert got[0].cost_usd == Decimal("0.25") and [c.seq for c in got[0].calls] == [1, 2]
    assert got[0].calls[0].model == "claude-sonnet-4-5-20250929"

    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps(b.normal().to_json()))
    out = io.StringIO()
    rc = run_comment(CommentOptions(summaries=[str(summary)], ledger=url, dry_run=True), environ={}, out=out,
                     err=io.StringIO())
    assert rc == 0
    body = out.getvalue()
    assert "**3 agent runs**" in body and "| 3 (this job) |" in body
    assert "$0.63" in body  # 0.25 + 0.25 from the ledger + 0.1263 from this job
