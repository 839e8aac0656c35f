"""Run summaries built in code for the comment tests and goldens (no I/O, fixed times)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ci_guard.meter.summary import CallSummary, RunSummary

HOSTILE = ("x | y <img src=x onerror=alert(1)> @octocat @acme/admins `rm -rf` [link](https://evil.example) "
           "**b**\nsecond line ~bug !3 %v1 $snip")


def context(**over: Any) -> dict[str, Any]:
    ctx = {"platform": "github", "repo": "acme/app", "pr": 12, "agent": "pr-review", "head_branch": "feat/login",
           "base_branch": "main", "title": "Add login form", "sha": "0123456789abcdef", "actor": "dev1",
           "run_url": "https://github.com/acme/app/actions/runs/99"}
    ctx.update(over)
    return ctx


def decision(kind: str = "allow", **over: Any) -> dict[str, Any]:
    dec = {
        "decision": kind, "rule": "default-review", "reason": "pull request with a small diff",
        "model": "claude-sonnet-4-5", "model_tier": "standard",
        "limits": {"max_turns": 30, "max_cost_usd": "5.00", "max_runtime_s": 1800, "max_context_tokens": None,
                   "max_tool_calls": 200, "max_identical_retries": 5},
        "budgets": [
            {"name": "org-monthly", "scope": "org", "scope_key": "acme", "period": "month",
             "limit_usd": "2000", "spent_usd": "812.40", "reserved_usd": "5.00"},
            {"name": "repo-daily", "scope": "repo", "scope_key": "acme/app", "period": "day",
             "limit_usd": "50", "spent_usd": "3.10", "reserved_usd": "0"},
        ],
        "enforcement": {}, "notes": [], "hint": None, "context": context(),
    }
    dec.update(over)
    return dec


def call(seq: int, cost: str = "0.0421", model: str = "claude-sonnet-4-5", status: str = "ok",
         http_status: int = 200, error: str | None = None, tools: int = 1) -> CallSummary:
    return CallSummary(seq=seq, provider="anthropic", endpoint="messages", model=model, status=status,
                       http_status=http_status, stream=True,
                       tokens={"input": 1200 + seq, "cache_write": 800, "cache_read": 15000 + 100 * seq,
                               "output": 400 + seq, "reasoning": 0},
                       tool_calls=tools, cost_usd=Decimal(cost), latency_ms=1800 + 10 * seq, error=error)


def run(run_id: str = "run-normal", *, run_status: str = "completed", stop_reason: str | None = None,
        stop_detail: str | None = None, calls: int = 3, total: str | None = None, started: str = "2026-03-02T10:00:00Z",
        ended: str = "2026-03-02T10:04:12Z", dec: dict[str, Any] | None = None, turns: int | None = None,
        **call_kw: Any) -> RunSummary:
    call_list = [call(i, **call_kw) for i in range(1, calls + 1)]
    total_cost = Decimal(total) if total is not None else sum((c.cost_usd for c in call_list), Decimal(0))
    kinds = ("input", "cache_write", "cache_read", "output", "reasoning")
    tokens = {k: sum(c.tokens[k] for c in call_list) for k in kinds}
    return RunSummary(run_id=run_id, decision=dec or decision(), status=run_status, stop_reason=stop_reason,
                      stop_detail=stop_detail, agent_exit_code=0, turns=turns if turns is not None else calls,
                      tool_calls=sum(c.tool_calls for c in call_list), tokens=tokens, cost_usd=total_cost,
                      runtime_s=252.4, started_at=started, ended_at=ended, calls=call_list)


def normal() -> RunSummary:
    return run()


def capped() -> RunSummary:
    return run("run-capped", run_status="stopped", stop_reason="max_cost", calls=4, total="5.0132",
               stop_detail="the next call could cost more than the $5.00 left under max_cost_usd", cost="1.2533")


def retry_storm() -> RunSummary:
    return run("run-storm", run_status="stopped", stop_reason="retry_storm", calls=6, cost="0.0003",
               stop_detail="6 identical requests in a row answered 529 overloaded", status="error",
               http_status=529, error="overloaded_error: Overloaded", tools=0)


def denied() -> RunSummary:
    dec = decision("deny", rule="large-diff-needs-label", reason="diff of 2400 lines is over the 800-line limit",
                   model=None, budgets=[], hint="add the label ai:escalate (maintainers only)")
    return RunSummary(run_id="run-denied", decision=dec, status="denied", started_at="2026-03-02T11:00:00Z",
                      ended_at="2026-03-02T11:00:00Z")


def hostile() -> RunSummary:
    ctx = context(head_branch="evil|branch`\n## Heading @octocat", title=HOSTILE, agent="pr-review <b>@everyone</b>")
    dec = decision(rule="rule|with`tick", reason=HOSTILE, context=ctx,
                   budgets=[{"name": "team <x>|y", "scope": "team", "scope_key": "@acme/devs", "period": "month",
                             "limit_usd": "100", "spent_usd": "99.999", "reserved_usd": "0"}])
    return run("run-hostile", run_status="error", stop_detail=HOSTILE, calls=2, dec=dec, model="model|<x>@y\n`z`",
               error=HOSTILE)


def several() -> list[RunSummary]:
    """Three earlier runs of the PR (one capped, one denied) and the current one."""
    first = run("run-a", started="2026-03-01T09:00:00Z", ended="2026-03-01T09:03:00Z", calls=2)
    second = run("run-b", run_status="stopped", stop_reason="max_turns", started="2026-03-01T15:00:00Z",
                 ended="2026-03-01T15:20:00Z", calls=3, turns=30, stop_detail="30 of 30 turns used")
    third = denied()
    third.started_at, third.ended_at = "2026-03-02T08:00:00Z", "2026-03-02T08:00:00Z"
    current = run("run-d", started="2026-03-02T10:00:00Z", ended="2026-03-02T10:04:12Z", calls=2)
    return [first, second, third, current]
