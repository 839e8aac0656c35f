"""A metered run stores what its decision saw (context before team resolution, budget statuses),
sanitised, so `what-if` can decide it again exactly."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from ci_guard.context.model import RunContext
from ci_guard.demo.rehearsal import DEMO_KEY, policy_path, pr_context
from ci_guard.ledger import open_ledger
from ci_guard.meter.runner import RunRequest, run_agent
from ci_guard.meter.upstreams import Upstreams
from ci_guard.policy.inputs import MAX_LIST, context_from_inputs, decision_inputs, dumps, is_exact
from ci_guard.simulator.server import run_simulator

FAKE_KEY = "sk-ant-api03-" + "Q" * 40
HOSTILE_TITLE = f"Fix \u202eevil\u202c <!-- {FAKE_KEY} --> @admin\x00\n/merge"


def _run(ledger_url: str, ctx: RunContext, tmp_path: Path) -> str:
    with run_simulator("tool-loop", api_key=DEMO_KEY) as sim:
        outcome = run_agent(RunRequest(
            policy_path=str(policy_path()), context=ctx, command=[sys.executable, "-m", "ci_guard.demo.agent"],
            ledger_url=ledger_url, preset="none", quiet=True,
            upstreams=Upstreams(anthropic=sim.url, openai=sim.openai_url, anthropic_api_key=DEMO_KEY,
                                openai_api_key=DEMO_KEY),
            summary_path=str(tmp_path / "run.json"), grace_s=1.0, kill_after_s=3.0))
    return outcome.summary.run_id


def test_allowed_and_denied_runs_store_their_decision_inputs(ledger_url: str, tmp_path: Path) -> None:
    allowed_ctx = pr_context(title=HOSTILE_TITLE, labels=["ai:go", "\u202elabel"])
    denied_ctx = pr_context(diff_lines=9000)
    allowed, denied = _run(ledger_url, allowed_ctx, tmp_path), _run(ledger_url, denied_ctx, tmp_path)
    store = open_ledger(ledger_url)
    try:
        runs = {r: store.get_run(r) for r in (allowed, denied)}
    finally:
        store.close()
    a, d = runs[allowed], runs[denied]
    assert a is not None and d is not None and a.decision == "allow" and d.decision == "deny"
    for run, ctx in ((a, allowed_ctx), (d, denied_ctx)):
        assert run.inputs is not None and is_exact(run.inputs)
        back = context_from_inputs(run.inputs)
        assert back is not None
        # everything but the (redacted) title comes back exactly as the engine got it
        assert back.model_dump(exclude={"title"}) == ctx.model_dump(exclude={"title"})
        assert back.team is None  # stored before teams: resolution
        # the budget statuses the decision read: the demo policy's two budgets, for this run's keys
        assert sorted(b["name"] for b in run.inputs["budgets"]) == ["org-monthly", "repo-daily"]
    title = context_from_inputs(a.inputs).title  # type: ignore[union-attr, arg-type]
    assert FAKE_KEY not in title and "[REDACTED]" in title and "\u202e" in title  # kept, escaped on output
    column = dumps(a.inputs)
    assert column is not None and column.isascii() and "\x00" not in column and FAKE_KEY not in column


def test_runs_without_inputs_and_cut_lists_are_not_exact() -> None:
    from ci_guard.policy.decision import Decision

    assert not is_exact(None) and context_from_inputs({"version": 99}) is None
    ctx = RunContext(changed_paths=[f"f{i}" for i in range(MAX_LIST + 5)])
    inputs = decision_inputs(ctx, Decision(decision="allow", context=ctx), datetime.now(UTC))
    assert inputs["truncated"] == ["context.changed_paths"] and not is_exact(inputs)
    assert len(inputs["context"]["changed_paths"]) == MAX_LIST


def test_stored_contexts_read_fast_exactly_as_validated() -> None:
    from ci_guard.policy import inputs as mod

    declared = set(RunContext.model_fields)
    known = mod.STR_FIELDS | mod.INT_FIELDS | mod.BOOL_FIELDS | mod.LIST_FIELDS | {"platform"}
    assert known == declared  # a new RunContext field must be added to the fast reader's table
    ctx = pr_context(title="t\u202e", labels=["a", "b"], changed_paths=None, pr=None, draft=None)
    stored = decision_inputs(ctx, __import__("ci_guard.policy.decision", fromlist=["Decision"]).Decision(
        decision="allow", context=ctx), datetime.now(UTC))
    back = context_from_inputs(stored)
    assert back is not None and back == RunContext.model_validate(stored["context"]) == ctx
    # a shape ci-guard never writes falls back to validation: wrong types are refused, not trusted
    bad = {**stored, "context": {**stored["context"], "pr": "12"}}
    assert context_from_inputs(bad) == ctx.model_copy(update={"pr": 12})
    worse = {**stored, "context": {**stored["context"], "labels": "not-a-list", "platform": "mars"}}
    assert context_from_inputs(worse) is None
    lone = {**stored, "context": {**stored["context"], "title": "x\ud800"}}
    assert context_from_inputs(lone).title == "x\ufffd"  # type: ignore[union-attr]
