"""The interface of a wire-format adapter (one module per wire format).

An adapter knows one API's bytes: how to read a request, how to change it safely (model, output
cap, usage in streams), how to find usage and tool calls in a JSON body or an SSE stream, and how
to shape an error the agent's SDK understands. It does no I/O, so it is tested with recorded bytes.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from ci_guard.pricing.usage import Usage


@dataclass
class RequestInfo:
    model: str | None
    stream: bool
    max_output_tokens: int | None  # max_tokens / max_completion_tokens / max_output_tokens
    estimated_input_tokens: int  # a conservative estimate of the input size, before the call
    fingerprint: str  # hash of the semantically relevant request (retry-storm detection)


@dataclass
class CallResult:
    usage: Usage = field(default_factory=Usage)
    tool_calls: int = 0
    model_served: str | None = None
    complete: bool = False  # the provider signalled a normal end (message_stop, [DONE], response.completed)
    error: str | None = None  # an error the provider reported in the body or the stream (type: message)
    stop_reason: str | None = None


class StreamMeter(ABC):
    """Reads an SSE stream on the side while the proxy forwards it chunk by chunk."""

    @abstractmethod
    def feed(self, chunk: bytes) -> bytes:
        """Take the next bytes from upstream; return the bytes to forward to the client now.

        Usually ``chunk`` itself; an adapter may hold back a partial event or drop an event the
        client did not ask for (the usage chunk of an injected ``include_usage``).
        """

    @abstractmethod
    def close(self) -> bytes:
        """Upstream ended: return whatever is still held back."""

    @abstractmethod
    def result(self) -> CallResult:
        """What was metered so far; valid at any time, also for a stream cut off midway."""


class WireAdapter(ABC):
    provider: str  # "anthropic" | "openai"
    endpoint: str  # "messages" | "chat.completions" | "responses"

    @abstractmethod
    def inspect(self, body: dict[str, Any]) -> RequestInfo: ...

    @abstractmethod
    def prepare(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Make a request meterable; return (body, strip_usage_chunk).

        Chat Completions streams get ``stream_options.include_usage`` when the client did not ask
        for it, and then the extra usage chunk must be stripped from what the client sees.
        """

    @abstractmethod
    def set_model(self, body: dict[str, Any], model: str) -> dict[str, Any]: ...

    @abstractmethod
    def clamp_output(self, body: dict[str, Any], max_output_tokens: int) -> dict[str, Any]:
        """Lower the output cap to ``max_output_tokens``, keeping the request valid (thinking budgets)."""

    @abstractmethod
    def parse_response(self, body: bytes) -> CallResult: ...

    @abstractmethod
    def stream_meter(self, strip_usage_chunk: bool = False) -> StreamMeter: ...

    @abstractmethod
    def error_body(self, status: int, kind: str, message: str) -> bytes:
        """A provider-shaped JSON error body (``kind`` is ci-guard's cap name or error type)."""


def fingerprint(obj: Any) -> str:
    """A stable hash of a JSON-able object (sorted keys), for identical-request detection."""
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def estimate_tokens(text_bytes: int) -> int:
    """A conservative token estimate from a byte count (about 4 bytes per token in English and code).

    Used only before a call, for the context and cost caps; after the call the provider's own
    count is what gets recorded.
    """
    return (text_bytes + 3) // 4
