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



def release_free_memory() -> bool:
    """Give the pages of freed memory back to the system (glibc ``malloc_trim``); False elsewhere.

    glibc keeps what a burst of megabyte requests freed for reuse (the heap's free chunks, and its
    mmap threshold raised to their size), so without this a proxy that once held 64 such requests
    stays at ~380 MiB. Trimming only when the proxy is idle keeps the reuse (no page faults on
    every request) while it is busy.
    """
    global _trim
    if _trim is None:
        _trim = _load_malloc_trim()
    return bool(_trim and _trim(0))


_trim: object = None


def _load_malloc_trim():  # type: ignore[no-untyped-def]
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # musl and others
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim
