"""Pruning on the agent's JSON bytes (meter/transforms/rawcut.py and its C part, _jsoncut.c).

The contract: wherever the raw path answers, it answers exactly what the Python path does -- the
same cut of the same text (prune.cut), written as the same bytes (msgspec's) -- and where the bytes
are not msgspec's writing it declines, so the Python path decides. Checked on generated texts
and messages of all three wire formats; plus the C functions on hostile bytes (never a crash).
"""

from __future__ import annotations

import json
import os
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ci_guard.meter.transforms import prune, rawcut, splice
from ci_guard.policy.models import PruneSpec

pytestmark = pytest.mark.skipif(not rawcut.AVAILABLE and os.environ.get("CI") != "true",
                                reason="the C part (_jsoncut) is not compiled here")

# newlines, quotes, backslashes, tabs, every short escape, control characters written as \u00XX,
# non-ASCII of two, three and four bytes (an emoji is one character), U+2028 and DEL written raw
CHARS = st.sampled_from(list('ab yz"\\\n\n\n\t\r\b\f\x01\x1b\x1fé✓😀\u2028\x7f/'))
LINE = st.text(alphabet=CHARS, max_size=12)
TEXT = st.one_of(st.text(alphabet=CHARS, max_size=400),
                 st.lists(LINE, max_size=60).map("\n".join),
                 st.lists(st.text(alphabet=st.sampled_from(list("abc xyz")), max_size=20), max_size=80).map("\n".join))
SPEC = st.builds(lambda tokens, head, tail, exclude: PruneSpec(max_tokens=tokens, keep={"head_lines": head,
                                                                                      "tail_lines": tail},
                                                               **({"exclude_tools": exclude} if exclude else {})),
                 st.integers(1, 40), st.integers(0, 8), st.integers(0, 8),
                 st.sampled_from([[], ["Read"]]))


def test_the_c_part_is_built_in_ci() -> None:
    """Without it the proxy still prunes (in Python), only slower: CI must prove the fast path runs."""
    if os.environ.get("CI") == "true":
        assert rawcut.AVAILABLE


def cut_bytes(text: str, spec: PruneSpec, prefix: bytes = b'{"content":') -> tuple[bytes, int, int] | None:
    """rawcut.cut of ``text`` written by msgspec inside an object: the pruned literal, and the
    characters before and after."""
    data = memoryview(prefix + msgspec.json.encode(text) + b"}")
    span = (len(prefix), len(data) - 1)
    found = rawcut.cut(data, span, spec)
    if found is None:
        return None
    head_byte, cut_byte, middle, chars, new_chars = found
    return bytes(data[span[0]:head_byte]) + middle + bytes(data[cut_byte:span[1]]), chars, new_chars


@settings(max_examples=600, deadline=None)
@given(text=TEXT, spec=SPEC)
def test_the_cut_on_bytes_is_prune_cut(text: str, spec: PruneSpec) -> None:
    expected = prune.cut(text, spec)
    got = cut_bytes(text, spec)
    if expected is None:
        assert got is None
    else:
        assert got == (msgspec.json.encode(expected), len(text), len(expected))


def test_a_long_log_is_cut_as_in_python() -> None:
    text = "".join(f"tests/test_{i}.py::test_case FAILED \"é\" 😀\tline {i}\n" for i in range(5000))
    spec = PruneSpec(max_tokens=2000, keep={"head_lines": 40, "tail_lines": 120})
    got = cut_bytes(text, spec)
    assert got is not None and got[0] == msgspec.json.encode(prune.cut(text, spec))
    assert "lines (" in json.loads(got[0]) and len(got[0]) < 12_000  # the marker, and the result is cut


