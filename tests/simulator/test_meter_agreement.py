"""What the simulator records as served equals what the adapters meter from its bytes.

This is the invariant the proxy's tests rely on (ledger == served), checked here without a proxy:
the raw response bytes of every endpoint, streamed or not, faulty or not, go through the adapter.
"""

from __future__ import annotations

import random
from dataclasses import asdict

import httpx
import pytest

from ci_guard.meter.providers.registry import adapter_for
from ci_guard.simulator import run_simulator

BODIES = {
    ("anthropic", "/v1/messages"): {
        "model": "claude-sonnet-4-5", "max_tokens": 100,
        "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "go"},
                     {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {}}]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]}]},
    ("openai", "/v1/chat/completions"): {
        "model": "gpt-5", "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "messages": [{"role": "user", "content": "go"}]},
    ("openai", "/v1/responses"): {
        "model": "gpt-5", "tools": [{"type": "function", "name": "exec_command", "parameters": {}}],
        "input": [{"role": "user", "content": "go"}]},
}


def call(url: str, provider: str, path: str, stream: bool, seed: int) -> tuple[object, bytes]:
    adapter = adapter_for(provider, path)
    body, strip = adapter.prepare({**BODIES[(provider, path)], "stream": stream})
    rng = random.Random(seed)
    with httpx.stream("POST", url + path, json=body, headers={"x-api-key": "k"}, timeout=10) as response:
        if not stream:
            return adapter.parse_response(response.read()), b""
        meter = adapter.stream_meter(strip)
        seen = []
        try:
            for chunk in response.iter_raw(rng.randint(1, 64)):
                seen.append(meter.feed(chunk))
        except httpx.HTTPError:
            pass  # a dropped stream: what arrived is still metered
        seen.append(meter.close())
        return meter.result(), b"".join(seen)


@pytest.mark.parametrize("scenario", ["tool-loop", "malformed-sse", "drop-mid-stream"])
@pytest.mark.parametrize("stream", [True, False])
def test_metered_equals_served(scenario: str, stream: bool) -> None:
    with run_simulator(scenario) as sim:
        for seed, (provider, path) in enumerate(BODIES):
            if scenario == "drop-mid-stream" and not stream:
                continue  # no response at all: nothing to meter
            result, seen = call(sim.url, provider, path, stream, seed)
            record = sim.served[-1]
            expected = record["tokens"] or asdict(type(result.usage)())
            assert asdict(result.usage) == expected, (scenario, path)
            assert result.tool_calls == record["tool_calls"]
            # a stream with one broken event still ends normally; a broken JSON body does not
            complete = record["outcome"] == "ok" or (stream and record["outcome"] == "malformed")
            assert result.complete == complete
            if scenario == "malformed-sse" and stream:
                assert result.error and result.error.startswith("malformed_sse")
            if path == "/v1/chat/completions" and stream:
                assert b'"choices": []' not in seen  # the injected usage chunk never reaches the client
