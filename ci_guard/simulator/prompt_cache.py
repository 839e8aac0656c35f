"""Anthropic prompt caching as it is billed: a stateful prefix cache (scenario ``prompt_cache: prefix``).

The request is flattened into blocks in Anthropic's order -- tools, system, then each message's
content blocks -- and each block gets a cumulative hash of everything up to it (``cache_control``
markers themselves are not content: moving a breakpoint does not change the prefix). A request
reads the longest prefix a previous request cached, found by looking back up to 20 blocks from
each of its breakpoints; it writes from there up to its last breakpoint; what follows is fresh
input. A prefix shorter than the model's minimum cacheable length is neither read nor written.
Entries live 5 minutes (1 hour with ``ttl: 1h``) from their last use, per model.

Token counts are the simulator's own (compact JSON bytes / 4 per block); it imports no meter code.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

LOOKBACK_BLOCKS = 20
MAX_BREAKPOINTS = 4
# Minimum cacheable prompt length (Anthropic's prompt-caching docs): 4096 tokens on Opus 4.5-4.7
# and Haiku 4.5, 2048 on the Haiku 3 family, 1024 on the others.
_MIN_4096 = ("claude-opus-4-5", "claude-opus-4-6", "claude-opus-4-7", "claude-haiku-4-5", "claude-mythos")
_MIN_2048 = ("claude-3-haiku", "claude-3-5-haiku", "claude-haiku-3")
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def min_cacheable(model: str) -> int:
    if model.startswith(_MIN_4096):
        return 4096
    if model.startswith(_MIN_2048):
        return 2048
    return 1024


def block_tokens(block: Any) -> int:
    return (len(_ENCODER.encode(block).encode("utf-8", "surrogatepass")) + 3) // 4


@dataclass
class Block:
    tokens: int
    digest: bytes  # cumulative: this block and everything before it
    breakpoint: bool
    ttl_s: int


def blocks(body: dict[str, Any]) -> list[Block]:
    out: list[Block] = []
    h = hashlib.blake2b(digest_size=16)

    def add(kind: str, block: Any) -> None:
        mark = block.get("cache_control") if isinstance(block, dict) else None
        content = {k: v for k, v in block.items() if k != "cache_control"} if isinstance(block, dict) else block
        h.update(kind.encode() + b"\0" + _ENCODER.encode(content).encode("utf-8", "surrogatepass") + b"\1")
        ttl = 3600 if isinstance(mark, dict) and mark.get("ttl") == "1h" else 300
        out.append(Block(block_tokens(content), h.copy().digest(), isinstance(mark, dict), ttl))

    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        add("tool", tool)
    system = body.get("system")
    if isinstance(system, str) and system:
        add("system", {"type": "text", "text": system})
    elif isinstance(system, list):
        for block in system:
            add("system", block)
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        role, content = str(message.get("role")), message.get("content")
        if isinstance(content, str):
            add(role, {"type": "text", "text": content})
        elif isinstance(content, list):
            for block in content:
                add(role, block)
    top = body.get("cache_control")
    if isinstance(top, dict) and out:  # automatic caching: the last block is the breakpoint
        out[-1].breakpoint = True
        out[-1].ttl_s = 3600 if top.get("ttl") == "1h" else 300
    return out


@dataclass
class CacheCounts:
    total: int
    read: int
    write: int
    write_1h: int

    @property
    def fresh(self) -> int:
        return self.total - self.read - self.write


@dataclass
class PromptCache:
    entries: dict[tuple[str, bytes], float] = field(default_factory=dict)  # -> expiry (monotonic)
    clock: Any = time.monotonic

    def serve(self, model: str, body: dict[str, Any]) -> CacheCounts:
        """The counts Anthropic bills for ``body``, and the cache as this request leaves it."""
        now = self.clock()
        items = blocks(body)
        cumulative, running = [], 0
        for b in items:
            running += b.tokens
            cumulative.append(running)
        total = running
        marks = [i for i, b in enumerate(items) if b.breakpoint]
        floor = min_cacheable(model)
        hit = -1
        for b in marks:
            for j in range(b, max(-1, b - LOOKBACK_BLOCKS), -1):
                expiry = self.entries.get((model, items[j].digest))
                if expiry is not None and expiry > now and cumulative[j] >= floor:
                    hit = max(hit, j)
                    break
        read = cumulative[hit] if hit >= 0 else 0
        if hit >= 0:  # a read refreshes the entry
            self.entries[(model, items[hit].digest)] = now + items[hit].ttl_s
        write = write_1h = 0
        cacheable = [b for b in marks if cumulative[b] >= floor]
        if cacheable and cacheable[-1] > hit:
            last = cacheable[-1]
            write = cumulative[last] - read
            # the part up to the last 1-hour breakpoint is written with the 1-hour TTL
            long_marks = [b for b in cacheable if items[b].ttl_s == 3600 and b > hit]
            write_1h = (cumulative[long_marks[-1]] - read) if long_marks else 0
        for b in cacheable:
            self.entries[(model, items[b].digest)] = now + items[b].ttl_s
        return CacheCounts(total, read, write, write_1h)