@pytest.mark.parametrize("literal", [
    b'"' + b"caf\\u00e9 " * 2000 + b'"',  # json.dumps' ensure_ascii: msgspec writes the character itself
    b'"' + b"a\\/b " * 2000 + b'"',  # an escaped solidus
    b'"' + b"\\u0041 " * 2000 + b'"',  # a printable character escaped
    b'"' + b"\\u001B " * 2000 + b'"',  # uppercase hex (msgspec writes lowercase)
    b'"' + b"\\ud83d\\ude00 " * 2000 + b'"',  # a surrogate pair (msgspec writes the UTF-8)
    b'"' + b"\\ud83d " * 2000 + b'"',  # a lone surrogate
    b'"' + b"tab\there " * 2000 + b'"',  # a raw control character: not JSON
    b'"' + b"x" * 9000 + b'\\"',  # an escape that runs into the closing quote
    b'"' + b'a"b' * 3000 + b'"',  # raw quotes inside: not one literal
])
def test_bytes_that_are_not_msgspecs_writing_are_left_to_python(literal: bytes) -> None:
    data = memoryview(literal)
    with pytest.raises(ValueError):
        rawcut.cut(data, (0, len(data)), PruneSpec(max_tokens=100))
    assert not rawcut.canonical(data, (0, len(data)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300),
       start=st.one_of(st.integers(-5, 320), st.sampled_from([2**62, 2**63 - 1, -(2**63)])),
       end=st.one_of(st.integers(-5, 320), st.sampled_from([2**62, 2**63 - 1, -(2**63)])),
       numbers=st.tuples(st.integers(-2, 10**10), st.integers(-2, 10**10), st.integers(-2, 10**10)))
def test_the_c_functions_never_crash_on_hostile_bytes(data: bytes, start: int, end: int,
                                                      numbers: tuple[int, int, int]) -> None:
    from ci_guard.meter.transforms import _jsoncut

    found = _jsoncut.skeleton(data, 0, (b'"a"', b'""'), b'"p')
    assert found is None or all(0 <= a < b <= len(data) for a, b in found[1])
    for call in (lambda: _jsoncut.cut(data, start, end, *numbers), lambda: _jsoncut.canonical(data, start, end)):
        try:
            call()
        except (ValueError, OverflowError):
            pass


def test_the_skeleton_replaces_the_long_text_values_only() -> None:
    data = (b'{"a":"short","content":"' + b"x" * 50 + b'","list":["' + b"y" * 50 + b'"],'
            b'"k\\"ey":"' + b"z\\\"" * 20 + b'","text" : "' + b"w" * 50 + b'"}')
    skeleton = rawcut.skeleton(memoryview(data), 40)
    assert skeleton is None  # a space before the colon: msgspec would not write it so
    data = data.replace(b'"text" : "', b'"text":"')
    skeleton = rawcut.skeleton(memoryview(data), 40)
    assert skeleton is not None and not skeleton.floats
    # the list element and the value of another key stay; content and text are placeholders
    assert skeleton.value["list"] == ["y" * 50] and skeleton.value['k"ey'] == 'z"' * 20
    assert [data[a:b][:3] for a, b in skeleton.literals] == [b'"xx', b'"ww']
    assert skeleton.span(skeleton.value["content"]) == skeleton.literals[0]
    assert skeleton.span(skeleton.value["text"]) == skeleton.literals[1]
    assert skeleton.span("x" * 50) is None and skeleton.span(rawcut._SECRET + "7") is None
    with_float = rawcut.skeleton(memoryview(data.replace(b'"a":"short"', b'"a":1.5')), 40)
    assert with_float is not None and with_float.floats and with_float.value["a"] == 1.5
    from ci_guard.meter.transforms import _jsoncut

    assert _jsoncut.skeleton(b'{"content":"never closed', 0, rawcut.TEXT_KEYS, b'"p') is None


# -- whole messages: the raw path and the Python path make the same MessageCut -----------------------

RESULT = st.one_of(TEXT, st.lists(LINE, min_size=20, max_size=80).map("\n".join))


@st.composite
def message(draw: Any, endpoint: str) -> dict[str, Any]:
    text = draw(RESULT)
    tool = draw(st.sampled_from(["Bash", "Read"]))
    if endpoint == "messages":
        content: Any = text if draw(st.booleans()) else [{"type": "text", "text": text},
                                                         {"type": "text", "text": draw(RESULT)}]
        blocks = [{"type": "tool_use", "id": "t0", "name": tool, "input": {"content": draw(RESULT)}},
                  {"type": "tool_result", "tool_use_id": draw(st.sampled_from(["t0", "t9"])), "content": content,
                   "is_error": draw(st.booleans())}]
        return {"role": "user", "content": blocks[draw(st.integers(0, 1)):]}
    if endpoint == "chat.completions":
        return {"role": "tool", "tool_call_id": draw(st.sampled_from(["c0", "c9"])), "content": text}
    output: Any = text if draw(st.booleans()) else [{"type": "input_text", "text": text}]
    return {"type": "function_call_output", "call_id": draw(st.sampled_from(["c0", "c9"])), "output": output}


