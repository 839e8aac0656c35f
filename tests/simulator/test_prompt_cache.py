"""The simulator's Anthropic prefix cache and context editing, billed the way Anthropic bills them."""

from __future__ import annotations

import pytest

from ci_guard.simulator.context_edit import EditRefused, apply
from ci_guard.simulator.prompt_cache import PromptCache

CC = {"type": "ephemeral"}
BIG = "x" * 8000  # about 2000 tokens per block


def turns(n: int, mark_last: bool = True) -> dict:
    messages = []
    for i in range(n):
        messages.append({"role": "user", "content": [{"type": "text", "text": f"{i} {BIG}"}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": f"reply {i}"}]})
    messages.append({"role": "user", "content": [{"type": "text", "text": "next", **({"cache_control": CC}
                                                                                       if mark_last else {})}]})
    return {"model": "claude-sonnet-4-5", "system": [{"type": "text", "text": BIG, "cache_control": CC}],
            "messages": messages}


def test_an_identical_prefix_is_read_and_the_rest_written_up_to_the_last_breakpoint() -> None:
    cache = PromptCache()
    first = cache.serve("claude-sonnet-4-5", turns(1))
    assert first.read == 0 and first.write == first.total and first.fresh == 0
    body = turns(1)
    newest = body["messages"][-1]
    body["messages"][-1] = {"role": "user", "content": [{"type": "text", "text": "next"}]}  # its mark moves on
    body["messages"] += [{"role": "assistant", "content": [{"type": "text", "text": "done"}]},
                         {"role": "user", "content": [{"type": "text", "text": "more", "cache_control": CC}]}]
    second = cache.serve("claude-sonnet-4-5", body)
    assert newest["content"][0]["cache_control"] == CC
    assert second.read == first.total  # read up to the old mark, written from there to the new one
    assert second.write == second.total - second.read > 0
    replaced = turns(2)  # the first request's newest turn is not in this one: only the system prompt repeats
    assert PromptCache().serve("claude-sonnet-4-5", replaced).read == 0
    assert cache.serve("claude-sonnet-4-5", replaced).read == (len('{"type":"text","text":""}') + len(BIG) + 3) // 4


def test_moving_a_breakpoint_keeps_the_prefix_and_a_changed_block_invalidates_what_follows() -> None:
    cache = PromptCache()
    base = turns(2, mark_last=False)
    base["messages"][-2]["content"][0]["cache_control"] = CC  # the mark on the model's last reply
    first = cache.serve("claude-sonnet-4-5", base)
    again = cache.serve("claude-sonnet-4-5", turns(2))  # the mark moved to the newest turn
    assert again.read == first.total - first.fresh and again.write == first.fresh > 0
    changed = turns(2)
    changed["messages"][0]["content"][0]["text"] = "edited " + BIG
    third = cache.serve("claude-sonnet-4-5", changed)
    system_tokens = (len('{"type":"text","text":""}') + len(BIG) + 3) // 4
    assert third.read == system_tokens  # only the system prompt before the edited block is read


def test_a_prefix_below_the_minimum_is_neither_read_nor_written() -> None:
    cache = PromptCache()
    small = {"model": "m", "system": [{"type": "text", "text": "short", "cache_control": CC}],
             "messages": [{"role": "user", "content": "hi"}]}
    assert cache.serve("claude-sonnet-4-5", small).write == 0
    assert cache.serve("claude-sonnet-4-5", small).read == 0
    big = turns(0)  # ~2000 tokens: enough for Sonnet 4.5 (1024), not for Opus 4.5 (4096)
    assert cache.serve("claude-opus-4-5", big).write == 0
    assert cache.serve("claude-sonnet-4-5", big).write > 0


def test_entries_expire_after_their_ttl() -> None:
    now = [0.0]
    cache = PromptCache(clock=lambda: now[0])
    cache.serve("claude-sonnet-4-5", turns(1))
    now[0] = 301.0
    assert cache.serve("claude-sonnet-4-5", turns(1)).read == 0


def test_the_lookback_is_twenty_blocks() -> None:
    def longer(extra: int) -> dict:
        body = turns(1)
        body["messages"][-1]["content"][0].pop("cache_control")
        blocks = [{"type": "text", "text": f"b{i}"} for i in range(extra)]
        body["messages"] += [{"role": "assistant", "content": blocks},
                             {"role": "user", "content": [{"type": "text", "text": "end", "cache_control": CC}]}]
        return body

    cache = PromptCache()
    first = cache.serve("claude-sonnet-4-5", turns(1))
    system = (len('{"type":"text","text":""}') + len(BIG) + 3) // 4
    assert cache.serve("claude-sonnet-4-5", longer(10)).read == first.total
    cache = PromptCache()
    cache.serve("claude-sonnet-4-5", turns(1))
    assert cache.serve("claude-sonnet-4-5", longer(25)).read == system  # the old mark is 26 blocks back


def _tool_session(results: int) -> dict:
    messages = [{"role": "user", "content": "go"}]
    for i in range(results):
        messages.append({"role": "assistant", "content": [{"type": "tool_use", "id": f"t{i}", "name": "Bash",
                                                           "input": {}}]})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}",
                                                      "content": BIG}]})
    edit = {"type": "clear_tool_uses_20250919", "trigger": {"type": "input_tokens", "value": 5000},
            "keep": {"type": "tool_uses", "value": 2}}
    return {"model": "claude-sonnet-4-5", "messages": messages, "context_management": {"edits": [edit]}}


def test_context_editing_clears_the_oldest_results_and_reports_it() -> None:
    seen, applied = apply(_tool_session(5), "context-management-2025-06-27", "claude-sonnet-4-5")
    assert applied == [{"type": "clear_tool_uses_20250919", "cleared_tool_uses": 3,
                        "cleared_input_tokens": applied[0]["cleared_input_tokens"]}]
    assert applied[0]["cleared_input_tokens"] > 3 * 1900
    contents = [m["content"][0].get("content") for m in seen["messages"][2::2]]
    assert contents[:3] == ["[tool result cleared]"] * 3 and contents[3:] == [BIG, BIG]
    assert "context_management" not in seen


def test_context_editing_needs_its_beta_and_a_model_that_has_it() -> None:
    with pytest.raises(EditRefused):
        apply(_tool_session(1), "claude-code-20250219", "claude-sonnet-4-5")
    with pytest.raises(EditRefused):
        apply(_tool_session(1), "context-management-2025-06-27", "claude-3-5-haiku")
    body = {"model": "claude-sonnet-4-5", "messages": []}
    assert apply(body, "", "claude-sonnet-4-5") == (body, None)
