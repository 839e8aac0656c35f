"""Run a coroutine on the fastest event loop available (uvloop on Linux and macOS, else asyncio's)."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    # The ledger writer thread shares the GIL with the event loop. With CPython's default 5 ms
    # switch interval, a request arriving while that thread runs Python code can wait up to 5 ms
    # for the loop to get the GIL back; 0.2 ms bounds that wait near the proxy's own latency.
    sys.setswitchinterval(0.0002)
    # Everything imported and built so far (modules, pydantic schemas, the policy) lives as long as
    # the proxy: keep it out of the garbage collector's scans, which then only walk per-call objects.
    gc.collect()
    gc.freeze()
    try:
        import uvloop
    except ImportError:  # Windows, or an install without the optional speed-up
        return asyncio.run(coro)
    return uvloop.run(coro)
