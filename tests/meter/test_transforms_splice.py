"""Byte splicing (transforms/splice.py): a large request changed by the context policy goes
upstream as the agent's bytes with only the changes written anew, and means exactly what the full
decode / re-encode path produces -- on Anthropic tool_result blocks, OpenAI Chat tool messages and
Responses function_call_output items, for every transform."""

from __future__ import annotations

import json

import pytest

from ci_guard.meter.providers.anthropic import AnthropicMessages
from ci_guard.meter.providers.body import LAZY_MIN_BYTES, RequestBody, encode_request, parse_request
from ci_guard.meter.providers.openai_chat import OpenAIChat
from ci_guard.meter.providers.openai_responses import OpenAIResponses
from ci_guard.meter.transforms import ContextTransforms, splice
from ci_guard.policy.decision import ContextPolicy, Route
from ci_guard.policy.models import ClearSpec, PruneSpec, RouteWhen

LOG = "".join(f"tests/test_mod.py::test_{i:05d} FAILED - AssertionError: expected 'é' got \"ü\" ✓\n"
              for i in range(1500))
PRUNE = PruneSpec(max_tokens=1000, keep={"head_lines": 20, "tail_lines": 40})
ROUTE = [Route(name="side", when=RouteWhen(tools="present"), model="claude-haiku-4-5")]
POLICIES = {
    "prune": ContextPolicy(prune_tool_results=PRUNE),
    "clear": ContextPolicy(clear_old_tool_results=ClearSpec(trigger_tokens=20_000, keep_last=1)),
    "cache": ContextPolicy(cache="auto"),
    "route": ContextPolicy(route=ROUTE),
    "thinking": ContextPolicy(max_thinking_tokens=2000),
    "all": ContextPolicy(cache="auto", prune_tool_results=PRUNE,
                         clear_old_tool_results=ClearSpec(trigger_tokens=20_000, keep_last=1), route=ROUTE,
                         max_thinking_tokens=2000),
}
ADAPTERS = {"messages": AnthropicMessages(), "chat.completions": OpenAIChat(), "responses": OpenAIResponses()}


def anthropic(turns: int, list_content: bool = False) -> dict:
    messages: list[dict] = [{"role": "user", "content": "The tests fail. Fix them."}]
    for i in range(turns):
        result: object = LOG if not list_content else [{"type": "text", "text": LOG}, {"type": "text", "text": "rc=1"}]
        messages += [
            {"role": "assistant", "content": [{"type": "text", "text": f"Attempt {i}."},
                                              {"type": "tool_use", "id": f"toolu_{i}", "name": "Bash",
                                               "input": {"command": "pytest -x", "timeout": 600}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": result}]}]
    return {"model": "claude-3-5-haiku", "max_tokens": 8192, "system": "You fix tests. " * 20,
            "thinking": {"type": "enabled", "budget_tokens": 4000},
            "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object"}}],
            "messages": messages}


def chat(turns: int, list_content: bool = False) -> dict:
    messages: list[dict] = [{"role": "system", "content": "You fix tests."}, {"role": "user", "content": "Fix it."}]
    for i in range(turns):
        content: object = LOG if not list_content else [{"type": "text", "text": LOG}]
        messages += [{"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{i}", "type": "function", "function": {"name": "sh", "arguments": '{"cmd":"pytest"}'}}]},
            {"role": "tool", "tool_call_id": f"call_{i}", "content": content}]
    return {"model": "gpt-4.1", "max_completion_tokens": 4096, "stream": True,
            "tools": [{"type": "function", "function": {"name": "sh", "parameters": {"type": "object"}}}],
            "messages": messages}


def responses(turns: int, list_content: bool = False) -> dict:
    items: list[dict] = [{"role": "user", "content": [{"type": "input_text", "text": "Fix it."}]}]
    for i in range(turns):
        output: object = LOG if not list_content else [{"type": "input_text", "text": LOG}]
        items += [{"type": "function_call", "call_id": f"call_{i}", "name": "shell", "arguments": "{}"},
                  {"type": "function_call_output", "call_id": f"call_{i}", "output": output}]
    return {"model": "gpt-5", "max_output_tokens": 4096, "instructions": "You fix tests.",
            "tools": [{"type": "function", "name": "shell", "parameters": {"type": "object"}}], "input": items}


