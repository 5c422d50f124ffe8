"""
Async cost: 200 cleanups that each sleep 50 ms, added with one user-named kind,
closed by a Scope (concurrently) against an AsyncExitStack (one by one).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from _measure import Result, interleaved

from cleanroom import Scope

CLEANUPS = 200
SLEEP = 0.05


class _Connection:
    async def aclose(self) -> None:
        await asyncio.sleep(SLEEP)


def _exit_stack() -> float:
    async def main() -> float:
        connections = [_Connection() for _ in range(CLEANUPS)]
        started = time.perf_counter()
        async with contextlib.AsyncExitStack() as stack:
            for connection in connections:
                stack.push_async_callback(connection.aclose)
        return time.perf_counter() - started

    return asyncio.run(main())


def _scope() -> float:
    async def main() -> float:
        connections = [_Connection() for _ in range(CLEANUPS)]
        started = time.perf_counter()
        async with Scope() as scope:
            for connection in connections:
                scope.add(connection, kind="connection")
        return time.perf_counter() - started

    return asyncio.run(main())


def run(repetitions: int) -> list[Result]:
    """Measure both; the exit stack once, as it takes CLEANUPS x SLEEP seconds."""
    stack = interleaved(1, {"stack": _exit_stack})["stack"]
    scope = interleaved(repetitions, {"scope": _scope})["scope"]
    return [
        Result(
            f"{CLEANUPS} async cleanups of {SLEEP * 1e3:g} ms, Scope vs AsyncExitStack",
            stack / scope,
            50.0,
            "x faster",
            higher_is_better=True,
            detail=f"Scope {scope * 1e3:.1f} ms, AsyncExitStack {stack:.2f} s",
        )
    ]
