"""A small evaluator for the GitHub Actions expressions our action files use.

Supported: string literals ('x', with '' escapes), numbers, true/false/null, context paths
(``inputs.x``, ``steps.id.outputs.name``, ``github.action_path``, ``runner.os``, ``env.X``),
``!``, ``==``/``!=`` (strings compared case-insensitively, as GitHub does), ``&&``/``||`` (which
return an operand, as GitHub's do), parentheses and the status functions ``always()``,
``success()``, ``failure()``, ``cancelled()``. Anything else raises, so a test never silently
evaluates an expression differently from GitHub.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||[!()])"
                    r"|(?P<name>[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*|\[\s*'[^']*'\s*\])*))")
_EMBED = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def truthy(value: Any) -> bool:
    return value not in (None, "", False, 0)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Evaluator:
    def __init__(self, contexts: Mapping[str, Any], status: Callable[[], str] = lambda: "success") -> None:
        self.contexts = contexts
        self.status = status  # "success" | "failure"

    # --- public ---------------------------------------------------------------------------
    def evaluate(self, expression: str) -> Any:
        tokens = self._tokens(expression)
        value, pos = self._or(tokens, 0)
        if pos != len(tokens):
            raise ValueError(f"unsupported expression {expression!r} (stopped at {tokens[pos]!r})")
        return value

    def condition(self, expression: str | None) -> bool:
        """An ``if:``; without a status function it implies ``success() &&`` as on GitHub."""
        if expression is None:
            return self.status() == "success"
        expr = expression.strip()
        if expr.startswith("${{") and expr.endswith("}}"):
            expr = expr[3:-2]
        if not re.search(r"\b(always|success|failure|cancelled)\(\)", expr):
            return self.status() == "success" and truthy(self.evaluate(expr))
        return truthy(self.evaluate(expr))

    def substitute(self, text: str) -> str:
        return _EMBED.sub(lambda m: _text(self.evaluate(m.group(1))), text)

    # --- parser ---------------------------------------------------------------------------
    @staticmethod
    def _tokens(expression: str) -> list[tuple[str, str]]:
        out, pos = [], 0
        while pos < len(expression):
            if expression[pos:].strip() == "":
                break
            m = _TOKEN.match(expression, pos)
            if not m:
                raise ValueError(f"unsupported expression {expression!r} at {expression[pos:]!r}")
            kind = m.lastgroup or ""
            out.append((kind, m.group(kind)))
            pos = m.end()
        return out

    def _or(self, t: list[tuple[str, str]], i: int) -> tuple[Any, int]:
        left, i = self._and(t, i)
        while i < len(t) and t[i] == ("op", "||"):
            right, i = self._and(t, i + 1)
            left = left if truthy(left) else right
        return left, i

    def _and(self, t: list[tuple[str, str]], i: int) -> tuple[Any, int]:
        left, i = self._cmp(t, i)
        while i < len(t) and t[i] == ("op", "&&"):
            right, i = self._cmp(t, i + 1)
            left = right if truthy(left) else left
        return left, i

    def _cmp(self, t: list[tuple[str, str]], i: int) -> tuple[Any, int]:
        left, i = self._unary(t, i)
        while i < len(t) and t[i][0] == "op" and t[i][1] in ("==", "!="):
            op = t[i][1]
            right, i = self._unary(t, i + 1)
            equal = _text(left).lower() == _text(right).lower()
            left = equal if op == "==" else not equal
        return left, i

    def _unary(self, t: list[tuple[str, str]], i: int) -> tuple[Any, int]:
        if t[i] == ("op", "!"):
            value, i = self._unary(t, i + 1)
            return not truthy(value), i
        return self._primary(t, i)

    def _primary(self, t: list[tuple[str, str]], i: int) -> tuple[Any, int]:
        kind, text = t[i]
        if kind == "str":
            return text[1:-1].replace("''", "'"), i + 1
        if kind == "num":
            return float(text) if "." in text else int(text), i + 1
        if (kind, text) == ("op", "("):
            value, i = self._or(t, i + 1)
            if i >= len(t) or t[i] != ("op", ")"):
                raise ValueError("missing )")
            return value, i + 1
        if kind == "name":
            if i + 1 < len(t) and t[i + 1] == ("op", "("):
                return self._call(text, t, i)
            return self._lookup(text), i + 1
        raise ValueError(f"unexpected token {text!r}")

    def _call(self, name: str, t: list[tuple[str, str]], i: int) -> tuple[Any, int]:
        if i + 2 >= len(t) or t[i + 2] != ("op", ")"):
            raise ValueError(f"function {name}() with arguments is not supported")
        status = self.status()
        value = {"always": True, "success": status == "success", "failure": status == "failure",
                 "cancelled": False}.get(name)
        if value is None:
            raise ValueError(f"unsupported function {name}()")
        return value, i + 3

    def _lookup(self, path: str) -> Any:
        literals = {"true": True, "false": False, "null": None}
        if path in literals:
            return literals[path]
        names = re.findall(r"\[\s*'([^']*)'\s*\]|([A-Za-z_][\w-]*)", path)
        keys = [a or b for a, b in names]
        value: Any = self.contexts
        for key in keys:
            if not isinstance(value, Mapping):
                return None
            value = value.get(key)
        return value
