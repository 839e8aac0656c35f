"""The context policy through the proxy, against the simulator: what goes upstream, what is recorded."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx

from ci_guard.meter.summary import context_savings
from ci_guard.policy.decision import ContextPolicy, Limits, Route
from ci_guard.policy.models import ClearSpec, PruneSpec, RouteWhen
from ci_guard.simulator.server import run_simulator
from tests.meter.harness import REAL_KEY, echo_upstream, proxied

LOG = "".join(f"tests/test_mod.py::test_{i:05d} FAILED - AssertionError: expected 1 got 2\n" for i in range(3000))
PRUNE = PruneSpec(max_tokens=1000, keep={"head_lines": 20, "tail_lines": 40})
EVERYTHING = ContextPolicy(
    cache="auto", prune_tool_results=PRUNE, clear_old_tool_results=ClearSpec(trigger_tokens=500_000),
    route=[Route(name="side", when=RouteWhen(tools="none", max_output_tokens="<= 64"), model="claude-haiku-4-5")],
    max_thinking_tokens=8000)


def post(p, body: dict, headers: dict | None = None, path: str = "/v1/messages") -> httpx.Response:
    h = {"x-api-key": p.token, "anthropic-version": "2023-06-01", "content-type": "application/json",
         **(headers or {})}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{p.anthropic_url}{path}", content=data, headers=h, timeout=30)


def session_turns(n: int) -> list[dict]:
    """The request of each turn of a test-repair loop whose test run prints LOG every time."""
    messages: list[dict] = [{"role": "user", "content": "The tests fail. Fix them."}]
    out = []
    for i in range(n):
        out.append({"model": "claude-sonnet-4-5", "max_tokens": 2048, "system": "You are a careful engineer. " * 300,
                    "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object"}}],
                    "messages": list(messages)})
        messages = [
            *messages,
            {"role": "assistant", "content": [{"type": "text", "text": f"Running the tests, attempt {i}."},
                                              {"type": "tool_use", "id": f"toolu_{i:03d}", "name": "Bash",
                                               "input": {"command": "pytest"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i:03d}", "content": LOG}]}]
    return out


def test_a_request_no_rule_applies_to_passes_byte_for_byte() -> None:
    raw = (b'{"model": "claude-sonnet-4-5",  "max_tokens": 4096, "stream": false, "tools": [{"name": "Bash", '
           b'"input_schema": {}}], "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],'
           b' "thinking": {"type": "enabled", "budget_tokens": 2000}, "messages": [{"role": "user", '
           b'"content": [{"type": "tool_result", "tool_use_id": "t", "content": "small \\u00e9"}]}]}')
    with echo_upstream() as up, proxied(up.url, context_policy=EVERYTHING) as p:
        r = post(p, raw, {"anthropic-beta": "claude-code-20250219"})
        assert r.status_code == 200
        assert up.requests[0]["raw"] == raw
        assert {k.lower(): v for k, v in up.requests[0]["headers"].items()}["anthropic-beta"] == "claude-code-20250219"
        assert p.calls[0].context == {"agent_caches": True} and p.calls[0].context_saved_usd == 0


def test_pruning_and_caching_a_repair_loop_still_gets_cache_reads_and_saves() -> None:
    turns = session_turns(5)
    policy = ContextPolicy(cache="auto", prune_tool_results=PRUNE)
    with run_simulator("prefix-cache", api_key=REAL_KEY) as sim, proxied(sim.url, context_policy=policy) as p:
        for body in turns:
            assert post(p, body).status_code == 200
        usages = [r["usage"] for r in sim.served]
        calls = p.calls
    seen = sim.bodies
    # the model saw every log but the newest one pruned, each cut the same way on every turn
    first_cut = seen[2]["messages"][2]["content"][0]["content"]
    assert "[ci-guard:" in first_cut and len(first_cut) < len(LOG) / 10
    assert all(b["messages"][2]["content"][0]["content"] == first_cut for b in seen[3:])
    assert seen[4]["messages"][-1]["content"][0]["content"] == LOG  # the newest turn is whole
    # later turns read the pruned prefix from the cache
    assert all(u["cache_read_input_tokens"] > 0 for u in usages[1:])
    assert usages[4]["cache_read_input_tokens"] > usages[2]["cache_read_input_tokens"]
    assert calls[4].context["breakpoints_added"] == 3  # tools, system, last reply (the newest log is not cached)
    assert calls[4].context["pruned_results"] == 3 and calls[4].context["method"] == "estimate"
    total_saved = sum((c.context_saved_usd for c in calls), Decimal(0))
    assert total_saved > 0
    totals = context_savings(calls, sum((c.cost_usd for c in calls), Decimal(0)))
    assert totals is not None and Decimal(totals["saved_usd"]) == total_saved and Decimal(totals["share_pct"]) > 50


def test_anthropic_context_editing_is_sent_with_its_beta_and_cleared_tokens_are_recorded() -> None:
    turns = session_turns(6)
    policy = ContextPolicy(clear_old_tool_results=ClearSpec(trigger_tokens=40_000, keep_last=2))
    with run_simulator("prefix-cache", api_key=REAL_KEY) as sim, proxied(sim.url, context_policy=policy) as p:
        json_answer = post(p, turns[5])
        assert json_answer.status_code == 200
        with httpx.stream("POST", f"{p.anthropic_url}/v1/messages", json={**turns[4], "stream": True},
                          headers={"x-api-key": p.token, "anthropic-version": "2023-06-01",
                                   "anthropic-beta": "claude-code-20250219"}, timeout=30) as s:
            stream_text = "".join(s.iter_text())
        calls = p.calls
    edits = json_answer.json()["context_management"]["applied_edits"]
    assert edits[0]["cleared_tool_uses"] == 3  # five results, keep the newest two
    assert calls[0].context["cleared_tokens"] == edits[0]["cleared_input_tokens"] > 40_000
    assert calls[0].context["cleared_by"] == "provider" and calls[0].context["method"] == "provider-reported"
    assert Decimal(calls[0].context["saved_usd"]) > 0
    assert '"context_management"' in stream_text
    assert calls[1].context["cleared_results"] == 2 and calls[1].context["cleared_tokens"] > 0
    assert sim.served[1]["applied_edits"][0]["cleared_tool_uses"] == 2


def test_no_beta_for_a_model_without_context_editing_the_proxy_clears_instead() -> None:
    body = {**session_turns(6)[5], "model": "claude-3-5-haiku"}
    policy = ContextPolicy(clear_old_tool_results=ClearSpec(trigger_tokens=40_000, keep_last=2))
    with echo_upstream() as up, proxied(up.url, model=None, context_policy=policy) as p:
        assert post(p, body).status_code == 200
        sent = up.requests[0]
        calls = p.calls
    assert "context_management" not in sent["json"]
    assert "anthropic-beta" not in {k.lower() for k in sent["headers"]}
    results = [m["content"][0]["content"] for m in sent["json"]["messages"][2::2]]
    assert results[:3] == ["[ci-guard: this old tool result was cleared by the context policy]"] * 3
    assert results[3:] == [LOG, LOG]
    assert calls[0].context["cleared_by"] == "proxy" and calls[0].context["cleared_results"] == 3


def test_a_title_side_call_is_routed_and_the_served_model_and_rule_recorded() -> None:
    title = {"model": "claude-sonnet-4-5", "max_tokens": 64, "system": [
        {"type": "text", "text": "Generate a concise title for this coding session."}],
        "messages": [{"role": "user", "content": "Fix the flaky test in the parser."}]}
    policy = ContextPolicy(route=[Route(name="titles", when=RouteWhen(agent_call="title"), model="claude-haiku-4-5")])
    with run_simulator("tool-loop", api_key=REAL_KEY) as sim, proxied(sim.url, context_policy=policy) as p:
        assert post(p, title).status_code == 200
        main = session_turns(1)[0]
        assert post(p, main).status_code == 200
        calls = p.calls
    assert [r["model"] for r in sim.served] == ["claude-haiku-4-5", "claude-sonnet-4-5"]
    assert calls[0].model_requested == "claude-sonnet-4-5" and calls[0].model_served == "claude-haiku-4-5"
    assert calls[0].context["route"] == "titles" and calls[0].context["routed_to"] == "claude-haiku-4-5"
    assert Decimal(calls[0].context["saved_usd"]) > 0
    assert Decimal(calls[0].context["cost_as_sent_usd"]) > calls[0].cost_usd
    assert calls[1].context is None


def test_openai_chat_is_pruned_but_never_given_cache_markers() -> None:
    def call(i: str) -> dict:
        return {"role": "assistant", "tool_calls": [{"id": i, "type": "function",
                                                     "function": {"name": "sh", "arguments": "{}"}}]}

    body = {"model": "gpt-5", "messages": [
        {"role": "user", "content": "fix"}, call("c1"), {"role": "tool", "tool_call_id": "c1", "content": LOG},
        call("c2"), {"role": "tool", "tool_call_id": "c2", "content": LOG}]}
    policy = ContextPolicy(cache="auto", prune_tool_results=PRUNE)
    with run_simulator("tool-loop", api_key=REAL_KEY) as sim, proxied(sim.url, model="gpt-5",
                                                                      context_policy=policy) as p:
        r = httpx.post(f"{p.openai_url}/chat/completions", json=body, headers={"authorization": f"Bearer {p.token}"},
                       timeout=30)
        assert r.status_code == 200
        calls = p.calls
    seen = sim.bodies[0]
    assert "cache_control" not in json.dumps(seen)
    assert "[ci-guard:" in seen["messages"][2]["content"] and seen["messages"][4]["content"] == LOG
    assert calls[0].context["pruned_results"] == 1


def test_the_step_summary_says_what_the_context_policy_saved() -> None:
    from ci_guard.meter.outputs import run_step_summary
    from ci_guard.meter.summary import RunSummary

    summary = RunSummary(run_id="r", decision={"decision": "allow", "rule": "x"}, status="completed",
                         context_savings={"saved_usd": "1.25", "share_pct": "62.5", "calls_changed": 4,
                                          "method": "estimate"})
    assert "Context policy saved $1.25, 62.5% of this run (4 calls changed; estimate)." in run_step_summary(summary)
    assert "Context policy" not in run_step_summary(summary.model_copy(update={"context_savings": None}))


def test_the_context_cap_judges_the_pruned_request_not_the_one_the_agent_sent() -> None:
    body = session_turns(4)[3]  # three logs of ~52,000 tokens each (~166,000 in all); the newest stays whole
    limits = Limits(max_context_tokens=80_000)
    with echo_upstream() as up:
        with proxied(up.url, limits=limits) as p:
            refused = post(p, body)
        with proxied(up.url, limits=limits, context_policy=ContextPolicy(prune_tool_results=PRUNE)) as p:
            allowed = post(p, body)
    assert refused.status_code == 400 and "max_context" in refused.text
    assert allowed.status_code == 200 and len(up.requests) == 1


def test_a_large_lazily_read_request_passes_byte_for_byte_or_is_pruned() -> None:
    from ci_guard.meter.providers.body import LAZY_MIN_BYTES

    small_results = session_turns(1)[0]
    small_results["messages"][0]["content"] = "Fix it. " + "context " * (LAZY_MIN_BYTES // 4)  # user text
    small_results["system"] = [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}]
    raw = json.dumps(small_results).encode()
    assert len(raw) > LAZY_MIN_BYTES
    with echo_upstream() as up, proxied(up.url, context_policy=EVERYTHING) as p:
        assert post(p, raw).status_code == 200
        assert post(p, session_turns(3)[2]).status_code == 200
        calls = p.calls
    assert up.requests[0]["raw"] == raw and calls[0].context == {"agent_caches": True}
    pruned = up.requests[1]["json"]
    assert "[ci-guard:" in pruned["messages"][2]["content"][0]["content"]
    assert pruned["messages"][4]["content"][0]["content"] == LOG
    assert calls[1].context["pruned_results"] == 1 and calls[1].context["breakpoints_added"] == 3


def test_calls_the_policy_only_looked_at_are_not_counted_as_changed() -> None:
    from datetime import UTC, datetime

    from ci_guard.ledger.records import CallRecord
    from ci_guard.pricing.usage import Usage

    now = datetime.now(UTC)

    def record(context: dict | None, saved: str) -> CallRecord:
        return CallRecord(run_id="r", seq=1, started_at=now, ended_at=now, provider="anthropic", endpoint="messages",
                          model_requested="m", model_served="m", usage=Usage(input_tokens=1), cost_usd=Decimal("0.5"),
                          context=context, context_saved_usd=Decimal(saved))

    assert context_savings([record({"agent_caches": True}, "0")], Decimal("0.5")) is None
    totals = context_savings([record({"agent_caches": True}, "0"),
                              record({"pruned_results": 1, "pruned_tokens": 900, "method": "estimate"}, "0.5")],
                             Decimal("1.0"))
    assert totals is not None and totals["calls_changed"] == 1 and totals["share_pct"] == "33.3"


def thinking_turns(n: int, budget: int = 4000) -> dict:
    """A request with extended thinking on whose history has ``n`` assistant turns with thinking blocks."""
    body = session_turns(n + 1)[n]
    for m in body["messages"]:
        if m["role"] == "assistant":
            m["content"] = [{"type": "thinking", "thinking": "Let me look at the failures. " * 200,
                             "signature": "sig-" + "x" * 40}, *m["content"]]
    return {**body, "max_tokens": 16000, "thinking": {"type": "enabled", "budget_tokens": budget}}


def test_old_thinking_is_cleared_server_side_with_its_beta_and_the_cleared_turns_recorded() -> None:
    policy = ContextPolicy(clear_old_thinking={"keep_turns": 1},
                           clear_old_tool_results=ClearSpec(trigger_tokens=40_000, keep_last=2))
    body = thinking_turns(4)
    with run_simulator("prefix-cache", api_key=REAL_KEY) as sim, proxied(sim.url, context_policy=policy) as p:
        answer = post(p, body)
        assert answer.status_code == 200, answer.text
        with httpx.stream("POST", f"{p.anthropic_url}/v1/messages", json={**body, "stream": True},
                          headers={"x-api-key": p.token, "anthropic-version": "2023-06-01"}, timeout=30) as s:
            stream_text = "".join(s.iter_text())
        no_thinking = {k: v for k, v in session_turns(5)[4].items()}  # thinking off: no thinking edit
        assert post(p, no_thinking).status_code == 200
        calls = p.calls
    edits = sim.served[0]["applied_edits"]
    assert [e["type"] for e in edits] == ["clear_thinking_20251015", "clear_tool_uses_20250919"]
    assert edits[0]["cleared_thinking_turns"] == 3  # four turns with thinking, the newest kept
    context = calls[0].context
    assert context["thinking_edit"] and context["context_edit"] and context["cleared_thinking_turns"] == 3
    assert context["cleared_tokens"] == sum(e["cleared_input_tokens"] for e in edits)
    assert context["method"] == "provider-reported" and Decimal(context["saved_usd"]) > 0
    assert '"cleared_thinking_turns":3' in stream_text.replace(" ", "")
    assert calls[1].context["cleared_thinking_turns"] == 3
    assert "thinking_edit" not in calls[2].context and calls[2].context["context_edit"]
    totals = context_savings(calls, sum((c.cost_usd for c in calls), Decimal(0)))
    assert totals is not None and totals["cleared_thinking_turns"] == 6


def test_no_thinking_edit_for_a_model_without_context_editing() -> None:
    policy = ContextPolicy(clear_old_thinking={"keep_turns": 1})
    body = {**thinking_turns(2), "model": "claude-3-5-haiku"}
    with echo_upstream() as up, proxied(up.url, model=None, context_policy=policy) as p:
        assert post(p, body).status_code == 200
        sent = up.requests[0]
        calls = p.calls
    assert sent["raw"] == json.dumps(body).encode()
    assert "anthropic-beta" not in {k.lower() for k in sent["headers"]}
    assert calls[0].context is None


def test_a_clamp_that_drops_thinking_drops_the_thinking_edit_too() -> None:
    from ci_guard.meter.providers.anthropic import AnthropicMessages

    body = {"model": "claude-sonnet-4-5", "max_tokens": 8000, "thinking": {"type": "enabled", "budget_tokens": 4000},
            "context_management": {"edits": [{"type": "clear_thinking_20251015"},
                                             {"type": "clear_tool_uses_20250919"}]}, "messages": []}
    out = AnthropicMessages().clamp_output(body, 1000)
    assert "thinking" not in out and out["context_management"]["edits"] == [{"type": "clear_tool_uses_20250919"}]
    only = {**body, "context_management": {"edits": [{"type": "clear_thinking_20251015"}]}}
    assert "context_management" not in AnthropicMessages().clamp_output(only, 1000)


def test_openai_reasoning_effort_above_the_ceiling_is_lowered_and_recorded() -> None:
    policy = ContextPolicy(max_reasoning_effort="medium")
    chat = {"model": "gpt-5", "reasoning_effort": "high", "messages": [{"role": "user", "content": "hi"}]}
    responses = {"model": "gpt-5", "reasoning": {"effort": "xhigh", "summary": "auto"}, "input": "hi"}
    low = {**chat, "reasoning_effort": "low"}
    with echo_upstream() as up, proxied(up.url, model=None, context_policy=policy) as p:
        for path, body in (("/chat/completions", chat), ("/responses", responses), ("/chat/completions", low)):
            r = httpx.post(f"{p.openai_url}{path}", content=json.dumps(body).encode(), timeout=30,
                           headers={"authorization": f"Bearer {p.token}", "content-type": "application/json"})
            assert r.status_code == 200, r.text
        sent = [r["json"] for r in up.requests]
        calls = p.calls
    assert sent[0]["reasoning_effort"] == "medium"
    assert sent[1]["reasoning"] == {"effort": "medium", "summary": "auto"}
    assert sent[2]["reasoning_effort"] == "low" and up.requests[2]["raw"] == json.dumps(low).encode()
    for call, before in zip(calls[:2], ("high", "xhigh"), strict=True):
        assert (call.context["reasoning_effort_from"], call.context["reasoning_effort_to"]) == (before, "medium")
        # like a clamped thinking budget, the saving is unknown before the call: never claimed
        assert call.context["saved_usd"] == "0.000000" and call.context_saved_usd == 0
    assert calls[2].context is None
    from ci_guard.meter.live_log import context_note

    assert "reasoning effort high -> medium" in context_note(calls[0].context)
