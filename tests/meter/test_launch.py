"""A run's start pays only for what it uses: aiohttp is imported only behind an environment proxy."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

# Everything `ci-guard run` imports, then the proxy started and its first upstream chosen.
PROBE = textwrap.dedent("""
    import asyncio, sys
    import ci_guard.cli, ci_guard.commands.run, ci_guard.meter.outputs, ci_guard.meter.runner
    from ci_guard.meter.upstream_hop import UpstreamHop
    from ci_guard.meter.upstreams import upstreams_from_env

    async def main():
        hop = UpstreamHop(upstreams_from_env({}))
        kind = type(hop.transport_for("https://api.anthropic.com/v1/messages")).__name__
        await hop.close()
        return kind

    kind = asyncio.run(main())
    print(kind, "aiohttp" in sys.modules, "urllib.request" in sys.modules, "msgspec" in sys.modules)
""")


def probe(**proxy_env: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**env, **proxy_env}, capture_output=True, text=True,
                         check=True, timeout=60)
    return out.stdout.split()


def test_a_run_without_an_env_proxy_never_imports_aiohttp() -> None:
    # nor urllib.request (no env proxy to look up) or msgspec (only a large request body needs it)
    assert probe() == ["UpstreamClient", "False", "False", "False"]


def test_an_env_proxy_still_routes_through_aiohttp() -> None:
    assert probe(HTTPS_PROXY="http://proxy.corp:3128")[:2] == ["AiohttpTransport", "True"]
