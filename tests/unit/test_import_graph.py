"""The package's import graph: no private name crosses a module, no import cycle, packages import downwards only.

Imports under ``if TYPE_CHECKING:`` do not run and are left out; imports inside
functions count (they run). `LAYERS` orders the packages; a module imports from
its own package, its own layer or below.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "schemashift"



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
    assert not found, f"modules in an import cycle: {[sorted(component) for component in found]}"


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

#: Modules on a lower layer than their package: the dialects' plain-data registry and the helpers of their light
#: catalog modules (standard library only), which `config` and the fast paths read without SQLAlchemy.
MODULE_LAYERS = {"schemashift.dialects.registry": 0, "schemashift.dialects.catalog": 0}



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
            low_layer = MODULE_LAYERS.get(module, LAYERS.get(low, 9))
            high_layer = MODULE_LAYERS.get(target, LAYERS.get(high, 9))
            if (low != high or module in MODULE_LAYERS) and high_layer > low_layer:
                found.add((module, target))
    return found


def test_every_package_has_a_layer() -> None:
    edges, _ = scan()
    assert not {package_of(name) for name in edges} - set(LAYERS)


def test_packages_import_only_downwards() -> None:
    edges, _ = scan()
    new = upward_imports(edges)
    assert not new, f"imports from a higher layer (see LAYERS): {sorted(new)}"


# --------------------------------------------------------------------------- dialect knowledge in one place

#: The databases' names (SQLAlchemy dialect names), as the registry lists them.
DIALECT_NAMES = frozenset({"postgresql", "mysql", "mariadb", "sqlite"})
#: Where database knowledge lives: the only package allowed to branch on a dialect's name.
DIALECTS = PACKAGE / "dialects"


def _names_in(node: ast.AST) -> set[str]:
    """The dialect names `node` spells: a string constant, or one inside a tuple/list/set literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} & DIALECT_NAMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return set().union(*(_names_in(element) for element in node.elts)) if node.elts else set()
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("frozenset", "set", "tuple"):
        return set().union(*(_names_in(argument) for argument in node.args)) if node.args else set()
    return set()


def dialect_branches(tree: ast.AST) -> list[int]:
    """Lines comparing with a dialect name: ``== "sqlite"``, ``in ("mysql", "mariadb")``, ``.startswith("sqlite")``,
    a ``{"postgresql": …}`` look-up table, or a module constant holding names that a comparison then uses."""
    return sorted(getattr(node, "lineno", 0) for node in ast.walk(tree) if _is_dialect_branch(node))


def _is_dialect_branch(node: ast.AST) -> bool:
    """One of the forms `dialect_branches` looks for."""
    if isinstance(node, ast.Compare):
        return any(_names_in(side) for side in (node.left, *node.comparators))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("startswith",
                                                                                                  "endswith"):
        return any(_names_in(argument) for argument in node.args)
    if isinstance(node, ast.Dict):
        return any(key is not None and _names_in(key) for key in node.keys)
    return isinstance(node, ast.Assign) and bool(_names_in(node.value)) and not isinstance(node.value, ast.Constant)


def test_no_dialect_name_branch_outside_dialects() -> None:
    """Database knowledge is in ``schemashift/dialects/``; elsewhere code asks the Dialect or the registry."""
    found = [f"{path.relative_to(ROOT)}:{line}" for path in sorted(PACKAGE.rglob("*.py"))
             if DIALECTS not in path.parents for line in dialect_branches(ast.parse(path.read_text()))]
    assert not found, found


def test_the_dialect_scan_sees_branches() -> None:
    code = ('a == "sqlite"\nb in ("mysql", "mariadb")\nc.startswith("sqlite")\nd = {"postgresql": 1}\n'
            'E = frozenset({"postgresql"})\nf = x.name\ng = "sqlite"\n')
    assert dialect_branches(ast.parse(code)) == [1, 2, 3, 4, 5]


def test_registry_names_are_the_scanned_ones() -> None:
    from schemashift.dialects.registry import DATABASES

    assert set(DATABASES) == DIALECT_NAMES


# --------------------------------------------------------------------------- SQLAlchemy internals in one module

#: Names of the standard library's public API that start with an underscore (namedtuple's, `os._exit`), and
#: `atexit._ncallbacks`: CPython's only way to ask whether an exit hook is registered (`cli.run`, which ends the
#: process as usual where it is missing).
STDLIB_PRIVATE = frozenset({"_make", "_replace", "_asdict", "_fields", "_exit", "_ncallbacks"})


def _defined_private_names() -> set[str]:
    """Every ``_name`` schemashift defines itself (functions, classes, attributes it assigns, class fields)."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr" \
                    and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                names.add(str(node.args[1].value))
    return {name for name in names if name.startswith("_") and not name.startswith("__")}


def _named_attribute(node: ast.AST) -> bool:
    """``getattr(x, "name")`` / ``hasattr(x, "name")`` with a constant name."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
            and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str))


def foreign_private_uses(tree: ast.AST, own: set[str]) -> list[str]:
    """``x._name`` reads and ``getattr(x, "_name")`` of private names schemashift does not define itself,
    and private names imported from SQLAlchemy."""
    found = []
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            name = node.attr
        elif _named_attribute(node):
            name = node.args[1].value if node.args[1].value.startswith("_") else None
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            found += [f"{node.lineno}: {alias.name}" for alias in node.names if alias.name.startswith("_")]
        if name is not None and not name.startswith("__") and name not in own and name not in STDLIB_PRIVATE:
            found.append(f"{node.lineno}: {name}")
    return found


def test_sqlalchemy_internals_only_in_sacompat() -> None:
    own = _defined_private_names()
    found = [f"{path.relative_to(ROOT)}:{use}" for path in sorted(PACKAGE.rglob("*.py")) if path.name != "sacompat.py"
             for use in foreign_private_uses(ast.parse(path.read_text()), own)]
    assert not found, found


def test_model_does_not_import_sqlalchemy() -> None:
    """The neutral model is independent of SQLAlchemy."""
    for path in (PACKAGE / "model").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(module.split(".")[0] == "sqlalchemy" for module in modules), path


def test_sacompat_checks_the_sqlalchemy_version() -> None:
    """Outside pyproject's ``sqlalchemy>=2.0,<2.2`` importing schemashift fails with a one-line error."""
    import pytest

    from schemashift.sacompat import UnsupportedSQLAlchemy, check_version

    assert check_version("2.0.36") == (2, 0) and check_version("2.1.0b1") == (2, 1)
    for version in ("1.4.52", "2.2.0", "3"):
        with pytest.raises(UnsupportedSQLAlchemy, match=r"^schemashift needs SQLAlchemy >=2.0,<2.2, not \S+$"):
            check_version(version)
