"""Policies are composed by LibYAML where PyYAML has it, else (and for any document LibYAML
refuses) by PyYAML's pure-Python parser: both must give the same nodes, tags and marks, and an
error must read as PyYAML words it (ci_guard/policy/yamlmarks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ci_guard.policy import yamlmarks
from ci_guard.policy.yamlmarks import parse_yaml

REPO = Path(__file__).resolve().parents[2]
needs_libyaml = pytest.mark.skipif(getattr(yaml, "CSafeLoader", None) is None, reason="PyYAML built without LibYAML")

SNIPPETS = [
    "version: 1\nrules:\n  - {name: a, when: {diff_lines: '> 300'}, decision: deny}\n",
    "a: &x {b: 1}\nc: *x\nd:\n  <<: *x\n  e: 2\n",
    "money: 1.10\nbig: 1e3\nhex: 0x1F\noct: 0o17\nbool: yes\nnull: ~\ndate: 2026-12-06\n",
    "s: \"quoted \\u00e9 \\t\"\nf: >\n  folded\n  text\nl: |\n  literal\n",
    "caf\u00e9: \u65e5\u672c\nemoji: \"\\U0001F600\"\n",
    "k: !custom value\n",
    "- a\n- [b, {c: d}]\n- ? complex\n  : key\n",
    "",
    "# only a comment\n",
]


def _shape(node: yaml.Node | None) -> object:
    if node is None:
        return None
    where = (node.tag, node.start_mark.line, node.start_mark.column, node.end_mark.line, node.end_mark.column)
    if isinstance(node, yaml.MappingNode):
        return ("map", where, [(_shape(k), _shape(v)) for k, v in node.value])
    if isinstance(node, yaml.SequenceNode):
        return ("seq", where, [_shape(v) for v in node.value])
    return ("scalar", where, node.value)


def _texts() -> list[str]:
    files = [*sorted(REPO.glob("policies/*.yml")), REPO / "ci_guard/demo/policy.yml"]
    return [f.read_text() for f in files] + SNIPPETS


@needs_libyaml
@pytest.mark.parametrize("text", _texts())
def test_libyaml_and_pyyaml_compose_the_same_graph(text: str):
    assert _shape(yaml.compose(text, Loader=yaml.CSafeLoader)) == _shape(yaml.compose(text, Loader=yaml.SafeLoader))


@pytest.mark.parametrize("text", _texts())
def test_the_parsed_policy_is_the_same_with_either_parser(text: str, monkeypatch: pytest.MonkeyPatch):
    fast = parse_yaml(text, "p.yml")
    monkeypatch.setattr(yamlmarks, "_FAST_LOADER", None)
    slow = parse_yaml(text, "p.yml")
    assert (fast.data, fast.marks, fast.key_marks, fast.problems) == (slow.data, slow.marks, slow.key_marks,
                                                                      slow.problems)


@pytest.mark.parametrize("text", [
    "a: [1, 2\n", "a: b: c\n", "a:\n\t- b\n", "a: 1\na: 2\n", "--- a\n--- b\n", "a: \x01\n",
    "diff_lines: > 3000\nx: [\n", "a: " + "[" * 2000 + "]" * 2000 + "\n",
])
def test_errors_read_as_pyyaml_words_them(text: str, monkeypatch: pytest.MonkeyPatch):
    fast = parse_yaml(text, "p.yml")
    monkeypatch.setattr(yamlmarks, "_FAST_LOADER", None)
    slow = parse_yaml(text, "p.yml")
    assert fast.problems and fast.problems == slow.problems
