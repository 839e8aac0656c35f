"""The context-policy transforms on request bodies (no sockets): each alone, and nothing when nothing applies."""

from __future__ import annotations

import copy
import json

import pytest

from ci_guard.meter.transforms import ContextTransforms, cache, clear, prune, reasoning, route, thinking
from ci_guard.meter.transforms.toolresults import tool_results
from ci_guard.policy.decision import ContextPolicy, Route
from ci_guard.policy.models import ClearSpec, PruneSpec, RouteWhen

LOG = "".join(f"test_{i:05d} ... FAILED assertion error in module line {i}\n" for i in range(3000))
SPEC = PruneSpec(max_tokens=500, keep={"head_lines": 5, "tail_lines": 10})


def anthropic_session(logs: int = 2, newest_log: bool = True) -> dict:
    messages: list[dict] = [{"role": "user", "content": "Fix the failing tests."}]
    for i in range(logs):
        messages.append({"role": "assistant", "content": [
            {"type": "text", "text": f"Running the tests ({i})."},
            {"type": "tool_use", "id": f"toolu_{i}", "name": "Bash", "input": {"command": "pytest"}}]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"toolu_{i}",
             "content": LOG if newest_log or i < logs - 1 else "ok"}]})
    return {"model": "claude-sonnet-4-5", "max_tokens": 1024, "system": "You fix tests.",
            "tools": [{"name": "Bash", "input_schema": {"type": "object"}}], "messages": messages}


def test_cut_keeps_head_and_tail_lines_with_a_marker_and_is_deterministic() -> None:
    out = prune.cut(LOG, SPEC)
    assert out is not None and out == prune.cut(LOG, SPEC)
    lines = out.split("\n")
    assert lines[:5] == LOG.split("\n")[:5]
    assert lines[-11:-1] == LOG.split("\n")[-11:-1]
    assert "[ci-guard: 2985 lines" in lines[5] and "500 tokens" in lines[5]
    assert len(out) < 4 * 500 + 400


def test_a_result_under_the_limit_or_with_huge_lines_is_handled() -> None:
    assert prune.cut("short\n" * 10, SPEC) is None
    one_line = "x" * 100_000
    out = prune.cut(one_line, SPEC)
    assert out is not None and len(out) < 3000 and out.startswith("x") and out.endswith("x")


def test_pruning_skips_the_newest_turn_and_excluded_tools_and_copies_instead_of_mutating() -> None:
    body = anthropic_session(logs=3)
    before = copy.deepcopy(body)
    done = prune.prune("messages", body, SPEC)
    assert body == before  # the agent's request is never changed in place
    assert done.results == 2  # the two older logs; the newest turn's log is left whole
    assert done.body["messages"][-1] is body["messages"][-1]
    assert done.tokens > 2 * 20000
    skipped = prune.prune("messages", body, PruneSpec(max_tokens=500, exclude_tools=["Bash"]))
    assert skipped.results == 0 and skipped.body is body


def test_the_same_result_is_cut_the_same_way_on_every_later_turn() -> None:
    turn3 = prune.prune("messages", anthropic_session(logs=3), SPEC).body
    turn4 = prune.prune("messages", anthropic_session(logs=4), SPEC).body
    encoded3 = json.dumps(turn3["messages"][:5])
    assert json.dumps(turn4["messages"][:5]) == encoded3  # the cached prefix stays identical