def writings(value: Any) -> list[bytes]:
    """The message as agents write it: msgspec/Node/serde (compact, UTF-8), json.dumps' defaults."""
    return [msgspec.json.encode(value), json.dumps(value, separators=(",", ":")).encode(),
            json.dumps(value, ensure_ascii=False).encode()]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from(["messages", "chat.completions", "responses"]), SPEC, st.booleans())
def test_a_message_is_cut_on_its_bytes_exactly_as_when_decoded(data: Any, endpoint: str, spec: PruneSpec,
                                                               newest: bool) -> None:
    value = data.draw(message(endpoint))
    names = {"t0": "Read", "c0": "Read"} if data.draw(st.booleans()) else {}
    for raw in writings(value):
        view = memoryview(raw)
        got = splice._cut_raw(view, 3, newest, dict(names), spec, endpoint)
        expected = splice._cut_message(msgspec.json.decode(raw), 3, newest, dict(names), spec,
                                       lambda text: prune.cut(text, spec), endpoint)
        if got is not None:
            assert got == expected
        elif raw == msgspec.json.encode(value) and (expected.results or expected.cuts_newest):
            # msgspec's own writing with something to cut: the raw path must have taken it
            raise AssertionError("the raw path declined msgspec's own writing")


def test_a_long_value_that_is_not_a_tool_result_is_kept_byte_for_byte() -> None:
    """Claude Code's Write tool sends a whole file as a tool_use input: never cut, never rewritten."""
    spec = PruneSpec(max_tokens=10)
    value = {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Write",
                                               "input": {"content": "line\n" * 200}}]}
    raw = msgspec.json.encode(value)
    assert splice._cut_raw(memoryview(raw), 0, False, {}, spec, "messages") == splice.MessageCut(
        False, None, 0, 0, False, (("t1", "Write"),), False)


def test_without_the_c_part_the_python_path_prunes_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = PruneSpec(max_tokens=200, keep={"head_lines": 5, "tail_lines": 10})
    items = []
    for i in range(6):
        items += [{"type": "function_call", "name": "shell", "call_id": f"c{i}", "arguments": "{}"},
                  {"type": "function_call_output", "call_id": f"c{i}",
                   "output": "".join(f"line {j} é 😀\n" for j in range(300))}]
    view = memoryview(msgspec.json.encode(items))

    def plan() -> splice.PrunePlan:
        index = splice.MessageMemo(splice.scan_openai).index(view)
        assert index is not None
        found = splice.prune_indexed(index, spec, prune.CutMemo(spec), "responses", splice.SeenCuts())
        assert found is not None
        return found

    with_c = plan()
    monkeypatch.setattr(rawcut, "_jsoncut", None)
    without = plan()
    assert with_c == without and with_c.results == 5


def test_an_agents_megabytes_of_newlines_cannot_make_the_cut_hold_more_than_its_cap() -> None:
    """Each kept newline costs 16 bytes for 2 bytes of JSON: past 2**20 lines the literal is left to
    the Python path (which holds about the text itself) instead of growing the list."""
    import tracemalloc

    spec = PruneSpec(max_tokens=2000, keep={"head_lines": 40, "tail_lines": 120})
    many = memoryview(msgspec.json.encode("\n" * (2**20 + 8)))
    with pytest.raises(ValueError):
        rawcut.cut(many, (0, len(many)), spec)
    message = msgspec.json.encode({"role": "tool", "tool_call_id": "c", "content": "\n" * 2_000_000})
    tracemalloc.start()
    try:
        raw = splice._cut_raw(memoryview(message), 3, False, {}, spec, "chat.completions")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert raw is None and peak < 20 * 2**20  # declined after at most 16 MiB of positions
    fewer = "\n" * 500_000
    assert cut_bytes(fewer, spec) == (msgspec.json.encode(prune.cut(fewer, spec)), len(fewer),
                                      len(prune.cut(fewer, spec) or ""))


def test_object_frames_an_agent_makes_up_are_not_kept() -> None:
    """The sizes of key sets are cached for the handful of shapes a conversation repeats, not for
    a made-up object whose keys would stay pinned in the cache."""
    huge = tuple(f"key{i}" for i in range(5000))
    assert splice._frame(huge) == 1 + sum(len(k) + 4 for k in huge)
    assert huge not in splice._FRAMES
    assert splice._frame(("role", "content")) == len('{"role":,"content":}') and ("role", "content") in splice._FRAMES
