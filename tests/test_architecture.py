"""The layering rules of docs/architecture.md, checked over the source's imports.

* the simulator imports no meter code (statically, and nothing of ``ci_guard.meter`` is loaded
  when the simulator's server module is imported);
* no import cycle between modules at import time (module-level imports);
* the import graph between ``ci_guard`` packages (lazy imports in functions included) has no cycle
  beyond the known edges listed below, which may only shrink.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ci_guard"

# Edges between packages that lie on a cycle today (lazy, in-function imports included). They are
# layering debt: policy/decide.py opens a ledger while the ledger reads policy's Budget and
# BudgetStatus types; report/ reads meter's RunSummary while meter/detached.py rebuilds a summary
# with report/history.py; report/publish.py drives forges/ while forges/sticky.py renders report
# text. Remove an edge when its cycle is gone; any other edge on a cycle (a new cycle) fails.
KNOWN_CYCLE_EDGES = {
    ("ledger", "policy"), ("policy", "ledger"),
    ("forges", "report"), ("report", "forges"), ("meter", "report"), ("report", "meter"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The ci_guard modules an import statement names (a ``from pkg import mod`` names the module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = module if path.name == "__init__.py" else module.rpartition(".")[0]
        if node.level:
            base = ".".join(base.split(".")[: len(base.split(".")) - (node.level - 1)])
            target = f"{base}.{node.module}" if node.module else base
        else:
            target = node.module or ""
        names = [target] + [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
    return [n for n in names if n == "ci_guard" or n.startswith("ci_guard.")]


@functools.cache
def _imports(top_level_only: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = tree.body if top_level_only else list(ast.walk(tree))
        for node in nodes:
            if top_level_only and isinstance(node, ast.If):  # `if TYPE_CHECKING:` never runs
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[module].update(t for t in _targets(module, path, node) if t != module)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one node (Tarjan, iterative enough here)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.add(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_simulator_source_imports_no_meter_code() -> None:
    graph = _imports(top_level_only=False)
    offending = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module.startswith("ci_guard.simulator")
        for target in targets
        if target.startswith("ci_guard.meter")
    )
    assert offending == []


def test_importing_the_simulator_loads_no_meter_module() -> None:
    code = (
        "import sys, ci_guard.simulator.server, ci_guard.simulator.scenario\n"
        "print(sorted(m for m in sys.modules if m.startswith('ci_guard.meter')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_no_import_cycle_between_modules_at_import_time() -> None:
    graph = _imports(top_level_only=True)
    # A package's __init__ importing its own submodules is not a cycle between concepts.
    cycles = [c for c in _cycles(graph) if len({_package(m) for m in c}) > 1 or len(c) > 2]
    assert cycles == [], cycles


def test_no_new_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, targets in _imports(top_level_only=False).items():
        for target in targets:
            a, b = _package(module), _package(target)
            if a and b and a != b and (ROOT / "ci_guard" / a).is_dir() and (ROOT / "ci_guard" / b).is_dir():
                graph[a].add(b)
    on_cycles = {(a, b) for component in _cycles(graph) for a in component for b in graph[a] if b in component}
    new = sorted(on_cycles - KNOWN_CYCLE_EDGES)
    assert new == [], f"a new import cycle between ci_guard packages through {new} (docs/architecture.md, Layering)"


def test_the_checker_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]


def test_library_packages_never_import_the_cli() -> None:
    graph = _imports(top_level_only=False)
    offending = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        # the entry point and the warm launcher start the CLI: they sit above it, not in the library
        if not module.startswith(("ci_guard.commands", "ci_guard.cli", "ci_guard.__main__", "ci_guard.entry",
                                  "ci_guard.warm"))
        for target in targets
        if target.startswith(("ci_guard.commands", "ci_guard.cli"))
    )
    assert offending == []
