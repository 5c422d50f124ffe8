"""
Creation: what :meth:`Scope.creating <cleanroom.Scope.creating>` yields while a
kind creates a thing.
"""

from __future__ import annotations

from typing import Any

import attrs

from ._resource import Kind, Resource


class Creation:
    """
    A thing being created by a kind, between its journaled intent and its
    tracking; see :meth:`Scope.creating <cleanroom.Scope.creating>`.

    Attributes:
        kind: The kind of the thing.
        resource: The resource as known so far; after a normal exit from
            ``creating``, the one the scope tracks.
        aliases: Objects that are handles of the resource besides itself.
        abandoned: Why nothing was created, once :meth:`abandon` was called.

    .. versionadded:: 0.2.0
    """

    __slots__ = ("abandoned", "aliases", "kind", "resource")

    def __init__(self, kind: Kind, resource: Resource) -> None:
        self.kind = kind
        self.resource = resource
        self.aliases: list[object] = []
        self.abandoned: str | None = None

    def __repr__(self) -> str:
        return f"<Creation of {self.kind.describe(self.resource)}>"

    def update(self, **identity: Any) -> Resource:
        """
        Add what creating the thing revealed (a pid, a container id) to its
        identity; return the updated resource.
        """
        self.resource = attrs.evolve(
            self.resource, identity={**self.resource.identity, **identity}
        )
        return self.resource

    def alias(self, *handles: object) -> None:
        """
        Make *handles* (the Python object that stands for the thing, its path)
        find the resource in :meth:`~cleanroom.Scope.keep`,
        :meth:`~cleanroom.Scope.release`, :meth:`~cleanroom.Scope.forget` and
        :meth:`~cleanroom.Scope.resource_of`. A path is an alias by its
        absolute text.
        """
        self.aliases.extend(handles)

    def abandon(self, reason: str = "nothing was created") -> None:
        """
        Say that nothing was created after all (a name was taken, another will
        be tried): the intent is dropped and nothing is deleted.
        """
        self.abandoned = reason
