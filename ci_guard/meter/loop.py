"""Run a coroutine on the fastest event loop available (uvloop on Linux and macOS, else asyncio's)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # Windows, or an install without the optional speed-up
        return asyncio.run(coro)
    return uvloop.run(coro)
