"""Load a policy file: YAML -> pydantic -> reference checks, reporting every problem at once.

Each problem carries ``file:line:column``, the field path (``rules[3].when.diff_lines``) and what
was expected. Nothing is reported from the middle of a traceback: pydantic and YAML errors are
mapped here and raised as one :class:`ci_guard.errors.PolicyError`.
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ci_guard.errors import PolicyError, Problem, shown
from ci_guard.files import InputTooLarge, read_input_text
from ci_guard.policy.models import Policy
from ci_guard.policy.yamlmarks import Located, dotted, parse_yaml


def load_policy_file(path: str | Path, *, check_references: bool = True) -> Policy:
    """Read, validate and cross-check a policy file; raise PolicyError listing every problem."""
    path = Path(path)
    try:
        text = read_input_text(path)
    except FileNotFoundError:
        raise PolicyError(f"policy file not found: {path}") from None
    except (OSError, UnicodeDecodeError, InputTooLarge) as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc}") from None
    policy = policy_from_text(text, str(path), check_references=check_references)
    policy._source = path.resolve()
    return policy


def policy_from_text(text: str, filename: str = "<policy>", *, check_references: bool = True) -> Policy:
    located = parse_yaml(text, filename)
    policy, problems = validate_located(located, filename, check_references=check_references)
    if problems or policy is None:
        raise PolicyError(f"{filename}: invalid policy ({_count(problems)})", sort_problems(problems))
    return policy


def validate_located(located: Located, filename: str, *, check_references: bool = True
                     ) -> tuple[Policy | None, list[Problem]]:
    """Validate parsed YAML; return the policy (if valid) and every problem found."""
    problems = list(located.problems)
    if located.data is None and not problems:
        problems.append(Problem("the file is empty; expected a mapping with version: 1 and rules:", filename, 1, 1))
    if problems and located.data is None:
        return None, problems
    if not isinstance(located.data, dict):
        line, col = located.where(())
        return None, [*problems, Problem("expected a mapping with version: 1 and rules:", filename, line, col)]
    try:
        policy = Policy.model_validate(located.data)
    except ValidationError as exc:
        return None, problems + validation_problems(exc, located, filename, Policy)
    if check_references:
        from ci_guard.policy.lint import reference_problems

        for path, message in reference_problems(policy):
            line, col = located.where(path, key=True)
            problems.append(Problem(message, filename, line, col, dotted(path) or None))
    return (None if problems else policy), problems


def validation_problems(exc: ValidationError, located: Located, filename: str,
                        root: type[BaseModel]) -> list[Problem]:
    """Map pydantic errors onto located problems, one per field, with what was expected."""
    merged: dict[tuple[Any, ...], list[str]] = {}
    at_key: set[tuple[Any, ...]] = set()
    for err in exc.errors(include_url=False):
        path = _data_path(err["loc"], located.data)
        message = _message(err, path, root)
        if err["type"] == "extra_forbidden":
            at_key.add(path)
        bucket = merged.setdefault(path, [])
        if message not in bucket:
            bucket.append(message)
    out = []
    for path, messages in merged.items():
        line, col = located.where(path, key=path in at_key)
        text = messages[0] if len(messages) == 1 else "; or ".join(messages)
        out.append(Problem(text, filename, line, col, dotted(path) or None))
    return out


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """Drop pydantic's union/validator labels (``'str'``, ``'list[str]'``) that are not data keys."""
    out: list[Any] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        if in_dict or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not _is_label(part):
            out.append(part)  # a missing key: keep it so the message names it
            node = None
    return tuple(out)


def _is_label(part: str) -> bool:
    return any(c in part for c in "[]()") or part.startswith(("function-", "literal[", "json-or-python"))


# pydantic's wording for the commonest type errors, said the way the rest of the messages are.
_PLAIN = {
    "int_parsing": "expected a whole number", "int_type": "expected a whole number",
    "int_from_float": "expected a whole number", "bool_parsing": "expected true or false",
    "bool_type": "expected true or false", "string_type": "expected a string", "list_type": "expected a list",
    "dict_type": "expected a mapping", "decimal_parsing": "expected a number", "float_parsing": "expected a number",
}


def message_for(err: Any, path: tuple[Any, ...], root: type[BaseModel]) -> str:
    """A pydantic error as the loader words it (did-you-mean for unknown keys, no Python reprs)."""
    return _message(err, path, root)


def _message(err: dict[str, Any], path: tuple[Any, ...], root: type[BaseModel]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        key = path[-1] if path else "?"
        allowed = _allowed_keys(root, path[:-1])
        text = f"unknown key {key!r}"
        if allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            if close:
                text += f" (did you mean {close[0]!r}?)"
            text += f"; expected one of: {', '.join(allowed)}"
        return text
    if kind == "missing":
        return "this key is required"
    msg = _PLAIN.get(kind) or err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    elif msg.startswith("Assertion failed, "):
        msg = msg[len("Assertion failed, "):]
    got = err.get("input")
    if kind not in ("value_error", "assertion_error") and not isinstance(got, dict | list) and got is not None:
        msg += f" (got {shown(got)})"
    return msg


def _allowed_keys(root: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """The keys the model at ``path`` accepts (by alias), to say what was expected."""
    current: Any = root
    for part in path:
        current = _step(current, part)
        if current is None:
            return []
    model = _model_of(current)
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _step(tp: Any, part: Any) -> Any:
    model = _model_of(tp)
    if model is not None and isinstance(part, str):
        for name, f in model.model_fields.items():
            if (f.alias or name) == part:
                return f.annotation
        return None
    for inner in _unwrap(tp):
        origin = typing.get_origin(inner)
        if origin is list and isinstance(part, int):
            return typing.get_args(inner)[0]
        if origin is dict:
            return typing.get_args(inner)[1]
    return None


def _unwrap(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [x for arg in typing.get_args(tp) for x in _unwrap(arg)]
    return [tp]


def _model_of(tp: Any) -> type[BaseModel] | None:
    for inner in _unwrap(tp):
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return None


def sort_problems(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.file or "", p.line or 0, p.column or 0))


def _count(problems: list[Problem]) -> str:
    return "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