SHAPES = {"messages": anthropic, "chat.completions": chat, "responses": responses}


def apply(endpoint: str, policy: ContextPolicy, body: object, raw: bytes):
    adapter = ADAPTERS[endpoint]
    info = adapter.inspect(body)  # type: ignore[arg-type]
    return ContextTransforms(policy).apply(
        provider="anthropic" if endpoint == "messages" else "openai", endpoint=endpoint, raw=raw, body=body,
        model=info.model, max_output=info.max_output_tokens, input_tokens=info.estimated_input_tokens,
        stream=info.stream, set_model=adapter.set_model, not_dearer=lambda a, b: True)


def both_paths(endpoint: str, policy: ContextPolicy, raw: bytes) -> tuple[dict, bytes, object, object]:
    """(what the full path sends, what the spliced path sends, the changes of each)."""
    full = apply(endpoint, policy, json.loads(raw), raw)
    lazy = parse_request(raw)  # a RequestBody, or a dict when even the top level is unusual
    spliced = apply(endpoint, policy, lazy, raw)
    sent = raw if spliced.body is lazy else encode_request(spliced.body)
    return full.body, sent, full.changes, spliced.changes


@pytest.mark.parametrize("endpoint", list(SHAPES))
@pytest.mark.parametrize("name", list(POLICIES))
@pytest.mark.parametrize("list_content", [False, True])
@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_the_spliced_request_means_what_the_full_path_sends(endpoint: str, name: str, list_content: bool,
                                                            ensure_ascii: bool) -> None:
    body = SHAPES[endpoint](4, list_content)
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=ensure_ascii).encode()
    assert len(raw) > LAZY_MIN_BYTES
    full, sent, full_changes, spliced_changes = both_paths(endpoint, POLICIES[name], raw)
    assert json.loads(sent) == full  # the same request, value for value
    assert list(json.loads(sent)) == list(full)  # the top-level keys in the same order
    assert spliced_changes == full_changes
    changed = full_changes.any()
    assert (sent != raw) == changed
    if changed:
        # the untouched opening of the conversation is the agent's own bytes
        first = json.dumps(body[splice.CONVERSATION[endpoint]][0], separators=(",", ":"),
                           ensure_ascii=ensure_ascii).encode()
        assert first in sent
    if name in ("prune", "all"):
        assert full_changes.pruned_results == 3 and len(sent) < len(raw) // 2


@pytest.mark.parametrize("endpoint", list(SHAPES))
def test_splicing_is_deterministic_and_keeps_the_cached_prefix_of_later_turns(endpoint: str) -> None:
    policy = POLICIES["prune"]
    turn3 = json.dumps(SHAPES[endpoint](3), separators=(",", ":")).encode()
    turn4 = json.dumps(SHAPES[endpoint](4), separators=(",", ":")).encode()
    _, sent3, _, _ = both_paths(endpoint, policy, turn3)
    _, again, _, _ = both_paths(endpoint, policy, turn3)
    _, sent4, _, changes4 = both_paths(endpoint, policy, turn4)
    assert sent3 == again
    assert changes4.pruned_results == 3
    # everything up to the third tool call (after the two results pruned on both turns) is identical
    common = next((i for i, (a, b) in enumerate(zip(sent3, sent4, strict=False)) if a != b), len(sent3))
    third_call = sent3.index(b"_2")
    assert common > third_call > sent3.index(b"[ci-guard:")


def test_only_the_messages_a_transform_changed_are_written_anew() -> None:
    body = anthropic(2)
    body["messages"].append({"role": "user", "content": "Now explain. " + "é" * 2000})
    raw = json.dumps(body, separators=(",", ":")).encode()  # é written as \u00e9 by the agent
    full, sent, _, changes = both_paths("messages", POLICIES["cache"], raw)
    assert json.loads(sent) == full and changes.breakpoints_added == 4
    # the breakpoints go on the last reply (message 3) and the newest turn (5): 0-2 and 4 are the agent's bytes
    untouched = json.dumps(body["messages"][:3], separators=(",", ":")).encode()[1:-1]
    assert sent.count(untouched) == 1
    assert json.dumps(body["messages"][4], separators=(",", ":")).encode() in sent
    assert ("é" * 2000).encode() in sent  # the newest turn written anew (by msgspec: UTF-8 as is)


