"""A bare aiohttp pass-through (no auth, no metering, no ledger): the framework's own cost.

Measured next to the metering proxy in bench_proxy.py, so the table shows how much of the added
latency is aiohttp's two extra hops and how much is ci-guard's metering.

    python bench/passthrough_floor.py UPSTREAM_URL PORT
"""

from __future__ import annotations

import sys

import aiohttp
from aiohttp import web

from ci_guard.meter import loop


async def serve(upstream: str, port: int) -> None:
    import asyncio

    client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar())

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with client.post(upstream + request.path, data=body, headers=headers) as r:
            response = web.StreamResponse(status=r.status, headers={"content-type": r.headers["content-type"]})
            await response.prepare(request)
            async for chunk in r.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    runner = web.AppRunner(web.Application(client_max_size=64 * 1024 * 1024), access_log=None)  # as the proxy
    runner.app.router.add_route("POST", "/{tail:.*}", handle)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    loop.run(serve(sys.argv[1], int(sys.argv[2])))
