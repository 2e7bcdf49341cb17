"""
The xmppchat package has no import circles (issue 17, "Done when": zero
import circles).

The graph is built from the source with C{ast}, not by importing: one node
per module, one edge per C{import}/C{from ... import} of another xmppchat
module.  Both module-level and function-level imports count: an import
moved into a function only postpones a circle to the first call (and hides
the coupling), it does not remove it.  Imports under C{if TYPE_CHECKING:}
are not executed and do not count.  C{from pkg import name} is an edge to
C{pkg.name} when that is a module, else to C{pkg}; the implicit import of
a parent package's C{__init__} is not an edge (a package that re-exports
its submodules would otherwise be a circle with each of them).

Run it alone: C{python -m pytest tests/test_imports.py}.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "xmppchat"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def moduleName(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _typeChecking(node) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree):
    """
    Every import node of C{tree} except those under C{if TYPE_CHECKING:}.
    """
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _typeChecking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def importGraph(root: Path = ROOT) -> dict[str, set[str]]:
    """
    C{{module: {imported xmppchat modules}}} for every module under C{root}.
    """
    paths = {moduleName(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        isPackage = path.name == "__init__.py"
        edges = graph.setdefault(name, set())
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor[:len(anchor) - node.level + (1 if isPackage else 0)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in paths else base
                           for alias in node.names]
            for target in targets:
                while target and target not in paths:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """
    The strongly connected components of more than one module (Tarjan),
    each sorted: every import circle lies in one of them.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    onStack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        onStack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in onStack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                onStack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_graphSeesBothKinds(tmp_path):
    """Module-level, function-level and relative imports are edges; TYPE_CHECKING ones are not."""
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from xmppchat import b\n")
    (pkg / "b.py").write_text("def f():\n    from xmppchat.sub import c\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from xmppchat import a\n"
        "from .. import d\n")
    (pkg / "d.py").write_text("import xmppchat.a\n")
    graph = importGraph(pkg)
    assert graph["xmppchat.a"] == {"xmppchat.b"}
    assert graph["xmppchat.b"] == {"xmppchat.sub.c"}
    assert graph["xmppchat.sub.c"] == {"xmppchat.d"}
    assert cycles(graph) == [["xmppchat.a", "xmppchat.b", "xmppchat.d", "xmppchat.sub.c"]]


def test_noImportCycles():
    """No circle of imports in the xmppchat package (issue 17)."""
    assert cycles(importGraph()) == []
