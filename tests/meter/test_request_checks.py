"""Issue 12 #2, #10, #14: requests the meter could read differently from the upstream are refused.

These are contracts any faster request parser must keep (duplicate keys, caps that are not plain
integers in range, fan-out multiplying the worst case, non-string models, deep nesting, non-UTF-8
credentials): each is a 400 (or 401) from the proxy, never a 5xx, and nothing goes upstream.
"""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
from aiohttp import web

from ci_guard.meter.request_checks import BadRequest, parse_body
from ci_guard.policy.decision import Limits
from tests.meter.harness import echo_upstream, proxied
from tests.meter.hostile import send

MSG = '"messages":[{"role":"user","content":"hi"}]'


def auth(p) -> dict[str, str]:
    return {"x-api-key": p.token, "anthropic-version": "2023-06-01", "authorization": f"Bearer {p.token}"}


@pytest.mark.parametrize("body, fragment", [
    ('{"model":"claude-sonnet-4-5","max_tokens":50,' + MSG + ',"max_tokens":50000}', "duplicate key 'max_tokens'"),
    ('{"model":"claude-sonnet-4-5","model":"claude-opus-4-1","max_tokens":50,' + MSG + '}', "duplicate key 'model'"),
    ('{"model":"claude-sonnet-4-5","max_tokens":50,"thinking":{"type":"enabled","budget_tokens":10,'
     '"budget_tokens":99999},' + MSG + '}', "duplicate key 'budget_tokens'"),
    ('{"model":"claude-sonnet-4-5","max_tokens":-1,' + MSG + '}', "max_tokens must be between 1"),
    ('{"model":"claude-sonnet-4-5","max_tokens":100.5,' + MSG + '}', "max_tokens must be an integer"),
    ('{"model":"claude-sonnet-4-5","max_tokens":true,' + MSG + '}', "max_tokens must be an integer"),
    ('{"model":"claude-sonnet-4-5","max_tokens":"100",' + MSG + '}', "max_tokens must be an integer"),
    ('{"model":"claude-sonnet-4-5","max_tokens":' + "9" * 300 + ',' + MSG + '}', "a 300-digit number"),
    ('{"model":["claude-sonnet-4-5"],"max_tokens":50,' + MSG + '}', "model must be a string"),
    ('{"model":"claude-sonnet-4-5","max_tokens":50,"stream":"yes",' + MSG + '}', "stream must be true or false"),
    ('{"model":"claude-sonnet-4-5","max_tokens":50,"messages":' + "[" * 5000 + "]" * 5000 + '}', "nested too deeply"),
    ('{"model":"claude-sonnet-4-5","max_tokens":50,"messages":' + "[" * 990 + "]" * 990 + '}', "nested too deeply"),
    ('[1, 2]', "not a JSON object"),
])
def test_ambiguous_or_out_of_range_anthropic_requests_are_a_400_and_never_forwarded(body, fragment):
    with echo_upstream() as up, proxied(up.url) as p:
        status, answer = send("/anthropic/v1/messages", body.encode(), base=p.url, token=p.token)
        assert status == 400, answer[:300]
        assert fragment in json.loads(answer)["error"]["message"]
        assert up.requests == []
        assert p.calls == []  # nothing was held or spent


@pytest.mark.parametrize("body, fragment", [
    ('{"model":"gpt-4o",' + MSG + ',"max_completion_tokens":10,"max_completion_tokens":10000}', "duplicate key"),
    ('{"model":"gpt-4o",' + MSG + ',"max_completion_tokens":12.0}', "must be an integer"),
    ('{"model":"gpt-4o",' + MSG + ',"n":0}', "n must be between 1 and 128"),
    ('{"model":"gpt-4o",' + MSG + ',"n":1000}', "n must be between 1 and 128"),
    ('{"model":"gpt-4o",' + MSG + ',"n":2.5}', "n must be an integer"),
    ('{"model":"gpt-4o",' + MSG + ',"n":2,"n":50}', "duplicate key 'n'"),
])
def test_ambiguous_openai_requests_are_a_400(body, fragment):
    with echo_upstream() as up, proxied(up.url, model="gpt-4o", openai_url=up.url) as p:
        status, answer = send("/openai/v1/chat/completions", body.encode(), base=p.url, token=p.token)
        assert status == 400, answer[:300]
        assert fragment in json.loads(answer)["error"]["message"]
        assert up.requests == []


def test_duplicate_keys_are_rejected_at_any_depth_by_the_parser():
    # The parser contract (tests/meter keeps it for any faster parser): one value per key, everywhere.
    with pytest.raises(BadRequest, match="duplicate key 'type'"):
        parse_body(b'{"messages":[{"role":"user","content":[{"type":"text","type":"image","text":"x"}]}]}')
    with pytest.raises(BadRequest, match="duplicate key"):
        parse_body(b'{"max\\u005ftokens":1,"max_tokens":2}')  # an escaped spelling is the same key
    assert parse_body(b'{"a":{"k":1},"b":{"k":2}}') == {"a": {"k": 1}, "b": {"k": 2}}  # same key, other objects


def test_a_non_utf8_api_key_is_a_401_not_a_500():
    with echo_upstream() as up, proxied(up.url) as p:
        status, _ = send("/anthropic/v1/messages", b'{"model":"claude-sonnet-4-5","max_tokens":5,' + MSG.encode()
                         + b"}", {b"x-api-key": b"\xff\xfe"}, base=p.url, token="")
        assert status == 401


def _bill_every_choice(seen):
    """An upstream that bills what it was asked for: n choices of max_tokens each."""
    req = seen["json"]
    n, cap = req.get("n", 1), req.get("max_completion_tokens") or req.get("max_tokens")
    return web.json_response({
        "id": "c", "object": "chat.completion", "model": "gpt-4o-2024-08-06",
        "choices": [{"index": i, "message": {"role": "assistant", "content": "x"}, "finish_reason": "length"}
                    for i in range(n)],
        "usage": {"prompt_tokens": 30, "completion_tokens": n * cap, "total_tokens": 30 + n * cap},
    })


def test_chat_n_multiplies_the_worst_case_so_one_call_cannot_blow_the_cost_cap():
    with echo_upstream(_bill_every_choice) as up, proxied(
            up.url, model="gpt-4o", openai_url=up.url, limits=Limits(max_cost_usd=Decimal("0.05"))) as p:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "n": 50, "max_tokens": 1000}
        r = httpx.post(f"{p.openai_url}/chat/completions", json=body, headers=auth(p))
        assert r.status_code == 200
        sent = up.requests[0]["json"]
        # $10 per million output tokens: $0.05 buys < 5,000 output tokens, shared by 50 choices
        assert sent["n"] == 50 and sent["max_tokens"] < 100
        assert p.calls[0].cost_usd <= Decimal("0.05")


def test_chat_n_under_refuse_is_refused_when_its_worst_case_does_not_fit():
    from ci_guard.policy.decision import Enforcement

    with echo_upstream(_bill_every_choice) as up, proxied(
            up.url, model="gpt-4o", openai_url=up.url, limits=Limits(max_cost_usd=Decimal("0.05")),
            enforcement=Enforcement(on_cost_cap="refuse")) as p:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "n": 50, "max_tokens": 1000}
        r = httpx.post(f"{p.openai_url}/chat/completions", json=body, headers=auth(p))
        assert r.status_code == 400 and up.requests == []
