"""Service tiers and regions on the proxy path: Anthropic fast mode, OpenAI fast/flex, regional
processing, batch jobs. Each call goes through the real proxy to a local upstream; costs are checked
to the micro-dollar against the published rates (sources in tests/pricing/test_grid.py)."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
from aiohttp import web

from ci_guard.meter.upstreams import openai_region, upstreams_from_env
from ci_guard.policy.decision import Limits
from tests.meter.harness import echo_upstream, proxied


def auth(p) -> dict[str, str]:
    return {"x-api-key": p.token, "anthropic-version": "2023-06-01", "authorization": f"Bearer {p.token}",
            "anthropic-beta": "fast-mode-2026-02-01"}


def _message(usage: dict) -> web.Response:
    return web.json_response({"id": "m", "type": "message", "model": "claude-opus-5", "role": "assistant",
                              "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                              "usage": usage})


def _fast_request(**extra) -> dict:
    return {"model": "claude-opus-5", "max_tokens": 100, "speed": "fast",
            "messages": [{"role": "user", "content": "q"}], **extra}


# (1,000 x $5 + 100 x $25) per million = $0.0075 standard; fast mode on Opus 5 is 2x: $0.015
STANDARD, FAST = Decimal("0.0075"), Decimal("0.015")


@pytest.mark.parametrize(("reported", "want", "tier"), [
    ({"speed": "fast"}, FAST, "fast"),
    ({"speed": "standard"}, STANDARD, "standard"),  # fell back to standard speed: billed standard
    ({}, FAST, "fast"),  # the answer does not say: the request's fast mode counts (never under-count)
])
def test_an_anthropic_fast_mode_call_is_priced_at_the_speed_that_served_it(reported, want, tier):
    usage = {"input_tokens": 1000, "output_tokens": 100, "service_tier": "standard", **reported}
    with echo_upstream(lambda seen: _message(usage)) as up, proxied(up.url, model="claude-opus-5") as p:
        r = httpx.post(f"{p.anthropic_url}/v1/messages", json=_fast_request(), headers=auth(p))
        assert r.status_code == 200
        # the request goes upstream as sent, beta header included
        assert up.requests[0]["json"]["speed"] == "fast"
        assert "fast-mode-2026-02-01" in up.requests[0]["headers"].get("anthropic-beta", "")
        call = p.calls[0]
        assert (call.cost_usd, call.service_tier) == (want, "fast" if tier == "fast" else "standard")
        summary = p.session.summary(status="completed", agent_exit_code=0)
        assert summary.calls[0].service_tier == call.service_tier
        assert summary.cost_usd == want


def test_a_streamed_fast_mode_call_with_us_inference_stacks_both_multipliers():
    start = {"type": "message_start", "message": {
        "id": "m", "type": "message", "role": "assistant", "model": "claude-opus-5", "content": [],
        "usage": {"input_tokens": 1000, "output_tokens": 1, "service_tier": "standard", "speed": "fast",
                  "inference_geo": "us"}}}
    events = [start,
              {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
              {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}},
              {"type": "content_block_stop", "index": 0},
              {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 100}},
              {"type": "message_stop"}]
    sse = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)

    def respond(seen):
        return web.Response(body=sse.encode(), headers={"content-type": "text/event-stream"})

    with echo_upstream(respond) as up, proxied(up.url, model="claude-opus-5") as p:
        with httpx.stream("POST", f"{p.anthropic_url}/v1/messages", json=_fast_request(stream=True),
                          headers=auth(p)) as r:
            r.read()
        call = p.calls[0]
        # $0.015 fast x 1.1 US-only inference (Anthropic: fast-mode pricing stacks with other modifiers)
        assert (call.status, call.cost_usd, call.service_tier, call.inference_geo) == (
            "ok", Decimal("0.0165"), "fast", "us")


def test_a_fast_mode_request_is_clamped_at_fast_rates():
    with echo_upstream() as up, proxied(up.url, model="claude-opus-5",
                                       limits=Limits(max_cost_usd=Decimal("0.02"))) as p:
        httpx.post(f"{p.anthropic_url}/v1/messages", json=_fast_request(max_tokens=5000), headers=auth(p))
        sent = up.requests[0]["json"]["max_tokens"]
        # fast output is $50 per million: $0.02 buys at most 400 tokens (standard would allow 800)
        assert 300 < sent < 400


def _chat(usage: dict, tier: str | None, model: str = "gpt-5.5") -> web.Response:
    return web.json_response({"id": "c", "object": "chat.completion", "model": model,
                              **({"service_tier": tier} if tier else {}),
                              "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                           "finish_reason": "stop"}], "usage": usage})


CHAT_USAGE = {"prompt_tokens": 10_000, "completion_tokens": 1_000, "prompt_tokens_details": {"cached_tokens": 0}}


@pytest.mark.parametrize(("asked", "reported", "want"), [
    # gpt-5.5: 10,000 x $5 + 1,000 x $30 per million = $0.08 standard
    ("flex", "flex", Decimal("0.04")),  # flex: Batch API rates, half
    ("flex", "default", Decimal("0.08")),  # asked flex, served default: billed default
    ("flex", None, Decimal("0.08")),  # not confirmed: a cheaper tier is never assumed
    ("fast", "fast", Decimal("0.2")),  # OpenAI's new name for priority: $12.50 / $75
    ("priority", "fast", Decimal("0.2")),
])
def test_openai_flex_and_fast_tiers_are_priced_as_the_response_reports_them(asked, reported, want):
    with echo_upstream(lambda seen: _chat(CHAT_USAGE, reported)) as up, \
            proxied(up.url, model="gpt-5.5", openai_url=up.url) as p:
        body = {"model": "gpt-5.5", "messages": [{"role": "user", "content": "hi"}], "service_tier": asked}
        assert httpx.post(f"{p.openai_url}/chat/completions", json=body, headers=auth(p)).status_code == 200
        assert p.calls[0].cost_usd == want


def test_a_data_residency_upstream_bills_the_regional_uplift():
    with echo_upstream(lambda seen: _chat(CHAT_USAGE, "default")) as up, \
            proxied(up.url, model="gpt-5.5", openai_url=up.url) as p:
        body = {"model": "gpt-5.5", "messages": [{"role": "user", "content": "hi"}]}
        httpx.post(f"{p.openai_url}/chat/completions", json=body, headers=auth(p))
        p.proxy.upstreams.region = "eu"  # as CI_GUARD_OPENAI_REGION or an eu.api.openai.com upstream sets it
        httpx.post(f"{p.openai_url}/chat/completions", json=body, headers=auth(p))
        # $0.08 on the global endpoint; 10% more on a data-residency endpoint (gpt-5.5 is eligible)
        assert [c.cost_usd for c in p.calls] == [Decimal("0.08"), Decimal("0.088")]
        assert [c.inference_geo for c in p.calls] == [None, "eu"]  # recorded: the row re-prices by hand


def test_the_region_is_read_from_the_upstream_host_or_the_environment():
    assert openai_region("https://eu.api.openai.com/v1") == "eu"
    assert openai_region("https://us.api.openai.com/v1/") == "us"
    assert openai_region("https://api.openai.com/v1") is None
    assert openai_region("https://eu.api.openai.com.evil.example/v1") is None
    assert openai_region("http://127.0.0.1:8080/v1") is None
    ups = upstreams_from_env({"CI_GUARD_OPENAI_UPSTREAM": "https://gw.internal/v1", "CI_GUARD_OPENAI_REGION": "EU"})
    assert ups.openai_region() == "eu"
    assert upstreams_from_env({"CI_GUARD_OPENAI_UPSTREAM": "https://jp.api.openai.com/v1"}).openai_region() == "jp"
    from ci_guard.errors import InvalidInputError
    with pytest.raises(InvalidInputError, match="CI_GUARD_OPENAI_REGION"):
        upstreams_from_env({"CI_GUARD_OPENAI_REGION": "europe-west"})


@pytest.mark.parametrize(("provider", "path"), [
    ("openai", "/openai/v1/batches"), ("openai", "/openai/v1/files"), ("anthropic", "/anthropic/v1/messages/batches"),
])
def test_batch_jobs_are_refused_with_a_reason(provider, path):
    with echo_upstream() as up, proxied(up.url, openai_url=up.url) as p:
        r = httpx.post(f"{p.url}{path}", json={"input_file_id": "f", "endpoint": "/v1/responses"}, headers=auth(p))
        assert r.status_code == 403
        assert "batch jobs are billed when they finish" in r.text
        assert up.requests == []  # nothing reached the provider


def test_a_speed_field_on_an_openai_request_does_not_change_its_price():
    # "speed" is an Anthropic field; on OpenAI the tier comes from service_tier only
    with echo_upstream(lambda seen: _chat(CHAT_USAGE, None)) as up, \
            proxied(up.url, model="gpt-5.5", openai_url=up.url) as p:
        body = {"model": "gpt-5.5", "messages": [{"role": "user", "content": "hi"}], "speed": "fast"}
        httpx.post(f"{p.openai_url}/chat/completions", json=body, headers=auth(p))
        assert (p.calls[0].cost_usd, p.calls[0].service_tier) == (Decimal("0.08"), None)


# Gemini through its OpenAI-compatible Chat endpoint (the proxy's OpenAI upstream pointed at
# generativelanguage.googleapis.com/v1beta/openai). The request asks with service_tier
# ("priority" | "flex", or the enum names SERVICE_TIER_*); Gemini says which tier served the call in
# the x-gemini-service-tier response header ("standard" after a priority request was downgraded:
# https://ai.google.dev/gemini-api/docs/priority-inference). gemini-3.5-flash, 10,000 in + 1,000 out:
# standard 10,000 x $1.50 + 1,000 x $9 = $0.024; priority $2.70 / $16.20 = $0.0432; flex half = $0.012.
GEMINI_STANDARD, GEMINI_PRIORITY, GEMINI_FLEX = Decimal("0.024"), Decimal("0.0432"), Decimal("0.012")


@pytest.mark.parametrize(("asked", "header", "want", "recorded"), [
    ("priority", "priority", GEMINI_PRIORITY, "priority"),
    ("priority", "standard", GEMINI_STANDARD, "standard"),  # downgraded: billed standard
    ("priority", None, GEMINI_PRIORITY, "priority"),  # the answer does not say: the request counts
    ("SERVICE_TIER_PRIORITY", None, GEMINI_PRIORITY, "priority"),
    ("flex", "flex", GEMINI_FLEX, "flex"),
    ("SERVICE_TIER_FLEX", "flex", GEMINI_FLEX, "flex"),
    ("flex", None, GEMINI_STANDARD, None),  # a cheaper tier is never assumed from the request alone
    (None, None, GEMINI_STANDARD, None),
])
@pytest.mark.parametrize("stream", [False, True])
def test_gemini_tiers_are_priced_as_the_service_tier_header_reports_them(asked, header, want, recorded, stream):
    usage = {"prompt_tokens": 10_000, "completion_tokens": 1_000}
    extra = {"x-gemini-service-tier": header} if header else {}

    def respond(seen):
        if not stream:
            return web.json_response({"id": "c", "object": "chat.completion", "model": "gemini-3.5-flash",
                                      "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                                   "finish_reason": "stop"}], "usage": usage}, headers=extra)
        chunks = [{"id": "c", "object": "chat.completion.chunk", "model": "gemini-3.5-flash",
                   "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]},
                  {"id": "c", "object": "chat.completion.chunk", "model": "gemini-3.5-flash", "choices": [],
                   "usage": usage}]
        sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return web.Response(body=sse.encode(), headers={"content-type": "text/event-stream", **extra})

    with echo_upstream(respond) as up, proxied(up.url, model="gemini-3.5-flash", openai_url=up.url) as p:
        body = {"model": "gemini-3.5-flash", "messages": [{"role": "user", "content": "hi"}], "stream": stream,
                **({"service_tier": asked} if asked else {})}
        r = httpx.post(f"{p.openai_url}/chat/completions", json=body, headers=auth(p))
        assert r.status_code == 200
        assert up.requests[0]["json"].get("service_tier") == asked  # forwarded as sent
        call = p.calls[0]
        assert (call.cost_usd, call.service_tier) == (want, recorded)
        assert p.session.summary(status="completed", agent_exit_code=0).cost_usd == want


# OpenAI's Chat Completions search models search the web on every request: one web search fee per
# answered call on top of the tokens (rates and fees: tests/pricing/test_grid.py, SEARCH_FEES).
# 10,000 prompt + 1,000 completion tokens:
@pytest.mark.parametrize(("model", "want"), [
    ("gpt-5-search-api", Decimal("0.0325")),  # 10,000 x $1.25 + 1,000 x $10 = $0.0225, + $0.01
    ("gpt-4o-search-preview", Decimal("0.06")),  # 10,000 x $2.50 + 1,000 x $10 = $0.035, + $0.025
    ("gpt-4o-mini-search-preview-2025-03-11", Decimal("0.0271")),  # $0.0015 + $0.0006, + $0.025
])
@pytest.mark.parametrize("stream", [False, True])
def test_a_search_model_call_is_billed_its_search_fee(model, want, stream):
    usage = {"prompt_tokens": 10_000, "completion_tokens": 1_000}

    def respond(seen):
        if not stream:
            return _chat(usage, None, model)
        chunks = [{"id": "c", "object": "chat.completion.chunk", "model": model,
                   "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]},
                  {"id": "c", "object": "chat.completion.chunk", "model": model, "choices": [], "usage": usage}]
        sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return web.Response(body=sse.encode(), headers={"content-type": "text/event-stream"})

    with echo_upstream(respond) as up, proxied(up.url, model=model, openai_url=up.url) as p:
        body = {"model": model, "messages": [{"role": "user", "content": "news?"}], "stream": stream,
                "web_search_options": {"search_context_size": "high"}}
        assert httpx.post(f"{p.openai_url}/chat/completions", json=body, headers=auth(p)).status_code == 200
        call = p.calls[0]
        assert (call.cost_usd, call.web_searches) == (want, 1)
        assert p.session.summary(status="completed", agent_exit_code=0).cost_usd == want


def test_a_refused_search_model_call_is_not_billed_a_search():
    def respond(seen):
        return web.json_response({"error": {"type": "invalid_request_error", "message": "bad"}}, status=400)

    with echo_upstream(respond) as up, proxied(up.url, model="gpt-5-search-api", openai_url=up.url) as p:
        body = {"model": "gpt-5-search-api", "messages": [{"role": "user", "content": "news?"}]}
        assert httpx.post(f"{p.openai_url}/chat/completions", json=body, headers=auth(p)).status_code == 400
        assert (p.calls[0].cost_usd, p.calls[0].web_searches) == (Decimal(0), 0)


# GPT-5.6 cache writes (OpenAI's prompt-caching guide: "For GPT-5.6 models and later model families,
# cache writes cost 1.25x the uncached input token rate"). prompt_cache_retention "24h" is the only
# retention gpt-5.5 and later models support (the API reference: "For gpt-5.5, gpt-5.5-pro, and future
# models, only 24h is supported"), so it costs nothing extra. A 12-hour minimum cache life
# (prompt_cache_options.ttl "12h") makes every write of the request 2.5x input ($10 on gpt-5.6:
# LiteLLM 1.110.2 cache_creation_input_token_cost_above_12hr). 30,000 prompt tokens of which 10,000
# cached and 15,000 written, 2,000 out: 5,000 x $4 + 15,000 x $5 + 10,000 x $0.40 + 2,000 x $20 =
# $0.139; with 12-hour writes 15,000 x $10 instead: $0.214.
GPT56_USAGE = {"prompt_tokens": 30_000, "completion_tokens": 2_000,
               "prompt_tokens_details": {"cached_tokens": 10_000, "cache_write_tokens": 15_000}}


@pytest.mark.parametrize(("extra", "want", "long_writes"), [
    ({}, Decimal("0.139"), 0),
    ({"prompt_cache_retention": "24h"}, Decimal("0.139"), 0),  # 24-hour retention: the same price
    ({"prompt_cache_retention": "24h", "prompt_cache_options": {"ttl": "30m"}}, Decimal("0.139"), 0),
    ({"prompt_cache_options": {"mode": "explicit", "ttl": "12h"}}, Decimal("0.214"), 15_000),
])
def test_gpt_5_6_cache_writes_are_priced_by_the_cache_life_the_request_asked_for(extra, want, long_writes):
    with echo_upstream(lambda seen: _chat(GPT56_USAGE, "default", "gpt-5.6")) as up, \
            proxied(up.url, model="gpt-5.6", openai_url=up.url) as p:
        body = {"model": "gpt-5.6", "messages": [{"role": "user", "content": "hi"}], **extra}
        assert httpx.post(f"{p.openai_url}/chat/completions", json=body, headers=auth(p)).status_code == 200
        call = p.calls[0]
        assert (call.cost_usd, call.usage.cache_write_tokens, call.usage.cache_write_1h_tokens) == \
            (want, 15_000, long_writes)


def test_only_a_12_hour_cache_life_request_is_clamped_at_the_long_write_rate():
    # ~10,000 input tokens on gpt-5.6 under a $0.15 cap: the worst case prices every input token at the
    # dearest write the request can make -- $5 (30-minute) leaves ~$0.10 for output at $20 (~5,000
    # tokens); $10 (12-hour, asked for) leaves ~$0.05 (~2,500 tokens)
    sent = {}
    for name, extra in (("default", {}), ("12h", {"prompt_cache_options": {"ttl": "12h"}})):
        with echo_upstream(lambda seen: _chat(CHAT_USAGE, "default", "gpt-5.6")) as up, \
                proxied(up.url, model="gpt-5.6", openai_url=up.url, limits=Limits(max_cost_usd=Decimal("0.15"))) as p:
            body = {"model": "gpt-5.6", "messages": [{"role": "user", "content": "word " * 8_000}],
                    "max_completion_tokens": 8_000, **extra}
            assert httpx.post(f"{p.openai_url}/chat/completions", json=body, headers=auth(p)).status_code == 200
            sent[name] = up.requests[0]["json"]["max_completion_tokens"]
    assert 4_000 < sent["default"] < 5_500
    assert 1_500 < sent["12h"] < 3_000
