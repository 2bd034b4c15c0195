"""The package's import graph: no private name crosses a module, and no module joins an import cycle.

Imports under ``if TYPE_CHECKING:`` do not run and are left out; imports inside
functions count (they run). The one cycle that exists today is frozen in `CYCLE`:
a module may leave it (then remove it from the set), none may join it, and no
other cycle may form. Issue 18 (the package layout) is to empty it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "schemashift"

#: The modules of today's one import cycle (most through imports at run time inside functions).
CYCLE = frozenset({
    "schemashift", "schemashift.aio", "schemashift.api", "schemashift.planning.backups", "schemashift.services.baseline",
    "schemashift.services.environments", "schemashift.runtime.executor",
    "schemashift.runtime.repair", "schemashift.services.squash",
    "schemashift.services.stairway",
})


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def absolute(current: str, level: int, module: str | None) -> str:
    """The module a ``from ... import`` in `current` names."""
    if level == 0:
        return module or ""
    base = current.split(".")
    base = base if MODULES[current].name == "__init__.py" else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def type_checking_only(tree: ast.AST) -> set[int]:
    """The ids of the nodes under ``if TYPE_CHECKING:``."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found.update(id(sub) for child in node.body for sub in ast.walk(child))
    return found


def scan() -> tuple[dict[str, set[str]], set[str]]:
    """(module -> the package modules it imports, ``"user -> module.name"`` for each private name used across)."""
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    private: set[str] = set()
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        skipped, aliases = type_checking_only(tree), {}
        for node in ast.walk(tree):
            if id(node) in skipped or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            target = absolute(name, node.level, node.module) if isinstance(node, ast.ImportFrom) else ""
            for alias in node.names:
                full = f"{target}.{alias.name}" if target else alias.name
                if full in MODULES:
                    edges[name].add(full)
                    aliases[alias.asname or alias.name] = full
                elif target in MODULES:
                    edges[name].add(target)
                    if alias.name.startswith("_") and not alias.name.startswith("__") and target != name:
                        private.add(f"{name} -> {target}.{alias.name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                owner = aliases[node.value.id]
                if node.attr.startswith("_") and not node.attr.startswith("__") and owner != name:
                    private.add(f"{name} -> {owner}.{node.attr}")
        edges[name].discard(name)
    return edges, private


def cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_private_name_crosses_a_module() -> None:
    _, private = scan()
    assert not private, sorted(private)


def test_no_module_joins_an_import_cycle() -> None:
    edges, _ = scan()
    found = cycles(edges)
    new = [sorted(component - CYCLE) for component in found if component - CYCLE]
    assert not new, f"modules in an import cycle: {new}"


def test_the_scan_sees_cycles_and_private_names() -> None:
    """The checker itself: a made-up graph with a cycle, and the real one's edges."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [frozenset({"a", "b"})]
    edges, _ = scan()
    assert "schemashift.operations" in edges["schemashift.planning.plan"]


#: The package layers, bottom to top: a module may import from its own package, from packages on its
#: own layer and from lower layers only (``""``: the top-level modules `schemashift/*.py` not listed).
LAYERS = {
    "errors": 0, "sacompat": 0, "support": 0, "config": 0, "version": 0,
    "model": 1,
    "operations": 2,
    "sqla": 3, "reflection": 3, "dialects": 3,
    "autodetect": 4, "history": 4,
    "planning": 5,
    "runtime": 6,
    "services": 7,
    "api": 8, "aio": 8, "command": 8, "migration": 8,
    "cli": 9, "pytest_plugin": 9, "": 9, "__main__": 10,
}

#: Imports that still go upwards (to be emptied, as `CYCLE`): none may be added.
UPWARD = frozenset({
    ("schemashift.aio", "schemashift"),
    ("schemashift.command", "schemashift"),
    ("schemashift.dialects.sqlite.live", "schemashift.planning.plan"),
    ("schemashift.history.cache", "schemashift"),
    ("schemashift.planning.backups", "schemashift.runtime.versions"),
    ("schemashift.planning.offline", "schemashift.runtime.versions"),
    ("schemashift.services.environments", "schemashift.api"),
    ("schemashift.services.stairway", "schemashift.api"),
})


def package_of(module: str) -> str:
    """``schemashift.planning.plan`` -> ``planning``; a top-level module -> its own name; the package -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def upward_imports(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    """The imports of a module from a package on a higher layer than its own."""
    found = set()
    for module, targets in edges.items():
        for target in targets:
            low, high = package_of(module), package_of(target)
            if low != high and LAYERS.get(high, 9) > LAYERS.get(low, 9):
                found.add((module, target))
    return found


def test_every_package_has_a_layer() -> None:
    edges, _ = scan()
    assert not {package_of(name) for name in edges} - set(LAYERS)


def test_packages_import_only_downwards() -> None:
    edges, _ = scan()
    new = upward_imports(edges) - UPWARD
    assert not new, f"imports from a higher layer (see LAYERS): {sorted(new)}"
