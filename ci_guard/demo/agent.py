"""A small scripted coding agent for the demo and the tests.

It talks to ``$ANTHROPIC_BASE_URL`` (Messages API) or ``$OPENAI_BASE_URL`` (Chat Completions) with
the key it was given, runs a tool loop against a fake tool, and retries provider errors like a
naive agent would (which is exactly what makes retry storms). Run as
``python -m ci_guard.demo.agent [--api anthropic|openai] [--stream] [--max-steps N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import httpx

TOOL = {"name": "read_file", "description": "Read a file of the repository",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}


def _anthropic_call(client: httpx.Client, model: str, messages: list, stream: bool) -> tuple[int, dict]:
    body = {"model": model, "max_tokens": 2048, "tools": [TOOL], "messages": messages, "stream": stream}
    if not stream:
        r = client.post("/v1/messages", json=body)
        return r.status_code, r.json()
    content: list[dict] = []
    with client.stream("POST", "/v1/messages", json=body) as r:
        if r.status_code != 200:
            r.read()
            return r.status_code, r.json()
        partial = ""
        for line in r.iter_lines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            kind = event.get("type")
            if kind == "content_block_start":
                content.append(dict(event["content_block"]))
                partial = ""
            elif kind == "content_block_delta":
                delta = event["delta"]
                if delta.get("type") == "text_delta":
                    content[-1]["text"] = content[-1].get("text", "") + delta["text"]
                elif delta.get("type") == "input_json_delta":
                    partial += delta["partial_json"]
            elif kind == "content_block_stop" and content and content[-1]["type"] == "tool_use" and partial:
                content[-1]["input"] = json.loads(partial)
            elif kind == "error":
                return 500, event
    return 200, {"content": content}


def run(api: str, stream: bool, max_steps: int, prompt: str, retries: int) -> int:
    model = os.environ.get("CI_GUARD_MODEL") or "claude-haiku-4-5"
    if api == "anthropic":
        base = os.environ["ANTHROPIC_BASE_URL"]
        headers = {"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"}
    else:
        base = os.environ["OPENAI_BASE_URL"]
        headers = {"authorization": f"Bearer {os.environ['OPENAI_API_KEY']}"}
    messages: list[dict] = [{"role": "user", "content": prompt}]
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        for step in range(1, max_steps + 1):
            status, body = _call_with_retries(client, api, model, messages, stream, retries)
            if status != 200:
                print(f"agent: giving up after HTTP {status}: {_message(body)}", file=sys.stderr)
                return 3
            if api == "anthropic":
                messages.append({"role": "assistant", "content": body["content"]})
                uses = [b for b in body["content"] if b.get("type") == "tool_use"]
                if not uses:
                    print("agent: " + " ".join(b.get("text", "") for b in body["content"]).strip())
                    return 0
                print(f"agent: step {step}: {uses[0]['name']}({json.dumps(uses[0].get('input', {}))})",
                      file=sys.stderr)
                messages.append({"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": u["id"], "content": f"contents of step {step}"}
                    for u in uses]})
            else:
                msg = body["choices"][0]["message"]
                messages.append(msg)
                calls = msg.get("tool_calls") or []
                if not calls:
                    print("agent: " + (msg.get("content") or ""))
                    return 0
                for c in calls:
                    messages.append({"role": "tool", "tool_call_id": c["id"], "content": f"result {step}"})
    print("agent: reached its own step limit", file=sys.stderr)
    return 4


def _call_with_retries(client: httpx.Client, api: str, model: str, messages: list, stream: bool,
                       retries: int) -> tuple[int, dict]:
    for attempt in range(retries + 1):
        if api == "anthropic":
            status, body = _anthropic_call(client, model, messages, stream)
        else:
            tools = [{"type": "function", "function": {"name": TOOL["name"], "description": TOOL["description"],
                                                       "parameters": TOOL["input_schema"]}}]
            r = client.post("/chat/completions", json={"model": model, "messages": messages, "tools": tools})
            status, body = r.status_code, r.json()
        if status in (429, 500, 502, 503, 529) and attempt < retries:
            time.sleep(0.05 * (attempt + 1))
            continue
        return status, body
    return status, body


def _message(body: dict) -> str:
    err = body.get("error") if isinstance(body, dict) else None
    return err.get("message", "") if isinstance(err, dict) else str(body)[:200]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api", choices=["anthropic", "openai"], default="anthropic")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--max-steps", type=int, default=50)
    parser.add_argument("--retries", type=int, default=10)
    parser.add_argument("prompt", nargs="?", default="Review this pull request.")
    args = parser.parse_args()
    sys.exit(run(args.api, args.stream, args.max_steps, args.prompt, args.retries))


if __name__ == "__main__":
    main()
