"""
Objects that outlive their scope: the scopes report each object they clean
(:func:`watch_cleaned`); an active check holds a weak reference to it, and one
still alive after a garbage collection is reported with what refers to it.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Iterable
from types import FrameType, ModuleType
from typing import Any, Self

from cleanroom._core import _context

from ._records import Leak

# inspect.CO_OPTIMIZED, without importing inspect: set on function frames,
# whose f_locals is a snapshot rather than the module's globals.
_CO_OPTIMIZED = 0x1

# The active watches; empty (and watch_cleaned() a no-op) when no check runs.
_watches: list[Watch] = []
_lock = threading.Lock()


class Watch:
    """The cleaned objects one check follows."""

    def __init__(self) -> None:
        self.refs: list[tuple[weakref.ref[Any], str]] = []

    def __enter__(self) -> Self:
        with _lock:
            _watches.append(self)
            if watch_cleaned not in _context.cleaned_hooks:
                _context.cleaned_hooks.append(watch_cleaned)
        return self

    def __exit__(self, *exc: object) -> None:
        with _lock:
            if self in _watches:
                _watches.remove(self)
            if not _watches and watch_cleaned in _context.cleaned_hooks:
                _context.cleaned_hooks.remove(watch_cleaned)

    def alive(self) -> list[tuple[Any, str]]:
        """The followed objects still alive, with where they were cleaned."""
        found = []
        for ref, where in self.refs:
            obj = ref()
            if obj is not None:
                found.append((obj, where))
        return found


def watch_cleaned(obj: object, scope: str | None = None) -> None:
    """Follow *obj*, just cleaned by *scope*, in every active check."""
    if not _watches:
        return
    try:
        ref = weakref.ref(obj)
    except TypeError:
        return
    where = f"cleaned by scope {scope!r}" if scope else "cleaned"
    # A copy: another thread may end its check meanwhile.
    for watch in list(_watches):  # noqa: PERF101
        watch.refs.append((ref, where))


def _running() -> tuple[set[int], set[int]]:
    """
    The ids of every frame on any thread's stack now, and of the dicts that
    hold those functions' local variables (Python 3.11 and 3.12 keep one
    per frame once something asks for ``f_locals``).
    """
    frames = set()
    local_dicts = set()
    for frame in sys._current_frames().values():  # noqa: SLF001 (documented CPython API)
        current: FrameType | None = frame
        while current is not None:
            frames.add(id(current))
            if current.f_code.co_flags & _CO_OPTIMIZED:
                namespace = current.f_locals
                if type(namespace) is dict:
                    local_dicts.add(id(namespace))
            current = current.f_back
    return frames, local_dicts


def _held_by_running_code(obj: object) -> bool:
    """Whether a local variable of code running on some thread names *obj*."""
    for frame in sys._current_frames().values():  # noqa: SLF001 (documented CPython API)
        current: FrameType | None = frame
        while current is not None:
            if any(value is obj for value in current.f_locals.values()):
                return True
            current = current.f_back
    return False


def _describe_referrer(referrer: object) -> str:
    if isinstance(referrer, dict):
        for module in list(sys.modules.values()):
            if getattr(module, "__dict__", None) is referrer:
                return f"the globals of module {module.__name__}"
        return f"a dict of {len(referrer)} items"
    if isinstance(referrer, list | tuple | set | frozenset):
        owner = _owner_of(referrer)
        what = f"a {type(referrer).__name__} of {len(referrer)} items"
        return f"{what}, {owner}" if owner else what
    if isinstance(referrer, FrameType):
        code = referrer.f_code
        return f"a frame of {code.co_name} ({code.co_filename}:{referrer.f_lineno})"
    text = repr(referrer)
    return text if len(text) <= 120 else text[:117] + "..."  # noqa: PLR2004


def _owner_of(container: object) -> str | None:
    """Name a module global or an attribute that holds *container*."""
    import gc

    for outer in gc.get_referrers(container):
        if not isinstance(outer, dict):
            continue
        for key, value in outer.items():
            if value is container:
                for module in list(sys.modules.values()):
                    if getattr(module, "__dict__", None) is outer:
                        return f"global {module.__name__}.{key}"
                return f"held as {key!r}"
    return None


def _reachable(roots: Iterable[object], depth: int = 4) -> set[int]:
    """
    The ids of what *roots* refer to, directly or through at most *depth*
    objects: a fixture's value, the list it is, the tuples in it, their items.
    """
    import gc

    seen: set[int] = set()
    level = [root for root in roots if not isinstance(root, type | ModuleType)]
    for _ in range(depth + 1):
        found = []
        for obj in level:
            if id(obj) not in seen:
                seen.add(id(obj))
                found.append(obj)
        level = [
            child
            for child in gc.get_referents(*found)
            if not isinstance(child, type | ModuleType)
        ]
    return seen


def report(
    objects: list[tuple[Any, str]], transient: Iterable[object] = ()
) -> list[Leak]:
    """
    Describe the *objects* still alive after a collection with what refers to
    them, leaving out those only running code holds in local variables, and
    those that the *transient* objects (a test's fixture values) hold: they
    go when that code returns, or once pytest drops them.
    """
    import gc

    held = _reachable(transient)
    ours = {id(objects), *(id(pair) for pair in objects)}
    objects = [pair for pair in objects if id(pair[0]) not in held]
    ours.add(id(objects))
    frames, local_dicts = _running()
    leaks = []
    for obj, where in objects:
        referrers = [
            r
            for r in gc.get_referrers(obj)
            if id(r) not in ours
            and id(r) not in local_dicts
            and not (isinstance(r, FrameType) and id(r) in frames)
        ]
        if not referrers and _held_by_running_code(obj):
            continue
        lines = [where]
        lines += [f"referred to by {_describe_referrer(r)}" for r in referrers[:5]]
        if len(referrers) > 5:  # noqa: PLR2004
            lines.append(f"and {len(referrers) - 5} more")
        if not referrers:
            lines.append("referred to by nothing the garbage collector sees")
        type_name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        summary = f"{type_name} object still alive after its scope closed"
        leaks.append(Leak("object", summary, tuple(lines)))
        del obj
    return leaks