@pytest.mark.parametrize("unusual", ["whitespace", "escaped_key", "duplicate_key", "lone_surrogate"])
def test_unusual_json_inside_the_conversation_falls_back_to_the_same_request(unusual: str) -> None:
    body = anthropic(4)
    messages = json.dumps(body.pop("messages"), separators=(",", ":"))
    if unusual == "whitespace":
        messages = json.dumps(json.loads(messages), indent=1)
    elif unusual == "escaped_key":  # "type" written with an escape in the first tool result block
        messages = messages.replace('"type":"tool_result"', '"t\\u0079pe":"tool_result"', 1)
    elif unusual == "duplicate_key":  # JSON leaves it undefined; Python (and both paths) keep the last
        messages = messages.replace('"role":"assistant"', '"role":"user","role":"assistant"', 1)
    else:
        messages = messages.replace('"Attempt 0."', '"Attempt \\ud800."', 1)
    raw = json.dumps(body, separators=(",", ":")).encode()[:-1] + b',"messages":' + messages.encode() + b"}"
    # a lone surrogate is judged by json.loads for the whole body (providers/body.py)
    assert isinstance(parse_request(raw), dict if unusual == "lone_surrogate" else RequestBody)
    full, sent, full_changes, changes = both_paths("messages", POLICIES["all"], raw)
    assert json.loads(sent) == full and changes == full_changes
    assert changes.pruned_results == 3


def test_a_large_request_is_changed_without_decoding_what_no_transform_reads() -> None:
    """Routing, the thinking clamp and server-side clearing change top-level values only: the
    conversation stays the agent's bytes, never decoded."""
    raw = json.dumps(anthropic(4), separators=(",", ":")).encode()
    lazy = parse_request(raw)
    policy = ContextPolicy(route=ROUTE, max_thinking_tokens=2000,
                           clear_old_tool_results=ClearSpec(trigger_tokens=1000, keep_last=1))
    done = apply("messages", policy, lazy, raw)  # routed to claude-haiku-4-5: context editing server-side
    assert isinstance(done.body, RequestBody) and done.body.raw("messages") == lazy.raw("messages")
    sent = encode_request(done.body)
    assert lazy.raw("messages") in sent
    edit = {"type": "clear_tool_uses_20250919", "trigger": {"type": "input_tokens", "value": 1000},
            "keep": {"type": "tool_uses", "value": 1}}
    assert json.loads(sent) == {**json.loads(raw), "model": "claude-haiku-4-5",
                                "thinking": {"type": "enabled", "budget_tokens": 2000},
                                "context_management": {"edits": [edit]}}


def test_spans_split_only_what_adds_up() -> None:
    spans = splice.Spans()
    data = json.dumps([{"a": "x" * 5000, "b": [1, 2]}, "é" * 3000, 3], separators=(",", ":")).encode()
    value = spans.load(memoryview(data))
    assert value == json.loads(data)
    assert spans.encode_bytes(value) == data  # unchanged: the very bytes
    changed = [{**value[0], "b": [9]}, value[1], value[2]]
    out = spans.encode_bytes(changed)
    assert json.loads(out) == changed
    assert json.dumps("é" * 3000).encode() in out  # the kept element as the agent wrote it (\u00e9)
    spaced = json.dumps([{"a": "x" * 5000}, "é" * 3000], indent=2).encode()
    again = splice.Spans()
    value = again.load(memoryview(spaced))
    assert value == json.loads(spaced)
    out = again.encode_bytes([{"a": "y"}, value[1]])  # whitespace: nothing located, written anew
    assert json.loads(out) == [{"a": "y"}, "é" * 3000]


def test_an_agent_that_caches_itself_is_not_decoded_for_cache_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    """Claude Code marks its system prompt: `cache: auto` then leaves the request alone without
    reading the megabyte of conversation (nor does `cache` ever read an OpenAI one)."""
    def no_decode(*_: object) -> None:
        raise AssertionError("the conversation was decoded")

    monkeypatch.setattr(splice, "prepare", no_decode)
    body = anthropic(4)
    body["system"] = [{"type": "text", "text": "You fix tests.", "cache_control": {"type": "ephemeral"}}]
    raw = json.dumps(body, separators=(",", ":")).encode()
    lazy = parse_request(raw)
    done = apply("messages", POLICIES["cache"], lazy, raw)
    assert done.body is lazy and done.changes.agent_caches and not done.changes.any()
    chat_raw = json.dumps(chat(4), separators=(",", ":")).encode()
    chat_lazy = parse_request(chat_raw)
    assert apply("chat.completions", POLICIES["cache"], chat_lazy, chat_raw).body is chat_lazy


