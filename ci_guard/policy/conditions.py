"""The two primitives of `when:` conditions: globs and comparisons.

Both are parsed once, when the policy is loaded, so a bad pattern is a load error with a line
number and a decision never parses text.

Globs (for paths, branches, repos, actors, ...): ``*`` matches within one path segment (never a
``/``), ``?`` one character other than ``/``, and ``**`` as a whole segment matches any number of
segments (``docs/**``, ``**/*.md``, ``src/**/test_*.py``). Everything else is literal, including
``[`` and ``]`` so that ``dependabot[bot]`` means exactly that login. Matching is case-sensitive
and anchored at both ends. A trailing ``/`` means everything below (``docs/`` = ``docs/**``).

Comparisons: an operator (``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``) and a number, with ``%``
(of a budget's limit) or ``$`` (USD) where the condition allows it: ``"> 5000"``, ``"<= 20%"``,
``"< 50"``, ``">= 1.50"``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from ci_guard.errors import shown

GLOB_EXPECTED = "a glob such as main, release/*, docs/** or **/*.md"


def glob_regex(pattern: str) -> str:
    """The anchored regular expression of a glob; raise ValueError saying what is wrong.

    File and branch names come from PR authors, so matching must take linear time whatever they
    are. A naive translation (``*`` -> ``[^/]*``) backtracks polynomially in the number of stars
    (a name of 250 dashes against ``**/*-*-*-*-*.gen.py`` took 11 s). Here every wildcard is
    matched the way the classic greedy glob matcher does it, inside atomic groups that never give
    back what they matched: the text between two ``*`` is matched at its leftmost place, the part
    after the last ``*`` at the end of the segment; a run of segments between two ``**`` at its
    leftmost place, the run after the last ``**`` at the end of the path. Leftmost is always
    right for a glob (it leaves the most text for what follows), so nothing needs to be retried.
    """
    segments = _glob_segments(pattern)
    groups: list[list[str]] = [[]]  # runs of ordinary segments, split by ** segments
    for seg in segments:
        if seg == "**":
            groups.append([])
        else:
            groups[-1].append(seg)
    if len(groups) == 1:
        return "/".join(_segment_regex(seg) for seg in groups[0])
    first, *middle, last = groups
    out = "/".join(_segment_regex(seg) for seg in first) + ("/" if first else "")
    for group in middle:  # between two **: any segments, then the run at its leftmost place
        out += "(?>(?:[^/]*/)*?" + "/".join(_segment_regex(seg) for seg in group) + "/)" if group else ""
    if not last:  # a trailing **: anything below (``docs/**`` matches ``docs/x``, not ``docs``)
        return out + ".*"
    return out + "(?>(?:[^/]*/)*" + "/".join(_segment_regex(seg) for seg in last) + r"\Z)"


def _glob_segments(pattern: str) -> list[str]:
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValueError(f"expected {GLOB_EXPECTED}, got an empty pattern")
    if pattern != pattern.strip():
        raise ValueError(f"glob {pattern!r} has leading or trailing spaces")
    if "\\" in pattern:
        raise ValueError(f"glob {pattern!r} contains a backslash; use / to separate directories")
    text = pattern[1:] if pattern.startswith("/") and len(pattern) > 1 else pattern
    if text.endswith("/"):
        text += "**"
    segments = text.split("/")
    for seg in segments:
        if seg == "":
            raise ValueError(f"glob {pattern!r} has an empty path segment (//)")
        if "**" in seg and seg != "**":
            raise ValueError(
                f"glob {pattern!r}: ** must be a whole path segment (write */ or **/ around it, "
                f"or use * within a name)"
            )
    # consecutive ** segments mean the same as one
    return [seg for i, seg in enumerate(segments) if not (seg == "**" and i and segments[i - 1] == "**")]


