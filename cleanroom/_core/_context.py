"""
The context variable that holds the current scope, the hooks that hear of
cleaned objects, and async-library detection.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._scope import Scope

current: ContextVar[Scope | None] = ContextVar("cleanroom_current_scope", default=None)

#: Called with each object a scope has just cleaned and the scope's name. Leak
#: checks that follow cleaned objects add themselves while they run; the core
#: never imports them.
cleaned_hooks: list[Callable[[object, str], None]] = []


class LeakCheck(Protocol):
    """What a scope needs of the leak check its ``check_leaks`` setting asks for."""

    name: str | None

    @property
    def running(self) -> bool:
        """Whether the check has started and not stopped."""

    def start(self) -> None:
        """Take the baselines."""

    async def astart(self) -> None:
        """Take the baselines inside an event loop."""

    def stop(self) -> object:
        """Wait for stragglers, and find what is left."""

    async def astop(self) -> object:
        """Wait for stragglers with the loop running, and find what is left."""

    def conclude(self, exc: BaseException | None = None) -> None:
        """Raise or warn about what was found, or note it on *exc*."""


#: What ``check_leaks=`` takes: ``True``/``"raise"``, ``"warn"``,
#: ``False``/``"off"``/``None``, or a mapping of ``no_leaks()`` settings.
CheckLeaks = bool | str | Mapping[str, Any] | None


def running_async_library() -> str | None:
    """Return ``"asyncio"`` or ``"trio"`` when called from inside an event loop."""
    # No loop can run before asyncio is imported; not importing it here keeps
    # ``import cleanroom`` (and so pytest's start-up) fast.
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None and asyncio._get_running_loop() is not None:
        return "asyncio"
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            return None
        return "trio"
    return None
