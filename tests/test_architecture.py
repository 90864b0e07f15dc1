"""The package's import graph: no cycles, and the hot path stays apart.

Walks every module's ``import`` statements with ``ast`` (nothing is imported),
counting module-level and function-level (lazy) imports alike: a cycle through
a lazy import is still two modules that cannot be understood apart. Imports
under ``if TYPE_CHECKING:`` are for type checkers only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import claude_memoir

PACKAGE = Path(claude_memoir.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING" or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """The package modules ``tree`` imports, resolved to absolute names."""
    found: set[str] = set()
    base = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("claude_memoir"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                target = f"{anchor}.{node.module}" if node.module else anchor
            else:
                target = node.module or ""
            if target.startswith("claude_memoir"):
                found.add(target)
                # "from . import ipc" names a module, not an attribute.
                for alias in node.names:
                    candidate = f"{target}.{alias.name}"
                    if candidate in MODULES:
                        found.add(candidate)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (only modules that exist)."""
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        targets = _imports(tree, name, path.name == "__init__.py")
        graph[name] = {t for t in targets if t in MODULES and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of module names, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            # A package's __init__ importing its own submodules is how a
            # package exposes them, not a cycle between parts.
            if node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_walker_sees_imports() -> None:
    graph = import_graph()
    assert "claude_memoir.hooks.entry" in graph["claude_memoir.hook"]
    assert "claude_memoir.store.hookstore" in graph["claude_memoir.hooks.record"]  # lazy
    assert "claude_memoir.launch" in graph["claude_memoir.hooks.handlers"]


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("hot", ["claude_memoir.hook", "claude_memoir.hooks.entry",
                                 "claude_memoir.worker.entry"])
def test_hot_entries_never_reach_the_heavy_parts(hot: str) -> None:
    """What a hook or a starting worker imports, lazily or not, excludes the agent and CLI.

    (The worker entry reaches its service only by a lazy import after it
    listens; that one edge is allowed.)
    """
    graph = import_graph()
    allowed_lazy = {("claude_memoir.worker.entry", "claude_memoir.worker.service")}
    seen, todo = set(), [hot]
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        todo.extend(t for t in graph.get(node, ()) if (node, t) not in allowed_lazy)
    heavy = {m for m in seen if m.startswith(("claude_memoir.agent", "claude_memoir.cli",
                                               "claude_memoir.worker.service",
                                               "claude_memoir.procs", "claude_memoir.web"))}
    assert not heavy, f"{hot} reaches {sorted(heavy)}"