def _segment_regex(seg: str) -> str:
    """One path segment; it matches a whole segment or nothing, in time linear in its length."""
    chunks = [("".join(_translate_char(c) for c in chunk)) for chunk in seg.split("*")]
    if len(chunks) == 1:
        return chunks[0]
    out = chunks[0]
    for chunk in chunks[1:-1]:
        if chunk:  # ** within a segment is refused above; an empty chunk is a no-op
            out += f"(?>[^/]*?{chunk})"
    return out + f"(?>[^/]*{chunks[-1]}(?![^/]))"


def _translate_char(char: str) -> str:
    if char == "?":
        return "[^/]"
    return re.escape(char)


def is_literal(pattern: str) -> bool:
    """True when a pattern has no wildcard, so a set lookup can stand in for a regex."""
    return "*" not in pattern and "?" not in pattern and not pattern.endswith("/")


def literal_value(pattern: str) -> str:
    return pattern[1:] if pattern.startswith("/") and len(pattern) > 1 else pattern


@dataclass(frozen=True)
class GlobSet:
    """Any-of matcher over several globs: a set for the literals plus one combined regex."""

    patterns: tuple[str, ...]
    literals: frozenset[str] = field(init=False)
    regex: re.Pattern[str] | None = field(init=False)

    def __post_init__(self) -> None:
        lits = frozenset(literal_value(p) for p in self.patterns if is_literal(p))
        wild = [glob_regex(p) for p in self.patterns if not is_literal(p)]
        object.__setattr__(self, "literals", lits)
        object.__setattr__(self, "regex", re.compile("|".join(f"(?:{w})" for w in wild)) if wild else None)

    def match(self, value: str) -> bool:
        if value in self.literals:
            return True
        return self.regex is not None and self.regex.fullmatch(value) is not None


def compile_glob(pattern: str) -> re.Pattern[str]:
    return re.compile(glob_regex(pattern))


# comparisons ---------------------------------------------------------------------------------

_OPS: dict[str, Callable[[object, object], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "=": operator.eq, "!=": operator.ne,
}
_CMP = re.compile(r"\s*(<=|>=|==|!=|<|>|=)\s*(\$)?\s*(-?\d+(?:\.\d+)?)\s*(%)?\s*")


@dataclass(frozen=True)
class Comparison:
    """``<op> <number>[%]``; ``percent`` comparisons apply to a budget's remaining share."""

    text: str
    op: str
    value: Decimal
    percent: bool = False

    def test(self, actual: int | Decimal) -> bool:
        return _OPS[self.op](actual, self.value)

    def test_share(self, part: Decimal, whole: Decimal) -> bool:
        """A percentage comparison of ``part`` out of ``whole``, exact: ``part * 100 <op> value * whole``.

        Cross-multiplying avoids comparing a rounded percentage (19.9993% shown as 20.00% must
        still be "< 20%"). ``whole`` must be positive.
        """
        return _OPS[self.op](part * 100, self.value * whole)

    def __str__(self) -> str:
        return self.text


def parse_comparison(text: object, *, kind: str) -> Comparison:
    """Parse a comparison. ``kind`` is ``count`` (whole numbers only) or ``budget`` (USD or %)."""
    example = '"> 5000"' if kind == "count" else '"< 50" (USD) or "<= 20%"'
    if not isinstance(text, str):
        raise ValueError(f"expected a quoted comparison such as {example}, got {shown(text)}")
    m = _CMP.fullmatch(text)
    if m is None:
        raise ValueError(f"expected a comparison such as {example}, got {shown(text)}")
    op, dollar, number, percent = m.groups()
    value = Decimal(number)
    if kind == "count":
        if dollar or percent or value != value.to_integral_value() or value < 0:
            raise ValueError(f"expected a whole-number comparison such as {example}, got {shown(text)}")
        value = Decimal(int(value))
    if dollar and percent:
        raise ValueError(f"a comparison is either USD or a percentage, not both: {text!r}")
    if percent and not Decimal(0) <= value <= Decimal(100):
        raise ValueError(f"a percentage must be between 0% and 100%, got {shown(text)}")
    if value < 0:
        raise ValueError(f"expected a non-negative amount, got {shown(text)}")
    return Comparison(text=text.strip(), op="==" if op == "=" else op, value=value, percent=bool(percent))
