"""Colour for the commands people read at a terminal (explain, validate, test).

``--color auto`` (the default) colours only when the output is a terminal and ``NO_COLOR`` is not
set, so CI logs stay plain; ``always`` forces it (``FORCE_COLOR`` does the same), ``never`` turns
it off. The text is rendered plain by the library and painted here, line by line, so JSON output
and tests never see escape codes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

_RULES: dict[str, list[tuple[re.Pattern[str], dict[str, Any]]]] = {
    "explain": [
        (re.compile(r"(?<=^       )✓"), {"fg": "green"}),
        (re.compile(r"(?<=^       )✗"), {"fg": "red"}),
        (re.compile(r"(?<=^       )\?"), {"fg": "yellow"}),
        (re.compile(r"\[DECIDES\]"), {"bold": True}),
        (re.compile(r"^decision: allow\b"), {"fg": "green", "bold": True}),
        (re.compile(r"^decision: (deny|skip)\b"), {"fg": "red", "bold": True}),
        (re.compile(r"^(ALERT|note):"), {"fg": "yellow"}),
    ],
    "validate": [
        (re.compile(r": warning: "), {"fg": "yellow"}),
        (re.compile(r": ok \("), {"fg": "green"}),
    ],
    "test": [
        (re.compile(r"^PASS\b"), {"fg": "green"}),
        (re.compile(r"^FAIL\b"), {"fg": "red", "bold": True}),
    ],
}


def color_option(func: F) -> F:
    return click.option("--color", "color", type=click.Choice(["auto", "always", "never"]), default="auto",
                        show_default=True, help="Colour the output (auto: only on a terminal, never when "
                                                "NO_COLOR is set).")(func)


def use_color(choice: str) -> bool | None:
    """What to hand ``click.echo(color=...)``: None lets click decide by whether the stream is a TTY."""
    if choice == "always" or (choice == "auto" and os.environ.get("FORCE_COLOR")):
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return None


def paint(kind: str, text: str) -> str:
    """``text`` with the tokens of command ``kind`` styled; click strips the codes where colour is off."""
    out = []
    for line in text.split("\n"):
        for pattern, style in _RULES[kind]:
            line = pattern.sub(lambda m, style=style: click.style(m.group(0), **style), line)
        out.append(line)
    return "\n".join(out)


def echo(kind: str, text: str, choice: str, *, err: bool = False) -> None:
    click.echo(paint(kind, text), err=err, color=use_color(choice))
