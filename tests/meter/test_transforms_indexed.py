"""Property test: pruning and `cache: auto` through the run's message index (splice.MessageMemo,
prune_indexed, write_indexed) send byte for byte what the full splice sends (the conversation
decoded whole, splice.prepare), turn after turn, on generated Anthropic conversations (and pruning
on OpenAI's Chat Completions and Responses conversations) -- including
JSON the index must hand back to the full path: whitespace, keys written with escapes or given
twice, numbers msgspec refuses, floats, blocks that are not objects, cache_control in odd places."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ci_guard.meter.providers.anthropic import AnthropicMessages
from ci_guard.meter.providers.body import RequestBody, encode_request, parse_request
from ci_guard.meter.providers.openai_chat import OpenAIChat
from ci_guard.meter.providers.openai_responses import OpenAIResponses
from ci_guard.meter.transforms import ContextTransforms, splice
from ci_guard.policy.decision import ContextPolicy
from ci_guard.policy.models import PruneSpec

ADAPTER = AnthropicMessages()
FILLER = "context " * 9000  # the first message makes every body a large one (providers/body.py LAZY_MIN_BYTES)
TEXT = st.text(alphabet=st.sampled_from(list('ab yz"\\\n\t\x01é✓😀/')), max_size=30)
CACHE = {"type": "ephemeral"}


def log(lines: int) -> str:
    return "".join(f"tests/t.py::test_{i} FAILED \"é\"\n" for i in range(lines))


@st.composite
def block(draw: Any, ids: list[str]) -> Any:
    kind = draw(st.sampled_from(["text", "tool_use", "tool_result", "tool_result", "thinking", "odd"]))
    if kind == "text":
        out: Any = {"type": "text", "text": draw(TEXT)}
    elif kind == "tool_use":
        ids.append(f"toolu_{len(ids)}")
        out = {"type": "tool_use", "id": ids[-1], "name": draw(st.sampled_from(["Bash", "Read", "Edit"])),
               "input": {"command": draw(TEXT), "timeout": draw(st.sampled_from([600, 1.5, 1e16, None, True]))}}
    elif kind == "tool_result":
        text = log(draw(st.integers(0, 120))) + draw(TEXT)
        content: Any = text if draw(st.booleans()) else [{"type": "text", "text": text},
                                                         {"type": "text", "text": "rc=1"}]
        if isinstance(content, list) and draw(st.integers(0, 9)) == 0:
            content[1]["cache_control"] = CACHE  # the agent's breakpoint inside a tool result
        out = {"type": "tool_result", "tool_use_id": draw(st.sampled_from([*ids, "toolu_unknown"])), "content": content}
    elif kind == "thinking":
        out = {"type": "thinking", "thinking": draw(TEXT), "signature": "sig"}
    else:
        out = draw(st.sampled_from(["a string block", 7,
                                    {"type": "image", "source": {"type": "base64", "data": "AA=="}}]))
    if isinstance(out, dict) and draw(st.integers(0, 14)) == 0:
        out["cache_control"] = CACHE
    return out


@st.composite
def conversation(draw: Any) -> list[Any]:
    ids: list[str] = []
    messages: list[Any] = [{"role": "user", "content": FILLER}]
    for n in range(draw(st.integers(2, 9))):
        role = draw(st.sampled_from(["assistant", "user"] if n % 3 else ["user", "assistant", "system"]))
        if draw(st.integers(0, 5)) == 0:
            content: Any = draw(TEXT)
        else:
            content = [draw(block(ids)) for _ in range(draw(st.integers(0, 3)))]
        message: dict[str, Any] = {"role": role, "content": content}
        if draw(st.integers(0, 12)) == 0:
            message["metadata"] = {"turn": n}
        messages.append(message)
    return messages


UNUSUAL = ["ensure_ascii", "indent", "spaces", "escaped_key", "duplicate_key", "huge_number", "huge_number_last",
           "float_cache", "number_role", "not_an_object"]


def serialize(messages: list[Any], unusual: frozenset[str]) -> str:
    if "indent" in unusual:
        return json.dumps(messages, indent=1)
    if "spaces" in unusual:  # whitespace between the messages only
        return "[" + ", ".join(json.dumps(m, separators=(",", ":")) for m in messages) + "]"
    text = json.dumps(messages, separators=(",", ":"), ensure_ascii="ensure_ascii" in unusual)
    if "escaped_key" in unusual:
        text = text.replace('"content":', '"c\\u006fntent":', 2)
    if "duplicate_key" in unusual:
        text = text.replace('"role":"user"', '"role":"assistant","role":"user"', 2)
    # msgspec refuses it: json.loads decides (and the full splice writes new values with json.dumps)
    if "huge_number" in unusual:
        text = text.replace('"content":', '"n":1e400,"content":', 1)
        text = text.replace('"input":{', '"input":{"n":1e400,', 1)  # in a block: the index's pass skips it
    if "huge_number_last" in unusual and '"input":{' in text:
        at = text.rindex('"input":{') + len('"input":{')
        text = text[:at] + '"n":-1E400,' + text[at:]
    if "float_cache" in unusual:
        text = text.replace('"role":"assistant"', '"role":"assistant","cache_control":1.5', 1)
    if "number_role" in unusual:
        text = text.replace('"role":"user"', '"role":1', 2)
    if "not_an_object" in unusual:
        text = text[:-1] + ',"a string message"]'
    return text


def request(messages: str, system_float: bool) -> bytes:
    system: Any = [{"type": "text", "text": "You fix tests."}] if not system_float else "You fix tests."
    tools: Any = [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object"}}]
    if system_float:
        tools[0]["input_schema"]["minimum"] = 1e-7  # json.dumps writes 1e-07, msgspec 1e-7
    head = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 4096, "system": system, "tools": tools},
                      separators=(",", ":"))
    return (head[:-1] + ',"messages":' + messages + "}").encode()


def send(transforms: ContextTransforms, raw: bytes) -> tuple[bytes, dict[str, Any]]:
    body = parse_request(raw, split=transforms.split("anthropic", "messages"))  # as the proxy splits it
    info = ADAPTER.inspect(body)
    done = transforms.apply(provider="anthropic", endpoint="messages", raw=raw, body=body, model=info.model,
                            max_output=info.max_output_tokens, input_tokens=info.estimated_input_tokens,
                            stream=False, set_model=ADAPTER.set_model, not_dearer=lambda a, b: True)
    return (raw if done.body is body else encode_request(done.body)), done.changes.as_json()


def full_splice(policy: ContextPolicy, raw: bytes) -> tuple[bytes, dict[str, Any]]:
    transforms = ContextTransforms(policy)
    transforms._messages = None  # no memo: the conversation decoded whole
    return send(transforms, raw)


POLICIES = {
    "cache": ContextPolicy(cache="auto"),
    "prune": ContextPolicy(prune_tool_results=PruneSpec(max_tokens=60, keep={"head_lines": 3, "tail_lines": 5})),
    "prune+cache": ContextPolicy(cache="auto", prune_tool_results=PruneSpec(
        max_tokens=60, keep={"head_lines": 3, "tail_lines": 5})),
    "prune excluding": ContextPolicy(cache="auto", prune_tool_results=PruneSpec(
        max_tokens=60, keep={"head_lines": 3, "tail_lines": 5}, exclude_tools=["Read"])),
}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(messages=conversation(), cuts=st.lists(st.integers(2, 10), min_size=1, max_size=4),
       policy=st.sampled_from(list(POLICIES)), unusual=st.frozensets(st.sampled_from(UNUSUAL), max_size=2),
       system_float=st.booleans())
def test_the_index_sends_what_the_full_splice_sends_on_every_turn(
        messages: list[Any], cuts: list[int], policy: str, unusual: frozenset[str], system_float: bool) -> None:
    transforms = ContextTransforms(POLICIES[policy])
    # turns that grow the conversation (the memo extends its index), repeat it, or rewrite it; the
    # last one after the memo forgot the conversation (its messages' cuts are known: splice.SeenCuts)
    for n, forget in [*((n, False) for n in sorted(cuts)), *((len(messages), last) for last in (False, False, True))]:
        if forget:
            transforms._messages = splice.MessageMemo()
        raw = request(serialize(messages[:n], unusual), system_float)
        if not isinstance(parse_request(raw), RequestBody):
            return  # the whole body went to json.loads: no splicing at all
        sent, changes = send(transforms, raw)
        assert (sent, changes) == full_splice(POLICIES[policy], raw)


def spy_cuts(monkeypatch: Any) -> list[int]:
    """The positions of the messages pruning cuts from now on, each once: on their bytes
    (splice._cut_raw) or, where that declines, decoded (splice._cut_message)."""
    calls: list[int] = []
    raw_cut, decoded_cut = splice._cut_raw, splice._cut_message

    def on_bytes(data: Any, i: int, *rest: Any) -> Any:
        calls.append(i)
        return raw_cut(data, i, *rest)

    def decoded(message: Any, i: int, *rest: Any) -> Any:
        if i not in calls:  # not tried on its bytes first (a C part not installed)
            calls.append(i)
        return decoded_cut(message, i, *rest)

    monkeypatch.setattr(splice, "_cut_raw", on_bytes)
    monkeypatch.setattr(splice, "_cut_message", decoded)
    return calls


def test_a_repeated_conversation_is_neither_decoded_nor_cut_again(monkeypatch: Any) -> None:
    """The second sight of a pruned conversation reuses every cut the index keeps."""
    policy = POLICIES["prune+cache"]
    messages: list[Any] = [{"role": "user", "content": FILLER}]
    for i in range(6):
        messages += [{"role": "assistant", "content": [{"type": "tool_use", "id": f"t{i}", "name": "Bash",
                                                        "input": {}}]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}",
                                                   "content": log(200)}]}]
    transforms = ContextTransforms(policy)
    earlier = request(serialize(messages[:-2], frozenset()), False)
    # a conversation the run has not seen is located in the proxy's one split of the request
    assert parse_request(earlier, split=transforms.split("anthropic", "messages")).hint("messages") is not None
    first = send(transforms, earlier)
    calls = spy_cuts(monkeypatch)
    raw = request(serialize(messages, frozenset()), False)
    # one the run's memo knows is split the plain way (its index is extended instead)
    assert parse_request(raw, split=transforms.split("anthropic", "messages")).hint("messages") is None
    sent, changes = send(transforms, raw)
    assert (sent, changes) == full_splice(policy, raw)
    assert changes["pruned_results"] == 5 and first[1]["pruned_results"] == 4
    # the previous newest result (prunable now) and the new one; the new reply is too short to hold
    # a result above the limit, and every older message is the index's already
    assert calls == [10, 12]
    calls.clear()
    assert send(transforms, raw) == (sent, changes)
    assert calls == []


def reply(i: int, timeout: Any = 600) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": f"attempt {i}"}, {
        "type": "tool_use", "id": f"t{i}", "name": "Bash", "input": {"command": "pytest", "timeout": timeout}}]}


def result(i: int, content: Any) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": content}]}


HUGE = '"command":"pytest","n":1e400'  # msgspec refuses it; the index's pass skips it inside a block


@pytest.mark.parametrize("case", ["float_in_last_reply", "float_in_tools", "float_in_a_pruned_result",
                                  "huge_in_a_marked_message", "huge_next_to_an_inner_breakpoint"])
@pytest.mark.parametrize("policy", ["cache", "prune+cache", "prune excluding"])
def test_numbers_msgspec_refuses_leave_new_floats_to_the_full_splice(case: str, policy: str) -> None:
    """With 1e400 somewhere in the conversation the full splice writes its new values with
    json.dumps (1e+16, not msgspec's 1e16): the index must not write them with msgspec."""
    messages: list[Any] = [{"role": "user", "content": FILLER}, reply(0), result(0, log(100)), reply(1),
                           result(1, log(100))]
    huge_at = 0
    if case == "float_in_last_reply":
        messages[3] = reply(1, 1e16)
    elif case == "float_in_a_pruned_result":
        messages[2]["content"][0]["content"] = [{"type": "text", "text": log(100), "score": 1e-7}]
    elif case == "huge_in_a_marked_message":
        huge_at = -1  # the last reply, which gets a breakpoint
    elif case == "huge_next_to_an_inner_breakpoint":  # the agent caches: left alone, as the full splice sees
        messages[2] = result(0, [{"type": "text", "text": "ok", "n": 1e300, "cache_control": CACHE}])
    text = serialize(messages, frozenset())
    at = [i for i in range(len(text)) if text.startswith('"command":"pytest"', i)][huge_at]
    text = text[:at] + HUGE + text[at + len('"command":"pytest"'):]
    if case == "huge_next_to_an_inner_breakpoint":
        text = text.replace('"n":1e+300', '"n":1e400')
    raw = request(text, case == "float_in_tools")
    assert isinstance(parse_request(raw), RequestBody)
    transforms = ContextTransforms(POLICIES[policy])
    for _ in range(2):
        assert send(transforms, raw) == full_splice(POLICIES[policy], raw)


TOP_VALUES = st.one_of(
    st.sampled_from(['4096', '1E2', '1.50', '-0', '0.7', '1e16', '12345678901234567890123', 'true', 'null', '"x"',
                     '"\\u00e9t\\u00e9"', '"a\\/b"', '["stop", "\\n"]', '[1,2]', '[]', '{}',
                     '{"type": "enabled", "budget_tokens": 2000}', '[{"type":"text","text":"hi","cache_control":{}}]']),
    TEXT.map(json.dumps))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(messages=conversation(), unusual=st.frozensets(st.sampled_from(UNUSUAL), max_size=2),
       extra=st.lists(st.tuples(st.sampled_from(["max_tokens", "temperature", "stop_sequences", "metadata", "thinking",
                                                 "system", "m\\u0061x", "stream"]), TOP_VALUES), max_size=4),
       space=st.sampled_from(["", "", " ", "\n"]))
def test_the_one_pass_split_gives_the_parts_of_the_plain_split(
        messages: list[Any], unusual: frozenset[str], extra: list[tuple[str, str]], space: str) -> None:
    """splice.split_request (the top-level split and the messages' index in one pass) gives the very
    parts, values and errors of providers/body.py's split, and the messages where the index's own
    scan finds them; whatever it cannot prove goes to the plain split."""
    from ci_guard.meter.transforms import splice

    head = ",".join(f'"{key}":{space}{value}' for key, value in extra)
    raw = ("{" + head + ("," if head else "") + f'"messages":{space}' + serialize(messages, unusual) + "}").encode()
    plain = parse_request(raw)
    one = parse_request(raw, split=splice.split_request)
    assert type(one) is type(plain)
    if not isinstance(plain, RequestBody):
        assert one == plain
        return
    assert list(one) == list(plain)
    assert {k: bytes(one.raw(k) or b"") for k in one} == {k: bytes(plain.raw(k) or b"") for k in plain}
    assert {k: one[k] for k in one if k != "messages"} == {k: plain[k] for k in plain if k != "messages"}
    located = one.hint("messages")
    view = plain.raw("messages")
    starts: list[int] = []
    ends: list[int] = []
    roles: list[Any] = []
    caches = splice._scan(view, 0, starts, ends, roles)  # type: ignore[arg-type]
    if located is not None:
        assert (located.starts, located.ends, located.roles, located.caches) == (starts, ends, roles, caches)
        assert one.updated({"model": "x"}).hint("messages") is located  # the part is still the agent's
        assert one.updated({"messages": []}).hint("messages") is None


@pytest.mark.parametrize("head", [
    '"max_tokens":1E2,"stop_sequences":["a\\/b","c\\/d"]',  # a number 2 bytes shorter, strings 2 longer
    '"temperature":1.50,"max_tokens":4096',
    '"max_tokens":4096,"temperature":0.5,"stream":true,"metadata":{"user_id":"u"}',
    '"max_tokens":4096,"system":"caf\\u00e9"',
])
def test_the_one_pass_split_proves_every_size(head: str) -> None:
    """Numbers are compared with the bytes where they must be; every other size is a lower bound:
    a body whose sizes only add up by chance goes to the plain split."""
    from ci_guard.meter.transforms import splice

    messages = serialize([{"role": "user", "content": FILLER}, reply(0), result(0, "ok")], frozenset())
    raw = ("{" + head + ',"messages":' + messages + "}").encode()
    plain, one = parse_request(raw), parse_request(raw, split=splice.split_request)
    assert {k: bytes(one.raw(k) or b"") for k in one} == {k: bytes(plain.raw(k) or b"") for k in plain}
    assert {k: one[k] for k in one if k != "messages"} == {k: plain[k] for k in plain if k != "messages"}
    assert (one.hint("messages") is not None) == (splice.split_request(raw) is not None)
    exact = head.endswith('"stream":true,"metadata":{"user_id":"u"}')
    assert (splice.split_request(raw) is not None) == exact


# -- OpenAI: Chat Completions `tool` messages and Responses `function_call_output` items --------------
OPENAI_ADAPTERS = {"chat.completions": OpenAIChat(), "responses": OpenAIResponses()}
OPENAI_TOOLS = ["bash", "read", "edit"]


def tool_output(draw: Any, parts: str) -> Any:
    text = log(draw(st.integers(0, 120))) + draw(TEXT)
    return text if draw(st.booleans()) else [{"type": parts, "text": text}, {"type": parts, "text": "rc=1"}]


@st.composite
def chat_message(draw: Any, ids: list[str]) -> Any:
    kind = draw(st.sampled_from(["assistant", "tool", "tool", "user", "odd"]))
    if kind == "assistant":
        calls = []
        for _ in range(draw(st.integers(0, 2))):
            ids.append(f"call_{len(ids)}")
            calls.append({"id": ids[-1], "type": "function", "function": {
                "name": draw(st.sampled_from(OPENAI_TOOLS)), "arguments": json.dumps({"cmd": draw(TEXT)})}})
        out: Any = {"role": "assistant", "content": draw(st.sampled_from([None, "ok", "done \"é\""]))}
        if calls or draw(st.booleans()):
            out["tool_calls"] = calls
    elif kind == "tool":
        out = {"role": "tool", "tool_call_id": draw(st.sampled_from([*ids, "call_unknown"])),
               "content": tool_output(draw, "text")}
    elif kind == "user":
        out = {"role": "user", "content": draw(TEXT)}
    else:
        out = draw(st.sampled_from(["a string message", 7, {"role": "tool", "content": log(90), "score": 1.5},
                                    {"role": "tool", "content": log(90), "n": 10 ** 30}, {"content": log(90)}]))
    return out


@st.composite
def responses_item(draw: Any, ids: list[str]) -> Any:
    kind = draw(st.sampled_from(["function_call", "output", "output", "reasoning", "assistant", "user", "custom",
                                 "odd"]))
    if kind in ("function_call", "custom"):
        ids.append(f"call_{len(ids)}")
        out: Any = {"type": "function_call" if kind == "function_call" else "custom_tool_call", "call_id": ids[-1],
                    "name": draw(st.sampled_from(OPENAI_TOOLS)), "arguments": json.dumps({"cmd": draw(TEXT)})}
    elif kind == "output":
        out = {"type": draw(st.sampled_from(["function_call_output", "custom_tool_call_output"])),
               "call_id": draw(st.sampled_from([*ids, "call_unknown"])),
               "output": tool_output(draw, draw(st.sampled_from(["input_text", "output_text", "image"])))}
    elif kind == "reasoning":
        out = {"type": "reasoning", "summary": [], "encrypted_content": "gAAA" + draw(TEXT)}
    elif kind == "assistant":  # with or without its type: both are the model's
        out = {"role": "assistant", "content": [{"type": "output_text", "text": draw(TEXT)}]}
        if draw(st.booleans()):
            out = {"type": "message", **out}
    elif kind == "user":
        out = {"role": "user", "content": [{"type": "input_text", "text": draw(TEXT)}]}
    else:
        out = draw(st.sampled_from(["a string item", 7, {"type": None, "role": "assistant"}, {"type": ["x_call"]},
                                    {"type": "function_call_output", "output": log(90), "score": 1.5},
                                    {"type": "web_search_call", "status": "completed"}]))
    return out


@st.composite
def openai_conversation(draw: Any, endpoint: str) -> list[Any]:
    ids: list[str] = []
    first: Any = {"role": "user", "content": FILLER}
    item = chat_message if endpoint == "chat.completions" else responses_item
    return [first, *(draw(item(ids)) for _ in range(draw(st.integers(2, 9))))]


OPENAI_UNUSUAL = ["ensure_ascii", "indent", "spaces", "escaped_key", "duplicate_key", "huge_number", "number_role",
                  "not_an_object", "escaped_type", "duplicate_type"]


def openai_serialize(items: list[Any], unusual: frozenset[str]) -> str:
    text = serialize(items, unusual & {"ensure_ascii", "indent", "spaces", "escaped_key", "duplicate_key",
                                       "number_role", "not_an_object"})
    if "huge_number" in unusual:  # msgspec refuses it: json.loads decides
        text = text.replace('"call_id":', '"n":1e400,"call_id":', 1).replace('"tool_call_id":', '"n":1e400,'
                                                                             '"tool_call_id":', 1)
    if "escaped_type" in unusual:
        text = text.replace('"type":"reasoning"', '"t\\u0079pe":"reasoning"', 1)
    if "duplicate_type" in unusual:
        text = text.replace('"type":"function_call"', '"type":"message","type":"function_call"', 1)
    return text


def openai_request(endpoint: str, items: str, tools_float: bool) -> bytes:
    tools: Any = [{"type": "function", "name": "bash", "parameters": {"type": "object"}}]
    if tools_float:
        tools[0]["parameters"]["minimum"] = 1e-7  # json.dumps writes 1e-07, msgspec 1e-7
    if endpoint == "chat.completions":
        head = {"model": "gpt-4.1", "max_completion_tokens": 4096, "tools": tools}
    else:
        head = {"model": "gpt-5", "instructions": "You fix tests.", "tools": tools}
    key = "messages" if endpoint == "chat.completions" else "input"
    return (json.dumps(head, separators=(",", ":"))[:-1] + f',"{key}":' + items + "}").encode()


def openai_send(transforms: ContextTransforms, endpoint: str, raw: bytes) -> tuple[bytes, dict[str, Any]]:
    adapter = OPENAI_ADAPTERS[endpoint]
    body = parse_request(raw, split=transforms.split("openai", endpoint))  # as the proxy splits it
    info = adapter.inspect(body)
    done = transforms.apply(provider="openai", endpoint=endpoint, raw=raw, body=body, model=info.model,
                            max_output=info.max_output_tokens, input_tokens=info.estimated_input_tokens,
                            stream=False, set_model=adapter.set_model, not_dearer=lambda a, b: True)
    return (raw if done.body is body else encode_request(done.body)), done.changes.as_json()


def openai_full_splice(policy: ContextPolicy, endpoint: str, raw: bytes) -> tuple[bytes, dict[str, Any]]:
    transforms = ContextTransforms(policy)
    transforms._messages, transforms._memos = None, {}  # no memo: the conversation decoded whole
    return openai_send(transforms, endpoint, raw)


OPENAI_POLICIES = {
    "prune": POLICIES["prune"],
    "prune+cache": POLICIES["prune+cache"],  # cache: auto is Anthropic's: nothing for OpenAI
    "prune excluding": ContextPolicy(prune_tool_results=PruneSpec(
        max_tokens=60, keep={"head_lines": 3, "tail_lines": 5}, exclude_tools=["read"])),
}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), endpoint=st.sampled_from(list(OPENAI_ADAPTERS)),
       cuts=st.lists(st.integers(2, 10), min_size=1, max_size=4), policy=st.sampled_from(list(OPENAI_POLICIES)),
       unusual=st.frozensets(st.sampled_from(OPENAI_UNUSUAL), max_size=2), tools_float=st.booleans())
