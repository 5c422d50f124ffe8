"""
The fixtures that close the scopes of async tests inside the event loop that
ran them.

An async fixture tears down in its test's loop, and the async plugins keep
that loop open until it has: anyio's plugin runs its runner for as long as an
async fixture holds it, pytest-asyncio closes a loop only after the async
fixtures that used it. So each of cleanroom's fixtures has companions here,
async fixtures that depend on it, enter its scope in the loop and close it
there: one per fixture scope for anyio's plugin, and one per fixture scope and
wider loop scope for pytest-asyncio's. The pytest plugin puts the right one
before the fixtures of an async test that could use the scope, and registers
these fixtures as a plugin the first time it does.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

import pytest

from ._core._scope import Scope

#: pytest's fixture scopes, narrowest first; pytest-asyncio's loop scopes too.
SCOPES: Final = ("function", "class", "module", "package", "session")

#: cleanroom's fixture of each fixture scope.
FIXTURES: Final = {
    "function": "cleanroom",
    "class": "cleanroom_class",
    "module": "cleanroom_module",
    "session": "cleanroom_session",
}

Hold = Callable[[Scope], AbstractAsyncContextManager[None]]


def anyio_name(scope: str) -> str:
    """Name the companion of the *scope* fixture for anyio's plugin."""
    return f"_cleanroom_{scope}_in_anyio"


def asyncio_name(scope: str, loop_scope: str) -> str:
    """Name the companion of the *scope* fixture for pytest-asyncio's *loop_scope*."""
    return f"_cleanroom_{scope}_in_asyncio_{loop_scope}_loop"


def _closer(hold: Hold, fixture: str, *extra: str) -> Callable[..., Any]:
    """
    Return an async generator function that holds the scope that *fixture*
    gives while the test's loop runs, taking *fixture* and *extra* by name.
    """

    async def closer(**kwargs: Any) -> AsyncIterator[None]:
        async with hold(kwargs[fixture]):
            yield

    closer.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY)
            for name in (fixture, *extra)
        ]
    )
    return closer


def companions(hold: Hold, *, asyncio: bool) -> types.ModuleType:
    """
    Return the companion fixtures, in a module for pytest to register as a
    plugin; pytest-asyncio's only when *asyncio* is true (it is installed).
    """
    plugin = types.ModuleType(f"{__name__}.companions")
    for scope, fixture in FIXTURES.items():
        # A wider one is made again when anyio_backend's parameter changes.
        extra = () if scope == "function" else ("anyio_backend",)
        name = anyio_name(scope)
        closer = _closer(hold, fixture, *extra)
        setattr(plugin, name, pytest.fixture(closer, scope=scope, name=name))  # type: ignore[call-overload]
    if not asyncio:
        return plugin
    import pytest_asyncio

    for scope, fixture in FIXTURES.items():
        for loop_scope in SCOPES[SCOPES.index(scope) :]:
            name = asyncio_name(scope, loop_scope)
            closer = _closer(hold, fixture)
            setattr(
                plugin,
                name,
                pytest_asyncio.fixture(  # type: ignore[call-overload]
                    closer, scope=scope, loop_scope=loop_scope, name=name
                ),
            )
    return plugin
