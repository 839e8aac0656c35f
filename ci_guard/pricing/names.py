"""Model names as agents send them -> the names the catalog knows.

Agents and gateways decorate model ids: dated snapshots (``claude-sonnet-4-5-20250929``,
``gpt-4o-2024-08-06``), provider prefixes (``anthropic/``, ``models/`` for Gemini), Bedrock and
Vertex spellings (``us.anthropic.claude-...-v1:0``, ``claude-...@20250929``), Claude Code's
``[1m]`` context marker and dotted Claude versions (``claude-sonnet-4.5``). An alias that fails to
match is how other gateways end up pricing streamed calls at zero, so lookups try every
progressively simplified spelling, most specific first.
"""

from __future__ import annotations

import re

_CONTEXT_MARKER = re.compile(r"\[[^\]]*\]$")  # Claude Code: "claude-sonnet-4-5[1m]"
_PROVIDER_PREFIX = re.compile(r"^(?:[a-z0-9_.\-]+/)+")  # "anthropic/", "openai/", "models/", "vertex_ai/"
_BEDROCK_PREFIX = re.compile(r"^(?:[a-z]{2,4}\.)?anthropic\.")  # "us.anthropic.claude-..."
_BEDROCK_VERSION = re.compile(r"-v\d+(?::\d+)?$")  # "...-v1:0"
_SNAPSHOT_DATE = re.compile(r"(?:-\d{8}|-\d{4}-\d{2}-\d{2}|@\d{8})$")


def candidates(model: str) -> list[str]:
    """Spellings to try for ``model``, from the exact (lower-cased) name to the most simplified."""
    name = model.strip().lower()
    out = [name]
    for step in (_CONTEXT_MARKER, _PROVIDER_PREFIX, _BEDROCK_PREFIX, _BEDROCK_VERSION, _SNAPSHOT_DATE):
        name = step.sub("", name).strip()
        if name and name not in out:
            out.append(name)
    if name.startswith("claude") and "." in name:
        dashed = name.replace(".", "-")
        if dashed not in out:
            out.append(dashed)
    return out