def test_a_large_object_keeps_its_members_bytes_unless_a_key_is_unusual() -> None:
    spans = splice.Spans()
    data = json.dumps({"a": "é" * 3000, "b": [1, 2]}, separators=(",", ":")).encode()  # é as \u00e9
    value = spans.load(memoryview(data))
    out = spans.encode_bytes({**value, "b": [3]})
    assert json.loads(out) == {"a": "é" * 3000, "b": [3]} and json.dumps("é" * 3000).encode() in out
    escaped = data.replace(b'"b":', b'"\\u0062":')  # the same object, a key written with an escape
    again = splice.Spans()
    value = again.load(memoryview(escaped))
    assert value == json.loads(escaped)
    out = again.encode_bytes({**value, "b": [3]})  # decoded whole: written anew, the same value
    assert json.loads(out) == {"a": "é" * 3000, "b": [3]}


def cache_auto(transforms: ContextTransforms, raw: bytes) -> bytes:
    lazy = parse_request(raw)
    adapter = ADAPTERS["messages"]
    info = adapter.inspect(lazy)
    done = transforms.apply(provider="anthropic", endpoint="messages", raw=raw, body=lazy, model=info.model,
                            max_output=info.max_output_tokens, input_tokens=info.estimated_input_tokens,
                            stream=False, set_model=adapter.set_model, not_dearer=lambda a, b: True)
    return raw if done.body is lazy else encode_request(done.body)


def full_splice(raw: bytes) -> bytes:
    """What the splice of the whole decoded conversation writes (the memo switched off)."""
    transforms = ContextTransforms(POLICIES["cache"])
    transforms._messages = None
    return cache_auto(transforms, raw)


