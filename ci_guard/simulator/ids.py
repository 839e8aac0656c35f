"""Provider-looking ids, deterministic per simulator call number (easy to match in tests)."""

from __future__ import annotations


def make_id(prefix: str, call: int, part: int = 0) -> str:
    return f"{prefix}sim{call:08d}{part:04d}"
