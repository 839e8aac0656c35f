"""The scripted answer to one request, and its deterministic token counts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ci_guard.simulator.conversation import Request, ToolDecl
from ci_guard.simulator.scenario import Scenario
from ci_guard.tokens.estimate import estimate_tokens

# Anthropic bills a few uncached tokens even with caching on (the tail after the last breakpoint).
FRESH_TAIL_TOKENS = 4
_FILLER = "The simulator pads this reply so that the conversation keeps growing. "


@dataclass
class ToolCall:
    name: str
    input: dict[str, Any]

    @property
    def arguments(self) -> str:
        return json.dumps(self.input, separators=(",", ":"))


@dataclass
class Reply:
    text: str
    tool: ToolCall | None
    output_tokens: int  # reasoning included
    reasoning_tokens: int
    truncated: bool = False  # cut at the request's output cap (stop_reason max_tokens / length)


def plan_reply(scenario: Scenario, request: Request) -> Reply:
    text = scenario.text
    tool = None
    if scenario.wants_tool(request.turn) and (scenario.tool or request.tools):
        tool = _pick_tool(scenario, request.tools)
        text = f"Step {request.turn + 1}: running {tool.name}."
    if scenario.grow_tokens:
        text += " " + _filler(scenario.grow_tokens * (request.turn + 1))
    visible = estimate_tokens(len(text.encode()))
    if tool is not None:
        visible += estimate_tokens(len(tool.name.encode()) + len(tool.arguments.encode()))
    reasoning = scenario.reasoning_tokens if request.endpoint != "messages" else 0
    reply = Reply(text, tool, max(1, visible + reasoning), reasoning)
    return _truncate(reply, request.max_output)


def _truncate(reply: Reply, cap: int | None) -> Reply:
    """Like a real provider: never more output than the request allows; a cut reply has no tool call."""
    if cap is None or reply.output_tokens <= cap:
        return reply
    reasoning = min(reply.reasoning_tokens, cap)
    room = max(0, cap - reasoning)
    return Reply(reply.text[: room * 4], None, cap, reasoning, truncated=True)


def _pick_tool(scenario: Scenario, declared: list[ToolDecl]) -> ToolCall:
    if scenario.tool is not None:
        return ToolCall(scenario.tool.name, dict(scenario.tool.input))
    by_name = {t.name: t for t in declared}
    # The agents' shell tools first, so a real agent runs a harmless command.
    if "Bash" in by_name:
        return ToolCall("Bash", {"command": "echo hi", "description": "Print hi"})
    if "exec_command" in by_name:
        return ToolCall("exec_command", {"cmd": "echo hi"})
    if "shell" in by_name:
        return ToolCall("shell", {"command": ["bash", "-lc", "echo hi"]})
    first = declared[0]
    return ToolCall(first.name, _plausible_args(first.schema))


def _plausible_args(schema: dict[str, Any]) -> dict[str, Any]:
    """Values for the required properties of a JSON schema (all of them when none is required)."""
    props = schema.get("properties") or {}
    required = schema.get("required") or list(props)
    return {name: _value(props.get(name) or {}) for name in required}


def _value(schema: dict[str, Any]) -> Any:
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" and schema.get("properties"):
        return _plausible_args(schema)
    return {"integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}.get(kind, "hi")


def _filler(tokens: int) -> str:
    size = tokens * 4
    return (_FILLER * (size // len(_FILLER) + 1))[:size]


def anthropic_usage(request: Request, reply: Reply) -> dict[str, Any]:
    """Anthropic counts: input_tokens excludes cache reads and writes."""
    read = min(request.prefix_tokens, request.total_tokens) if request.cache_control else 0
    new = request.total_tokens - read
    fresh = min(new, FRESH_TAIL_TOKENS) if request.cache_control else new
    write = new - fresh
    write_1h = write if request.cache_ttl_1h else 0
    return {
        "input_tokens": fresh,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": write - write_1h, "ephemeral_1h_input_tokens": write_1h},
        "output_tokens": reply.output_tokens,
        "service_tier": "standard",
        # fast mode: the API reports the speed that served the call (usage.speed), billed at its rates
        **({"speed": request.speed} if request.speed else {}),
    }


def _cached(request: Request) -> int:
    return min(request.prefix_tokens, request.total_tokens)


def chat_usage(request: Request, reply: Reply) -> dict[str, Any]:
    """OpenAI counts: prompt_tokens includes cached_tokens; completion includes reasoning."""
    return {
        "prompt_tokens": request.total_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": request.total_tokens + reply.output_tokens,
        "prompt_tokens_details": {"cached_tokens": _cached(request), "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reply.reasoning_tokens, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
        },
    }


def responses_usage(request: Request, reply: Reply) -> dict[str, Any]:
    return {
        "input_tokens": request.total_tokens,
        "input_tokens_details": {"cached_tokens": _cached(request)},
        "output_tokens": reply.output_tokens,
        "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
        "total_tokens": request.total_tokens + reply.output_tokens,
    }
