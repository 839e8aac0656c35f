"""The demo: decisions, three metered runs on the simulator, the ledger and the PR comment.

Everything runs locally: the provider is the built-in simulator, the ledger an SQLite file in the
demo directory, the agent a small scripted one (``python -m ci_guard.demo.agent``). Each step
checks its own outcome, so the demo doubles as a smoke test of an installation.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TextIO

from ci_guard.context.model import RunContext
from ci_guard.meter.runner import RunOutcome, RunRequest, run_agent
from ci_guard.meter.summary import RunSummary
from ci_guard.meter.upstreams import Upstreams

DEMO_KEY = "sk-ant-demo-provider-key-0000000000"  # what the simulator accepts; the agent never sees it
REPO = "acme/web"


@dataclass
class Step:
    title: str
    ok: bool
    detail: str


def policy_path() -> Path:
    return Path(str(resources.files("ci_guard.demo") / "policy.yml"))


def pr_context(**changes: object) -> RunContext:
    base = RunContext(platform="github", repo=REPO, org="acme", pr=42, trigger="pull_request",
                      event_name="pull_request", base_branch="main", head_branch="feature/login",
                      actor="alice", labels=[], draft=False, fork=False, diff_lines=320, diff_files=7,
                      changed_paths=["src/login.py", "tests/test_login.py"], agent="pr-review",
                      workflow="ai-review", title="Add login throttling")
    return base.model_copy(update=changes)


class Rehearsal:
    def __init__(self, workdir: Path, out: TextIO | None = None, quiet_calls: bool = False) -> None:
        self.workdir = workdir
        self.out = out or sys.stdout
        self.quiet_calls = quiet_calls
        self.ledger_url = f"sqlite:///{(workdir / 'ledger.db').resolve()}"
        self.steps: list[Step] = []
        self.summaries: list[RunSummary] = []

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def check(self, title: str, ok: bool, detail: str) -> None:
        self.steps.append(Step(title, ok, detail))
        self.say(f"  {'✓' if ok else '✗'} {title}: {detail}")

    # -- steps ---------------------------------------------------------------------------------
    def decisions(self) -> None:
        from ci_guard.policy.decide import evaluate, load_policy

        self.say("1. Decisions before any model call (policy: ci_guard/demo/policy.yml)")
        policy = load_policy(policy_path())
        cases = [
            ("a draft PR", pr_context(draft=True), "skip"),
            ("a 9,000-line PR", pr_context(diff_lines=9000), "deny"),
            ("a PR review on main", pr_context(), "allow"),
            ("a test-repair bot", pr_context(agent="test-repair", trigger="push", pr=None), "allow"),
        ]
        for label, ctx, expected in cases:
            d = evaluate(policy, ctx, now=datetime.now(UTC))
            limits = d.limits
            extra = (f" on {d.model}, max {limits.max_turns} turns, ${limits.max_cost_usd}"
                     if d.allowed else f" ({d.reason})")
            self.check(label, d.decision == expected, f"{d.decision} by rule {d.rule!r}{extra}")
        self.say()

    def metered_run(self, number: int, title: str, scenario: str, ctx: RunContext, agent_args: list[str],
                    expect: Callable[[RunOutcome], tuple[bool, str]]) -> None:
        from ci_guard.simulator.server import run_simulator

        self.say(f"{number}. {title} (simulator scenario: {scenario})")
        with run_simulator(scenario, api_key=DEMO_KEY) as sim:
            request = RunRequest(
                policy_path=str(policy_path()), context=ctx,
                command=[sys.executable, "-m", "ci_guard.demo.agent", *agent_args],
                ledger_url=self.ledger_url, preset="none",
                upstreams=Upstreams(anthropic=sim.url, openai=sim.openai_url, anthropic_api_key=DEMO_KEY,
                                    openai_api_key=DEMO_KEY),
                summary_path=str(self.workdir / f"run-{number}.json"), quiet=self.quiet_calls,
                environ=_agent_base_env(), grace_s=1.0, kill_after_s=3.0,
            )
            outcome = run_agent(request)
            served = len(sim.served)
        self.summaries.append(outcome.summary)
        ok, detail = expect(outcome)
        recorded = sum(1 for c in outcome.summary.calls if c.status != "refused")
        self.check(title, ok and recorded == served,
                   f"{detail}; {recorded} calls in the ledger = {served} answered by the provider")
        self.say()

    def ledger(self) -> None:
        from ci_guard.ledger import open_ledger
        from ci_guard.policy.decide import load_policy

        self.say("5. The ledger (SQLite): budgets after these runs")
        store = open_ledger(self.ledger_url)
        try:
            statuses = store.budget_status(load_policy(policy_path()).budgets, pr_context(), datetime.now(UTC))
            runs = store.list_runs(repo=REPO, pr=42)
        finally:
            store.close()
        for b in statuses:
            self.say(f"    {b.name:<12} {b.scope}={b.scope_key:<9} spent ${b.spent_usd} of ${b.limit_usd} "
                     f"(reserved ${b.reserved_usd}, {b.remaining_pct}% left)")
        total = sum((s.cost_usd for s in self.summaries), start=type(self.summaries[0].cost_usd)(0))
        spent = {b.name: b.spent_usd for b in statuses}
        self.check("budgets match the runs", spent.get("org-monthly") == total and
                   all(b.reserved_usd == 0 for b in statuses),
                   f"org-monthly spent ${spent.get('org-monthly')} = ${total} summed from the run summaries, "
                   "no reservation left behind")
        self.check("runs recorded", len(runs) >= 2, f"{len(runs)} runs of PR #42 in the ledger")
        self.say()

    def comment(self) -> None:
        self.say("6. The cost comment ci-guard would post on PR #42 (dry run)")
        from ci_guard.ledger import open_ledger
        from ci_guard.report.history import summaries_for_pr
        from ci_guard.report.render import render_comment

        store = open_ledger(self.ledger_url)
        try:
            history = summaries_for_pr(store, REPO, 42)
        finally:
            store.close()
        current = self.summaries[-1:]
        earlier = [h for h in history if h.run_id not in {c.run_id for c in current}]
        markdown = render_comment(current, earlier, platform="github").body
        path = self.workdir / "comment.md"
        path.write_text(markdown, encoding="utf-8")
        for line in markdown.splitlines()[:14]:
            self.say("    " + line)
        self.say(f"    ... (full comment: {path})")
        self.check("comment rendered", f"over {len(self.summaries)} agent runs" in markdown,
                   f"{len(markdown):,} characters, all {len(self.summaries)} runs of PR #42 from the ledger")
        self.say()

    def finops(self) -> None:
        """The month as a FOCUS export and a static dashboard, both adding up to the runs' total."""
        import csv
        from decimal import Decimal

        from ci_guard.ledger import open_ledger
        from ci_guard.ledger.periods import period_bounds
        from ci_guard.report.dashboard import build_dashboard, render_dashboard
        from ci_guard.report.finops import Period
        from ci_guard.report.focus import focus_rows, write_focus_csv

        self.say("7. FinOps: this month as FOCUS rows and a static dashboard")
        # From the month the first run started in to the end of this one: a demo run across
        # midnight at the end of a month still finds all of its calls.
        first = min(datetime.fromisoformat(s.started_at) for s in self.summaries if s.started_at)
        start = period_bounds("month", "UTC", first)[0]
        end = period_bounds("month", "UTC", datetime.now(UTC))[1]
        focus_path, html_path = self.workdir / "focus.csv", self.workdir / "dashboard.html"
        store = open_ledger(self.ledger_url)
        period = Period(start, end, "UTC", f"{start:%Y-%m}")
        try:
            with open(focus_path, "w", encoding="utf-8", newline="") as out:
                rows = write_focus_csv(focus_rows(store.export_calls(start, end)), out)
            previous = period.previous()
            board = build_dashboard(store.period_runs(start, end),
                                    store.period_runs(previous.start, previous.end, with_calls=False), period)
        finally:
            store.close()
        html_path.write_text(render_dashboard(board), encoding="utf-8")
        with open(focus_path, encoding="utf-8", newline="") as fh:
            billed = sum((Decimal(r["BilledCost"]) for r in csv.DictReader(fh)), Decimal(0))
        total = sum((s.cost_usd for s in self.summaries), Decimal(0))
        self.check("FOCUS export", billed == total and rows == board.calls,
                   f"{rows} rows in {focus_path.name}, BilledCost ${billed} = ${total} from the run summaries")
        self.check("dashboard", board.total_usd == total,
                   f"{html_path} ({board.run_count} runs, {board.calls} calls, ${board.total_usd})")
        self.say()

    def run(self) -> bool:
        self.say(f"ci-guard demo — everything local: simulator, SQLite ledger at {self.workdir / 'ledger.db'}\n")
        self.decisions()
        self.metered_run(2, "PR review by a well-behaved agent", "tool-loop", pr_context(), ["--stream"],
                         lambda o: (o.exit_code == 0 and o.summary.status == "completed",
                                    f"completed in {o.summary.turns} turns, ${o.summary.cost_usd}"))
        self.metered_run(3, "A runaway test-repair agent", "endless-loop",
                         pr_context(agent="test-repair"), [],
                         lambda o: (o.exit_code == 81 and o.summary.stop_reason == "max_turns",
                                    f"stopped by {o.summary.stop_reason} after {o.summary.turns} turns, "
                                    f"${o.summary.cost_usd}"))
        self.metered_run(4, "A retry storm against an overloaded provider", "retry-storm", pr_context(),
                         ["--retries", "50"],
                         lambda o: (o.exit_code == 81 and o.summary.stop_reason == "retry_storm",
                                    f"stopped by {o.summary.stop_reason} after "
                                    f"{sum(1 for c in o.summary.calls if c.status == 'error')} identical errors"))
        self.ledger()
        self.comment()
        self.finops()
        failed = [s for s in self.steps if not s.ok]
        self.say("All steps behaved as expected." if not failed else f"{len(failed)} step(s) did not behave.")
        self.say(f"Run summaries, ledger, comment, FOCUS export and dashboard are in {self.workdir}")
        return not failed


def _agent_base_env() -> dict[str, str]:
    import os

    # The agent inherits ci-guard's environment minus the provider keys (ci-guard removes those).
    return {k: v for k, v in os.environ.items()}
