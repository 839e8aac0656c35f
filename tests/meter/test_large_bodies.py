"""Large requests: the byte-level scans (providers/body.py, tokens/media.py) agree with a full parse; memory reuse."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ci_guard.meter.providers import body as body_module
from ci_guard.meter.providers.anthropic import AnthropicMessages
from ci_guard.meter.providers.body import _UTF8_SLICE, LAZY_MIN_BYTES, RequestBody, parse_request
from ci_guard.meter.providers.openai_chat import OpenAIChat
from ci_guard.meter.providers.openai_responses import OpenAIResponses
from ci_guard.tokens.media import may_carry_media, media_payloads


@pytest.fixture(params=["compiled", "python"], autouse=True)
def scans(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs on the compiled scans (_bytescan) and on the Python path an install
    without a C compiler takes (the UTF-8 check a slice at a time, msgspec's split)."""
    if request.param == "python":
        monkeypatch.setattr(body_module, "_split_object", None)
        monkeypatch.setattr(body_module, "_utf8_valid", None)
    elif not body_module.SCANS_COMPILED:
        pytest.skip("the C part (_bytescan) is not compiled here")
    return request.param


def _padded(text_bytes: bytes, at: int) -> bytes:
    """A large request whose conversation holds ``text_bytes`` starting at byte ``at`` of the body."""
    head = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"'
    fill = b"x" * (at - len(head))
    return head + fill + text_bytes + b"x" * LAZY_MIN_BYTES + b'"}]}'


@pytest.mark.parametrize("char", ["é", "→", "😀"])
@pytest.mark.parametrize("shift", [0, 1, 2, 3])
def test_a_character_across_a_utf8_slice_boundary_is_valid(char: str, shift: int) -> None:
    raw = _padded(char.encode() * 2, _UTF8_SLICE - shift)
    body = parse_request(raw)
    assert isinstance(body, RequestBody)  # decoded slice by slice, nothing refused
    assert body["messages"] == json.loads(raw)["messages"]


@pytest.mark.parametrize("bad", [b"\xff", b"\xc3", b"\xe2\x86", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\x80"])
@pytest.mark.parametrize("shift", [0, 1, 2])
def test_invalid_utf8_across_a_slice_boundary_is_refused_as_by_json_loads(bad: bytes, shift: int) -> None:
    raw = _padded(bad + b"y", _UTF8_SLICE - shift)
    try:
        want = json.loads(raw)
    except ValueError:
        with pytest.raises(ValueError):
            parse_request(raw)
    else:  # json.loads accepts encoded surrogates (surrogatepass): the strict path decides, as before
        assert parse_request(raw) == want


def test_a_body_ending_in_a_cut_character_is_refused() -> None:
    raw = b'{"model":"m","pad":"' + b"x" * LAZY_MIN_BYTES + b'"}' + "→".encode()[:2]
    with pytest.raises(ValueError):
        parse_request(raw)


MEDIA = [
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
    {"type": "document", "source": {"type": "file", "file_id": "file_011"}},
    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    {"type": "file", "file": {"file_id": "file-abc"}},
    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0x"}},
    {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
    {"type": "input_image", "file_id": "file-abc"},
    {"type": "input_file", "file_url": "https://example.com/a.pdf"},
    {"type": "input_file", "file_data": "data:application/pdf;base64,JVBERi0x"},
]


@pytest.mark.parametrize("item", MEDIA)
@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": "), (",", " : ")])
def test_every_media_shape_is_seen_by_the_byte_scan(item: dict, separators: tuple[str, str]) -> None:
    part = [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [item]}]}]
    assert list(media_payloads(part))  # the walk finds it...
    text = json.dumps(part, separators=separators, ensure_ascii=False)
    assert may_carry_media(text) and may_carry_media(text.encode())  # ...so the scan must not skip it


def test_text_that_quotes_media_json_does_not_start_the_walk() -> None:
    quoted = json.dumps({"type": "image", "source": {"type": "url", "url": "u"}})
    part = [{"role": "user", "content": [{"type": "text", "text": f"the API takes {quoted}; base64 too"}],
             "metadata": {"image_url": "file_id", "file_url": ";base64,"}}]
    text = json.dumps(part, separators=(",", ":"))
    assert not may_carry_media(text) and not may_carry_media(text.encode())


@pytest.mark.parametrize(("adapter", "key", "item"), [
    (AnthropicMessages(), "messages", {"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}),
    (OpenAIChat(), "messages", {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}),
    (OpenAIResponses(), "input", {"role": "user", "content": [{"type": "input_file", "file_id": "file-abc"}]}),
])
def test_media_by_reference_in_a_conversation_with_spaces_is_counted(adapter, key: str, item: dict) -> None:
    # Compact at the top level, spaces inside the conversation: the split keeps those bytes as
    # they are, and the scan still sees the media object (its maximum is added, never skipped).
    history = [{"role": "user", "content": "y" * 200}] * (LAZY_MIN_BYTES // 200) + [item]
    raw = (b'{"model":"gpt-5","max_tokens":5,"' + key.encode() + b'":'
           + json.dumps(history).encode() + b"}")
    lazy = parse_request(raw)
    assert isinstance(lazy, RequestBody)
    got, want = adapter.inspect(lazy), adapter.inspect(json.loads(raw))
    assert got.unmeasured_media == want.unmeasured_media == 1
    assert got.estimated_input_tokens >= want.estimated_input_tokens


def test_a_busy_proxy_keeps_freed_memory_for_the_next_request() -> None:
    import sys

    from ci_guard.meter.loop import keep_freed_memory, release_free_memory

    linux = sys.platform.startswith("linux")
    assert keep_freed_memory() is linux  # glibc accepted both thresholds
    assert release_free_memory() is linux  # and an idle proxy still gives it back


def test_a_large_body_goes_to_the_worker_thread_only_while_other_calls_are_in_flight(scans: str) -> None:
    """metered.py: with no other call in flight the event loop inspects a 1 MB body itself (nobody to
    hold up); with one, the body goes to a worker thread so the other call's stream is not held up."""
    import asyncio

    from ci_guard.meter import metered
    from ci_guard.meter.proxy import MeterProxy

    proxy = MeterProxy.__new__(MeterProxy)  # only its in-flight set is read here
    proxy._inflight = set()
    threads: list[bool] = []

    class Call(metered.MeteredCall):
        def __init__(self) -> None:
            self.proxy = proxy

        def _inspect(self, raw: bytes) -> Any:
            import threading

            threads.append(threading.current_thread() is not threading.main_thread())
            raise metered.BadRequest("stop here")

    class Req:
        async def read(self) -> bytes:
            return b"x" * (1024 * 1024)

    async def main() -> None:
        proxy.error = lambda *a: None  # type: ignore[method-assign]
        call = Call()
        call.request, call.provider = Req(), "anthropic"  # type: ignore[assignment]
        proxy._inflight.add(asyncio.current_task())
        await call.run()  # alone
        other = asyncio.create_task(asyncio.sleep(10))
        proxy._inflight.add(other)
        await call.run()  # another call streaming meanwhile
        other.cancel()

    asyncio.run(main())
    inline_when_alone = metered.INSPECT_IN_THREAD_BYTES > 1024 * 1024
    assert threads == [not inline_when_alone, True]
