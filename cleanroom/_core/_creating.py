"""
Creating resources safely: journaled intent, creation, registration or undo.
"""

from __future__ import annotations

import contextlib
from collections.abc import (
    AsyncIterator,
    Iterable,
    Iterator,
)
from typing import Any

import anyio

from . import _signals
from ._creation import Creation
from ._entries import (
    Entry,
    check_name,
)
from ._exceptions import ScopeStateError
from ._handles import _alias_key
from ._resource import (
    Disposition,
    Kind,
    Resource,
    State,
    get_kind,
)
from ._state import ScopeState


class Creating(ScopeState):
    """The part of :class:`~cleanroom.Scope` that does this."""

    def _new_resource(
        self, kind: Kind, name: str, identity: dict[str, Any]
    ) -> Resource:
        check_name(name)
        if self._policy is None:
            self._resolve_policy_early()
        return Resource(kind.name, name, identity, scope=self.name, declarative=True)

    def _register(
        self, kind: Kind, resource: Resource, *, keys: Iterable[object] = ()
    ) -> Resource:
        """Push a declarative *resource* that exists now, and tell the journal."""
        entry = Entry(kind, resource=resource)
        entry.key = resource
        self._handles[resource] = entry
        for key in keys:
            self._handles[_alias_key(entry, key)] = entry
        self.registry._created(self._whole(), resource)
        self._exit_callbacks.append((True, entry))
        return resource

    def _begin(self, kind: str | Kind, name: str, identity: dict[str, Any]) -> Creation:
        kind_obj = get_kind(kind)
        resource = self._new_resource(kind_obj, name, identity)
        self.registry._intent(self._whole(), resource)
        return Creation(kind_obj, resource)

    def _abandon(self, creation: Creation, reason: str) -> None:
        self.registry._settled(
            self._whole(),
            Disposition(
                creation.resource, State.FORGOTTEN, reason=f"not created: {reason}"
            ),
        )

    def _conclude(self, creation: Creation) -> None:
        """After the body of creating(): track what was made, or drop the intent."""
        if creation.abandoned is None:
            self._register(creation.kind, creation.resource, keys=creation.aliases)
        else:
            self._abandon(creation, creation.abandoned)

    def _failed(
        self, creation: Creation, exc: BaseException, error: Exception | None
    ) -> None:
        """After a body that raised: drop the intent unless something may remain."""
        if creation.abandoned is not None:
            self._abandon(creation, creation.abandoned)
            return
        if error is None:
            self._abandon(creation, f"creating it failed: {exc!r}")
            return
        # The intent stays journaled: a sweep deletes the thing once this
        # session has ended.
        exc.add_note(
            "cleanroom could not delete the partly created "
            f"{creation.kind.describe(creation.resource)}: {error!r}"
        )

    def confirm(self, handle: object) -> Resource:
        """
        Say that a reserved resource (see :meth:`reserve`) exists now: it is
        journaled as created, and deleted at cleanup without waiting for it
        to appear.

        Returns:
            The resource.

        Raises:
            ScopeStateError: When *handle* is not a reservation of this scope.

        .. versionadded:: 0.2.0
        """
        entry = self._find(handle)
        if not entry.reserved:
            raise ScopeStateError(f"{handle!r} is not a reservation of {self!r}")
        entry.reserved = False
        self.registry._created(self._whole(), entry.resource)
        return entry.resource

    @contextlib.contextmanager
    def creating(
        self, kind: str | Kind, name: str, **identity: Any
    ) -> Iterator[Creation]:
        """
        Create a resource of *kind* safely: the intent is journaled before the
        body runs, the body creates the thing, and the resource is tracked when
        the body ends — or, if the body raises or is interrupted, whatever it
        may have made is deleted through the kind and the intent dropped.

        ``SIGINT`` and ``SIGTERM`` that arrive inside the body are delivered when
        it has ended, so a thing is always either tracked or gone. Kinds create
        what they track this way (see :doc:`writing-a-kind`).

        Args:
            kind: The kind (or its name) of the thing.
            name: Its name within the kind.
            identity: What else identifies it, as known before it exists.

        Yields:
            A :class:`~cleanroom.Creation`, to add identity learned while
            creating, to make objects handles of the resource, or to say that
            nothing was created after all.

        Raises:
            UnknownKindError: When no kind has that name.

        .. versionadded:: 0.2.0
        """
        creation = self._begin(kind, name, identity)
        with _signals.Cleaning(quiet=True):
            try:
                yield creation
                self._conclude(creation)
            except BaseException as exc:
                error = None
                if creation.abandoned is None:
                    try:
                        creation.kind.delete(creation.resource, wait=False)
                    except Exception as delete_error:
                        error = delete_error
                self._failed(creation, exc, error)
                raise

    @contextlib.asynccontextmanager
    async def acreating(
        self, kind: str | Kind, name: str, **identity: Any
    ) -> AsyncIterator[Creation]:
        """
        Create a resource of *kind* safely from async code; see :meth:`creating`.
        On failure, the kind's :meth:`~cleanroom.Kind.adelete` runs shielded
        from cancellation.

        .. versionadded:: 0.2.0
        """
        creation = self._begin(kind, name, identity)
        with _signals.Cleaning(quiet=True):
            try:
                yield creation
                self._conclude(creation)
            except BaseException as exc:
                error = None
                if creation.abandoned is None:
                    with anyio.CancelScope(shield=True):
                        try:
                            await creation.kind.adelete(creation.resource, wait=False)
                        except Exception as delete_error:
                            error = delete_error
                self._failed(creation, exc, error)
                raise
