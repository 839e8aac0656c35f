"""Scenarios: what the fake provider answers, named or loaded from a YAML file.

A scenario is stateless per request: the *turn* of a request is derived from the request itself
(how many model replies its conversation already holds), so retries get the same answer and
parallel sessions do not disturb each other. Only ``fault.every`` counts calls across the server.

YAML (every key optional)::

    name: my-loop
    description: three Bash calls, then an answer
    turns: 3                 # tool-call turns before the final answer; null = never stop
    text: "All done."        # the final answer (and the text next to each tool call)
    tool: {name: Bash, input: {command: "ls"}}   # default: the first fitting declared tool
    grow_tokens: 0           # extra reply text per turn, in tokens (growing context)
    reasoning_tokens: 0      # hidden reasoning reported by OpenAI endpoints
    model: null              # served model; default: the requested one
    fault:
      kind: none             # none | status | drop | malformed
      status: 529            # kind=status: the HTTP status (429 gets retry-after)
      every: 1               # the fault hits calls number every, 2*every, ... (1 = all calls)
      retry_after: 1         # seconds, for 429
      after_events: 3        # kind=drop/malformed: SSE events sent before the fault
    delay: {first_byte: 0, per_event: 0}   # seconds: slow streams
    prompt_cache: simple     # simple: the conversation before the last reply is a cache read when the
                             # request has cache_control; prefix: Anthropic's billing (prompt_cache.py)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ci_guard.errors import InvalidInputError, Problem
from ci_guard.policy.yamlmarks import parse_yaml


class ToolSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["none", "status", "drop", "malformed"] = "none"
    status: int | None = Field(default=None, ge=400, le=599)  # None: 529 Anthropic, 500 OpenAI
    every: int = Field(default=1, ge=1)
    retry_after: int = Field(default=1, ge=0)
    after_events: int = Field(default=3, ge=0)


class Delay(BaseModel):
    model_config = ConfigDict(extra="forbid")
    first_byte: float = Field(default=0.0, ge=0)
    per_event: float = Field(default=0.0, ge=0)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "custom"
    description: str = ""
    turns: int | None = Field(default=3, ge=0)
    text: str = "Done: the task is complete."
    tool: ToolSpec | None = None
    grow_tokens: int = Field(default=0, ge=0)
    reasoning_tokens: int = Field(default=0, ge=0)
    model: str | None = None
    fault: Fault = Field(default_factory=Fault)
    delay: Delay = Field(default_factory=Delay)
    prompt_cache: Literal["simple", "prefix"] = "simple"

    def wants_tool(self, turn: int) -> bool:
        return self.turns is None or turn < self.turns

    def faulty(self, call_number: int) -> bool:
        return self.fault.kind != "none" and call_number % self.fault.every == 0


NAMED: dict[str, dict[str, Any]] = {
    "tool-loop": {"description": "N turns (default 3) of one tool call each, then a final answer.", "turns": 3},
    "endless-loop": {"description": "Always another tool call: an agent that never finishes.", "turns": None},
    "growing-context": {
        "description": "Endless tool calls whose replies grow by 2000 tokens a turn.",
        "turns": None, "grow_tokens": 2000,
    },
    "retry-storm": {
        "description": "Every call fails: 529 overloaded (Anthropic) or 500 (OpenAI).",
        "fault": {"kind": "status"},
    },
    "rate-limited": {
        "description": "Every call gets 429 with retry-after: 1.",
        "fault": {"kind": "status", "status": 429, "retry_after": 1},
    },
    "flaky": {
        "description": "A tool loop where every 2nd call (server-wide) fails with a 500.",
        "fault": {"kind": "status", "status": 500, "every": 2},
    },
    "drop-mid-stream": {
        "description": "Streams are cut after 3 events (after the input usage); JSON calls get no reply.",
        "fault": {"kind": "drop", "after_events": 3},
    },
    "malformed-sse": {
        "description": "One event of each stream carries broken JSON; the rest is valid.",
        "fault": {"kind": "malformed", "after_events": 2},
    },
    "prefix-cache": {
        "description": "A tool loop billed with Anthropic's prefix cache (reads only for a repeated prefix).",
        "prompt_cache": "prefix",
    },
    "slow": {
        "description": "A tool loop streamed slowly: 0.2 s before the first byte, 0.05 s between events.",
        "delay": {"first_byte": 0.2, "per_event": 0.05},
    },
}


def named(name: str) -> Scenario:
    return Scenario(name=name, **NAMED[name])


def load_scenario(spec: str | Scenario | dict[str, Any] | None) -> Scenario:
    """A scenario from its name, a YAML file path, a dict or a Scenario (None: ``tool-loop``)."""
    if spec is None:
        return named("tool-loop")
    if isinstance(spec, Scenario):
        return spec
    if isinstance(spec, dict):
        return _validate(_extended(dict(spec), None, None), None, None)
    if spec in NAMED:
        return named(spec)
    path = Path(spec)
    if not path.is_file():
        raise InvalidInputError(
            f"unknown scenario {spec!r}: expected one of {', '.join(NAMED)} or a YAML file"
        )
    return _load_file(path)


def _load_file(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read scenario file {path}: {exc}") from exc
    located = parse_yaml(text, str(path))
    if located.problems:
        raise InvalidInputError(f"invalid scenario file {path}", located.problems)
    data = located.data if located.data is not None else {}
    if not isinstance(data, dict):
        raise InvalidInputError("", [Problem("expected a mapping of scenario keys", str(path), 1, 1)])
    data.setdefault("name", path.stem)
    return _validate(_extended(data, str(path), located), str(path), located)


def _extended(data: dict[str, Any], filename: str | None, located: Any) -> dict[str, Any]:
    """``extends: NAME`` starts from a named scenario (files, dicts and JSON alike); anything else is an error."""
    if "extends" not in data:
        return data
    name = data["extends"]
    if not isinstance(name, str) or name not in NAMED:
        import difflib

        close = difflib.get_close_matches(str(name), list(NAMED), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        line, column = located.where(("extends",)) if located is not None else (None, None)
        raise InvalidInputError(f"invalid scenario {filename or ''}".rstrip(), [Problem(
            f"unknown scenario {name!r}{hint}; expected one of {', '.join(NAMED)}", filename, line, column,
            "extends")])
    base = dict(NAMED[name])
    base.update({k: v for k, v in data.items() if k != "extends"})
    base.setdefault("name", name)
    return base


def _validate(data: dict[str, Any], filename: str | None, located: Any) -> Scenario:
    from ci_guard.policy.loader import message_for

    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line, column = located.where(loc) if located is not None else (None, None)
            field = ".".join(str(p) for p in loc)
            problems.append(Problem(message_for(err, loc, Scenario), filename, line, column, field or None))
        raise InvalidInputError(f"invalid scenario {filename or ''}".rstrip(), problems) from exc
