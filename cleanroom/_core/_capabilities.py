"""
What a kind *may* do beyond cleaning: capability protocols that ``cleanroom
check``, the sweep and the reaper ask for, never naming a backend.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._ownership import Ownership
    from ._resource import Resource
    from ._scope import Scope


class Owned(NamedTuple):
    """
    An object that a backend holds and that carries cleanroom's ownership labels.

    Attributes:
        resource: The object as a resource of its kind, ready to delete.
        ownership: Who made it, read from its labels.

    .. versionadded:: 0.2.0
    """

    resource: Resource
    ownership: Ownership


@runtime_checkable
class ListsNames(Protocol):
    """
    A kind that can list its things by name prefix, for opt-in prefix rules
    (``cleanroom sweep --prefix``) that find what cleanroom did not create.

    .. versionadded:: 0.2.0
    """

    def list_names(self, prefix: str) -> Iterable[str]:
        """Return the names of the things that exist now and start with *prefix*."""


@runtime_checkable
class ListsOwned(Protocol):
    """
    A kind whose backend can list the objects that carry cleanroom's ownership
    labels, so that a sweep finds a dead session's containers or pods from the
    backend itself, even when the journal lost their rows.

    .. versionadded:: 0.2.0
    """

    def list_owned(self) -> Iterable[Owned]:
        """
        Return every object of this kind that carries cleanroom's labels.

        Raises:
            BackendUnavailableError: When the backend cannot be reached; the
                sweep then passes this kind by without a warning.
        """


@runtime_checkable
class KnowsSessions(Protocol):
    """
    A kind whose backend records which sessions are alive (a Kubernetes Lease
    per session), so that runners on different hosts sharing it tell a dead
    session's objects from a live one's.

    .. versionadded:: 0.2.0
    """

    def session_alive(self, session: str) -> bool | None:
        """
        Tell whether *session* is alive: ``True`` or ``False`` by the backend's
        record, ``None`` when the backend has none for it (or cannot be asked).
        """


@runtime_checkable
class Probes(Protocol):
    """
    A kind whose backend may be unreachable: ``cleanroom check`` asks it.

    .. versionadded:: 0.2.0
    """

    def probe(self) -> str:
        """
        Return a short description of the reachable backend (its endpoint and
        version).

        Raises:
            BackendUnavailableError: When the backend cannot be reached; the
                message says why.
        """

    def roundtrip(self, scope: Scope) -> str:
        """
        Create one real thing in *scope* and release it; return what was done.
        """


@runtime_checkable
class FreesRuntime(Protocol):
    """
    A record kind whose things hold runtime parts (a Kubernetes Job and its
    pods): at a level that cleans runtime but keeps records (``pods``), the
    scope asks it to free the runtime and keeps the record, reported as kept.

    .. versionadded:: 0.2.0
    """

    def free_runtime(self, resource: Resource, *, wait: bool) -> None:
        """
        Free what *resource* holds at run time (end its pods, stop it from
        making more) and leave the record itself in place; succeed when there
        is nothing to free.
        """


@runtime_checkable
class Adopts(Protocol):
    """
    A kind that takes over objects of known types made elsewhere, so that
    ``scope.add(obj)`` cleans them by identity rather than through the Python
    object.

    .. versionadded:: 0.2.0
    """

    @property
    def adopts(self) -> tuple[str, ...]:
        """
        The fully qualified names of the types it adopts (``"subprocess.Popen"``),
        matched along the object's method resolution order.
        """

    def adopt(self, scope: Scope, obj: object, *, name: str | None) -> Resource:
        """Track *obj* in *scope* as a resource of this kind and return it."""


# The package imports this module on first use, and other modules may reach
# it first: show the public path in reprs and tracebacks from the start.
for _public in (
    Adopts,
    FreesRuntime,
    KnowsSessions,
    ListsNames,
    ListsOwned,
    Owned,
    Probes,
):
    _public.__module__ = "cleanroom"
del _public
