"""
The package's layers: dependencies point one way (integrations and the command
→ crash safety → kinds → core) and no module imports itself back, lazy imports
included. Imports under ``if TYPE_CHECKING:`` are annotations only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cleanroom

PACKAGE = Path(cleanroom.__file__).parent

# The rank of each layer: a module imports modules of its rank or below.
# cleanroom.exceptions is the core's public face and ranks with it.
RANKS = {
    "cleanroom._core": 0,
    "cleanroom.exceptions": 0,
    "cleanroom._version": 0,
    "cleanroom.kinds": 1,
    "cleanroom._crash": 2,
    "cleanroom._cli": 3,
    "cleanroom.pytest_plugin": 3,
    "cleanroom._pytest_loops": 3,
    "cleanroom._pytest_scopes": 3,
    "cleanroom.unittest": 3,
    "cleanroom.leaks": 3,
    "cleanroom._leaks": 3,
    "cleanroom.__main__": 3,
    "cleanroom": 4,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {
    module_name(path): path for path in sorted(PACKAGE.rglob("*.py")) if path.is_file()
}


def rank(module: str) -> int:
    best = ""
    for prefix in RANKS:
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(
            best
        ):
            best = prefix
    return RANKS[best]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".")
    is_package = MODULES[module].name == "__init__.py"
    base = package if is_package else package[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports(module: str) -> set[str]:
    """The cleanroom modules that *module* imports, at run time."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: imports(module) for module in MODULES}


class TestLayers:
    @pytest.mark.parametrize("module", sorted(MODULES))
    def test_imports_point_down(self, module: str) -> None:
        """A module imports nothing from a layer above its own."""
        upward = sorted(name for name in GRAPH[module] if rank(name) > rank(module))
        assert upward == [], f"{module} imports from a layer above it"

    def test_core_imports_no_journal_and_no_backend(self) -> None:
        """The core reaches neither crash safety, the command, nor any kind."""
        core = [name for name in MODULES if name.startswith("cleanroom._core")]
        reached = {target for name in core for target in GRAPH[name]}
        assert sorted(name for name in reached if rank(name) > 0) == []

    def test_no_import_cycles(self) -> None:
        """No module imports itself back through others, lazy imports included."""
        cycles: list[list[str]] = []
        state: dict[str, int] = {}
        stack: list[str] = []

        def walk(module: str) -> None:
            state[module] = 1
            stack.append(module)
            for target in sorted(GRAPH[module]):
                if state.get(target) == 1:
                    cycles.append([*stack[stack.index(target) :], target])
                elif target not in state:
                    walk(target)
            stack.pop()
            state[module] = 2

        for module in sorted(MODULES):
            if module not in state:
                walk(module)
        assert cycles == []

    def test_every_module_has_a_layer(self) -> None:
        """The rank table covers the whole package, so new modules are checked too."""
        assert all(rank(name) >= 0 for name in MODULES)
        assert len(MODULES) > 20
