"""The import graph of chatd/, chatctl/ and bench/, read from the source (no
module is imported): no package has an import cycle, and chatd's transport
and chat core do not import each other (docs/architecture.md, "Layers").

Every import counts, wherever it is: at the top, inside a function (a lazy
import still ties the two modules together) and under `TYPE_CHECKING`.
A cycle is a strongly connected component of more than one module, or a
module that imports itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO

PACKAGES = ("chatd", "chatctl", "bench")
Graph = dict[str, set[str]]


def _modules(package: str) -> dict[str, Path]:
    """Module name → file, for every .py file of `package`."""
    found = {}
    for path in sorted((REPO / package).rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imported(module: str, path: Path, known: set[str]) -> Iterator[str]:
    """The modules of `known` that `module` imports: for `from a.b import c`,
    the module a.b.c if there is one, else a.b (c is a name in it)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _known_prefix(alias.name, known)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node.module, node.level)
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    yield f"{base}.{alias.name}"
                elif base in known:
                    yield base


def _absolute(module: str, is_package: bool, name: str | None, level: int) -> str:
    if level == 0:
        return name or ""
    parts = module.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - (level - 1)]
    return ".".join([*anchor, name] if name else anchor)


def _known_prefix(name: str, known: set[str]) -> Iterator[str]:
    """`import a.b.c` names a.b.c, the longest of its prefixes that is a module here."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            yield ".".join(parts[:end])
            return


def import_graph(packages: tuple[str, ...] = PACKAGES) -> Graph:
    """Module → the modules of `packages` it imports (a package's own
    `__init__` imports are its own; importing a.b does not count as importing a)."""
    files = {name: path for package in packages for name, path in _modules(package).items()}
    known = set(files)
    return {name: set(_imported(name, path, known)) for name, path in files.items()}


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with a cycle in them (Tarjan's
    algorithm, iterative), each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for child in edges:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph[node]:
                        found.append(sorted(component))
    return sorted(found, key=lambda c: (-len(c), c))


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def paths_between(graph: Graph, source: str, target: str) -> list[list[str]]:
    """For each module of package `source` that reaches package `target`,
    directly or through modules of neither, the shortest such chain of imports."""
    found = []
    for start in sorted(m for m in graph if _in(m, source)):
        came_from: dict[str, str] = {}
        queue = [start]
        while queue:
            module = queue.pop(0)
            if _in(module, target):
                chain = [module]
                while chain[-1] != start:
                    chain.append(came_from[chain[-1]])
                found.append(chain[::-1])
                break
            for imported in sorted(graph[module]):
                if imported not in came_from and imported != start and not _in(imported, source):
                    came_from[imported] = module
                    queue.append(imported)
    return found


# -- the checker, on graphs made up here -----------------------------------------------------


def test_cycles_finds_each_loop_once_and_nothing_else() -> None:
    graph: Graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": set(), "f": {"f"}, "g": {"h"}, "h": {"g"}}
    assert cycles(graph) == [["a", "b", "c"], ["g", "h"], ["f"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_every_kind_of_import_is_an_edge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import leaf\n")
    (package / "sub" / "leaf.py").write_text("from ..top import NAME\n")
    (package / "top.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "import pkg.sub.leaf\n"
        "if TYPE_CHECKING:\n    from pkg.typed import Shape\n"
        "def later():\n    from pkg import lazy\n"
    )
    (package / "typed.py").write_text("import os\n")
    (package / "lazy.py").write_text("")
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    assert import_graph(("pkg",)) == {
        "pkg": set(),
        "pkg.sub": {"pkg.sub.leaf"},
        "pkg.sub.leaf": {"pkg.top"},
        "pkg.top": {"pkg.sub.leaf", "pkg.typed", "pkg.lazy"},
        "pkg.typed": set(),
        "pkg.lazy": set(),
    }
    assert cycles(import_graph(("pkg",))) == [["pkg.sub.leaf", "pkg.top"]]


# -- the tree ----------------------------------------------------------------------------------


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package: str) -> None:
    graph = import_graph()
    inside = {name: {i for i in imports if i.split(".")[0] == package} for name, imports in graph.items()}
    assert cycles({name: imports for name, imports in inside.items() if name.split(".")[0] == package}) == []


def test_paths_between_follows_chains_through_other_modules() -> None:
    graph: Graph = {"x.a": {"m"}, "x.b": {"y.c"}, "m": {"n"}, "n": {"y.d"}, "y.c": set(), "y.d": set(), "x.e": {"x.a"}}
    assert paths_between(graph, "x", "y") == [["x.a", "m", "n", "y.d"], ["x.b", "y.c"]]
    assert paths_between(graph, "y", "x") == []


@pytest.mark.parametrize(("source", "target"), [("chatd.transport", "chatd.core"), ("chatd.core", "chatd.transport")])
def test_the_transport_and_the_chat_core_do_not_import_each_other(source: str, target: str) -> None:
    # Not even through a third module. What both need lives in modules that import
    # neither, chatd/outlet.py (Sender, Outlet) and chatd/names.py (nickname and
    # room-name rules); only modules above both (server.py, which wires them,
    # stats.py) import from both.
    assert paths_between(import_graph(("chatd",)), source, target) == []
