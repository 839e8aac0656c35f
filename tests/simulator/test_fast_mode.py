"""The simulator answers a fast-mode request as the API does: ``usage.speed`` says which speed served it."""

from __future__ import annotations

import httpx
import pytest

from ci_guard.meter.providers.registry import adapter_for
from ci_guard.simulator import run_simulator


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("speed", ["fast", "standard", None])
def test_the_simulator_reports_the_requested_speed(stream: bool, speed: str | None) -> None:
    adapter = adapter_for("anthropic", "/v1/messages")
    body = {"model": "claude-opus-5", "max_tokens": 50, "stream": stream,
            "messages": [{"role": "user", "content": "go"}], **({"speed": speed} if speed else {})}
    with run_simulator("tool-loop") as sim:
        response = httpx.post(sim.url + "/v1/messages", json=body, headers={"x-api-key": "k"}, timeout=10)
        if stream:
            meter = adapter.stream_meter()
            meter.feed(response.content)
            meter.close()
            result = meter.result()
        else:
            result = adapter.parse_response(response.content)
            assert response.json()["usage"].get("speed") == speed
    assert result.speed == speed
