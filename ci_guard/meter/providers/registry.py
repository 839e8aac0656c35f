"""Which adapter meters a request: by provider and the request path (proxy prefix stripped)."""

from __future__ import annotations

from ci_guard.meter.providers.anthropic import AnthropicMessages
from ci_guard.meter.providers.base import WireAdapter
from ci_guard.meter.providers.openai_chat import OpenAIChat
from ci_guard.meter.providers.openai_responses import OpenAIResponses

# Adapters hold no state, so one instance each serves every request.
_ADAPTERS: dict[tuple[str, str], WireAdapter] = {
    ("anthropic", "/v1/messages"): AnthropicMessages(),
    ("openai", "/v1/chat/completions"): OpenAIChat(),
    ("openai", "/v1/responses"): OpenAIResponses(),
}


def adapter_for(provider: str, path: str) -> WireAdapter | None:
    """The adapter for a metered generation endpoint, or None for anything else.

    ``path`` is the request path after the proxy's ``/anthropic`` or ``/openai`` prefix, with or
    without a query string (Claude Code posts to ``/v1/messages?beta=true``); a trailing slash is
    ignored. ``count_tokens`` and model lists are not generation calls: they return None.
    """
    clean = path.split("?", 1)[0].rstrip("/") or "/"
    return _ADAPTERS.get((provider, clean))
