"""The fake provider: an aiohttp app speaking Anthropic Messages and OpenAI Chat / Responses.

Routes (the Anthropic base URL is the server root, the OpenAI one is ``<root>/v1``):

* ``POST /v1/messages`` (any query string), ``POST /v1/messages/count_tokens``
* ``POST /v1/chat/completions``, ``POST /v1/responses``
* ``GET /v1/models`` (Anthropic's shape when the request has ``anthropic-version``)
* ``GET /_sim/usage``: every served generation call with its exact wire usage; ``DELETE`` clears it
* ``PUT /_sim/scenario``: switch scenario (JSON: a name, or a scenario mapping)

Every generation call gets a server-wide call number (1, 2, ...), used only by ``fault.every``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from aiohttp import web

from ci_guard.errors import InvalidInputError
from ci_guard.simulator import anthropic_wire, chat_wire, context_edit, responses_wire
from ci_guard.simulator.conversation import Request, read_request
from ci_guard.simulator.prompt_cache import PromptCache
from ci_guard.simulator.replies import anthropic_usage, chat_usage, plan_reply, responses_usage
from ci_guard.simulator.scenario import Scenario, load_scenario

_MALFORMED = {
    "messages": b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {"ty\n\n',
    "chat.completions": b'data: {"id": "chatcmpl-broken", "choices": [{"index": 0, "delta": {"conte\n\n',
    "responses": b'event: response.output_text.delta\ndata: {"type": "response.output_text.delta", "del\n\n',
}


class Simulator:
    """A running fake provider. Use ``async with Simulator(...)`` or :func:`run_simulator`."""

    def __init__(self, scenario: str | Scenario | dict[str, Any] | None = None, host: str = "127.0.0.1",
                 port: int = 0, api_key: str | None = None) -> None:
        self.scenario = load_scenario(scenario)
        self.host = host
        self.port = port
        self.api_key = api_key  # when set, any other key gets 401 (proves a proxy swapped keys)
        self.served: list[dict[str, Any]] = []
        self.calls = 0
        self.prompt_cache = PromptCache()  # used by scenarios with prompt_cache: prefix
        self.bodies: list[dict[str, Any]] = []
        self.raw: list[bytes] = []  # the request bytes as received (only with keep_raw, for benches)
        self.keep_raw = False
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Base URL for Anthropic clients (``ANTHROPIC_BASE_URL``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_url(self) -> str:
        """Base URL for OpenAI clients (``base_url`` / Codex provider ``base_url``)."""
        return f"{self.url}/v1"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/_sim/usage", self._usage)
        app.router.add_delete("/_sim/usage", self._reset)
        app.router.add_put("/_sim/scenario", self._set_scenario)
        return app

    async def start(self) -> Simulator:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]  # the bound port when port=0
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def reset(self) -> None:
        self.served.clear()
        self.calls = 0
        self.prompt_cache = PromptCache()
        self.bodies.clear()
        self.raw.clear()

    # --- routes ---------------------------------------------------------------------------

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "messages")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "chat.completions")

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "responses")

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        body, problem = await self._read(request, "messages")
        if problem is not None:
            return problem
        return web.json_response(anthropic_wire.count_tokens(read_request("messages", body)))

    async def _models(self, request: web.Request) -> web.StreamResponse:
        if "anthropic-version" in request.headers:
            return web.json_response(anthropic_wire.models())
        return web.json_response(chat_wire.models())

    async def _usage(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.served)

    async def _reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return web.json_response({"ok": True})

    async def _set_scenario(self, request: web.Request) -> web.StreamResponse:
        try:
            spec = await request.json()
        except ValueError as exc:
            return web.json_response({"error": f"the body is not JSON: {exc}"}, status=400)
        if not isinstance(spec, str | dict):
            return web.json_response({"error": "expected a scenario name or a mapping of scenario keys, got "
                                               f"{type(spec).__name__}"}, status=400)
        try:
            self.scenario = load_scenario(spec)
        except InvalidInputError as exc:
            # Every problem, located by field, as the CLI prints it (not just "invalid scenario").
            return web.json_response({"error": exc.render(), "problems": [
                {"field": p.field, "message": p.message} for p in exc.problems]}, status=400)
        return web.json_response({"scenario": self.scenario.name})

    # --- generation -------------------------------------------------------------------------

    async def _read(self, request: web.Request, endpoint: str) -> tuple[dict[str, Any], web.Response | None]:
        if self.api_key is not None and _presented_key(request) != self.api_key:
            return {}, _error(endpoint, 401)
        try:
            if self.keep_raw:
                self.raw.append(await request.read())
            body = await request.json()
        except ValueError:
            return {}, _error(endpoint, 400, "The request body is not valid JSON")
        if not isinstance(body, dict):
            return {}, _error(endpoint, 400, "The request body must be a JSON object")
        return body, None

    async def _generate(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        self.calls += 1
        call = self.calls
        body, problem = await self._read(request, endpoint)
        if problem is not None:
            return problem
        scenario = self.scenario
        applied = None
        if endpoint == "messages":
            model = scenario.model or str(body.get("model") or "claude-sonnet-4-5")
            try:
                body, applied = context_edit.apply(body, request.headers.get("anthropic-beta", ""), model)
            except context_edit.EditRefused as exc:
                self.served.append({"call": call, "endpoint": endpoint, "status": 400, "outcome": "error"})
                return _error(endpoint, 400, str(exc))
        req = read_request(endpoint, body)
        record: dict[str, Any] = {
            "call": call, "endpoint": endpoint, "model": scenario.model or req.model, "stream": req.stream,
            "turn": req.turn, "status": 200, "outcome": "ok", "tool_calls": 0, "usage": None, "tokens": None,
            "session": request.headers.get("X-Claude-Code-Session-Id"),
            "applied_edits": applied,
        }
        self.bodies.append(body)  # as the model saw it (after context editing), for tests and benches
        self.served.append(record)
        fault = scenario.fault if scenario.faulty(call) else None
        if fault is not None and fault.kind == "status":
            status = fault.status or (529 if endpoint == "messages" else 500)
            record.update(status=status, outcome="error")
            headers = {"retry-after": str(fault.retry_after)} if status == 429 else {}
            return _error(endpoint, status, headers=headers)
        if scenario.delay.first_byte:
            await asyncio.sleep(scenario.delay.first_byte)
        reply = plan_reply(scenario, req)
        usage = _USAGE[endpoint](req, reply)
        if endpoint == "messages" and scenario.prompt_cache == "prefix":
            counts = self.prompt_cache.serve(record["model"], body)
            usage.update(input_tokens=counts.fresh, cache_creation_input_tokens=counts.write,
                         cache_read_input_tokens=counts.read,
                         cache_creation={"ephemeral_5m_input_tokens": counts.write - counts.write_1h,
                                         "ephemeral_1h_input_tokens": counts.write_1h})
        record["tool_calls"] = 1 if reply.tool is not None else 0
        if not req.stream:
            return await self._json(request, endpoint, req, reply, usage, record, call, fault)
        return await self._stream(request, endpoint, body, req, reply, usage, record, call, fault)

    async def _json(self, request: web.Request, endpoint: str, req: Request, reply: Any, usage: dict[str, Any],
                    record: dict[str, Any], call: int, fault: Any) -> web.StreamResponse:
        if fault is not None and fault.kind == "drop":
            record.update(outcome="dropped", tool_calls=0)
            _abort(request)
            return web.Response()  # never sent: the connection is gone
        if fault is not None and fault.kind == "malformed":
            record.update(outcome="malformed", tool_calls=0)
            return web.Response(body=b'{"id": "broken", "usage": {"inp', content_type="application/json")
        record["usage"] = usage
        record["tokens"] = _tokens(endpoint, usage)
        payload = _BODY[endpoint](req, reply, usage, record["model"], call)
        if record["applied_edits"] is not None:
            payload["context_management"] = {"applied_edits": record["applied_edits"]}
        return web.json_response(payload, headers={"request-id": f"req_sim{call:08d}"})

    async def _stream(self, request: web.Request, endpoint: str, body: dict[str, Any], req: Request,
                      reply: Any, usage: dict[str, Any], record: dict[str, Any], call: int,
                      fault: Any) -> web.StreamResponse:
        frames = _frames(endpoint, body, req, reply, usage, record["model"], call, record["applied_edits"])
        response = web.StreamResponse(headers={
            "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache",
            "request-id": f"req_sim{call:08d}",
        })
        await response.prepare(request)
        seen: list[Any] = []
        delay = self.scenario.delay.per_event
        for index, (data, frame) in enumerate(frames):
            if fault is not None and index == fault.after_events:
                if fault.kind == "drop":
                    _record_seen(record, endpoint, seen, dropped=True)
                    _abort(request)
                    return response
                if fault.kind == "malformed":
                    record["outcome"] = "malformed"
                    await response.write(_MALFORMED[endpoint])
            if index and delay:
                await asyncio.sleep(delay)
            seen.append(data)
            if index == len(frames) - 1:
                # Recorded before the last frame leaves: a client that has read the whole stream
                # must find the call's usage in `served` (it raced the write before).
                _record_seen(record, endpoint, seen, dropped=False)
            await response.write(frame)
        if not frames:
            _record_seen(record, endpoint, seen, dropped=False)
        await response.write_eof()
        return response


def _frames(endpoint: str, body: dict[str, Any], req: Request, reply: Any, usage: dict[str, Any], model: str,
            call: int, applied_edits: list[dict[str, Any]] | None = None) -> list[tuple[Any, bytes]]:
    if endpoint == "chat.completions":
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        events = chat_wire.events(req, reply, usage, model, call, include)
        return [(data, b"data: " + (data if isinstance(data, str) else json.dumps(data)).encode() + b"\n\n")
                for _, data in events]
    events = (anthropic_wire if endpoint == "messages" else responses_wire).events(req, reply, usage, model, call)
    if applied_edits is not None:  # context editing is reported on the message_delta event
        for name, data in events:
            if name == "message_delta":
                data["context_management"] = {"applied_edits": applied_edits}
    return [(data, f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()) for name, data in events]


def _record_seen(record: dict[str, Any], endpoint: str, seen: list[Any], dropped: bool) -> None:
    """Record the usage the client could read from the events actually sent."""
    usage: dict[str, Any] | None = None
    tools = 0
    for data in seen:
        if not isinstance(data, dict):
            continue
        kind = data.get("type")
        if kind == "message_start":
            usage = dict(data["message"]["usage"])
        elif kind == "message_delta":
            usage = {**(usage or {}), **data["usage"]}
        elif kind == "response.completed":
            usage = data["response"]["usage"]
        elif isinstance(data.get("usage"), dict):
            usage = data["usage"]
        if _is_tool_event(kind, data):
            tools += 1
        elif endpoint == "chat.completions" and "choices" in data:
            tools += sum(1 for c in data["choices"] for tc in c["delta"].get("tool_calls") or [] if "id" in tc)
    record["tool_calls"] = tools
    record["usage"] = usage
    record["tokens"] = _tokens(endpoint, usage) if usage is not None else None
    if dropped:
        record["outcome"] = "dropped"


def _is_tool_event(kind: Any, data: dict[str, Any]) -> bool:
    if kind == "content_block_start":
        return data["content_block"]["type"] == "tool_use"
    return kind == "response.output_item.done" and data["item"]["type"].endswith("_call")


def _tokens(endpoint: str, usage: dict[str, Any]) -> dict[str, int]:
    """The normalised Usage of a wire usage dict (what a correct meter records)."""
    from ci_guard.pricing import normalize

    convert = {"messages": normalize.from_anthropic, "chat.completions": normalize.from_openai_chat,
               "responses": normalize.from_openai_responses}[endpoint]
    return asdict(convert(usage))


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


def _presented_key(request: web.Request) -> str | None:
    if "x-api-key" in request.headers:
        return request.headers["x-api-key"]
    auth = request.headers.get("Authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else None


def _error(endpoint: str, status: int, message: str | None = None,
           headers: dict[str, str] | None = None) -> web.Response:
    payload = anthropic_wire.error(status, message) if endpoint == "messages" else chat_wire.error(status, message)
    return web.json_response(payload, status=status, headers=headers)


_USAGE = {"messages": anthropic_usage, "chat.completions": chat_usage, "responses": responses_usage}
_BODY = {"messages": anthropic_wire.body, "chat.completions": chat_wire.body, "responses": responses_wire.body}


@contextmanager
def run_simulator(scenario: str | Scenario | dict[str, Any] | None = None, host: str = "127.0.0.1",
                  port: int = 0, api_key: str | None = None) -> Iterator[Simulator]:
    """Run a simulator on its own event loop in a background thread (for sync tests and tools)."""
    sim = Simulator(scenario, host, port, api_key)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="ci-guard-simulator", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(sim.start(), loop).result(timeout=10)
        yield sim
    finally:
        try:
            asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
