"""Clearing old tool results once a request's input passes a threshold.

Anthropic does it server-side (context editing, beta ``context-management-2025-06-27``): the proxy
adds a ``clear_tool_uses_20250919`` edit and the beta header, only for models that support it, and
reads ``context_management.applied_edits`` from the answer (JSON body or the ``message_delta``
event of a stream). For other providers and models the proxy applies the same rule itself: when
the estimated input passes ``trigger_tokens``, every tool result except the newest ``keep_last``
(and the newest turn, and excluded tools) is replaced by a placeholder -- nothing at all when less
than ``clear_at_least`` tokens would go, because each clearing invalidates the cached prefix from there.

``clear_old_thinking`` adds ``clear_thinking_20251015`` (the thinking blocks of all but the newest
``keep_turns`` assistant turns; first in the list of edits, as the API requires) to requests to a
model with context editing that have extended thinking on -- the API refuses it otherwise. It has
no proxy-side counterpart: thinking blocks carry signatures the proxy must not touch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ci_guard.meter.providers.body import updated
from ci_guard.meter.transforms.toolresults import ToolResult, replace, tokens_of, tool_results
from ci_guard.policy.models import ClearSpec, ClearThinkingSpec

BETA = "context-management-2025-06-27"
EDIT_TYPE = "clear_tool_uses_20250919"
THINKING_EDIT_TYPE = "clear_thinking_20251015"
PLACEHOLDER = "[ci-guard: this old tool result was cleared by the context policy]"
# Models documented as supporting context editing (platform.claude.com, context-editing page):
# the Claude 4 family and later. Any other model gets the proxy-side rule instead of the beta.
_SUPPORTED = re.compile(
    r"^(?:anthropic/)?claude-(?:"
    r"(?:opus|sonnet)-4(?:-\d+)?|haiku-4-5|(?:opus|sonnet|haiku|fable|mythos)-5(?:-\d+)?|mythos-preview"
    r")(?:-\d{8})?(?:-v\d+(?::\d+)?)?$"
)


def supports_context_editing(model: str | None) -> bool:
    return bool(model) and _SUPPORTED.match(model) is not None  # type: ignore[arg-type]


def anthropic_edit(spec: ClearSpec) -> dict[str, Any]:
    edit: dict[str, Any] = {
        "type": EDIT_TYPE,
        "trigger": {"type": "input_tokens", "value": spec.trigger_tokens},
        "keep": {"type": "tool_uses", "value": spec.keep_last},
    }
    if spec.clear_at_least:
        edit["clear_at_least"] = {"type": "input_tokens", "value": spec.clear_at_least}
    if spec.exclude_tools:
        edit["exclude_tools"] = list(spec.exclude_tools)
    return edit


def thinking_edit(spec: ClearThinkingSpec) -> dict[str, Any]:
    return {"type": THINKING_EDIT_TYPE, "keep": {"type": "thinking_turns", "value": spec.keep_turns}}


def thinking_on(body: dict[str, Any]) -> bool:
    """Extended thinking is on: the API accepts the thinking edit only then."""
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


@dataclass
class Injected:
    body: dict[str, Any]
    tool_uses: bool  # the clear_tool_uses edit was added
    thinking: bool  # the clear_thinking edit was added


def inject_edit(body: dict[str, Any], spec: ClearSpec | None,
                thinking: ClearThinkingSpec | None = None) -> Injected | None:
    """The body with the policy's context-management edits, or None when there is none to add.

    An agent that sends its own ``context_management`` keeps every edit it sent (Claude Code sends
    ``clear_thinking_20251015`` with ``keep: "all"``, to keep its thinking cached): the policy's
    edits of the other types are added to its list, none of a type the agent already chose. A
    ``context_management`` the proxy cannot read (not ``{"edits": [...]}``) is left alone. The
    thinking edit goes first: the API requires that order.
    """
    cm = body.get("context_management")
    if cm is None:
        cm, own = {}, []
    elif isinstance(cm, dict) and isinstance(cm.get("edits"), list):
        own = cm["edits"]
    else:
        return None
    kinds = {e.get("type") for e in own if isinstance(e, dict)}
    add_thinking = thinking is not None and THINKING_EDIT_TYPE not in kinds
    add_tools = spec is not None and EDIT_TYPE not in kinds
    if not (add_thinking or add_tools):
        return None
    edits = [*([thinking_edit(thinking)] if add_thinking else []), *own,  # type: ignore[arg-type]
             *([anthropic_edit(spec)] if add_tools else [])]  # type: ignore[arg-type]
    return Injected(updated(body, {"context_management": {**cm, "edits": edits}}), add_tools, add_thinking)


def with_beta(header: str | None) -> str:
    """The ``anthropic-beta`` header with context management added (kept once, order preserved)."""
    names = [n.strip() for n in (header or "").split(",") if n.strip()]
    return ",".join(names if BETA in names else [*names, BETA])


@dataclass
class Cleared:
    body: dict[str, Any]
    results: int = 0
    tokens: int = 0  # estimated tokens removed


def clear(endpoint: str, body: dict[str, Any], spec: ClearSpec, input_tokens: int,
          results: list[ToolResult] | None = None) -> Cleared:
    """The proxy-side rule (see the module docstring)."""
    out = Cleared(body)
    if input_tokens <= spec.trigger_tokens:
        return out
    found = results if results is not None else tool_results(endpoint, body)
    excluded = set(spec.exclude_tools)
    # keep_last counts tool results (one per tool use), newest first, before exclusions.
    candidates = found[:max(0, len(found) - spec.keep_last)]
    chosen = [r for r in candidates if not r.newest and r.text != PLACEHOLDER
              and not (excluded and (r.name is None or r.name in excluded))]
    tokens = sum(tokens_of(r.text) - tokens_of(PLACEHOLDER) for r in chosen)
    if not chosen or tokens <= 0 or (spec.clear_at_least and tokens < spec.clear_at_least):
        return out
    for r in chosen:
        out.body = replace(out.body, r.path, PLACEHOLDER)
    out.results, out.tokens = len(chosen), tokens
    return out
