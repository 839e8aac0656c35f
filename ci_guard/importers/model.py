"""What an importer reads from a usage export: calls with tokens (or a vendor cost), before pricing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from ci_guard.pricing.usage import Usage


@dataclass(frozen=True)
class ImportedCall:
    """One priced unit of the export: a model call, a per-model total or a CSV row."""

    model: str | None
    usage: Usage = field(default_factory=Usage)
    # What the vendor says it cost; used only when the tokens cannot be priced (e.g. Copilot's
    # premium requests, which carry no tokens).
    vendor_cost_usd: Decimal | None = None
    started_at: datetime | None = None
    tool_calls: int = 0
    provider: str | None = None
    web_searches: int = 0  # billed server-side web searches (a fee per search, on top of the tokens)
    service_tier: str | None = None  # the tier that served it (OpenAI priority costs more)
    inference_geo: str | None = None  # where it ran (Anthropic "us" costs 1.1x on Opus 4.6 and later)
    # True when this is a sum of several model calls (Claude Code's modelUsage, a Codex turn): a
    # per-request long-context tier cannot be applied to a sum, so it is priced at the base rates
    # and the run notes the upper bound
    is_sum: bool = False


@dataclass
class ImportedUsage:
    """The usage of one agent run, as read from a file."""

    source: str  # the format name, e.g. claude-code-json
    path: str
    calls: list[ImportedCall] = field(default_factory=list)
    turns: int | None = None  # model calls the agent reports, when it does
    tool_calls: int = 0
    session_id: str | None = None
    reported_cost_usd: Decimal | None = None  # the agent's own estimate, kept as a cross-check
    runtime_s: float | None = None
    is_error: bool = False
    notes: list[str] = field(default_factory=list)
