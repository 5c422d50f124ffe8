"""
Static checks of the public API's types: mypy must accept this file as it is.

Nothing here is run; ``assert_type`` fails type checking when an inferred type
differs from the one written.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, assert_type

import cleanroom
from cleanroom import (
    CleanupError,
    Level,
    Outcome,
    Policy,
    Registry,
    Resource,
    Scope,
    current_scope,
    managed_resources,
    register,
    with_cleanup,
)
from cleanroom.unittest import CleanroomTestCase, IsolatedAsyncioCleanroomTestCase


class Connection:
    def close(self) -> None: ...


class AsyncConnection:
    async def aclose(self) -> None: ...


@with_cleanup
def bare(count: int, label: str = "") -> list[str]:
    return [label] * count


@with_cleanup(cleanup_level="pods", wait_after=5)
def configured(count: int) -> int:
    return count


@with_cleanup(level="all", on_failure="clean", force=True, timeout=None)
async def configured_async(name: str) -> bytes:
    return name.encode()


@with_cleanup
async def bare_async() -> None:
    scope = current_scope()
    assert_type(await scope.arelease(scope.track("process", "worker")), None)


def check_decorators() -> None:
    assert_type(bare(2), list[str])
    assert_type(bare(2, label="x"), list[str])
    assert_type(configured(1), int)


async def check_async_decorators() -> None:
    assert_type(await configured_async("x"), bytes)
    assert_type(await bare_async(), None)


def check_scope() -> None:
    with managed_resources("demo", level="pods") as scope:
        assert_type(scope, Scope)
        assert_type(scope.add(Connection()), Connection)
        assert_type(scope.add(Connection(), lambda conn: conn.close()), Connection)
        assert_type(scope.add(AsyncConnection(), kind="websocket"), AsyncConnection)
        assert_type(scope.track("jobs", "evaluation-job-1"), Resource)
        assert_type(scope.reserve("process", "vm-1"), Resource)
        assert_type(scope.child("inner"), Scope)
        assert_type(scope.tempdir(), Path)
        assert_type(scope.tempfile(suffix=".json"), Path)
        assert_type(scope.track_path("out"), Path)
        assert_type(scope.track_glob("*.log", "."), Resource)
        assert_type(scope.watch(".", ["*.tmp"]), Resource)
        assert_type(scope.popen(["true"]), subprocess.Popen[Any])
        assert_type(scope.track_pid(1), Resource)
        assert_type(scope.resources(), list[Resource])
        assert_type(scope.policy, Policy)
        assert_type(scope.outcome, Outcome | None)
        assert_type(scope.enter_context(managed_resources()), Scope)
        assert_type(scope.pop_all(), Scope)
        scope.keep(reason="debugging")
        assert_type(managed_resources(cleanup_level="all"), Scope)


async def check_async_scope() -> None:
    async with managed_resources() as scope:
        assert_type(scope, Scope)
        assert_type(scope.add(AsyncConnection()), AsyncConnection)
        assert_type(await scope.aclose(), None)


def check_entry_points() -> None:
    assert_type(current_scope(), Scope)
    assert_type(register(Connection()), Connection)
    assert_type(Registry.default(), Registry)
    assert_type(Registry.default().session, Scope)
    assert_type(cleanroom.get_level("pods"), Level)
    assert_type(cleanroom.PODS, Level)
    assert_type(cleanroom.__version__, str)


def check_errors(error: CleanupError) -> None:
    assert_type(error.resources, tuple[Resource, ...])
    assert_type(error.exceptions[0], Exception)


class CheckTestCase(CleanroomTestCase):
    cleanroom_policy: ClassVar[Mapping[str, Any]] = {"level": "pods"}

    def test_scopes(self) -> None:
        assert_type(self.cleanroom, Scope)
        assert_type(self.cleanroom_class, Scope)
        assert_type(type(self).cleanroom_class, Scope)


class CheckAsyncTestCase(IsolatedAsyncioCleanroomTestCase):
    async def test_scope(self) -> None:
        assert_type(self.cleanroom, Scope)
