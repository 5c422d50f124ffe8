"""
Static checks of the leak-detection API's types: mypy must accept this file as
it is. Nothing here is run.
"""

from __future__ import annotations

from typing import Literal, assert_type

import cleanroom
from cleanroom import LeakError, no_leaks
from cleanroom.exceptions import LeakWarning
from cleanroom.leaks import DEFAULT_ALLOW, Allow, Leak, LeakCheck, memory_growth


def sync_block() -> None:
    with no_leaks(grace=0.5, allow=Allow(threads="pool-*")) as check:
        pass
    assert_type(check, LeakCheck)
    assert_type(check.leaks, list[Leak])
    assert_type(check.report(), str)


async def async_block() -> None:
    async with no_leaks(tasks=True, on_leak="warn") as check:
        pass
    assert_type(check.leaks, list[Leak])
    assert_type(await check.astop(), list[Leak])


def records(error: LeakError, leak: Leak) -> None:
    assert_type(error.leaks, tuple[Leak, ...])
    assert_type(
        leak.category,
        Literal["thread", "task", "fd", "process", "object", "memory"],
    )
    assert_type(leak.details, tuple[str, ...])
    assert_type(DEFAULT_ALLOW | Allow(fds="pipe"), Allow)
    assert_type(memory_growth(lambda: None, runs=3), float)
    assert issubclass(LeakWarning, Warning)


def scopes() -> None:
    with cleanroom.managed_resources(check_leaks=True):
        pass
    with cleanroom.managed_resources(check_leaks={"grace": 0.1}):
        pass

    @cleanroom.with_cleanup(check_leaks="warn")
    def work() -> int:
        return 1

    assert_type(work(), int)
