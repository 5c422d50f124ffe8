"""
The context variable that holds the current scope, and async-library detection.
"""

from __future__ import annotations

import sys
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._scope import Scope

current: ContextVar[Scope | None] = ContextVar("cleanroom_current_scope", default=None)


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
