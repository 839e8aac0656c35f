"""Issue 12 #6: images and documents by URL or file id are counted at the provider's documented
maximum per item (or refused under `enforcement.strict`), so they cannot slip past the caps."""

from __future__ import annotations

import concurrent.futures
from decimal import Decimal

import httpx
from aiohttp import web

from ci_guard.meter.providers.anthropic import AnthropicMessages
from ci_guard.meter.providers.openai_chat import OpenAIChat
from ci_guard.meter.providers.openai_responses import OpenAIResponses
from ci_guard.policy.decision import Enforcement, Limits
from tests.meter.harness import echo_upstream, proxied

PDF_BY_URL = {"type": "document", "source": {"type": "url", "url": "https://example.com/a-600-page-manual.pdf"}}
PDF_BY_ID = {"type": "document", "source": {"type": "file", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w"}}


def _anthropic(*blocks: dict) -> dict:
    return {"model": "claude-sonnet-4-5", "max_tokens": 100,
            "messages": [{"role": "user", "content": [*blocks, {"type": "text", "text": "summarise"}]}]}


def test_media_by_reference_is_estimated_at_its_documented_maximum():
    assert AnthropicMessages().inspect(_anthropic(PDF_BY_URL)).estimated_input_tokens >= 200_000
    assert AnthropicMessages().inspect(_anthropic(PDF_BY_ID)).unmeasured_media == 1
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/x.png"}}
    assert AnthropicMessages().inspect(_anthropic(image)).estimated_input_tokens >= 1_600
    chat = {"model": "gpt-4.1", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/huge.png", "detail": "high"}},
        {"type": "file", "file": {"file_id": "file-abc"}}]}]}
    info = OpenAIChat().inspect(chat)
    assert info.unmeasured_media == 2 and info.estimated_input_tokens >= 3_780 + 200_000
    responses = {"model": "gpt-5", "input": [{"role": "user", "content": [
        {"type": "input_image", "file_id": "file-img"}, {"type": "input_file", "file_url": "https://x/y.pdf"}]}]}
    assert OpenAIResponses().inspect(responses).unmeasured_media == 2
    # inline text stays text: no media, no maximum
    assert AnthropicMessages().inspect(_anthropic()).unmeasured_media == 0


def _bill_a_big_document(seen):
    return web.json_response({
        "id": "msg", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 190_000, "output_tokens": 100}})  # $0.5715 on Sonnet


def test_parallel_calls_with_documents_by_url_cannot_pass_the_cost_cap():
    with echo_upstream(_bill_a_big_document) as up, proxied(up.url, limits=Limits(max_cost_usd=Decimal("5"))) as p:
        headers = {"x-api-key": p.token, "anthropic-version": "2023-06-01"}

        def one(_: int) -> int:
            return httpx.post(f"{p.anthropic_url}/v1/messages", json=_anthropic(PDF_BY_URL), headers=headers,
                              timeout=30).status_code

        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            statuses = list(pool.map(one, range(10)))
        spent = sum((c.cost_usd for c in p.calls), Decimal(0))
        assert spent <= Decimal("5"), statuses  # 10 calls admitted on a 30-token estimate spent $5.72
        assert statuses.count(200) == len(up.requests) >= 1


def test_the_context_cap_sees_a_document_by_file_id():
    with echo_upstream() as up, proxied(up.url, limits=Limits(max_context_tokens=50_000)) as p:
        r = httpx.post(f"{p.anthropic_url}/v1/messages", json=_anthropic(PDF_BY_ID),
                       headers={"x-api-key": p.token, "anthropic-version": "2023-06-01"})
        assert r.status_code == 400 and "max_context" in r.json()["error"]["message"]
        assert up.requests == []


def test_strict_refuses_media_it_cannot_measure():
    with echo_upstream() as up, proxied(up.url, enforcement=Enforcement(strict=True)) as p:
        r = httpx.post(f"{p.anthropic_url}/v1/messages", json=_anthropic(PDF_BY_URL),
                       headers={"x-api-key": p.token, "anthropic-version": "2023-06-01"})
        assert r.status_code == 400 and "enforcement.strict" in r.json()["error"]["message"]
        assert up.requests == [] and p.calls[0].status == "refused"


