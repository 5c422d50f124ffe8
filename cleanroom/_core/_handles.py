"""
The index of a scope's handles: objects, resources and aliases to entries.
"""

from __future__ import annotations

import contextlib
import os

import attrs

from ._entries import (
    Entry,
)
from ._exceptions import ScopeStateError
from ._resource import (
    Resource,
)
from ._state import ScopeState


class Handles(ScopeState):
    """The part of :class:`~cleanroom.Scope` that does this."""

    def alias(self, handle: object, *aliases: object) -> None:
        """
        Make *aliases* find the resource that *handle* finds, in :meth:`keep`,
        :meth:`release`, :meth:`forget` and :meth:`resource_of`; a path is an
        alias by its absolute text. Kinds use it for the Python objects and
        paths that stand for what they track.

        Raises:
            ScopeStateError: When *handle* is not tracked by this scope.

        .. versionadded:: 0.2.0
        """
        entry = self._find(handle)
        for key in aliases:
            self._handles[_alias_key(entry, key)] = entry

    def resource_of(self, handle: object) -> Resource:
        """
        Return the resource that tracks *handle*: an object given to
        :meth:`add`, a resource, or an alias a kind made (a path, a
        :class:`subprocess.Popen`); the resource is a handle too from then on.

        Raises:
            ScopeStateError: When *handle* is not tracked by this scope.

        .. versionadded:: 0.2.0
        """
        entry = self._find(handle)
        resource = entry.resource
        if not resource.scope:
            resource = entry._resource = attrs.evolve(resource, scope=self.name)
        self._handles[resource] = entry
        return resource

    def _find(self, handle: object) -> Entry:
        entry = self._handles.get(
            handle if isinstance(handle, Resource) else id(handle)
        )
        if entry is not None and not _stands_for(entry, handle):
            # An id reused after the object it stood for was collected.
            entry = None
        if entry is None and not isinstance(handle, Resource):
            with contextlib.suppress(TypeError):  # unhashable handles
                entry = self._handles.get(handle)
        if entry is None and isinstance(handle, (str, os.PathLike)):
            # A path is found by its absolute text, so that an equal path or
            # string finds what a kind aliased. abspath, not resolve(): links
            # must not be followed.
            entry = self._handles.get(os.path.abspath(handle))  # noqa: PTH100
        if entry is None or entry not in (cb for _, cb in self._exit_callbacks):
            raise ScopeStateError(f"{handle!r} is not tracked by {self!r}")
        if not _stands_for(entry, handle):
            raise ScopeStateError(f"{handle!r} is not tracked by {self!r}")
        return entry

    def resources(self) -> list[Resource]:
        """
        Return the tracked resources not yet cleaned, most recent first.
        """
        return [
            cb.resource for _, cb in reversed(self._exit_callbacks) if type(cb) is Entry
        ]

    def _remove(self, entry: Entry) -> None:
        for item in self._exit_callbacks:
            if item[1] is entry:
                self._exit_callbacks.remove(item)
                break
        self._handles.pop(entry.key, None)
        stale = [key for key, value in self._handles.items() if value is entry]
        for key in stale:
            del self._handles[key]


def _alias_key(entry: Entry, handle: object) -> object:
    """
    The key under which *handle* finds *entry*: a path by its absolute text,
    any other object by its id, held by the entry so that the id stays its.
    """
    if isinstance(handle, (str, os.PathLike)):
        return os.path.abspath(handle)  # noqa: PTH100
    entry.held.append(handle)
    return id(handle)


def _stands_for(entry: Entry, handle: object) -> bool:
    """Tell whether *handle* is the object *entry* holds, or one of its aliases."""
    if isinstance(handle, (Resource, str, os.PathLike)):
        return True
    if entry.ref is not None and entry.ref() is handle:
        return True
    if any(held is handle for held in entry.held):
        return True
    return entry.ref is None and not entry.held