def test_openai_chat_tool_messages_and_responses_outputs_are_pruned() -> None:
    chat = {"model": "gpt-5", "messages": [
        {"role": "user", "content": "fix"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "sh", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": LOG},
        {"role": "assistant", "content": "again"},
        {"role": "user", "content": LOG}]}
    done = prune.prune("chat.completions", chat, SPEC)
    assert done.results == 1 and "[ci-guard:" in done.body["messages"][2]["content"]
    assert done.body["messages"][4]["content"] == LOG  # user text is not a tool result
    responses = {"model": "gpt-5", "input": [
        {"type": "function_call", "call_id": "c1", "name": "exec_command", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": LOG},
        {"type": "function_call", "call_id": "c2", "name": "exec_command", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c2", "output": LOG}]}
    done = prune.prune("responses", responses, SPEC)
    assert done.results == 1
    assert "[ci-guard:" in done.body["input"][1]["output"] and done.body["input"][3]["output"] == LOG


def test_cache_breakpoints_on_the_stable_prefix_at_most_four() -> None:
    body = anthropic_session(logs=2)
    out, added = cache.add_breakpoints(body)
    assert added == 4
    assert out["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert out["system"] == [{"type": "text", "text": "You fix tests.", "cache_control": {"type": "ephemeral"}}]
    assert out["messages"][-2]["content"][-1]["cache_control"] == {"type": "ephemeral"}  # the model's last reply
    assert out["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}  # the newest turn
    assert "cache_control" not in json.dumps(body)  # not in place
    assert json.dumps(out).count("cache_control") == 4
    _, without_newest = cache.add_breakpoints(body, skip_newest=True)
    assert without_newest == 3


def test_requests_that_manage_caching_are_left_alone() -> None:
    body = anthropic_session(logs=1)
    body["system"] = [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}]
    raw = json.dumps(body).encode()
    t = ContextTransforms(ContextPolicy(cache="auto")).apply(
        provider="anthropic", endpoint="messages", raw=raw, body=body, model="claude-sonnet-4-5", max_output=1024,
        input_tokens=1000, stream=False, set_model=lambda b, m: {**b, "model": m}, not_dearer=lambda a, b: True)
    assert t.body is body and t.changes.agent_caches and not t.changes.any()


def test_proxy_side_clearing_keeps_the_newest_and_respects_clear_at_least() -> None:
    body = anthropic_session(logs=5)
    spec = ClearSpec(trigger_tokens=10_000, keep_last=2)
    done = clear.clear("messages", body, spec, input_tokens=200_000)
    outputs = [r.text for r in tool_results("messages", done.body)]
    assert outputs[:3] == [clear.PLACEHOLDER] * 3 and outputs[3:] == [LOG, LOG]
    assert done.results == 3 and done.tokens > 3 * 20000
    assert clear.clear("messages", body, spec, input_tokens=9_000).body is body  # under the trigger
    greedy = ClearSpec(trigger_tokens=10_000, keep_last=2, clear_at_least=10**7)
    assert clear.clear("messages", body, greedy, input_tokens=200_000).body is body


def test_context_editing_only_for_models_that_support_it() -> None:
    assert clear.supports_context_editing("claude-sonnet-4-5")
    assert clear.supports_context_editing("claude-sonnet-4-5-20250929")
    assert clear.supports_context_editing("claude-opus-4-1-20250805")
    assert clear.supports_context_editing("claude-haiku-4-5")
    assert not clear.supports_context_editing("claude-3-5-haiku-20241022")
    assert not clear.supports_context_editing("claude-3-7-sonnet-latest")
    assert not clear.supports_context_editing(None)
    spec = ClearSpec(trigger_tokens=60000, keep_last=3, clear_at_least=5000, exclude_tools=["Read"])
    assert clear.anthropic_edit(spec) == {
        "type": "clear_tool_uses_20250919", "trigger": {"type": "input_tokens", "value": 60000},
        "keep": {"type": "tool_uses", "value": 3}, "clear_at_least": {"type": "input_tokens", "value": 5000},
        "exclude_tools": ["Read"]}
    assert clear.with_beta("claude-code-20250219,oauth-2025-04-20") == \
        "claude-code-20250219,oauth-2025-04-20,context-management-2025-06-27"
    assert clear.with_beta("context-management-2025-06-27") == "context-management-2025-06-27"
    assert clear.with_beta(None) == "context-management-2025-06-27"


def _route(**when: object) -> Route:
    return Route(name="r", when=RouteWhen(**when), model="claude-haiku-4-5")


def test_route_features() -> None:
    title = {"model": "claude-sonnet-4-5", "max_tokens": 512, "system": [
        {"type": "text", "text": "Generate a concise, sentence-case title for this conversation."}],
        "messages": [{"role": "user", "content": "hi"}]}
    f = route.features(title, "claude-sonnet-4-5", 512, 100, False)
    assert f.agent_call == "title" and not f.tools
    assert route.matches(_route(agent_call="title"), f)
    assert route.matches(_route(tools="none", max_output_tokens="<= 512"), f)
    assert not route.matches(_route(tools="none", max_output_tokens="< 512"), f)
    assert not route.matches(_route(stream=True), f)
    assert route.matches(_route(model="claude-sonnet-*", request_tokens="< 1000"), f)
    main = anthropic_session(logs=1)
    g = route.features(main, "claude-sonnet-4-5", None, 30000, True)
    assert g.tools and g.agent_call is None
    assert not route.matches(_route(max_output_tokens="<= 512"), g)  # no declared cap: unknown never matches


def test_routing_never_goes_to_a_dearer_model() -> None:
    policy = ContextPolicy(route=[_route(tools="none")])
    body = {"model": "claude-3-haiku", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    t = ContextTransforms(policy).apply(
        provider="anthropic", endpoint="messages", raw=json.dumps(body).encode(), body=body, model="claude-3-haiku",
        max_output=10, input_tokens=5, stream=False, set_model=lambda b, m: {**b, "model": m},
        not_dearer=lambda a, b: False)
    assert t.body is body and t.model == "claude-3-haiku" and t.changes.route is None


def test_thinking_budget_clamp_keeps_max_tokens_above_it() -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 32000, "thinking": {"type": "enabled", "budget_tokens": 31999}}
    out, before = thinking.clamp(body, 8000)
    assert before == 31999 and out["thinking"]["budget_tokens"] == 8000 and out["max_tokens"] > 8000
    assert body["thinking"]["budget_tokens"] == 31999
    assert thinking.clamp(out, 8000) == (out, None)


@pytest.mark.parametrize("endpoint", ["messages", "chat.completions", "responses"])
def test_nothing_applies_the_very_same_object_comes_back(endpoint: str) -> None:
    policy = ContextPolicy(cache="auto", prune_tool_results=SPEC,
                           clear_old_tool_results=ClearSpec(trigger_tokens=10**6),
                           route=[_route(tools="none", max_output_tokens="<= 10")], max_thinking_tokens=4000)
    if endpoint == "messages":  # already cached by the agent, small tool results, a tool call, a small budget
        body = {"model": "claude-sonnet-4-5", "max_tokens": 4096,
                "thinking": {"type": "enabled", "budget_tokens": 2000},
                "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
                "tools": [{"name": "Bash", "input_schema": {}}], "messages": [{"role": "user", "content": "hi"}]}
    elif endpoint == "chat.completions":
        body = {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}
    else:
        body = {"model": "gpt-5", "input": [{"role": "user", "content": "hi"}]}
    t = ContextTransforms(policy).apply(
        provider="anthropic" if endpoint == "messages" else "openai", endpoint=endpoint, raw=json.dumps(body).encode(),
        body=body, model=body["model"], max_output=None, input_tokens=50, stream=False,
        set_model=lambda b, m: {**b, "model": m}, not_dearer=lambda a, b: True)
    assert t.body is body and not t.changes.any() and t.beta is None


def test_cut_with_no_head_or_no_tail_lines() -> None:
    no_tail = prune.cut(LOG, PruneSpec(max_tokens=500, keep={"head_lines": 3, "tail_lines": 0}))
    assert no_tail is not None and no_tail.split("\n")[:3] == LOG.split("\n")[:3] and no_tail.endswith("]\n")
    no_head = prune.cut(LOG, PruneSpec(max_tokens=500, keep={"head_lines": 0, "tail_lines": 3}))
    assert no_head is not None and no_head.startswith("[ci-guard:")
    assert no_head.endswith(LOG[-3 * 60:].split("\n", 1)[1])


def test_a_tool_result_that_prints_cache_control_is_not_taken_for_a_breakpoint() -> None:
    body = anthropic_session(logs=1)
    body["messages"][-1]["content"][0]["content"] = 'grep found "cache_control": {"type": "ephemeral"}'
    assert not cache.manages_caching(body)
    body["messages"][-1]["content"][0]["cache_control"] = {"type": "ephemeral"}
    assert cache.manages_caching(body)
    assert cache.manages_caching({"cache_control": {"type": "ephemeral"}, "messages": []})


def _thinking_request(model: str = "claude-sonnet-4-5", thinking: dict | None = None) -> dict:
    body = anthropic_session(logs=2)
    body["model"] = model
    if thinking is not None:
        body["thinking"] = thinking
    return body


@pytest.mark.parametrize(("model", "thinking", "sent"), [
    ("claude-sonnet-4-5", {"type": "enabled", "budget_tokens": 2000}, True),
    ("claude-opus-4-5", {"type": "adaptive"}, True),
    ("claude-sonnet-4-5", None, False),  # the API refuses the edit without thinking on
    ("claude-sonnet-4-5", {"type": "disabled"}, False),
    ("claude-3-7-sonnet", {"type": "enabled", "budget_tokens": 2000}, False),  # no context editing
])
def test_the_thinking_edit_only_with_thinking_on_and_on_models_with_context_editing(
        model: str, thinking: dict | None, sent: bool) -> None:
    body = _thinking_request(model, thinking)
    t = ContextTransforms(ContextPolicy(clear_old_thinking={"keep_turns": 2})).apply(
        provider="anthropic", endpoint="messages", raw=b"", body=body, model=model, max_output=1024,
        input_tokens=100, stream=False, set_model=lambda b, m: {**b, "model": m}, not_dearer=lambda a, b: True)
    if sent:
        assert t.body["context_management"] == {"edits": [
            {"type": "clear_thinking_20251015", "keep": {"type": "thinking_turns", "value": 2}}]}
        assert t.beta == clear.BETA and t.changes.thinking_edit and not t.changes.context_edit
    else:
        assert t.body is body and t.beta is None and not t.changes.any()


def _apply_clearing(body: dict, policy: ContextPolicy):
    return ContextTransforms(policy).apply(
        provider="anthropic", endpoint="messages", raw=b"", body=body, model="claude-sonnet-4-5", max_output=1024,
        input_tokens=100_000, stream=False, set_model=lambda b, m: {**b, "model": m}, not_dearer=lambda a, b: True)


def test_the_agents_own_edits_are_kept_and_the_policys_other_edits_added() -> None:
    # Claude Code sends its own thinking edit (keep all, for caching) with thinking on
    claude_code = {"type": "clear_thinking_20251015", "keep": "all"}
    body = {**_thinking_request(thinking={"type": "enabled", "budget_tokens": 2000}),
            "context_management": {"edits": [claude_code]}}
    both = ContextPolicy(clear_old_thinking={"keep_turns": 1},
                         clear_old_tool_results=ClearSpec(trigger_tokens=50_000, keep_last=2))
    t = _apply_clearing(body, both)
    assert t.body["context_management"]["edits"] == [claude_code, clear.anthropic_edit(both.clear_old_tool_results)]
    assert t.changes.context_edit and not t.changes.thinking_edit and t.beta == clear.BETA
    # the agent's own thinking choice is never overridden: nothing else to add, nothing changes
    only_thinking = _apply_clearing(body, ContextPolicy(clear_old_thinking={"keep_turns": 1}))
    assert only_thinking.body is body and not only_thinking.changes.any()
    # an agent clearing tool uses itself gets the policy's thinking edit in front (the API's order)
    own_tools = {"type": "clear_tool_uses_20250919"}
    t = _apply_clearing({**body, "context_management": {"edits": [own_tools]}}, both)
    assert t.body["context_management"]["edits"] == [clear.thinking_edit(both.clear_old_thinking), own_tools]
    assert t.changes.thinking_edit and not t.changes.context_edit
    odd = {**body, "context_management": {"edits": "all"}}  # not readable: left alone
    assert _apply_clearing(odd, both).body is odd


@pytest.mark.parametrize(("endpoint", "model", "effort", "ceiling", "after"), [
    ("chat.completions", "gpt-5", "high", "low", "low"),
    ("chat.completions", "o3", "medium", "medium", None),  # not above the ceiling
    ("chat.completions", "gpt-5.1", "none", "low", None),  # lower than any ceiling
    ("chat.completions", "gpt-5", "minimal", "low", None),
    ("chat.completions", "gpt-5", "turbo", "low", None),  # unknown: the provider judges it
    ("responses", "gpt-5.2", "xhigh", "high", "high"),
    ("responses", "gpt-5-pro", "high", "low", None),  # the pro models accept high only
])
def test_reasoning_effort_clamp(endpoint: str, model: str, effort: str, ceiling: str, after: str | None) -> None:
    if endpoint == "chat.completions":
        body = {"model": model, "reasoning_effort": effort, "messages": [{"role": "user", "content": "hi"}]}
    else:
        body = {"model": model, "reasoning": {"effort": effort}, "input": "hi"}
    out, before = reasoning.clamp(endpoint, body, model, ceiling)
    if after is None:
        assert out is body and before is None
    else:
        got = out["reasoning_effort"] if endpoint == "chat.completions" else out["reasoning"]["effort"]
        assert (before, got) == (effort, after)
        assert body == ({**body})  # the agent's request is not changed in place
    assert reasoning.clamp("messages", {"model": model, "reasoning_effort": "high"}, model, "low")[1] is None


def test_the_cut_memo_gives_the_very_cut_and_stays_bounded() -> None:
    memo = prune.CutMemo(SPEC, max_entries=3)
    first = memo(LOG)
    assert first == prune.cut(LOG, SPEC)
    again = memo("".join(list(LOG)))  # an equal text, another object (as the next turn decodes it)
    assert again is first  # found, not cut again
    assert memo("short") is None
    others = [LOG.replace("00000", f"{i:05d}x") for i in range(1, 5)]
    for text in others:
        assert memo(text) == prune.cut(text, SPEC)
    assert len(memo._cuts) == 3  # the oldest went
    assert memo(LOG) == first and memo(LOG) is not first  # cut again after eviction, the same way
    assert prune.CutMemo(SPEC)(LOG) == first  # another run (another secret seed) cuts it the same way
