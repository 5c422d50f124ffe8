"""
The entries of a scope's stack: tracked resources, child scopes and callbacks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._resource import Kind, Resource

if TYPE_CHECKING:
    from ._policy import Outcome
    from ._scope import Scope

# Per type: the name of the method that closes an instance, and whether it is async.
_default_cleanups: dict[type, tuple[str, bool]] = {}
_CLEANUP_METHODS = ("aclose", "close", "__aexit__", "__exit__")
_EXIT_METHODS = frozenset({"__aexit__", "__exit__"})


def default_cleanup(obj: object) -> tuple[str, bool]:
    cls = type(obj)
    found = _default_cleanups.get(cls)
    if found is not None:
        return found
    import inspect

    for method in _CLEANUP_METHODS:
        attr = getattr(obj, method, None)
        if callable(attr):
            is_async = method in {"aclose", "__aexit__"} or inspect.iscoroutinefunction(
                attr
            )
            found = (method, is_async)
            break
    else:
        raise TypeError(
            f"{cls.__qualname__} object has no aclose(), close(), __aexit__() or "
            "__exit__(); pass cleanup= to say how to clean it"
        )
    _default_cleanups[cls] = found
    return found


class Entry:
    """One tracked resource on a scope's stack."""

    __slots__ = (
        "_resource",
        "cleanup",
        "freeing",
        "held",
        "is_async",
        "key",
        "kind",
        "method",
        "name",
        "origin",
        "ref",
        "reserved",
    )

    def __init__(
        self,
        kind: Kind,
        *,
        resource: Resource | None = None,
        ref: Callable[[], Any] | None = None,
        method: str | None = None,
        cleanup: Callable[..., Any] | None = None,
        is_async: bool = False,
        name: str | None = None,
        reserved: bool = False,
    ) -> None:
        self.kind = kind
        self._resource = resource
        self.ref = ref
        self.method = method
        self.cleanup = cleanup
        self.is_async = is_async
        self.name = name
        self.reserved = reserved
        self.key: object = None
        # Why the record is kept, when the level only frees its runtime.
        self.freeing: str | None = None
        # Objects made handles of this entry by Scope.alias(), held so that
        # their ids, under which they are found, stay theirs.
        self.held: list[object] = []
        # Where a weakly held object was added, for the warning if it is lost.
        self.origin: str | None = None

    @property
    def resource(self) -> Resource:
        resource = self._resource
        if resource is None:
            obj = self.ref() if self.ref is not None else None
            name = self.name or (
                type(obj).__qualname__ if obj is not None else "collected object"
            )
            resource = self._resource = Resource(self.kind.name, name)
        return resource

    def target(self) -> tuple[bool, Callable[[], Any] | None]:
        """Return (alive, the zero-argument call that cleans this entry)."""
        if self.ref is None:
            return True, None
        obj = self.ref()
        if obj is None:
            return False, None
        method = self.method
        if method is not None:
            bound = getattr(obj, method)
            if method in _EXIT_METHODS:
                return True, lambda: bound(None, None, None)
            return True, bound
        cleanup = self.cleanup
        # An entry that holds an object has a method or a cleanup to call.
        assert cleanup is not None  # noqa: S101
        return True, lambda: cleanup(obj)


class ChildExit:
    """The parent's stack entry for a child scope."""

    __slots__ = ("child", "outcome")

    def __init__(self, child: Scope) -> None:
        self.child = child
        self.outcome: Outcome | None = None

    def _inherit(self) -> Scope:
        # A child closed by its parent ends as the parent did, unless it was
        # told otherwise.
        child = self.child
        if child._outcome is None and self.outcome is not None:
            child._outcome = self.outcome
        return child

    def __call__(self, *exc_details: Any) -> bool:
        return self._inherit().__exit__(*exc_details)

    async def acall(self, *exc_details: Any) -> bool:
        return await self._inherit().__aexit__(*exc_details)


class Callback:
    # The exit wrapper of Scope.callback: one small object where ExitStack's
    # closure makes five for the garbage collector to scan. Like that closure,
    # it has __wrapped__, a __name__ of its own and no __doc__.
    __slots__ = ("__wrapped__", "args", "kwds")
    __name__ = "_exit_wrapper"

    def __init__(
        self, callback: Callable[..., Any], args: tuple[Any, ...], kwds: dict[str, Any]
    ) -> None:
        self.__wrapped__ = callback
        self.args = args
        self.kwds = kwds

    def __call__(self, *_: object) -> None:
        self.__wrapped__(*self.args, **self.kwds)


class Strong:
    """A strong reference with the call interface of :class:`weakref.ref`."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __call__(self) -> object:
        return self.obj


def check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise TypeError(f"a resource name must be a non-empty str, not {name!r}")


def is_async_callable(fn: Callable[..., Any]) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004
    )
