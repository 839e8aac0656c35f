"""The upstream hop on aiohttp's ClientSession, for origins behind an HTTP(S) proxy from the environment.

Kept out of :mod:`ci_guard.meter.upstream_hop` so that importing aiohttp (~100 ms) is paid only by
the runs that need it (``HTTPS_PROXY``/``HTTP_PROXY`` apply, or ``CI_GUARD_UPSTREAM_CLIENT=aiohttp``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from ci_guard.meter.upstream_client import UpstreamConnectionError, UpstreamError, UpstreamPayloadError
from ci_guard.meter.upstream_hop import Response
from ci_guard.meter.upstreams import Upstreams


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
                      body: bytes | list[Any] | None = None) -> AsyncIterator[Response]:
        try:
            response = await self._session.request(method, url, headers=dict(headers), data=_joined(body) or None,
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


__all__ = ["AiohttpResponse", "AiohttpTransport"]


def _joined(body: bytes | list[Any] | None) -> bytes | None:
    """A spliced request's pieces as one buffer (aiohttp takes bytes; only runs behind a proxy use it)."""
    return b"".join(body) if isinstance(body, list) else body
