"""
The public modules export exactly what their ``__all__`` says, in order, under
the names their reprs show.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

import cleanroom

# Modules that must declare ``__all__``; any other public submodule that
# declares one is checked too.
REQUIRED = ("cleanroom", "cleanroom.exceptions")


def _public_modules() -> list[str]:
    names = set(REQUIRED)
    for info in pkgutil.walk_packages(cleanroom.__path__, "cleanroom."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:
            # An optional backend whose library is not installed.
            continue
        if hasattr(module, "__all__"):
            names.add(info.name)
    return sorted(names)


def _isort_key(name: str) -> tuple[int, str]:
    """Order of ruff's RUF022: CONSTANTS, then Classes, then everything else."""
    if name.isupper() and len(name) > 1:
        return 0, name
    if name[:1].isupper():
        return 1, name
    return 2, name


def _bound_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [name for elt in target.elts for name in _bound_names(elt)]
    return []


def _exported(module: ModuleType) -> set[str]:
    """
    The public names a module binds at its top level: what it defines, and
    for a package's ``__init__``, what it imports from its own modules.
    """
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    is_package = Path(module.__file__).name == "__init__.py"
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names.extend(n for t in node.targets for n in _bound_names(t))
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            names.extend(_bound_names(node.target))
        elif isinstance(node, ast.ImportFrom) and is_package and node.level:
            names.extend(alias.asname or alias.name for alias in node.names)
    return {name for name in names if not name.startswith("_")}


@pytest.fixture(params=_public_modules())
def module(request: pytest.FixtureRequest) -> ModuleType:
    found = importlib.import_module(request.param)
    if not isinstance(getattr(found, "__all__", None), list):
        pytest.fail(f"{request.param} must declare __all__ as a list of names")
    return found


class TestAllAttributes:
    def test_all_holds_names(self, module: ModuleType) -> None:
        """Each public module's ``__all__`` lists names as str."""
        assert all(isinstance(name, str) for name in module.__all__)

    def test_all_names_exist(self, module: ModuleType) -> None:
        """Every name in ``__all__`` is an attribute of the module."""
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert missing == []

    def test_exports_are_in_all(self, module: ModuleType) -> None:
        """Every public attribute of the module is listed in ``__all__``."""
        assert sorted(_exported(module) - set(module.__all__)) == []

    def test_all_is_sorted(self, module: ModuleType) -> None:
        """``__all__`` is sorted and free of duplicates."""
        assert module.__all__ == sorted(set(module.__all__), key=_isort_key)

    def test_public_module_paths(self, module: ModuleType) -> None:
        """
        Classes and functions report a public module, from which their name
        leads back to them.
        """
        wrong = []
        for name in module.__all__:
            value = getattr(module, name)
            if not isinstance(value, type) and not callable(value):
                continue
            home = getattr(value, "__module__", None)
            if home is None:
                continue
            qualname = getattr(value, "__qualname__", name)
            if any(part.startswith("_") for part in home.split(".")):
                wrong.append(f"{name}: __module__ is the private {home!r}")
                continue
            found = importlib.import_module(home)
            for part in qualname.split("."):
                found = getattr(found, part, None)
            if found is not value:
                wrong.append(f"{name}: {home}.{qualname} is not the same object")
        assert wrong == []

    def test_reexports_show_the_package(self) -> None:
        """Names defined in private modules show ``cleanroom`` as their module."""
        for name in cleanroom.__all__:
            value = getattr(cleanroom, name)
            if isinstance(value, type) or callable(value):
                assert value.__module__ in {"cleanroom", "cleanroom.exceptions"}, name


def test_lazy_names_are_declared_once_each() -> None:
    """
    The package's names, imported on first use, are the same three times: in
    ``__all__``, in the map of their modules and in the imports type checkers
    read.
    """
    tree = ast.parse(Path(cleanroom.__file__).read_text(encoding="utf-8"))
    checked: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom)
                module = "." * statement.level + (statement.module or "")
                for alias in statement.names:
                    checked[alias.asname or alias.name] = module
    assert set(cleanroom.__all__) == set(cleanroom._LAZY) == set(checked)
    assert checked == cleanroom._LAZY


def test_public_paths_before_the_package_names_them() -> None:
    """
    The package's classes and functions report their public path even when
    their modules are imported before anyone asks the package for them (the
    package imports its names on first use).
    """
    import json
    import subprocess
    import sys

    code = """
import importlib, json, cleanroom
shown = {}
for home, names in cleanroom._HOMES.items():
    module = importlib.import_module(home, "cleanroom")
    for name in names:
        value = getattr(module, name)
        if isinstance(value, type) or callable(value):
            shown[name] = [value.__module__, value.__qualname__]
print(json.dumps(shown))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    shown = json.loads(out)
    assert shown
    for name, (home, qualname) in shown.items():
        assert home == "cleanroom", (name, home)
        assert getattr(cleanroom, qualname) is getattr(cleanroom, name)
