"""The proxy's upstream hop: one small interface, two interchangeable HTTP clients behind it.

* the lean client (:mod:`ci_guard.meter.upstream_client`), used by default: it is what keeps the
  proxy's added latency low;
* aiohttp's ClientSession, used for an origin that an HTTP(S) proxy from the environment applies to
  (``HTTPS_PROXY``/``HTTP_PROXY``, honouring ``NO_PROXY``), so CI runners behind a corporate proxy
  keep working, and for every origin when ``CI_GUARD_UPSTREAM_CLIENT=aiohttp`` (an escape hatch).

aiohttp (~100 ms to import) lives in :mod:`ci_guard.meter.upstream_aiohttp` and is imported only
when an origin needs it, so a run's start does not pay for it.

Both raise the errors of :mod:`ci_guard.meter.upstream_client` (and ``TimeoutError``), so the proxy
maps failures the same way whichever client carried the call.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from ci_guard.meter.upstream_client import UpstreamClient
from ci_guard.meter.upstreams import Upstreams

if TYPE_CHECKING:
    from ci_guard.meter.upstream_aiohttp import AiohttpTransport


class HeaderView(Protocol):
    def get(self, name: str, default: str | None = None) -> str | None: ...
    def items(self) -> Iterable[tuple[str, str]]: ...


class Response(Protocol):
    """What the proxy reads from an upstream answer."""

    status: int

    @property
    def headers(self) -> HeaderView: ...
    def chunks(self) -> AsyncIterator[bytes]: ...
    async def read(self) -> bytes: ...
    def body_ready(self) -> bool:
        """True when body bytes have already arrived: the first chunk comes without waiting."""


class Transport(Protocol):
    def request(self, method: str, url: str, headers: Mapping[str, str],
                body: bytes | list[Any] | None = None) -> AbstractAsyncContextManager[Response]: ...
    async def close(self) -> None: ...


# -- choosing per origin -------------------------------------------------------------------------
def env_proxy_applies(url: str) -> bool:
    """True when aiohttp (trust_env) would send this URL through an HTTP(S) proxy from the environment."""
    if sys.platform.startswith("linux") and not any(name.lower().endswith("_proxy") for name in os.environ):
        # No *_proxy variable: on Linux that is all getproxies() reads, so skip importing
        # urllib.request (http.client, email: ~10 ms of a run's start). macOS and Windows also
        # read system settings, so they always ask.
        return False
    import urllib.request

    parts = urlsplit(url)
    if parts.scheme not in urllib.request.getproxies():
        return False
    return not (parts.hostname and urllib.request.proxy_bypass(parts.hostname))


class UpstreamHop:
    """Routes each request to the lean client, or to aiohttp for origins behind an environment proxy."""

    def __init__(self, upstreams: Upstreams) -> None:
        self.upstreams = upstreams
        self.force_aiohttp = upstreams.client == "aiohttp"  # CI_GUARD_UPSTREAM_CLIENT, read by upstreams_from_env
        self.lean = UpstreamClient(connect_timeout_s=upstreams.connect_timeout_s,
                                   read_timeout_s=upstreams.read_timeout_s)
        self._aiohttp: AiohttpTransport | None = None  # created on first need: most runs never need it
        self._choice: dict[tuple[str, str], Transport] = {}

    def transport_for(self, url: str) -> Transport:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        transport = self._choice.get(key)
        if transport is None:
            transport = self._aiohttp_transport() if self.force_aiohttp or env_proxy_applies(url) else self.lean
            self._choice[key] = transport
        return transport

    def _aiohttp_transport(self) -> AiohttpTransport:
        if self._aiohttp is None:
            from ci_guard.meter.upstream_aiohttp import AiohttpTransport  # only behind an env proxy

            self._aiohttp = AiohttpTransport(self.upstreams)
        return self._aiohttp

    def request(self, method: str, url: str, headers: Mapping[str, str],
                body: bytes | list[Any] | None = None) -> AbstractAsyncContextManager[Response]:
        return self.transport_for(url).request(method, url, headers, body)

    async def close(self) -> None:
        await self.lean.close()
        if self._aiohttp is not None:
            await self._aiohttp.close()


__all__ = ["Response", "Transport", "UpstreamHop", "env_proxy_applies"]
