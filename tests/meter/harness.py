"""Run the metering proxy in-process in front of an upstream, on a background event loop."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from ci_guard.meter.caps import CapGuard
from ci_guard.meter.live_log import LiveLog
from ci_guard.meter.pricer import CatalogPricer
from ci_guard.meter.proxy import MeterProxy
from ci_guard.meter.recorder import LedgerRecorder
from ci_guard.meter.session import MeterSession, new_run_id, new_run_token
from ci_guard.meter.upstreams import Upstreams
from ci_guard.policy.decision import ContextPolicy, Decision, Enforcement, Limits
from ci_guard.pricing.catalog import load_catalog

REAL_KEY = "sk-ant-api03-REALKEY-never-shown-to-agents-0123456789"


class BackgroundLoop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Proxied:
    proxy: MeterProxy
    session: MeterSession
    bg: BackgroundLoop
    stops: list[tuple[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def anthropic_url(self) -> str:
        return f"{self.proxy.url}/anthropic"

    @property
    def openai_url(self) -> str:
        return f"{self.proxy.url}/openai/v1"

    @property
    def token(self) -> str:
        return self.session.token

    @property
    def calls(self) -> list[Any]:
        """The recorded calls, once every request in flight has been settled.

        A client may hold the last byte of a response before the proxy has recorded the call.
        """
        self.bg.run(self._idle())
        return self.session.calls

    async def _idle(self) -> None:
        for _ in range(500):
            if not self.proxy._inflight:
                return
            await asyncio.sleep(0.01)


@contextmanager
def proxied(upstream_url: str, *, limits: Limits | None = None, model: str | None = "claude-sonnet-4-5",
            enforcement: Enforcement | None = None, openai_url: str | None = None,
            recorder: LedgerRecorder | None = None, key: str = REAL_KEY,
            read_timeout_s: float = 600.0, context_policy: ContextPolicy | None = None) -> Iterator[Proxied]:
    decision = Decision(decision="allow", rule="test", model=model, limits=limits or Limits(),
                        enforcement=enforcement or Enforcement(), context_policy=context_policy or ContextPolicy())
    bg = BackgroundLoop()
    stops: list[tuple[str, str]] = []
    session = MeterSession(
        run_id=new_run_id(), token=new_run_token(), decision=decision,
        guard=CapGuard(decision.limits, on_cost_cap=decision.enforcement.on_cost_cap),
        pricer=CatalogPricer(load_catalog(), model), recorder=recorder or LedgerRecorder(None),
        live=LiveLog(quiet=True), on_stop=lambda r, d: stops.append((r, d)),
    )
    ups = Upstreams(anthropic=upstream_url, openai=openai_url or f"{upstream_url}/v1",
                    anthropic_api_key=key, openai_api_key=key, read_timeout_s=read_timeout_s)
    proxy = MeterProxy(session, ups)
    bg.run(proxy.start())
    try:
        yield Proxied(proxy, session, bg, stops)
    finally:
        bg.run(proxy.close())
        session.recorder.flush()
        bg.close()


@dataclass
class Echo:
    """A tiny upstream that records what it receives and answers with a canned response."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    respond: Callable[[dict[str, Any]], web.StreamResponse] | None = None


@contextmanager
def echo_upstream(respond: Callable[[dict[str, Any]], web.Response] | None = None) -> Iterator[Echo]:
    echo = Echo(respond=respond)
    bg = BackgroundLoop()

    async def handler(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        seen = {"method": request.method, "path": request.path, "query": request.query_string,
                "headers": dict(request.headers), "raw": raw,
                "json": json.loads(raw) if raw and request.content_type == "application/json" else None}
        echo.requests.append(seen)
        if echo.respond is not None:
            return echo.respond(seen)
        return web.json_response(ANTHROPIC_OK)

    async def start() -> web.AppRunner:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        echo.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return runner

    runner = bg.run(start())
    try:
        yield echo
    finally:
        bg.run(runner.cleanup())
        bg.close()


ANTHROPIC_OK = {
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
}


def dollars(text: str) -> Decimal:
    return Decimal(text)
