"""An answer without usage is priced from an estimate, marked `estimated`, and never free (issue 11 #3)."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
from aiohttp import web

from ci_guard.meter.providers.registry import adapter_for
from ci_guard.policy.decision import Limits
from tests.meter.harness import echo_upstream, proxied

PROMPT = {"model": "gpt-5", "messages": [{"role": "user", "content": "hello " * 400}]}


def auth(p) -> dict[str, str]:
    return {"authorization": f"Bearer {p.token}"}


def _estimate(body: dict) -> int:
    return adapter_for("openai", "/v1/chat/completions").inspect(body).estimated_input_tokens


def test_a_json_answer_without_usage_is_priced_from_the_estimate_and_marked():
    answer = {"id": "c", "object": "chat.completion", "model": "gpt-5", "usage": None,
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "word " * 200},
                           "finish_reason": "stop"}]}
    payload = json.dumps(answer).encode()

    with echo_upstream(lambda seen: web.Response(body=payload, content_type="application/json")) as up, \
            proxied(up.url, model="gpt-5") as p:
        r = httpx.post(f"{p.openai_url}/chat/completions", json=PROMPT, headers=auth(p))
        assert r.status_code == 200
        (call,) = p.calls
    est_in, est_out = _estimate(PROMPT), len(payload) // 4  # one output token per 4 bytes of the body
    assert call.usage.input_tokens == est_in and call.usage.output_tokens == est_out
    # gpt-5: $1.25 in, $10 out per million
    expected = (Decimal(est_in) * Decimal("1.25") + Decimal(est_out) * 10) / 1_000_000
    assert call.cost_usd == expected.quantize(Decimal("0.000001")) and call.cost_usd > 0
    assert call.estimated and call.status == "ok" and "usage estimated" in call.error


def test_a_chat_stream_from_an_upstream_that_ignores_include_usage_is_estimated():
    chunks = [{"id": "c", "object": "chat.completion.chunk", "model": "gpt-5",
               "choices": [{"index": 0, "delta": {"content": f"token {i} "}}]} for i in range(50)]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"

    def respond(seen):
        return web.Response(body=body.encode(), content_type="text/event-stream")

    with echo_upstream(respond) as up, proxied(up.url, model="gpt-5", limits=Limits(max_cost_usd=Decimal(5))) as p:
        stream_req = {**PROMPT, "stream": True}
        with httpx.stream("POST", f"{p.openai_url}/chat/completions", json=stream_req, headers=auth(p)) as r:
            relayed = len(b"".join(r.iter_bytes()))
        (call,) = p.calls
    assert call.estimated and call.usage.output_tokens == relayed // 10 > 0
    assert call.usage.input_tokens == _estimate(stream_req) and call.cost_usd > 0
    assert p.session.guard.cost_usd == call.cost_usd  # the cost cap counts it


def test_the_cost_cap_bites_on_estimated_calls():
    answer = json.dumps({"id": "c", "object": "chat.completion", "model": "gpt-5",
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * 4000}}]}).encode()
    cap = Decimal("0.005")
    with echo_upstream(lambda seen: web.Response(body=answer, content_type="application/json")) as up, \
            proxied(up.url, model="gpt-5", limits=Limits(max_cost_usd=cap)) as p:
        statuses = [httpx.post(f"{p.openai_url}/chat/completions", json=PROMPT, headers=auth(p)).status_code
                    for _ in range(10)]
        calls = p.calls
    # each answer costs ~ (600 x 1.25 + 1,000 x 10) / 1M = ~$0.0107 > the cap: the second is refused
    assert statuses[0] == 200 and 400 in statuses
    assert sum(c.cost_usd for c in calls) > 0 and all(c.estimated for c in calls if c.status == "ok")


def test_an_error_answer_without_usage_is_not_charged():
    def respond(seen):
        return web.json_response({"error": {"message": "bad", "type": "invalid_request_error"}}, status=400)

    with echo_upstream(respond) as up, proxied(up.url, model="gpt-5") as p:
        httpx.post(f"{p.openai_url}/chat/completions", json=PROMPT, headers=auth(p))
        (call,) = p.calls
    assert call.cost_usd == 0 and not call.estimated
