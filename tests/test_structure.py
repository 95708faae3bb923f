"""The library's shape: no import circles inside ``temzoo/`` and no function over 80 lines (read from the source)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PKG = REPO / "temzoo"
MAX_FUNCTION_LINES = 80
# Functions allowed over the limit while being split (each may only shrink, the list only lose entries): none now.
LONG_FUNCTIONS: dict[str, int] = {}


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def import_graph() -> dict[str, set[str]]:
    """Module -> the ``temzoo`` modules it imports (at top level or inside functions: both can close a circle)."""
    mods = _modules()

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps |= {o for a in node.names if (o := owner(a.name))}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                if base == "temzoo" or base.startswith("temzoo."):
                    deps |= {o for a in node.names if (o := owner(f"{base}.{a.name}"))}
        deps.discard(mod)
        graph[mod] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path ``[a, b, ..., a]``, or None (depth-first search, colours white/grey/black)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return None


def long_functions() -> dict[str, int]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    out[f"{path.relative_to(REPO).as_posix()}:{node.name}"] = n
    return out


def test_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_import_graph_sees_function_level_imports():
    graph = import_graph()
    assert "temzoo.confidence" in graph["temzoo.predict"]  # imported inside functions only
    assert "temzoo.zoo.meta" in graph["temzoo.zoo.cards"]


def test_no_import_circles_in_temzoo():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_function_over_80_lines():
    found = long_functions()
    grown = {k: n for k, n in found.items() if n > LONG_FUNCTIONS.get(k, MAX_FUNCTION_LINES)}
    assert not grown, f"functions over {MAX_FUNCTION_LINES} lines (split them): {grown}"
    stale = sorted(set(LONG_FUNCTIONS) - set(found))
    assert not stale, f"these are short now: drop them from LONG_FUNCTIONS: {stale}"
