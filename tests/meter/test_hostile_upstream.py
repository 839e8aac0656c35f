"""Issue 12 #4 and #18: what an upstream or an unauthenticated local process can learn through the proxy."""

from __future__ import annotations

import asyncio
import json

import httpx
from aiohttp import web

from ci_guard import secrets
from ci_guard.secrets import StreamRedactor, redact, register
from tests.meter.harness import REAL_KEY, BackgroundLoop, echo_upstream, proxied


def auth(p) -> dict[str, str]:
    return {"x-api-key": p.token, "anthropic-version": "2023-06-01"}


BODY = {"model": "claude-sonnet-4-5", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}


def test_an_upstream_error_echoing_the_real_key_is_redacted_before_the_agent_sees_it():
    register(REAL_KEY)

    def respond(seen):
        key = seen["headers"].get("X-Api-Key") or seen["headers"].get("x-api-key")
        return web.json_response({"type": "error", "error": {"type": "authentication_error",
                                                             "message": f"invalid x-api-key: {key}"}},
                                 status=401, headers={"x-echo": key})

    with echo_upstream(respond) as up, proxied(up.url) as p:
        r = httpx.post(f"{p.anthropic_url}/v1/messages", json=BODY, headers=auth(p))
        assert r.status_code == 401
        assert REAL_KEY not in r.text and "[REDACTED]" in r.text
        assert REAL_KEY not in json.dumps(dict(r.headers))
        # a GET passed through (model list) is redacted too
        r = httpx.get(f"{p.anthropic_url}/v1/models", headers=auth(p))
        assert REAL_KEY not in r.text


def test_a_streamed_answer_echoing_the_key_across_chunks_is_redacted():
    register(REAL_KEY)
    half = len(REAL_KEY) // 2

    async def echo_stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        start = {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant",
                 "model": "claude-sonnet-4-5", "content": [], "usage": {"input_tokens": 5, "output_tokens": 0}}}
        await response.write(f"event: message_start\ndata: {json.dumps(start)}\n\n".encode())
        delta = json.dumps({"type": "content_block_delta", "index": 0,
                            "delta": {"type": "text_delta", "text": f"key={REAL_KEY}"}})
        event = f"event: content_block_delta\ndata: {delta}\n\n".encode()
        cut = event.index(REAL_KEY.encode()) + half  # the key is split between two TCP writes
        await response.write(event[:cut])
        await asyncio.sleep(0.05)
        await response.write(event[cut:])
        for name, data in (("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                              "usage": {"output_tokens": 9}}),
                           ("message_stop", {"type": "message_stop"})):
            await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        return response

    bg = BackgroundLoop()

    async def start():
        app = web.Application()
        app.router.add_post("/v1/messages", echo_stream)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"

    runner, url = bg.run(start())
    try:
        with proxied(url) as p:
            r = httpx.post(f"{p.anthropic_url}/v1/messages", json={**BODY, "stream": True}, headers=auth(p))
            assert r.status_code == 200
            assert REAL_KEY not in r.text and REAL_KEY[:half] not in r.text and "key=[REDACTED]" in r.text
            assert p.calls[0].usage.output_tokens == 9  # metered from the upstream's own bytes
    finally:
        bg.run(runner.cleanup())
        bg.close()


def test_the_stream_redactor_holds_back_only_a_partial_line():
    register("sk-secret-value-1")
    red = StreamRedactor()
    assert red.feed(b"data: a\n\n") == b"data: a\n\n"  # whole lines leave at once
    assert red.feed(b"data: sk-sec") == b""
    assert red.feed(b"ret-value-1 x\n\n") == b"data: [REDACTED] x\n\n"
    assert red.feed(b"tail without newline") == b"" and red.close() == b"tail without newline"


def test_the_health_endpoint_needs_the_run_token():
    with echo_upstream() as up, proxied(up.url) as p:
        assert httpx.get(f"{p.url}/_ci_guard/health").status_code == 401
        assert p.session.run_id not in httpx.get(f"{p.url}/_ci_guard/health").text
        ok = httpx.get(f"{p.url}/_ci_guard/health", headers={"authorization": f"Bearer {p.token}"})
        assert ok.status_code == 200 and ok.json()["run_id"] == p.session.run_id


def test_short_keys_are_redacted_too():
    register("k3y")
    try:
        assert redact("the key is k3y.") == "the key is [REDACTED]."
    finally:
        secrets._registered.discard("k3y")
        secrets._registered_bytes.clear()


def test_an_upstream_cannot_make_the_proxy_hold_an_unbounded_answer(monkeypatch):
    """A whole (non-streamed) answer is read into memory to be metered: a hostile upstream's
    gigabyte body is cut off at the limit, the agent gets a 502, the call is charged, not free."""
    from ci_guard.meter import metered

    monkeypatch.setattr(metered, "MAX_UPSTREAM_BODY", 1024 * 1024)
    huge = b'{"type": "message", "content": [{"type": "text", "text": "' + b"x" * (3 * 1024 * 1024) + b'"}]}'

    def respond(seen):
        return web.Response(body=huge, content_type="application/json")

    with echo_upstream(respond) as up, proxied(up.url) as p:
        r = httpx.post(f"{p.anthropic_url}/v1/messages", json=BODY, headers=auth(p), timeout=30)
        assert r.status_code == 502 and "larger than 1 MiB" in r.json()["error"]["message"]
        assert len(r.content) < 1024
        (call,) = p.calls
        assert call.status == "cut" and call.cost_usd > 0 and "larger than" in call.error
        assert httpx.post(f"{p.anthropic_url}/v1/messages", json=BODY, headers=auth(p), timeout=30).status_code == 502
