"""
The state that the parts of :class:`~cleanroom.Scope` share, declared once so
that each part (unwinding, settling, handles, creating, families) can be read
and type-checked on its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from ._entries import Entry
    from ._policy import Outcome, Policy
    from ._registry import Registry
    from ._resource import Disposition, Kind, Resource
    from ._scope import Scope


class ScopeState:
    """
    What every part of a scope may read and change; :class:`~cleanroom.Scope`
    sets it.
    """

    def _whole(self) -> Scope:
        """This part as the scope it is part of, for those that take a scope."""
        return cast("Scope", self)

    if TYPE_CHECKING:
        _exit_callbacks: deque[tuple[bool, Any]]
        _handles: dict[object, Entry]
        _kept: dict[int, str]
        _dispositions: list[Disposition]
        _collected: int
        _policy: Policy | None
        _outcome: Outcome | None
        _has_async: bool
        _registry: Registry | None
        _families: dict[str, object]

        @property
        def name(self) -> str: ...
        @property
        def policy(self) -> Policy: ...
        @property
        def registry(self) -> Registry: ...
        def _resolve_policy_early(self) -> None: ...
        def _find(self, handle: object) -> Entry: ...
        def _remove(self, entry: Entry) -> None: ...
        def _register(
            self, kind: Kind, resource: Resource, *, keys: Iterable[object] = ()
        ) -> Resource: ...
        def _settle_sync(
            self,
            group: list[Entry],
            outcome: Outcome,
            failures: list[tuple[Resource, BaseException]],
        ) -> int: ...
        async def _settle_async(
            self,
            group: list[Entry],
            outcome: Outcome,
            failures: list[tuple[Resource, BaseException]],
        ) -> int: ...
