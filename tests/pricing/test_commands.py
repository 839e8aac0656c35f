"""`ci-guard prices` and `ci-guard cost`, through the CLI's error boundary."""

from __future__ import annotations

import json

from tests.helpers import run_cli


def test_cost_worked_example_text_and_json(capsys):
    args = ["cost", "--model", "claude-sonnet-4-5-20250929", "--input", "1200", "--cache-write", "1000",
            "--cache-write-1h", "2000", "--cache-read", "50000", "--output", "800", "--reasoning", "300"]
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and "total: $0.046350" in out and "cache write 1h" in out
    code, out, _ = run_cli(capsys, *args, "--format", "json")
    data = json.loads(out)
    assert data["total_usd"] == "0.046350" and data["cache_write_1h_usd"] == "0.012"
    assert data["tokens"]["cache_write"] == 3000 and data["resolved_as"] == "normalized"


def test_cost_rejects_reasoning_above_output_and_unknown_models(capsys):
    code, _, err = run_cli(capsys, "cost", "--model", "gpt-5", "--output", "10", "--reasoning", "11")
    assert code == 2 and "cannot exceed --output" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "cost", "--model", "mystery", "--input", "1")
    assert code == 1 and "has no price" in err


def test_policy_pricing_applies(tmp_path, capsys):
    policy = tmp_path / "policy.yml"
    policy.write_text("version: 1\npricing:\n  overrides:\n    acme-coder: {input: 0.5, output: 1.5}\n"
                      "    gpt-5: {discount_pct: 20}\nrules:\n  - name: all\n    decision: allow\n")
    code, out, _ = run_cli(capsys, "cost", "--model", "acme-coder", "--input", "1000000", "--output", "1000000",
                           "--policy", str(policy))
    assert code == 0 and "total: $2.000000" in out
    code, out, _ = run_cli(capsys, "prices", "gpt-5", "--policy", str(policy), "--format", "json")
    model = json.loads(out)["models"][0]
    assert (model["input"], model["output"], model["source"]) == ("1", "8", "override")


def test_prices_lists_the_catalog(capsys):
    code, out, _ = run_cli(capsys, "prices")
    assert code == 0 and "claude-sonnet-4-5" in out and "gemini-2.5-pro" in out and "as of 2026-12-04" in out
    code, out, _ = run_cli(capsys, "prices", "claude-sonnet-4-0", "--format", "json")
    data = json.loads(out)
    assert data["models"][0]["model"] == "claude-sonnet-4" and "claude-sonnet-4-0" in data["models"][0]["aliases"]
    assert data["fees"] == {"anthropic": {"web_search_usd": "0.01"}, "openai": {"web_search_usd": "0.01"}}
    code, _, err = run_cli(capsys, "prices", "mystery")
    assert code == 1 and "not in the catalog" in err


def test_cost_reproduces_a_ledger_row_with_tier_geography_and_searches(capsys):
    """A call metered by the proxy (priority tier, two web searches) re-priced by hand to the micro-dollar."""
    import httpx
    from aiohttp import web

    from tests.meter.harness import echo_upstream, proxied

    answer = {"id": "r", "object": "response", "status": "completed", "model": "gpt-5.5", "service_tier": "priority",
              "output": [{"type": "web_search_call", "id": "ws1", "status": "completed"},
                         {"type": "web_search_call", "id": "ws2", "status": "completed"}],
              "usage": {"input_tokens": 12_000, "input_tokens_details": {"cached_tokens": 8_000},
                        "output_tokens": 900, "output_tokens_details": {"reasoning_tokens": 300}}}
    with echo_upstream(lambda seen: web.json_response(answer)) as up, proxied(up.url, model="gpt-5.5") as p:
        httpx.post(f"{p.openai_url}/responses", json={"model": "gpt-5.5", "input": "hi", "service_tier": "priority",
                                                      "tools": [{"type": "web_search"}]},
                   headers={"authorization": f"Bearer {p.token}"})
        (call,) = p.calls
    assert (call.service_tier, call.web_searches) == ("priority", 2)
    u = call.usage
    code, out, _ = run_cli(capsys, "cost", "--model", call.model_served, "--input", str(u.input_tokens),
                           "--cache-read", str(u.cache_read_tokens), "--output", str(u.output_tokens),
                           "--service-tier", call.service_tier, "--web-searches", str(call.web_searches),
                           "--format", "json")
    data = json.loads(out)
    # 4,000 x 12.50 + 8,000 x 1.25 + 900 x 75 per million + 2 x $0.01 = 0.05 + 0.01 + 0.0675 + 0.02
    assert code == 0 and data["total_usd"] == str(call.cost_usd) == "0.147500"
    assert data["fees_usd"] == "0.020000"


def test_cost_inference_geo_and_preview_searches_as_a_subprocess():
    import os
    import subprocess
    import sys

    exe = os.path.join(os.path.dirname(sys.executable), "ci-guard")
    out = subprocess.run([exe, "cost", "--model", "claude-sonnet-4-6", "--input", "10000", "--output", "1000",
                          "--inference-geo", "us"], capture_output=True, text=True, check=True).stdout
    assert "total: $0.049500" in out and "inference geo us" in out
    out = subprocess.run([exe, "cost", "--model", "gpt-4o", "--input", "1000", "--web-searches", "4",
                          "--web-search-preview"], capture_output=True, text=True, check=True).stdout
    # 1,000 x 2.50 per million + 4 x $0.025
    assert "total: $0.102500" in out
