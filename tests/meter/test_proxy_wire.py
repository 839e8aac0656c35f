"""What exactly the proxy sends upstream and back: headers, query strings, keys, request rewrites."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
from aiohttp import web

from ci_guard.meter.upstreams import Upstreams
from ci_guard.policy.decision import Enforcement, Limits
from tests.meter.harness import REAL_KEY, echo_upstream, proxied

CLAUDE_CODE_BODY = {
    "model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": False,
    "thinking": {"type": "enabled", "budget_tokens": 31999},
    "messages": [{"role": "user", "content": "review " * 200}],
}


def post(p, path: str, body: dict, headers: dict | None = None) -> httpx.Response:
    h = {"x-api-key": p.token, "anthropic-version": "2023-06-01", **(headers or {})}
    return httpx.post(f"{p.anthropic_url}{path}", json=body, headers=h, timeout=10)


def test_headers_query_and_keys_as_the_agents_need_them():
    with echo_upstream() as up, proxied(up.url) as p:
        r = post(p, "/v1/messages?beta=true", {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": []},
                 {"anthropic-beta": "claude-code-20250219,oauth-2025-04-20", "x-app": "cli",
                  "X-Claude-Code-Session-Id": "sess-123", "Connection": "keep-alive", "TE": "trailers"})
        assert r.status_code == 200 and r.json()["usage"]["output_tokens"] == 5
        seen = up.requests[0]
        assert seen["path"] == "/v1/messages" and seen["query"] == "beta=true"
        hdrs = {k.lower(): v for k, v in seen["headers"].items()}
        assert hdrs["anthropic-beta"] == "claude-code-20250219,oauth-2025-04-20"
        assert hdrs["anthropic-version"] == "2023-06-01"
        assert hdrs["x-app"] == "cli"
        assert hdrs["x-api-key"] == REAL_KEY  # the real key goes upstream, never the run token
        assert p.token not in json.dumps(hdrs)
        assert "te" not in hdrs  # hop-by-hop headers are not forwarded
        assert p.calls[0].session_id == "sess-123"


def test_openai_paths_map_onto_the_upstream_base():
    ups = Upstreams(openai="http://compat.local:8000/v1")
    assert ups.target("openai", "v1/chat/completions") == "http://compat.local:8000/v1/chat/completions"
    assert ups.target("openai", "v1/responses") == "http://compat.local:8000/v1/responses"
    assert Upstreams(anthropic="https://a.example").target("anthropic", "v1/messages") == "https://a.example/v1/messages"
    assert Upstreams(openai_api_key="k").auth_headers("openai") == {"authorization": "Bearer k"}
    assert Upstreams(anthropic_auth_token="t").auth_headers("anthropic") == {"authorization": "Bearer t"}


def test_openai_upstream_gets_bearer_and_openai_beta_header():
    def respond(seen):
        return web.json_response({"id": "c", "object": "chat.completion", "model": "gpt-5", "choices": [],
                                  "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})

    with echo_upstream(respond) as up, proxied(up.url, model="gpt-5") as p:
        r = httpx.post(f"{p.openai_url}/chat/completions", json={"model": "gpt-5", "messages": []},
                       headers={"authorization": f"Bearer {p.token}", "OpenAI-Beta": "assistants=v2"})
        assert r.status_code == 200
        hdrs = {k.lower(): v for k, v in up.requests[0]["headers"].items()}
        assert up.requests[0]["path"] == "/v1/chat/completions"
        assert hdrs["authorization"] == f"Bearer {REAL_KEY}"
        assert hdrs["openai-beta"] == "assistants=v2"


def test_cost_cap_lowers_max_tokens_and_keeps_thinking_valid():
    # Sonnet: $3 in / $15 out per million. 0.05 USD leaves room for about 3,000 output tokens.
    with echo_upstream() as up, proxied(up.url, limits=Limits(max_cost_usd=Decimal("0.05"))) as p:
        r = post(p, "/v1/messages", CLAUDE_CODE_BODY)
        assert r.status_code == 200
        sent = up.requests[0]["json"]
        assert sent["max_tokens"] < 32000
        assert sent["max_tokens"] * Decimal(15) / 1_000_000 <= Decimal("0.05")
        assert sent["max_tokens"] > 2000  # what fits is used, not an arbitrary floor
        thinking = sent["thinking"]  # still valid: at least 1024 and below max_tokens
        assert 1024 <= thinking["budget_tokens"] < sent["max_tokens"]


def test_cost_cap_refuse_mode_refuses_instead_of_lowering():
    enforcement = Enforcement(on_cost_cap="refuse")
    with echo_upstream() as up, proxied(up.url, limits=Limits(max_cost_usd=Decimal("0.05")),
                                        enforcement=enforcement) as p:
        r = post(p, "/v1/messages", CLAUDE_CODE_BODY)
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
        assert "max_cost" in r.json()["error"]["message"]
        assert up.requests == []


def test_context_cap_refuses_oversized_input():
    with echo_upstream() as up, proxied(up.url, limits=Limits(max_context_tokens=100)) as p:
        r = post(p, "/v1/messages", CLAUDE_CODE_BODY)
        assert r.status_code == 400 and "max_context" in r.json()["error"]["message"]
        assert up.requests == [] and p.session.guard.stop_reason == "max_context"


def test_upstream_error_status_and_body_pass_through_unchanged():
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}, "request_id": "req_1"}

    def respond(seen):
        return web.json_response(body, status=529, headers={"request-id": "req_1", "retry-after": "3"})

    with echo_upstream(respond) as up, proxied(up.url) as p:
        r = post(p, "/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": []})
        assert r.status_code == 529 and r.json() == body
        assert r.headers["retry-after"] == "3" and r.headers["request-id"] == "req_1"
        assert p.calls[0].status == "error" and p.calls[0].http_status == 529
        assert "overloaded_error" in (p.calls[0].error or "")


def test_unreachable_upstream_gives_a_provider_shaped_502():
    with proxied("http://127.0.0.1:9") as p:
        r = post(p, "/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": []})
        assert r.status_code == 502 and r.json()["type"] == "error"
        assert p.calls[0].status == "error" and p.calls[0].http_status == 502


def test_count_tokens_is_forwarded_but_not_a_turn():
    def respond(seen):
        return web.json_response({"input_tokens": 42})

    with echo_upstream(respond) as up, proxied(up.url, limits=Limits(max_turns=1)) as p:
        for _ in range(3):
            r = post(p, "/v1/messages/count_tokens", {"model": "claude-sonnet-4-5", "messages": []})
            assert r.json() == {"input_tokens": 42}
        assert p.session.guard.turns == 0
        up.respond = None
        r = post(p, "/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": []})
        assert r.status_code == 200


def test_allowed_unmetered_post_is_forwarded():
    enforcement = Enforcement(allow_unmetered_posts=["/openai/v1/embeddings"])
    with echo_upstream(lambda s: web.json_response({"data": []})) as up, proxied(
            up.url, enforcement=enforcement) as p:
        r = httpx.post(f"{p.openai_url}/embeddings", json={"input": "x"},
                       headers={"authorization": f"Bearer {p.token}"})
        assert r.status_code == 200 and up.requests[0]["path"] == "/v1/embeddings"


def test_unknown_model_is_refused_by_default():
    with echo_upstream() as up, proxied(up.url, model=None) as p:
        r = post(p, "/v1/messages", {"model": "internal-coder-7b", "max_tokens": 5, "messages": []})
        assert r.status_code == 400 and "no price" in r.json()["error"]["message"]
        assert up.requests == []


def test_upstream_that_goes_silent_times_out_with_a_provider_shaped_504():
    from ci_guard.simulator.server import run_simulator

    slow = {"name": "stalls", "delay": {"first_byte": 2.0}}
    with run_simulator(slow, api_key=REAL_KEY) as sim, proxied(sim.url, read_timeout_s=0.3) as p:
        r = post(p, "/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": []})
        assert r.status_code == 504 and r.json()["error"]["type"] == "timeout_error"
        assert p.calls[0].status == "error" and p.calls[0].http_status == 504


def test_missing_real_keys_are_reported_only_for_public_upstreams():
    from ci_guard.meter.upstreams import missing_credentials

    assert len(missing_credentials(Upstreams())) == 2
    assert missing_credentials(Upstreams(anthropic_auth_token="t", openai_api_key="k")) == []
    assert missing_credentials(Upstreams(anthropic="http://127.0.0.1:9", openai="http://vllm:8000/v1")) == []
