"""
Resource records, the Kind protocol, and the registry of kinds by name.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import sys
import threading
import time
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Protocol, runtime_checkable

import attrs

from . import _discovery
from ._capabilities import Adopts
from ._exceptions import PolicyError, UnknownKindError
from ._policy import CATEGORIES, Category

_ids = itertools.count(1)


def _to_names(names: Iterable[str]) -> tuple[str, ...]:
    if isinstance(names, str):
        return (names,)
    return tuple(names)


def _freeze(identity: Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(identity, types.MappingProxyType):
        return identity
    return types.MappingProxyType(dict(identity))


@attrs.frozen(eq=False, repr=False)
class Resource:
    """
    One thing a scope cleans: its kind, its name and what else identifies it.

    Resources are the handles that :meth:`Scope.add <cleanroom.Scope.add>`,
    :meth:`~cleanroom.Scope.track` and the kinds' helpers return; pass one to
    :meth:`~cleanroom.Scope.keep`, :meth:`~cleanroom.Scope.release` or
    :meth:`~cleanroom.Scope.forget`. Two resources are equal only when they are
    the same record.

    Attributes:
        kind: The canonical name of the resource's kind.
        name: A name that identifies the resource within its kind.
        identity: Further identifying data (a namespace, a pid and its start
            time, a path's allowed root...), read-only.
        id: A number unique within the process.
        created: When it was tracked, as a Unix timestamp.
        scope: The name of the scope that tracks it.
        declarative: ``True`` when the record alone is enough to clean the
            resource (so it can be journaled and cleaned by another process);
            ``False`` for objects and callbacks that live in this process.

    .. versionadded:: 0.1.0
    """

    kind: str
    name: str
    identity: Mapping[str, Any] = attrs.field(factory=dict, converter=_freeze)
    id: int = attrs.field(factory=lambda: next(_ids))
    created: float = attrs.field(factory=time.time)
    scope: str = ""
    declarative: bool = False

    def __repr__(self) -> str:
        extra = "".join(f", {key}={value!r}" for key, value in self.identity.items())
        return f"<Resource {self.kind} {self.name!r}{extra}>"


class State(enum.Enum):
    """
    Where a tracked resource stands.

    .. versionadded:: 0.1.0
    """

    #: Registered and not yet settled.
    TRACKED = "tracked"
    #: Deleted (or found already gone).
    CLEANED = "cleaned"
    #: Deliberately left in place, with the reason and how to delete it.
    KEPT = "kept"
    #: Its cleanup raised or timed out.
    FAILED = "failed"
    #: Removed from tracking without cleaning, on request.
    FORGOTTEN = "forgotten"


@attrs.frozen
class Disposition:
    """
    What became of one tracked resource, as reported in summaries and the journal.

    Attributes:
        resource: The resource.
        state: Its final state.
        reason: Why it was kept or why it failed, in words.
        hint: The command or call that deletes it (for kept and failed ones).
        error: The exception its cleanup raised, for failed ones.

    .. versionadded:: 0.1.0
    """

    resource: Resource
    state: State
    reason: str | None = None
    hint: str | None = None
    error: BaseException | None = None


@runtime_checkable
class Kind(Protocol):
    """
    A family of resources and how to clean them.

    Implement it (most simply by subclassing :class:`BaseKind`) and register
    it with :func:`register_kind` to make ``scope.track("name", ...)`` work for
    a new backend.

    .. versionadded:: 0.1.0
    """

    @property
    def name(self) -> str:
        """The canonical name, such as ``"process"`` or ``"pods"``."""

    @property
    def aliases(self) -> tuple[str, ...]:
        """Other names it is known by, such as the singular and plural forms."""

    @property
    def category(self) -> Category:
        """``"runtime"`` (cleaned at level ``pods``) or ``"record"`` (kept there)."""

    @property
    def external(self) -> bool:
        """Whether its resources outlive the process, so levels and keeping apply."""

    @property
    def concurrent(self) -> bool:
        """Whether adjacent resources of this kind may be cleaned at the same time."""

    @property
    def bulk(self) -> bool:
        """Whether :meth:`delete_many` removes many resources in one call."""

    @property
    def grace(self) -> float:
        """Seconds a reserved name may take to appear before it counts as absent."""

    def delete(self, resource: Resource, *, wait: bool) -> None:
        """Delete *resource*; succeed when it is already gone."""

    async def adelete(self, resource: Resource, *, wait: bool) -> None:
        """Delete *resource* from async code."""

    def delete_many(
        self, resources: Sequence[Resource], *, wait: bool
    ) -> Sequence[BaseException | None]:
        """Delete *resources*, returning one error (or ``None``) per resource."""

    async def adelete_many(
        self, resources: Sequence[Resource], *, wait: bool
    ) -> Sequence[BaseException | None]:
        """Delete *resources* from async code."""

    def exists(self, resource: Resource) -> bool:
        """Tell whether *resource* exists now."""

    def delete_hint(self, resource: Resource) -> str:
        """Return the command or call that deletes *resource* by hand."""

    def describe(self, resource: Resource) -> str:
        """Return a short description of *resource* for messages."""


@attrs.define
class BaseKind:
    """
    A convenient base for kinds: implement :meth:`delete`, and :meth:`exists`
    and :meth:`delete_hint` where the backend can tell.

    Async deletion runs :meth:`delete` in a worker thread; bulk deletion calls
    it once per resource unless a subclass does better.

    .. versionadded:: 0.1.0
    """

    name: str
    aliases: tuple[str, ...] = attrs.field(default=(), converter=_to_names)
    category: Category = "runtime"
    external: bool = True
    concurrent: bool = True
    bulk: bool = False
    grace: float = 0.0

    def __attrs_post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise PolicyError(
                f"unknown category {self.category!r} for kind {self.name!r}; "
                f"valid: {', '.join(map(repr, CATEGORIES))}"
            )

    def delete(self, resource: Resource, *, wait: bool) -> None:
        """Delete *resource*; succeed when it is already gone."""
        raise NotImplementedError(f"kind {self.name!r} cannot delete {resource!r}")

    async def adelete(self, resource: Resource, *, wait: bool) -> None:
        """Delete *resource* in a worker thread."""
        # Imported on first use: import cleanroom stays quick.
        from anyio import to_thread

        await to_thread.run_sync(
            lambda: self.delete(resource, wait=wait), abandon_on_cancel=True
        )

    def delete_many(
        self, resources: Sequence[Resource], *, wait: bool
    ) -> Sequence[BaseException | None]:
        """Delete *resources* one by one."""
        results: list[BaseException | None] = []
        for resource in resources:
            try:
                self.delete(resource, wait=wait)
            except Exception as exc:
                results.append(exc)
            else:
                results.append(None)
        return results

    async def adelete_many(
        self, resources: Sequence[Resource], *, wait: bool
    ) -> Sequence[BaseException | None]:
        """Delete *resources* in a worker thread."""
        from anyio import to_thread

        return await to_thread.run_sync(
            lambda: self.delete_many(resources, wait=wait), abandon_on_cancel=True
        )

    def exists(self, resource: Resource) -> bool:  # noqa: ARG002
        """Assume *resource* exists; deleting a missing one must succeed anyway."""
        return True

    def delete_hint(self, resource: Resource) -> str:
        """Describe how to delete *resource* by hand."""
        return f"delete the {self.name} {resource.name!r} by hand"

    def describe(self, resource: Resource) -> str:
        """Return ``"<kind> '<name>'"``."""
        return f"{self.name} {resource.name!r}"


@attrs.define
class ObjectKind(BaseKind):
    """
    The kind of objects added with :meth:`Scope.add <cleanroom.Scope.add>`:
    each carries its own cleanup, and nothing of it outlives the process.

    The default kind ``"object"`` is cleaned strictly last-in, first-out; a
    kind the user names (``scope.add(ws, kind="websocket")``) is cleaned
    concurrently with its adjacent entries.

    .. versionadded:: 0.1.0
    """

    external: bool = False

    def delete_hint(self, resource: Resource) -> str:
        """Objects die with the process; there is nothing to delete by hand."""
        return f"{resource.name} lives in this process only"


#: The default kind of :meth:`Scope.add <cleanroom.Scope.add>`: strictly LIFO.
OBJECT: Final = ObjectKind("object", aliases=("objects",), concurrent=False)

_kinds: dict[str, Kind] = {}
_object_kinds: dict[str, Kind] = {}
_kinds_lock = threading.Lock()
# Adopting kinds by the qualified names of the types they adopt, and the
# answer for each type seen so far (None: no kind adopts it).
_adopters: dict[str, Kind] = {}
_adopted_types: dict[type, Kind | None] = {}
# The module that registered each kind (by id), so that another process (the
# reaper, the sweep) can import it to find the kind again.
_origins: dict[int, tuple[Kind, str]] = {}


def _names_of(kind: Kind) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name.lower() for name in (kind.name, *kind.aliases)))


def register_kind(kind: Kind, *, replace: bool = False) -> Kind:
    """
    Make *kind* known by its name and aliases.

    Args:
        kind: The kind.
        replace: Replace a kind registered under the same name; otherwise that
            is an error.

    Returns:
        *kind*, so that this can be used as an expression.

    Raises:
        PolicyError: When a name is taken by another kind and *replace* is false.

    .. versionadded:: 0.1.0
    """
    if isinstance(kind, type):
        raise TypeError(f"register an instance of {kind.__qualname__}, not the class")
    if not isinstance(kind, Kind):
        raise TypeError(f"{kind!r} does not implement the Kind protocol")
    names = _names_of(kind)
    with _kinds_lock:
        if not replace:
            for name in names:
                taken = _kinds.get(name)
                if taken is not None and taken is not kind:
                    raise PolicyError(
                        f"the kind name {name!r} is taken by {taken!r}; "
                        "pass replace=True to replace it"
                    )
        for name in names:
            _kinds[name] = kind
        origin = sys._getframe(1).f_globals.get("__name__")
        if isinstance(origin, str) and origin != "__main__":
            _origins[id(kind)] = (kind, origin)
        if isinstance(kind, Adopts):
            for type_name in kind.adopts:
                _adopters[type_name] = kind
            _adopted_types.clear()
    return kind


def unregister_kind(kind: Kind) -> None:
    """
    Forget *kind* and its aliases.

    .. versionadded:: 0.1.0
    """
    with _kinds_lock:
        for name in _names_of(kind):
            if _kinds.get(name) is kind:
                del _kinds[name]
        for type_name in [t for t, k in _adopters.items() if k is kind]:
            del _adopters[type_name]
        _adopted_types.clear()


def get_kind(name: str | Kind) -> Kind:
    """
    Return the kind registered as *name* (any alias; case does not matter).

    Raises:
        UnknownKindError: When no kind has that name; the message lists them.

    .. versionadded:: 0.1.0
    """
    if not isinstance(name, str):
        if isinstance(name, Kind):
            return name
        raise TypeError(f"a kind is a name or a Kind, not {type(name).__name__}")
    key = name.strip().lower()
    kind = _kinds.get(key)
    if kind is not None:
        return kind
    _discovery.load_all()
    kind = _kinds.get(key)
    if kind is not None:
        return kind
    raise UnknownKindError(
        f"unknown kind {name!r}; registered: {', '.join(map(repr, kind_names()))}"
    )


def describe(resource: Resource) -> str:
    """Describe *resource* through its kind, or by kind and name if it is unknown."""
    try:
        return get_kind(resource.kind).describe(resource)
    except LookupError:
        return f"{resource.kind} {resource.name!r}"


def kind_names() -> tuple[str, ...]:
    """
    Return the canonical names of the registered kinds, those of installed
    backends included.

    .. versionadded:: 0.1.0
    """
    _discovery.load_all()
    return tuple(sorted({kind.name for kind in _kinds.values()}))


def object_kind(name: str | Kind) -> Kind:
    """Return the kind for an added object: a registered kind, or a user-named one."""
    if not isinstance(name, str):
        return get_kind(name)
    if name == "object":
        return OBJECT
    kind = _kinds.get(name) or _object_kinds.get(name)
    if kind is not None:
        return kind
    with contextlib.suppress(UnknownKindError):
        return get_kind(name)
    key = name.strip().lower()
    if not key:
        raise PolicyError("a kind name must not be empty")
    with _kinds_lock:
        return _object_kinds.setdefault(name, ObjectKind(name))


register_kind(OBJECT)


def adopter(obj: object) -> Kind | None:
    """
    Return the kind that adopts objects of *obj*'s type (see
    :class:`~cleanroom.Adopts`), or ``None``.
    """
    cls = type(obj)
    try:
        return _adopted_types[cls]
    except KeyError:
        pass
    _discovery.load_all()
    found = None
    for base in cls.__mro__:
        found = _adopters.get(f"{base.__module__}.{base.__qualname__}")
        if found is not None:
            break
    _adopted_types[cls] = found
    return found


def kind_origin(kind: Kind) -> str | None:
    """
    Return the module whose import registers *kind* (where :func:`register_kind`
    was called), or ``None`` when that was ``__main__`` or is unknown.
    """
    found = _origins.get(id(kind))
    return found[1] if found is not None and found[0] is kind else None


def registered_kind(name: str) -> Kind | None:
    """
    Return the kind registered as *name* so far (any alias; case does not
    matter), or ``None``; unlike :func:`get_kind`, import no backend to find it.
    """
    return _kinds.get(name.strip().lower())


def registered_kinds() -> tuple[Kind, ...]:
    """Return each registered kind once, in the order they were registered."""
    return tuple({id(kind): kind for kind in _kinds.values()}.values())


# The package imports this module on first use, and other modules may reach
# it first: show the public path in reprs and tracebacks from the start.
for _public in (
    BaseKind,
    Disposition,
    Kind,
    ObjectKind,
    Resource,
    State,
    get_kind,
    register_kind,
    unregister_kind,
):
    _public.__module__ = "cleanroom"
del _public