def test_openai_pruning_by_the_index_sends_what_the_full_splice_sends_on_every_turn(
        data: Any, endpoint: str, cuts: list[int], policy: str, unusual: frozenset[str], tools_float: bool) -> None:
    items = data.draw(openai_conversation(endpoint))
    transforms = ContextTransforms(OPENAI_POLICIES[policy])
    # as for Messages: grown, repeated, and seen again after the memo forgot it
    for n, forget in [*((n, False) for n in sorted(cuts)), *((len(items), last) for last in (False, False, True))]:
        if forget:
            transforms._memos = {endpoint: splice.MessageMemo(splice.scan_openai)}
        raw = openai_request(endpoint, openai_serialize(items[:n], unusual), tools_float)
        if not isinstance(parse_request(raw), RequestBody):
            return  # the whole body went to json.loads: no splicing at all
        sent, changes = openai_send(transforms, endpoint, raw)
        assert (sent, changes) == openai_full_splice(OPENAI_POLICIES[policy], endpoint, raw)


@pytest.mark.parametrize("endpoint", list(OPENAI_ADAPTERS))
def test_a_repeated_openai_conversation_decodes_only_its_new_outputs(endpoint: str, monkeypatch: Any) -> None:
    """A later turn of a Codex-like loop decodes the output that was the newest (prunable now) and
    the new one; every older output is the index's already, a function call is too short to hold
    one above the limit; a repeated request decodes nothing."""
    policy = OPENAI_POLICIES["prune"]
    items: list[Any] = [{"role": "user", "content": FILLER}]
    for i in range(6):
        if endpoint == "responses":
            items += [{"type": "function_call", "call_id": f"c{i}", "name": "bash", "arguments": "{}"},
                      {"type": "function_call_output", "call_id": f"c{i}", "output": log(200)}]
        else:
            items += [{"role": "assistant", "content": None, "tool_calls": [
                {"id": f"c{i}", "type": "function", "function": {"name": "bash", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": f"c{i}", "content": log(200)}]
    transforms = ContextTransforms(policy)
    first = openai_send(transforms, endpoint, openai_request(endpoint, serialize(items[:-2], frozenset()), False))
    calls = spy_cuts(monkeypatch)
    raw = openai_request(endpoint, serialize(items, frozenset()), False)
    sent, changes = openai_send(transforms, endpoint, raw)
    assert (sent, changes) == openai_full_splice(policy, endpoint, raw)
    assert changes["pruned_results"] == 5 and first[1]["pruned_results"] == 4
    assert calls == [10, 12]
    calls.clear()
    assert openai_send(transforms, endpoint, raw) == (sent, changes)
    assert calls == []
    # the memo forgot the conversation (evicted, or its history rewritten): every message's cut is known
    transforms._memos = {endpoint: splice.MessageMemo(splice.scan_openai)}
    assert openai_send(transforms, endpoint, raw) == (sent, changes)
    assert calls == []
    transforms._seen = splice.SeenCuts()  # nothing known: the first message and the six outputs are decoded again
    transforms._memos = {endpoint: splice.MessageMemo(splice.scan_openai)}
    assert openai_send(transforms, endpoint, raw) == (sent, changes)
    assert calls == [0, 2, 4, 6, 8, 10, 12]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), endpoint=st.sampled_from(list(OPENAI_ADAPTERS)),
       unusual=st.frozensets(st.sampled_from(OPENAI_UNUSUAL), max_size=2), tools_float=st.booleans())
def test_the_one_pass_openai_split_gives_the_parts_of_the_plain_split(data: Any, endpoint: str, unusual: frozenset[str],
                                                                       tools_float: bool) -> None:
    """The proxy's first look at an OpenAI request of a pruning run (splice.split_request with the
    items' values left undecoded) gives the plain split's parts and values, and the items where
    the index's own scan (splice.scan_openai) finds them; whatever it cannot prove goes to the plain split."""
    key = splice.CONVERSATION[endpoint]
    items = data.draw(openai_conversation(endpoint))
    raw = openai_request(endpoint, openai_serialize(items, unusual), tools_float)
    plain = parse_request(raw)
    one = parse_request(raw, split=ContextTransforms(OPENAI_POLICIES["prune"]).split("openai", endpoint))
    assert type(one) is type(plain)
    if not isinstance(plain, RequestBody):
        assert one == plain
        return
    assert {k: bytes(one.raw(k) or b"") for k in one} == {k: bytes(plain.raw(k) or b"") for k in plain}
    assert {k: one[k] for k in one if k != key} == {k: plain[k] for k in plain if k != key}
    located = one.hint(key)
    starts: list[int] = []
    ends: list[int] = []
    roles: list[Any] = []
    scanned = splice.scan_openai(plain.raw(key), 0, starts, ends, roles)  # type: ignore[arg-type]
    if located is not None:
        assert scanned is not None and (located.starts, located.ends, located.roles) == (starts, ends, roles)
    elif not unusual and all(isinstance(item, dict) for item in items):
        raise AssertionError("a compact request of objects written by json.dumps was not located in the one pass")
