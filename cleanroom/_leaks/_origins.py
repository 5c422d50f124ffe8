"""
Where threads were started and asyncio tasks created: while a check is active,
``threading.Thread.start`` and ``asyncio.BaseEventLoop.create_task`` note their
caller, so that a leak report can say where a leaked thing came from.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import weakref
from types import FrameType
from typing import Any

_lock = threading.Lock()
_users = 0
_originals: dict[str, Any] = {}

#: "file:line in function" of the code that started each thread or task.
started: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()

# Frames from these files and folders are plumbing: the origin is the first
# frame outside them. The paths of anyio, trio... are known once imported.
_NAMES = ("anyio", "trio", "sniffio", "_pytest", "pluggy", "pytest_asyncio")
_cache: tuple[tuple[bool, ...], tuple[str, ...]] | None = None


def _plumbing_paths() -> tuple[str, ...]:
    global _cache  # noqa: PLW0603
    key = tuple(name in sys.modules for name in _NAMES)
    if _cache is not None and _cache[0] == key:
        return _cache[1]
    stdlib = os.path.dirname(threading.__file__)  # noqa: PTH120
    paths = [
        "<frozen ",
        threading.__file__,
        os.path.join(stdlib, "asyncio", ""),  # noqa: PTH118
        os.path.join(stdlib, "concurrent", ""),  # noqa: PTH118
        os.path.dirname(__file__),  # noqa: PTH120
    ]
    for name in _NAMES:
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if file:
            paths.append(os.path.dirname(file))  # noqa: PTH120
    _cache = (key, tuple(paths))
    return _cache[1]


def plumbing(filename: str) -> bool:
    """Whether code in *filename* is plumbing (threading, asyncio, anyio, trio...)."""
    return filename.startswith(_plumbing_paths())


def where(frame: FrameType | None) -> str | None:
    """Describe the first frame, going outwards from *frame*, outside the plumbing."""
    while frame is not None:
        code = frame.f_code
        if not plumbing(code.co_filename):
            return f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
        frame = frame.f_back
    return None


def _note(obj: object) -> None:
    origin = where(sys._getframe(2))  # noqa: SLF001 (documented CPython API)
    if origin is not None:
        # Objects without weak references go unnoted.
        with contextlib.suppress(TypeError):
            started[obj] = origin


def _start(self: threading.Thread) -> None:
    _note(self)
    _originals["start"](self)


def _create_task(self: Any, coro: Any, *args: Any, **kwargs: Any) -> Any:
    task = _originals["create_task"](self, coro, *args, **kwargs)
    _note(task)
    return task


def install() -> None:
    """Start noting origins; calls nest, each needs its :func:`uninstall`."""
    global _users  # noqa: PLW0603
    with _lock:
        _users += 1
        if _users > 1:
            return
        _originals["start"] = threading.Thread.start
        threading.Thread.start = _start  # type: ignore[method-assign]
        asyncio = sys.modules.get("asyncio")
        if asyncio is not None:
            _originals["create_task"] = asyncio.BaseEventLoop.create_task
            asyncio.BaseEventLoop.create_task = _create_task


def uninstall() -> None:
    """Stop noting origins once the last user is gone."""
    global _users  # noqa: PLW0603
    with _lock:
        _users -= 1
        if _users > 0:
            return
        if threading.Thread.start is _start:
            threading.Thread.start = _originals["start"]  # type: ignore[method-assign]
        create_task = _originals.pop("create_task", None)
        asyncio = sys.modules.get("asyncio")
        if create_task is not None and asyncio is not None:
            asyncio.BaseEventLoop.create_task = create_task