def test_cache_auto_on_later_turns_decodes_only_the_new_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    """`cache: auto` alone indexes a run's conversation once; a later turn that repeats it byte for
    byte decodes only the messages it appends, and sends exactly the bytes of the full splice."""
    transforms = ContextTransforms(POLICIES["cache"])
    turns = [json.dumps(anthropic(n), separators=(",", ":")).encode() for n in (3, 4, 4)]
    decoded: list[int] = []
    real = splice._scan

    def counting(data: memoryview, *rest: object) -> object:
        decoded.append(len(data))
        return real(data, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(splice, "_scan", counting)
    sent = [cache_auto(transforms, raw) for raw in turns]
    monkeypatch.setattr(splice, "_scan", real)
    for raw, out in zip(turns, sent, strict=True):
        assert out == full_splice(raw)  # byte for byte
        assert json.loads(out) == apply("messages", POLICIES["cache"], json.loads(raw), raw).body
    assert sent[1] == sent[2]
    first = len(parse_request(turns[0]).raw("messages"))
    added = len(parse_request(turns[1]).raw("messages")) - first
    assert decoded == [first, added + 1]  # the whole first turn, then only the two new messages


def test_cache_auto_memo_sees_cache_control_in_a_new_message_and_a_rewritten_history() -> None:
    transforms = ContextTransforms(POLICIES["cache"])
    body = anthropic(3)
    cache_auto(transforms, json.dumps(body, separators=(",", ":")).encode())
    later = anthropic(4)
    later["messages"][-1]["content"][0]["cache_control"] = {"type": "ephemeral"}
    raw = json.dumps(later, separators=(",", ":")).encode()
    assert cache_auto(transforms, raw) == raw  # the agent caches now: left alone
    rewritten = anthropic(4)
    rewritten["messages"][1]["content"][0]["text"] = "Attempt zero."  # history compacted by the agent
    raw = json.dumps(rewritten, separators=(",", ":")).encode()
    assert cache_auto(transforms, raw) == full_splice(raw)
    assert json.loads(cache_auto(transforms, raw)) == apply("messages", POLICIES["cache"], json.loads(raw), raw).body


@pytest.mark.parametrize("unusual", ["whitespace", "escaped_key", "duplicate_key", "huge_number", "large_tools"])
def test_cache_auto_alone_on_unusual_json_sends_what_the_full_path_sends(unusual: str) -> None:
    body = anthropic(4)
    messages = json.dumps(body.pop("messages"), separators=(",", ":"))
    if unusual == "whitespace":
        messages = json.dumps(json.loads(messages), indent=1)
    elif unusual == "escaped_key":  # cache_control written with escapes: the agent manages caching
        messages = messages.replace('"type":"tool_result"', '"c\\u0061che_control":{"type":"ephemeral"},'
                                    '"type":"tool_result"', 1)
    elif unusual == "duplicate_key":
        messages = messages.replace('"role":"assistant"', '"role":"user","role":"assistant"', 1)
    elif unusual == "huge_number":  # msgspec refuses it: json.loads decides
        messages = messages.replace('"timeout":600', '"timeout":1e400', 1)
    else:
        body["tools"] = body["tools"] * 2000  # another part above LAZY_MIN_BYTES: the full splice
    raw = json.dumps(body, separators=(",", ":")).encode()[:-1] + b',"messages":' + messages.encode() + b"}"
    assert isinstance(parse_request(raw), RequestBody)
    transforms = ContextTransforms(POLICIES["cache"])
    for _ in range(2):  # the first sight and the memo's second
        sent = cache_auto(transforms, raw)
        full = apply("messages", POLICIES["cache"], json.loads(raw), raw)
        assert json.loads(sent) == full.body
        assert (sent == raw) == (unusual == "escaped_key") == full.changes.agent_caches


class CountingList:
    """splice._LIST, splice._MESSAGES and splice._RAW_MESSAGES, counting the bytes they split (the
    passes that locate the messages: list[Raw], or the index's one pass: Messages, or OpenAI's)."""

    def __init__(self, sizes: list[int], decoder: object) -> None:
        self.sizes, self.decoder = sizes, decoder

    def decode(self, data: memoryview) -> object:
        self.sizes.append(len(data))
        return self.decoder.decode(data)  # type: ignore[attr-defined]


@pytest.mark.parametrize("endpoint", ["messages", "chat.completions"])
@pytest.mark.parametrize("name", ["prune", "clear", "all"])
def test_later_turns_locate_only_the_new_messages_and_send_the_same_bytes(
        endpoint: str, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's memo remembers where the messages of a changed request were; the next turn, which
    repeats them, skips the list[Raw] pass over the whole conversation and sends byte for byte what
    a proxy that never saw the run sends."""
    policy = POLICIES[name]
    turns = [json.dumps(SHAPES[endpoint](n), separators=(",", ":")).encode() for n in (3, 4)]
    transforms = ContextTransforms(policy)

    def send(t: ContextTransforms, raw: bytes) -> bytes:
        lazy = parse_request(raw)
        done = apply_with(t, endpoint, lazy, raw)
        return raw if done.body is lazy else encode_request(done.body)

    sizes: list[int] = []
    monkeypatch.setattr(splice, "_LIST", CountingList(sizes, splice._LIST))
    monkeypatch.setattr(splice, "_MESSAGES", CountingList(sizes, splice._MESSAGES))
    monkeypatch.setattr(splice, "_RAW_MESSAGES", CountingList(sizes, splice._RAW_MESSAGES))
    sent = [send(transforms, raw) for raw in turns]
    sizes = list(sizes)
    monkeypatch.undo()
    for raw, out in zip(turns, sent, strict=True):
        fresh = ContextTransforms(policy)
        fresh._messages = None
        assert out == send(fresh, raw)
        assert json.loads(out) == apply(endpoint, policy, json.loads(raw), raw).body
    conversation = [len(parse_request(raw).raw(splice.CONVERSATION[endpoint])) for raw in turns]
    assert sizes[0] == conversation[0]  # the first turn is located in full
    assert conversation[1] not in sizes and max(sizes[1:]) < conversation[1] - conversation[0] + 2


def apply_with(transforms: ContextTransforms, endpoint: str, body: object, raw: bytes):
    adapter = ADAPTERS[endpoint]
    info = adapter.inspect(body)  # type: ignore[arg-type]
    return transforms.apply(
        provider="anthropic" if endpoint == "messages" else "openai", endpoint=endpoint, raw=raw, body=body,
        model=info.model, max_output=info.max_output_tokens, input_tokens=info.estimated_input_tokens,
        stream=info.stream, set_model=adapter.set_model, not_dearer=lambda a, b: True)
