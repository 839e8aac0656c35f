"""Run a coroutine on the fastest event loop available (uvloop on Linux and macOS, else asyncio's)."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from ci_guard.startup import resume_gc

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    # The ledger writer thread shares the GIL with the event loop. With CPython's default 5 ms
    # switch interval, a request arriving while that thread runs Python code can wait up to 5 ms
    # for the loop to get the GIL back; 0.2 ms bounds that wait near the proxy's own latency.
    sys.setswitchinterval(0.0002)
    keep_freed_memory()
    # Everything imported and built so far (modules, pydantic schemas, the policy) lives as long as
    # the proxy: keep it out of the garbage collector's scans, which then only walk per-call objects.
    # No gc.collect() first: at this point it walks ~50,000 objects to free ~60 (12 ms of CPU on
    # every launch, measured), and the few it would free stay frozen at no cost worth 12 ms.
    # `run` / `start` / `proxy` started with the collector paused (ci_guard.startup), so nothing was
    # collected before: ~800 cyclic objects of start-up (~0.8 MB of peak RSS, measured) stay frozen
    # too, for the ~12 ms of young-generation passes start-up no longer makes.
    gc.freeze()
    resume_gc()  # from here on the collector only walks what the proxy allocates per call
    try:
        import uvloop
    except ImportError:  # Windows, or an install without the optional speed-up
        return asyncio.run(coro)
    return uvloop.run(coro)


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's maximum on 64-bit systems
TRIM_THRESHOLD = 256 * 1024 * 1024


def libc_functions() -> bool:
    """Look up the glibc functions the proxy uses, without calling them (the warm launcher does
    this once for all its runs); False where there are none."""
    return bool(_libc_function(*_MALLOPT) and _libc_function(*_MALLOC_TRIM))


_MALLOPT = ("mallopt", ("c_int", "c_int"))
_MALLOC_TRIM = ("malloc_trim", ("c_size_t",))


def keep_freed_memory() -> bool:
    """Let a busy proxy reuse the memory of its last megabyte request (glibc); False elsewhere.

    By default glibc gives a freed block of a megabyte or so straight back to the system (an mmap
    of its own, or the top of the heap above a trim threshold of twice the largest such block seen
    so far), and takes it again for the next request: every page of every body, part and decoded
    string is then faulted in and zeroed anew, ~15 % of the proxy's CPU on back-to-back 1 MB
    requests. With these thresholds freed memory stays in the heap while requests keep coming;
    :func:`release_free_memory`, called when the proxy falls idle, gives it back then.
    """
    mallopt = _libc_function(*_MALLOPT)
    if not mallopt:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def release_free_memory() -> bool:
    """Give the pages of freed memory back to the system (glibc ``malloc_trim``); False elsewhere.

    glibc keeps what a burst of megabyte requests freed for reuse (the heap's free chunks, and its
    mmap threshold raised to their size), so without this a proxy that once held 64 such requests
    stays at ~380 MiB. Trimming only when the proxy is idle keeps the reuse (no page faults on
    every request) while it is busy.
    """
    trim = _libc_function(*_MALLOC_TRIM)
    return bool(trim and trim(0))


_libc: dict[str, Any] = {}


def _libc_function(name: str, argtypes: tuple[str, ...]) -> Any:
    """A glibc function (``int name(argtypes)``, ctypes type names), loaded once; False where there
    is none (musl, macOS, Windows)."""
    if name not in _libc:
        _libc[name] = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                function = getattr(ctypes.CDLL(None), name)
            except (OSError, AttributeError):
                pass
            else:
                function.argtypes = [getattr(ctypes, t) for t in argtypes]
                function.restype = ctypes.c_int
                _libc[name] = function
    return _libc[name]
