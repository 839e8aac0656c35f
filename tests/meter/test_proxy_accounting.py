"""Accounting edge cases of the proxy: cut streams, unpriced models, parallel calls near the cap."""

from __future__ import annotations

import asyncio
import json
import threading
from decimal import Decimal

import httpx
from aiohttp import web

from ci_guard.meter.pricer import CatalogPricer
from ci_guard.policy.decision import Limits
from ci_guard.pricing.catalog import load_catalog
from tests.meter.harness import echo_upstream, proxied


def auth(p) -> dict[str, str]:
    return {"x-api-key": p.token, "anthropic-version": "2023-06-01", "authorization": f"Bearer {p.token}"}


def test_a_chat_stream_the_agent_abandons_is_charged_not_free():
    # Chat streams carry usage only in their last chunk: an abandoned stream must still cost something.
    from tests.meter.harness import BackgroundLoop

    async def endless_chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for i in range(200):  # 10 s of tokens; the agent leaves long before the final usage chunk
            chunk = {"id": "c", "object": "chat.completion.chunk", "model": "gpt-5",
                     "choices": [{"index": 0, "delta": {"content": f"token {i} " * 5}}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await asyncio.sleep(0.05)
        return response

    bg = BackgroundLoop()

    async def start() -> tuple[web.AppRunner, str]:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", endless_chat)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"

    runner, url = bg.run(start())
    try:
        with proxied(url, model="gpt-5") as p:
            body = {"model": "gpt-5", "stream": True, "messages": [{"role": "user", "content": "hello " * 400}]}
            with httpx.stream("POST", f"{p.openai_url}/chat/completions", json=body, headers=auth(p)) as r:
                for i, _ in enumerate(r.iter_bytes()):
                    if i >= 5:
                        break
            call = p.calls[0]
            assert call.status == "cut"
            assert call.usage.input_tokens >= 600  # the request's estimate (about 2,400 bytes of prompt)
            assert call.usage.output_tokens > 0 and call.cost_usd > 0
            assert "usage estimated" in call.error
    finally:
        bg.run(runner.cleanup())
        bg.close()


def test_a_request_without_an_output_cap_gets_one_when_a_cost_cap_applies():
    def respond(seen):
        return web.json_response({"id": "r", "object": "response", "status": "completed", "model": "gpt-5",
                                  "output": [], "usage": {"input_tokens": 5, "output_tokens": 5}})

    with echo_upstream(respond) as up, proxied(up.url, model="gpt-5", limits=Limits(max_cost_usd=Decimal(5))) as p:
        r = httpx.post(f"{p.openai_url}/responses", json={"model": "gpt-5", "input": "hi"}, headers=auth(p))
        assert r.status_code == 200
        assert up.requests[0]["json"]["max_output_tokens"] == 32_000  # what the worst case assumed


def test_background_responses_are_refused_as_unmeterable():
    with echo_upstream() as up, proxied(up.url, model="gpt-5") as p:
        r = httpx.post(f"{p.openai_url}/responses", json={"model": "gpt-5", "input": "hi", "background": True},
                       headers=auth(p))
        assert r.status_code == 400 and "background" in r.json()["error"]["message"]
        assert up.requests == []


def test_an_unknown_served_model_is_priced_as_the_requested_one():
    def respond(seen):
        return web.json_response({"id": "m", "type": "message", "role": "assistant", "model": "mystery-snapshot-9",
                                  "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
                                  "usage": {"input_tokens": 1_000_000, "output_tokens": 0}})

    with echo_upstream(respond) as up, proxied(up.url, model="claude-sonnet-4-5") as p:
        r = httpx.post(f"{p.anthropic_url}/v1/messages", headers=auth(p),
                       json={"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": []})
        assert r.status_code == 200
        assert p.calls[0].model_served == "mystery-snapshot-9"
        assert p.calls[0].cost_usd == Decimal("6.000000")  # Sonnet 4.5 above 200k input: $6 / million


def test_on_unknown_model_error_refuses_the_call_with_a_400_not_a_crash():
    with echo_upstream() as up, proxied(up.url, model=None) as p:
        p.session.pricer = CatalogPricer(load_catalog({"on_unknown_model": "error"}))
        r = httpx.post(f"{p.anthropic_url}/v1/messages", headers=auth(p),
                       json={"model": "internal-coder", "max_tokens": 5, "messages": []})
        assert r.status_code == 400 and "no price" in r.json()["error"]["message"]
        assert up.requests == [] and p.calls[0].status == "refused"


def test_redirects_from_the_upstream_are_not_followed_with_the_real_key():
    def respond(seen):
        if seen["path"] == "/elsewhere":
            return web.json_response({"stolen": True})
        return web.Response(status=307, headers={"location": "/elsewhere"})

    with echo_upstream(respond) as up, proxied(up.url) as p:
        r = httpx.post(f"{p.anthropic_url}/v1/messages", headers=auth(p),
                       json={"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": []})
        assert r.status_code == 307
        assert [q["path"] for q in up.requests] == ["/v1/messages"]


def test_a_parallel_call_waits_for_calls_in_flight_instead_of_stopping_the_run():
    release = threading.Event()

    async def slow_then_cheap(request: web.Request) -> web.Response:
        body = await request.json()
        if body["messages"][0]["content"] == "slow":
            await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
        return web.json_response({"id": "m", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
                                  "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                                  "usage": {"input_tokens": 10, "output_tokens": 10}})

    from tests.meter.harness import BackgroundLoop

    bg = BackgroundLoop()

    async def start() -> tuple[web.AppRunner, str]:
        app = web.Application()
        app.router.add_post("/v1/messages", slow_then_cheap)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"

    runner, url = bg.run(start())
    try:
        # Haiku: $1 in / $5 out per million. max_tokens 16,000 -> worst case ~$0.08 each; the cap is $0.10.
        with proxied(url, model="claude-haiku-4-5", limits=Limits(max_cost_usd=Decimal("0.10"))) as p:
            def post(text: str) -> httpx.Response:
                return httpx.post(f"{p.anthropic_url}/v1/messages", headers=auth(p), timeout=30,
                                  json={"model": "claude-haiku-4-5", "max_tokens": 16_000,
                                        "messages": [{"role": "user", "content": text}]})

            results: dict[str, httpx.Response] = {}
            first = threading.Thread(target=lambda: results.__setitem__("slow", post("slow")))
            first.start()
            for _ in range(100):  # until the slow call holds its worst case
                if p.session.guard.held_usd > 0:
                    break
                threading.Event().wait(0.02)
            second = threading.Thread(target=lambda: results.__setitem__("fast", post("fast")))
            second.start()
            threading.Event().wait(0.3)
            assert "fast" not in results  # waiting, not refused
            release.set()
            first.join(10)
            second.join(10)
            assert results["slow"].status_code == 200 and results["fast"].status_code == 200
            assert p.session.guard.stop_reason is None
            assert json.loads(results["fast"].content)["usage"]["output_tokens"] == 10
    finally:
        bg.run(runner.cleanup())
        bg.close()


def test_web_searches_are_charged_on_top_of_tokens_and_count_toward_the_cost_cap():
    usage = {"input_tokens": 1000, "output_tokens": 200, "server_tool_use": {"web_search_requests": 3}}

    def respond(seen):
        return web.json_response({"id": "m", "type": "message", "model": "claude-sonnet-4-5", "role": "assistant",
                                  "content": [{"type": "text", "text": "found it"}], "stop_reason": "end_turn",
                                  "usage": usage})

    tokens_only = CatalogPricer(load_catalog()).cost("claude-sonnet-4-5", usage_of(usage))
    assert tokens_only == Decimal("0.006")  # 1,000 x $3 + 200 x $15 per million
    # the cap is above what the tokens cost and below tokens + searches: only the fee can cross it
    with echo_upstream(respond) as up, proxied(up.url, limits=Limits(max_cost_usd=Decimal("0.02"))) as p:
        body = {"model": "claude-sonnet-4-5", "max_tokens": 200, "messages": [{"role": "user", "content": "q"}],
                "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]}
        r = httpx.post(f"{p.anthropic_url}/v1/messages", json=body, headers=auth(p))
        assert r.status_code == 200 and r.json()["usage"] == usage  # the agent sees the provider's body
        call = p.calls[0]
        assert (call.web_searches, call.cost_usd) == (3, Decimal("0.036"))  # + 3 x $0.01
        summary = p.session.summary(status="stopped", agent_exit_code=0)
        assert summary.web_searches == 3 and summary.calls[0].web_searches == 3
        assert summary.cost_usd == Decimal("0.036")
        assert p.session.guard.stop_reason == "max_cost"  # the fee took the run past its cap


def usage_of(raw: dict):
    from ci_guard.pricing.normalize import from_anthropic

    return from_anthropic(raw)


def test_an_openai_call_served_on_the_priority_tier_is_priced_at_priority_rates():
    usage = {"prompt_tokens": 1000, "completion_tokens": 500, "prompt_tokens_details": {"cached_tokens": 0}}

    def respond(seen):
        return web.json_response({"id": "c", "object": "chat.completion", "model": "gpt-5", "service_tier": "priority",
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                               "finish_reason": "stop"}], "usage": usage})

    with echo_upstream(respond) as up, proxied(up.url, model="gpt-5", openai_url=up.url) as p:
        body = {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}], "service_tier": "auto"}
        r = httpx.post(f"{p.openai_url}/chat/completions", json=body, headers=auth(p))
        assert r.status_code == 200
        call = p.calls[0]
        # 1,000 x $2.50 + 500 x $20 per million (standard would be $0.00625)
        assert (call.service_tier, call.cost_usd) == ("priority", Decimal("0.0125"))
        assert p.session.summary(status="completed", agent_exit_code=0).calls[0].service_tier == "priority"


def test_a_priority_request_is_clamped_at_priority_rates():
    with echo_upstream() as up, proxied(up.url, model="gpt-5", openai_url=up.url,
                                       limits=Limits(max_cost_usd=Decimal("0.02"))) as p:
        body = {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}], "service_tier": "priority",
                "max_completion_tokens": 5000}
        httpx.post(f"{p.openai_url}/chat/completions", json=body, headers=auth(p))
        sent = up.requests[0]["json"]["max_completion_tokens"]
        # at $20 per million output tokens $0.02 buys at most 1,000 (the standard rate would allow 2,000)
        assert 900 < sent < 1000


def test_an_anthropic_call_run_in_the_us_only_is_priced_with_the_surcharge():
    usage = {"input_tokens": 1000, "output_tokens": 100, "inference_geo": "us", "service_tier": "standard"}

    def respond(seen):
        return web.json_response({"id": "m", "type": "message", "model": "claude-opus-4-6", "role": "assistant",
                                  "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                                  "usage": usage})

    with echo_upstream(respond) as up, proxied(up.url, model="claude-opus-4-6") as p:
        body = {"model": "claude-opus-4-6", "max_tokens": 100, "messages": [{"role": "user", "content": "q"}]}
        assert httpx.post(f"{p.anthropic_url}/v1/messages", json=body, headers=auth(p)).status_code == 200
        # (1,000 x $5 + 100 x $25) per million = $0.0075, x 1.1 for US-only inference
        assert p.calls[0].cost_usd == Decimal("0.00825")