def test_strict_refuses_hosted_tools_whose_fees_are_not_metered():
    from ci_guard.meter.request_checks import unmetered_fee_tools

    tools = [{"type": "code_interpreter", "container": {"type": "auto"}}, {"type": "file_search"},
             {"type": "image_generation"}, {"type": "web_search"}, {"type": "function", "name": "f"},
             {"type": "code_execution_20250825", "name": "code_execution"}]
    assert unmetered_fee_tools(tools) == ["code_interpreter", "file_search", "image_generation",
                                          "code_execution_20250825"]
    body = {"model": "gpt-5", "input": "plot it",
            "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}
    with echo_upstream() as up, proxied(up.url, model="gpt-5", openai_url=up.url,
                                        enforcement=Enforcement(strict=True)) as p:
        r = httpx.post(f"{p.openai_url}/responses", json=body, headers={"authorization": f"Bearer {p.token}"})
        assert r.status_code == 400 and "code_interpreter" in r.json()["error"]["message"]
        assert up.requests == []
        # a web search is metered, so strict lets it through
        httpx.post(f"{p.openai_url}/responses", json={**body, "tools": [{"type": "web_search"}]},
                   headers={"authorization": f"Bearer {p.token}"})
        assert len(up.requests) == 1


# OpenAI's published per-image maximum of each family ("Calculating costs", images and vision guide):
# tile-priced at high detail, at most 8 tiles of 512 px after scaling (2048 px, then a 768 px short
# side): base + 8 x tile; patch-priced: at most 1,536 patches x the model's multiplier.
PUBLISHED_OPENAI_IMAGE_MAX = {
    "gpt-4o-mini": 2_833 + 8 * 5_667,  # 48,169: the dollars of a gpt-4o image at a 33x lower token price
    "gpt-4.1-nano": 1_536 * 2.46, "gpt-5-nano": 1_536 * 2.46,
    "gpt-4.1-mini": 1_536 * 1.62, "gpt-5-mini": 1_536 * 1.62, "o4-mini": 1_536 * 1.72,
    "gpt-4o": 85 + 8 * 170, "gpt-4.1": 85 + 8 * 170, "chatgpt-4o-latest": 85 + 8 * 170,
    "gpt-5": 70 + 8 * 140, "o3": 75 + 8 * 150, "o1": 75 + 8 * 150,
}


def _published_max(model: str) -> float:
    """The figure of the model's family (the longest name it starts with); for families OpenAI
    publishes no figure for, the largest figure of any model without gpt-4o-mini's multiplier."""
    families = [f for f in PUBLISHED_OPENAI_IMAGE_MAX if model.startswith(f)]
    if families:
        return PUBLISHED_OPENAI_IMAGE_MAX[max(families, key=len)]
    return max(v for k, v in PUBLISHED_OPENAI_IMAGE_MAX.items() if k != "gpt-4o-mini")


def _chat_with_images(model: str, *images: dict) -> dict:
    return {"model": model, "max_tokens": 100,
            "messages": [{"role": "user", "content": [*images, {"type": "text", "text": "describe"}]}]}


URL_IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/wide.png", "detail": "high"}}
INLINE_IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "iVBORw0KGgo" * 40}}


def test_the_image_worst_case_is_conservative_for_every_catalog_openai_model():
    """Issue 12 #6: gpt-4o-mini bills an image at up to ~48,000 tokens; a flat 3,780 let it pass the caps."""
    from ci_guard.pricing.catalog import load_catalog
    from ci_guard.tokens.media import openai_image_extra_tokens

    catalog = load_catalog()
    models = [name for name, price in catalog.prices.items() if price.provider == "openai"]
    models += [alias for name in models for alias in catalog.aliases_of(name)]
    assert "gpt-4o-mini" in models and len(models) > 20
    for model in [*models, "gpt-4o-mini-2024-07-18"]:
        info = OpenAIChat().inspect(_chat_with_images(model, URL_IMAGE, INLINE_IMAGE))
        text_only = OpenAIChat().inspect(_chat_with_images(model)).estimated_input_tokens
        images = info.estimated_input_tokens + openai_image_extra_tokens(model, *info.openai_images) - text_only
        assert images >= 2 * _published_max(model), model
    responses = {"model": "gpt-4o-mini", "input": [{"role": "user", "content": [
        {"type": "input_image", "file_id": "file-img"}, {"type": "input_text", "text": "hi"}]}]}
    info = OpenAIResponses().inspect(responses)
    assert info.openai_images == (0, 1)
    assert info.estimated_input_tokens + openai_image_extra_tokens("gpt-4o-mini", *info.openai_images) >= 48_169


def _bill_gpt_4o_mini_images(seen):
    images = sum(1 for m in seen["json"]["messages"] for part in m["content"] if part.get("type") == "image_url")
    return web.json_response({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 48_169 * images + 10, "completion_tokens": 100, "total_tokens": 0}})


def test_gpt_4o_mini_images_by_url_cannot_pass_the_cost_cap():
    # $0.15 per million input tokens: 5 wide images bill 240,845 tokens, $0.036, against a $0.02 cap
    body = _chat_with_images("gpt-4o-mini", *[URL_IMAGE] * 5)
    with echo_upstream(_bill_gpt_4o_mini_images) as up, proxied(
            up.url, model="gpt-4o-mini", openai_url=up.url, limits=Limits(max_cost_usd=Decimal("0.02"))) as p:
        r = httpx.post(f"{p.openai_url}/chat/completions", json=body, headers={"authorization": f"Bearer {p.token}"})
        spent = sum((c.cost_usd for c in p.calls), Decimal(0))
        assert spent <= Decimal("0.02"), (r.status_code, spent)
        assert r.status_code == 400 and up.requests == []


def test_gpt_4o_mini_images_count_against_the_context_cap_at_their_billed_size():
    with echo_upstream(_bill_gpt_4o_mini_images) as up, proxied(
            up.url, model="gpt-4o-mini", openai_url=up.url, limits=Limits(max_context_tokens=40_000)) as p:
        r = httpx.post(f"{p.openai_url}/chat/completions", json=_chat_with_images("gpt-4o-mini", URL_IMAGE),
                       headers={"authorization": f"Bearer {p.token}"})
        assert r.status_code == 400 and "max_context" in r.json()["error"]["message"] and up.requests == []
        # the same image on gpt-4o (at most 1,445 tokens) is well inside the cap
    with echo_upstream(_bill_gpt_4o_mini_images) as up, proxied(
            up.url, model="gpt-4o", openai_url=up.url, limits=Limits(max_context_tokens=40_000)) as p:
        r = httpx.post(f"{p.openai_url}/chat/completions", json=_chat_with_images("gpt-4o", URL_IMAGE),
                       headers={"authorization": f"Bearer {p.token}"})
        assert r.status_code == 200
