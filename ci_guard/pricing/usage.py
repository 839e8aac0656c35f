"""Normalised token usage: one shape for every provider, before pricing.

Providers count differently (see docs/pricing.md): Anthropic's ``input_tokens`` excludes cache
reads and writes, OpenAI's ``prompt_tokens`` / ``input_tokens`` include ``cached_tokens``, and
reasoning tokens are part of output everywhere. Adapters convert to this shape; nothing downstream
needs to know which provider served a call.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0  # fresh input: neither read from nor written to cache
    cache_write_tokens: int = 0  # all cache writes (5-minute + 1-hour)
    cache_write_1h_tokens: int = 0  # the 1-hour part of cache_write_tokens (Anthropic); 0 when unknown
    cache_read_tokens: int = 0
    output_tokens: int = 0  # billable output, reasoning included
    reasoning_tokens: int = 0  # informational subset of output_tokens

    @property
    def cache_write_5m_tokens(self) -> int:
        return self.cache_write_tokens - self.cache_write_1h_tokens

    @property
    def context_tokens(self) -> int:
        """Total input the model saw: fresh + cache writes + cache reads."""
        return self.input_tokens + self.cache_write_tokens + self.cache_read_tokens

    def __add__(self, other: Usage) -> Usage:
        # Explicit fields: dataclasses.asdict is slow, and this runs once per metered call.
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )

    def as_json(self) -> dict[str, int]:
        """The `tokens` object of run summaries."""
        return {
            "input": self.input_tokens,
            "cache_write": self.cache_write_tokens,
            "cache_write_1h": self.cache_write_1h_tokens,  # part of cache_write, billed at the 1-hour rate
            "cache_read": self.cache_read_tokens,
            "output": self.output_tokens,
            "reasoning": self.reasoning_tokens,
        }
