"""The proxy's upstream hop: one small interface, two interchangeable HTTP clients behind it.

* the lean client (:mod:`ci_guard.meter.upstream_client`), used by default: it is what keeps the
  proxy's added latency low;
* aiohttp's ClientSession, used for an origin that an HTTP(S) proxy from the environment applies to
  (``HTTPS_PROXY``/``HTTP_PROXY``, honouring ``NO_PROXY``), so CI runners behind a corporate proxy
  keep working, and for every origin when ``CI_GUARD_UPSTREAM_CLIENT=aiohttp`` (an escape hatch).

Both raise the errors of :mod:`ci_guard.meter.upstream_client` (and ``TimeoutError``), so the proxy
maps failures the same way whichever client carried the call.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp

from ci_guard.meter.upstream_client import (
    UpstreamClient,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamPayloadError,
)
from ci_guard.meter.upstreams import Upstreams


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
                body: bytes | None = None) -> AbstractAsyncContextManager[Response]: ...
    async def close(self) -> None: ...


# -- aiohttp behind the same interface -----------------------------------------------------------
def _mapped(exc: aiohttp.ClientError) -> UpstreamError:
    """aiohttp's errors as ours (its timeouts are TimeoutErrors already and are not passed here)."""
    text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamPayloadError(text)
    if isinstance(exc, aiohttp.ClientConnectionError):
        return UpstreamConnectionError(text)
    return UpstreamError(text)


class AiohttpResponse:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = response.headers

    def body_ready(self) -> bool:
        return False  # no public view of aiohttp's buffer: the head is always sent at once

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except TimeoutError:
            raise
        except aiohttp.ClientError as exc:
            raise _mapped(exc) from exc

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except TimeoutError:
            raise
        except aiohttp.ClientError as exc:
            raise _mapped(exc) from exc


class AiohttpTransport:
    """aiohttp's ClientSession with the settings the proxy always used (trust_env for proxies)."""

    def __init__(self, upstreams: Upstreams) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=upstreams.connect_timeout_s,
                                          sock_read=upstreams.read_timeout_s),
            auto_decompress=True,
            trust_env=True,  # HTTPS_PROXY / NO_PROXY: CI runners behind a corporate proxy
        )

    @asynccontextmanager
    async def request(self, method: str, url: str, headers: Mapping[str, str],
                      body: bytes | None = None) -> AsyncIterator[Response]:
        try:
            response = await self._session.request(method, url, headers=dict(headers), data=body or None,
                                                   allow_redirects=False)
        except TimeoutError:
            raise
        except aiohttp.ClientError as exc:
            raise _mapped(exc) from exc
        # Errors raised by the caller's own code (e.g. writing to the agent) pass through unmapped.
        try:
            yield AiohttpResponse(response)
        finally:
            response.release()
            await response.wait_for_close()

    async def close(self) -> None:
        await self._session.close()


# -- choosing per origin -------------------------------------------------------------------------
def env_proxy_applies(url: str) -> bool:
    """True when aiohttp (trust_env) would send this URL through an HTTP(S) proxy from the environment."""
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
            self._aiohttp = AiohttpTransport(self.upstreams)
        return self._aiohttp

    def request(self, method: str, url: str, headers: Mapping[str, str],
                body: bytes | None = None) -> AbstractAsyncContextManager[Response]:
        return self.transport_for(url).request(method, url, headers, body)

    async def close(self) -> None:
        await self.lean.close()
        if self._aiohttp is not None:
            await self._aiohttp.close()


__all__ = ["AiohttpTransport", "Response", "Transport", "UpstreamHop", "env_proxy_applies"]
