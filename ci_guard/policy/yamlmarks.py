"""YAML to plain data while remembering where every value came from.

``yaml.compose`` gives a node tree with marks; we build the data ourselves so that each path
(``("rules", 3, "when", "diff_lines")``) maps to its ``(line, column)``, duplicate keys become
errors instead of silently keeping the last one, and floats become exact ``Decimal`` (money).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from ci_guard.errors import Problem

Path = tuple[Any, ...]


@dataclass
class Located:
    """Parsed data, the position of every path in it, and the structural problems found."""

    data: Any
    marks: dict[Path, tuple[int, int]] = field(default_factory=dict)  # where each value starts
    key_marks: dict[Path, tuple[int, int]] = field(default_factory=dict)  # where each mapping key is
    problems: list[Problem] = field(default_factory=list)

    def where(self, path: Path, *, key: bool = False) -> tuple[int | None, int | None]:
        """The position of the value at ``path`` (or of its key), else of the longest known prefix.

        A missing key thus points at the mapping that lacks it.
        """
        if key and tuple(path) in self.key_marks:
            return self.key_marks[tuple(path)]
        for n in range(len(path), -1, -1):
            mark = self.marks.get(tuple(path[:n]))
            if mark is not None:
                return mark
        return None, None


_UNQUOTED_CMP = re.compile(r"^\s*-?\s*([\w.-]+):\s*([<>]=?|==|!=)\s*(\S+)")


def _comparison_hint(text: str, line: int | None) -> str:
    """`diff_lines: > 3000` starts a YAML folded block; say to quote the comparison."""
    if line is None:
        return ""
    lines = text.splitlines()
    if not 0 <= line < len(lines):
        return ""
    m = _UNQUOTED_CMP.match(lines[line])
    if not m:
        return ""
    key, op, value = m.groups()
    return (f" (hint: in YAML a value starting with {op[0]!r} must be quoted: "
            f"{key}: \"{op} {value.rstrip('}],')}\")")


# A policy is hand-written: a few hundred values. An "alias bomb" (anchors that alias anchors,
# 540 bytes) expands to billions; the limit is checked on the node graph before anything is built.
MAX_EXPANDED_NODES = 100_000
_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq",
                                                            "merge", "timestamp"))
MAX_NUMBER = 10**15  # money, tokens, counts: larger is a typo (and 1e999999999 overflows Decimal arithmetic)
MAX_DEPTH = 64


def _expansion_problem(root: yaml.Node) -> tuple[yaml.Node, str] | None:
    """Why the node graph is too big once aliases and merges are expanded (or recursive), if it is.

    Iterative (a deep document must not overflow the stack) and memoised per node (an alias is a
    shared node), so the check itself is linear in the size of the text.
    """
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            if size[key] > MAX_EXPANDED_NODES:
                return node, (f"the document expands to more than {MAX_EXPANDED_NODES} values (aliases "
                              "of aliases?); a policy this large is not accepted")
            continue
        if key in size:
            continue
        if key in on_path:
            return node, "an alias refers to the mapping or list that contains it (a recursive structure)"
        if depth > MAX_DEPTH:
            return node, f"nested more than {MAX_DEPTH} levels deep"
        on_path.add(key)
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children if id(c) not in size)
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


# LibYAML's parser, where PyYAML was built with it: a 3 kB policy composes in ~0.3 ms instead of
# ~5 ms of pure Python, paid by every run, check and lint. It yields the same nodes, marks and tags
# (the resolver is PyYAML's either way; only a plain scalar's style is '' instead of None, which
# nothing here reads) and refuses nesting deeper than 1,000 itself.
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


def _compose(text: str) -> yaml.Node | None:
    """The document's node graph; whatever LibYAML cannot compose is composed (and its error
    raised, with PyYAML's messages and positions) by the pure-Python parser."""
    if _FAST_LOADER is not None:
        try:
            return yaml.compose(text, Loader=_FAST_LOADER)
        except Exception:  # any refusal: PyYAML decides, and words the error
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


def parse_yaml(text: str, filename: str) -> Located:
    """Parse one YAML document; syntax errors become a single located Problem."""
    try:
        node = _compose(text)
    except RecursionError:
        return Located(None, problems=[Problem(f"YAML nested too deeply (more than {MAX_DEPTH} levels)", filename)])
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or "invalid YAML"
        if exc.context:
            message = f"{exc.context}, {message}"
        message += _comparison_hint(text, mark.line if mark else None)
        return Located(None, problems=[Problem(
            f"YAML syntax error: {message}", filename,
            mark.line + 1 if mark else None, mark.column + 1 if mark else None)])
    except yaml.YAMLError as exc:
        return Located(None, problems=[Problem(f"YAML error: {exc}", filename)])
    located = Located(None)
    if node is None:
        return located
    too_big = _expansion_problem(node)
    if too_big is not None:
        where, message = too_big
        return Located(None, problems=[Problem(message, filename, where.start_mark.line + 1,
                                               where.start_mark.column + 1)])
    builder = _Builder(filename, located)
    located.data = builder.build(node, ())
    return located


class _Builder:
    def __init__(self, filename: str, located: Located) -> None:
        self.filename = filename
        self.located = located
        self.constructor = yaml.SafeLoader("")

    def problem(self, node: yaml.Node, path: Path, message: str) -> None:
        field_path = dotted(path) or None
        self.located.problems.append(Problem(
            message, self.filename, node.start_mark.line + 1, node.start_mark.column + 1, field_path))

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.located.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if node.tag not in _PLAIN_TAGS:  # !!python/object, !custom: nothing ci-guard reads means anything
            self.problem(node, path, f"unsupported YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')!r}; "
                                     "write plain values")
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        try:
            value = self._scalar(node)
        except (ValueError, ArithmeticError, yaml.YAMLError) as exc:  # a 5000-digit int, a bad timestamp
            self.problem(node, path, f"cannot read this value: {str(exc)[:120]}")
            return None
        if isinstance(value, (int, Decimal)) and not isinstance(value, bool) and abs(value) > MAX_NUMBER:
            self.problem(node, path, f"number out of range (at most {MAX_NUMBER:,}), got {node.value[:40]}")
            return None
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[Any, Any]:
        own = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
        self.constructor.flatten_mapping(node)  # resolve `<<: *anchor` merges (merged pairs come first)
        out: dict[Any, Any] = {}
        first_seen: dict[Any, int] = {}
        merged: set[Any] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, path, "expected a plain key, got a list or mapping")
                continue
            key = self._scalar(key_node)
            if not isinstance(key, str):
                key = key_node.value  # `on:`/`yes:`/`1:` keys stay the text the author wrote
            if key in merged or (key in first_seen and id(key_node) not in own):
                merged.discard(key)  # an explicit key (or a later merge) overrides a merged one
            elif key in first_seen:
                self.problem(key_node, (*path, key),
                             f"duplicate key {key!r} (first defined on line {first_seen[key]})")
                continue
            first_seen[key] = key_node.start_mark.line + 1
            if id(key_node) not in own:
                merged.add(key)
            self.located.key_marks[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = self.build(value_node, (*path, key))
        return out

    def _scalar(self, node: yaml.Node) -> Any:
        if node.tag == "tag:yaml.org,2002:float":
            text = node.value.replace("_", "")
            try:
                value = Decimal(text)
                if value.is_finite():
                    return value
            except InvalidOperation:
                pass
        return self.constructor.construct_object(node, deep=True)


def dotted(path: Path) -> str:
    """``("rules", 3, "when")`` -> ``rules[3].when``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out
