"""The input estimate: inline base64 images and documents are counted per item, not per byte."""

from __future__ import annotations

import base64
import json
import random

import pytest

from ci_guard.meter.providers.anthropic import AnthropicMessages
from ci_guard.meter.providers.base import estimate_input_tokens
from ci_guard.meter.providers.openai_chat import OpenAIChat
from ci_guard.meter.providers.openai_responses import OpenAIResponses
from ci_guard.simulator.conversation import read_request

B64 = base64.b64encode(random.Random(7).randbytes(900_000)).decode()  # a 0.9 MB screenshot
IMAGE_TOKENS = 1_600  # the brief's figure, not imported: the test must not follow the code
PDF = base64.b64encode(random.Random(8).randbytes(800_000)).decode()  # 800 kB: 10 pages of 80 kB


def text_tokens(*parts: object) -> int:
    """bytes/4 of the compact JSON, the estimator's rule for everything that is not media."""
    size = sum(len(json.dumps(p, separators=(",", ":"), ensure_ascii=False).encode()) for p in parts)
    return (size + 3) // 4


def anthropic_body(data: str, kind: str = "image") -> dict:
    media = "image/png" if kind == "image" else "application/pdf"
    block = {"type": kind, "source": {"type": "base64", "media_type": media, "data": data}}
    return {"model": "claude-sonnet-4-5", "max_tokens": 100, "system": "You are terse.", "messages": [
        {"role": "user", "content": [block, {"type": "text", "text": "What is this?"}]}]}


def test_anthropic_image_costs_a_fixed_amount_not_its_bytes() -> None:
    body = anthropic_body(B64)
    info = AnthropicMessages().inspect(body)
    empty = anthropic_body("")
    assert info.estimated_input_tokens == text_tokens(empty["system"], empty["messages"]) + IMAGE_TOKENS
    assert info.estimated_input_tokens < 1_700  # it was 300,037 when the payload counted as text


def test_image_inside_a_tool_result_and_line_wrapped_base64() -> None:
    wrapped = "\r\n".join(B64[i:i + 76] for i in range(0, len(B64), 76))
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": wrapped}}
    messages = [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                              "content": [image, {"type": "text", "text": "ok"}]}]}]
    image["source"]["data"] = ""
    expected = text_tokens(messages) + IMAGE_TOKENS
    image["source"]["data"] = wrapped
    assert estimate_input_tokens(None, messages, None) == expected


def test_anthropic_pdf_counts_decoded_bytes_over_40_and_text_documents_as_text() -> None:
    empty = anthropic_body("", "document")
    estimate = AnthropicMessages().inspect(anthropic_body(PDF, "document")).estimated_input_tokens
    assert estimate == text_tokens(empty["system"], empty["messages"]) + 800_000 // 40
    small = base64.b64encode(b"%PDF-1.4 tiny").decode()
    estimate = AnthropicMessages().inspect(anthropic_body(small, "document")).estimated_input_tokens
    assert estimate == text_tokens(empty["system"], empty["messages"]) + 1_600  # the floor
    doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x" * 4000}}
    assert estimate_input_tokens([doc]) == text_tokens([doc])  # plain text is text


def test_chat_data_url_image_and_file() -> None:
    image = {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{B64}", "detail": "high"}}
    pdf = {"type": "file", "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{PDF}"}}
    body = {"model": "gpt-4.1", "messages": [{"role": "user", "content": [image, pdf]}]}
    estimate = OpenAIChat().inspect(body).estimated_input_tokens
    image["image_url"]["url"], pdf["file"]["file_data"] = "", ""
    assert estimate == text_tokens(body["messages"]) + IMAGE_TOKENS + 800_000 // 40
    # an image by URL cannot be measured: it counts at OpenAI's documented maximum per image
    # (1,536 patches x 2.46), not as the few bytes of its URL (issue 12 #6)
    without_url = text_tokens(body["messages"])
    image["image_url"]["url"] = "https://example.com/a.png"
    assert OpenAIChat().inspect(body).estimated_input_tokens == without_url + 3_780


def test_responses_input_image_and_input_file() -> None:
    items = [{"type": "message", "role": "user", "content": [
        {"type": "input_image", "image_url": f"data:image/png;base64,{B64}"},
        {"type": "input_file", "filename": "spec.pdf", "file_data": f"data:application/pdf;base64,{PDF}"},
        {"type": "input_text", "text": "Summarise."}]}]
    body = {"model": "gpt-5", "instructions": "Be brief.", "input": items}
    estimate = OpenAIResponses().inspect(body).estimated_input_tokens
    content = items[0]["content"]
    content[0]["image_url"], content[1]["file_data"] = "", ""
    assert estimate == text_tokens("Be brief.", items) + IMAGE_TOKENS + 800_000 // 40


def test_text_that_mentions_base64_is_still_plain_text() -> None:
    messages = [{"role": "user", "content": 'decode "base64" and data:image/png;base64,AAAA please'},
                {"role": "user", "content": [{"type": "text", "text": '{"type":"image","data":"AAAA"}'}]}]
    assert estimate_input_tokens("sys", messages) == text_tokens("sys", messages)
    # media not declared base64 is counted as the text it is (here: a small inline SVG)
    svg = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/svg+xml,<svg/>"}},
                                        {"type": "text", "text": "base64"}]}]
    assert estimate_input_tokens(svg) == text_tokens(svg)


@pytest.mark.parametrize("endpoint, body", [
    ("messages", {**anthropic_body(B64), "messages": [
        *anthropic_body(B64)["messages"], {"role": "assistant", "content": "A chart."},
        {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": PDF}}]}]}),
    ("chat.completions", {"model": "gpt-4.1", "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64}"}}]},
        {"role": "assistant", "content": "A chart."}, {"role": "user", "content": "And?"}]}),
    ("responses", {"model": "gpt-5", "input": [
        {"type": "message", "role": "user", "content": [
            {"type": "input_file", "file_data": f"data:application/pdf;base64,{PDF}"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Read."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Next"}]}]}),
])
def test_simulator_serves_what_the_proxy_estimates(endpoint: str, body: dict) -> None:
    adapter = {"messages": AnthropicMessages, "chat.completions": OpenAIChat, "responses": OpenAIResponses}
    served = read_request(endpoint, body)
    assert served.total_tokens == adapter[endpoint]().inspect(body).estimated_input_tokens
    assert 0 < served.prefix_tokens < served.total_tokens < 25_000  # media counted per item in both


def test_the_text_check_skips_the_walk_for_mere_mentions() -> None:
    from ci_guard.tokens.media import may_carry_media

    def check(part: object) -> bool:
        text = json.dumps(part, separators=(",", ":"), ensure_ascii=False)
        assert may_carry_media(text) == may_carry_media(text.encode())  # the proxy scans the bytes
        return may_carry_media(text)

    assert not check([{"type": "text", "text": 'import base64\nbase64.b64decode(s["base64"])'}])
    assert check(anthropic_body("AAAA")["messages"])
    assert check([{"type": "input_image", "image_url": "data:image/png;base64,AAAA"}])


def test_a_lone_surrogate_in_the_request_is_estimated_not_a_crash() -> None:
    from ci_guard.meter.providers.anthropic import AnthropicMessages

    body = json.loads('{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x\\ud800y"}]}')
    info = AnthropicMessages().inspect(body)
    assert info.estimated_input_tokens > 0
    other = AnthropicMessages().inspect({**body, "messages": [{"role": "user", "content": "xy"}]})
    assert info.fingerprint != other.fingerprint
