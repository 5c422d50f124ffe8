"""
Finding kinds by name: every backend is a module named by an entry point of
the ``cleanroom.kinds`` group, imported the first time it is needed.

The entry point's name is also the backend's family accessor: ``scope.docker``
imports the module of the entry point ``docker`` and calls its ``family(scope)``.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable
    from importlib.metadata import EntryPoint

#: The entry-point group through which kinds are found.
GROUP: Final = "cleanroom.kinds"

_lock = threading.RLock()
_points: dict[str, EntryPoint] | None = None
_loaded: dict[str, ModuleType] = {}
_failed: dict[str, BaseException] = {}
_all_loaded = False


def entry_points() -> dict[str, EntryPoint]:
    """Return the group's entry points by name, read once per process."""
    global _points  # noqa: PLW0603
    points = _points
    if points is None:
        from importlib.metadata import entry_points as read

        with _lock:
            points = _points
            if points is None:
                points = _points = {point.name: point for point in read(group=GROUP)}
    return points


def families() -> tuple[str, ...]:
    """Return the names of the installed backends (the entry points' names)."""
    return tuple(sorted(entry_points()))


def loaded() -> dict[str, ModuleType]:
    """Return the backends' modules imported so far, by entry-point name."""
    return dict(_loaded)


def load(name: str) -> ModuleType | None:
    """
    Import the module of the backend *name*; ``None`` when no entry point has
    that name.

    Raises:
        ImportError: When the module cannot be imported; the message names
            the entry point.
    """
    module = _loaded.get(name)
    if module is not None:
        return module
    point = entry_points().get(name)
    if point is None:
        return None
    with _lock:
        module = _loaded.get(name)
        if module is None:
            try:
                module = importlib.import_module(point.value.partition(":")[0])
            except Exception as exc:
                _failed[name] = exc
                raise ImportError(
                    f"the cleanroom kind module {point.value!r} (entry point "
                    f"{name!r} of group {GROUP!r}) cannot be imported: {exc!r}"
                ) from exc
            _loaded[name] = module
    return module


def load_all() -> None:
    """
    Import every backend's module once, so that their kinds are registered.

    A module that fails to import is logged and skipped, so that one broken
    third-party kind does not stop the others from being found.
    """
    global _all_loaded  # noqa: PLW0603
    if _all_loaded:
        return
    with _lock:
        _load_each(entry_points())
        _all_loaded = True


def load_configured() -> None:
    """
    Import the backends that ``[tool.cleanroom]`` of the nearest
    ``pyproject.toml`` configures: those whose entry point's name is one of
    its keys (``commands`` declares command kinds). A project file that
    cannot be read configures none; a module that fails to import is logged
    and skipped.
    """
    from ._exceptions import PolicyError
    from ._settings import project_file

    try:
        table = project_file()[1]
    except PolicyError:
        return
    _load_each(name for name in entry_points() if name in table)


def _load_each(names: Iterable[str]) -> None:
    for name in names:
        if name in _failed or name in _loaded:
            continue
        try:
            load(name)
        except ImportError:
            import logging  # only for a broken kind module

            logging.getLogger("cleanroom").warning(
                "skipping a kind module that cannot be imported", exc_info=True
            )
