"""
Tests for the ``task`` kind: ``Scope.start_soon`` on asyncio and trio.
"""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

import cleanroom
from cleanroom import (
    CleanupError,
    CleanupTimeoutError,
    Resource,
    Scope,
    ScopeStateError,
)
from cleanroom.kinds import tasks

pytestmark = pytest.mark.anyio


async def sleep_forever(log: list[str], tag: str) -> None:
    try:
        await anyio.sleep_forever()
    finally:
        log.append(f"{tag} ended")


class TestStartSoon:
    async def test_runs_the_function_with_its_arguments(self) -> None:
        """The function runs in the background with the arguments given."""
        got: list[tuple[int, str]] = []
        ran = anyio.Event()

        async def work(number: int, word: str) -> None:
            got.append((number, word))
            ran.set()

        async with Scope() as scope:
            scope.start_soon(work, 1, "one")
            with anyio.fail_after(10):
                await ran.wait()
        assert got == [(1, "one")]

    async def test_returns_a_task_resource(self) -> None:
        """The handle is a resource of kind 'task' named after the function."""
        log: list[str] = []
        async with Scope("named") as scope:
            default = scope.start_soon(sleep_forever, log, "a")
            named = scope.start_soon(sleep_forever, log, "b", name="reader")
            assert isinstance(default, Resource)
            assert (default.kind, default.name) == ("task", "sleep_forever")
            assert (named.kind, named.name) == ("task", "reader")
            assert default.scope == "named"
            assert not default.declarative
            assert scope.resources() == [named, default]

    async def test_the_task_sees_the_current_scope(self) -> None:
        """The task runs in a copy of the caller's context."""
        seen: list[Scope] = []
        ran = anyio.Event()

        async def look() -> None:
            seen.append(cleanroom.current_scope())
            ran.set()

        async with Scope() as scope:
            scope.start_soon(look)
            with anyio.fail_after(10):
                await ran.wait()
        assert seen == [scope]

    async def test_close_cancels_and_awaits_a_running_task(self) -> None:
        """A running task is cancelled, and has ended when aclose() returns."""
        log: list[str] = []
        started = anyio.Event()

        async def work() -> None:
            started.set()
            await sleep_forever(log, "work")

        async with Scope() as scope:
            scope.start_soon(work)
            with anyio.fail_after(10):
                await started.wait()
        assert log == ["work ended"]
        assert scope.resources() == []

    async def test_a_task_closed_before_it_started(self) -> None:
        """A task closed before its first step still starts, so its finally runs."""
        log: list[str] = []
        scope = Scope()
        scope.start_soon(sleep_forever, log, "early")
        await scope.aclose()
        assert log == ["early ended"]
        assert scope.resources() == []

    async def test_a_finished_task_is_cleaned_without_error(self) -> None:
        """A task that ended on its own counts as cleaned."""
        done = anyio.Event()

        async def quick() -> None:
            done.set()

        async with Scope() as scope:
            scope.start_soon(quick)
            with anyio.fail_after(10):
                await done.wait()
            await anyio.lowlevel.checkpoint()
        assert scope.dispositions == ()

    async def test_a_task_error_is_a_cleanup_failure(self) -> None:
        """What a task raised is reported, naming the task, when the scope closes."""
        failed = anyio.Event()

        async def broken() -> None:
            failed.set()
            raise ValueError("broken task")

        with pytest.raises(CleanupError) as info:
            async with Scope("errors") as scope:
                handle = scope.start_soon(broken)
                with anyio.fail_after(10):
                    await failed.wait()
        error = info.value
        assert len(error.exceptions) == 1
        assert isinstance(error.exceptions[0], ValueError)
        assert error.resources == (handle,)
        assert f"task '{handle.name}'" in str(error)
        assert handle.name.endswith(".broken")
        assert [d.state for d in scope.dispositions] == [cleanroom.State.FAILED]

    async def test_tasks_are_cleaned_after_a_failed_body(self) -> None:
        """A failed body's tasks are cancelled too, and its error propagates."""
        log: list[str] = []
        with pytest.raises(KeyError):
            async with Scope() as scope:
                scope.start_soon(sleep_forever, log, "task")
                await anyio.lowlevel.checkpoint()
                raise KeyError("body")
        assert log == ["task ended"]

    async def test_adjacent_tasks_are_cancelled_together(self) -> None:
        """Adjacent tasks are cancelled concurrently: their endings overlap."""
        count = 3
        ending = 0
        everyone = anyio.Event()
        started = 0
        all_started = anyio.Event()

        async def slow_to_end() -> None:
            nonlocal ending, started
            started += 1
            if started == count:
                all_started.set()
            try:
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    ending += 1
                    if ending == count:
                        everyone.set()
                    # Only returns when every task is ending at the same time.
                    await everyone.wait()

        async with Scope(timeout=10) as scope:
            for _ in range(count):
                scope.start_soon(slow_to_end)
            with anyio.fail_after(10):
                await all_started.wait()
        assert ending == count

    async def test_a_task_with_a_task_group(self) -> None:
        """A task running its own task group is cancelled without any error."""
        log: list[str] = []
        started = anyio.Event()

        async def supervisor() -> None:
            async with anyio.create_task_group() as group:
                group.start_soon(sleep_forever, log, "child 1")
                group.start_soon(sleep_forever, log, "child 2")
                started.set()
                await sleep_forever(log, "supervisor")

        async with Scope() as scope:
            scope.start_soon(supervisor)
            with anyio.fail_after(10):
                await started.wait()
        assert sorted(log) == ["child 1 ended", "child 2 ended", "supervisor ended"]
        assert scope.dispositions == ()

    async def test_an_error_in_a_task_group(self) -> None:
        """A task group's error in a task is reported as that task's failure."""
        failed = anyio.Event()

        async def broken() -> None:
            failed.set()
            raise ValueError("child failed")

        async def supervisor() -> None:
            async with anyio.create_task_group() as group:
                group.start_soon(broken)
                await anyio.sleep_forever()

        with pytest.raises(CleanupError) as info:
            async with Scope() as scope:
                scope.start_soon(supervisor)
                with anyio.fail_after(10):
                    await failed.wait()
                # Let the group end on its own error.
                for _ in range(10):
                    await anyio.lowlevel.checkpoint()
        (error,) = info.value.exceptions
        assert error.subgroup(ValueError) is not None  # type: ignore[attr-defined]

    async def test_lifo_with_other_cleanups(self) -> None:
        """Tasks are cancelled in their place in the stack, last in first out."""
        log: list[str] = []
        async with Scope() as scope:
            scope.callback(log.append, "first pushed")
            scope.start_soon(sleep_forever, log, "task")
            await anyio.lowlevel.checkpoint()
            scope.callback(log.append, "last pushed")
        assert log == ["last pushed", "task ended", "first pushed"]

    async def test_a_task_that_ignores_cancellation_is_bounded(self) -> None:
        """A task shielding itself past the timeout is reported as timed out."""
        release = anyio.Event()
        finished = anyio.Event()
        started = anyio.Event()

        async def stubborn() -> None:
            try:
                with anyio.CancelScope(shield=True):
                    started.set()
                    await release.wait()
            finally:
                finished.set()

        with pytest.raises(CleanupError) as info:
            async with Scope(timeout=0.1) as scope:
                scope.start_soon(stubborn)
                with anyio.fail_after(10):
                    await started.wait()
        assert isinstance(info.value.exceptions[0], CleanupTimeoutError)
        release.set()
        with anyio.fail_after(10):
            await finished.wait()

    async def test_a_task_may_be_kept(self) -> None:
        """A kept task is left running and reported as kept."""
        release = anyio.Event()
        finished = anyio.Event()

        async def until_released() -> None:
            await release.wait()
            finished.set()

        async with Scope() as scope:
            handle = scope.start_soon(until_released)
            scope.keep(handle, "still needed")
        (disposition,) = scope.dispositions
        assert disposition.state is cleanroom.State.KEPT
        assert disposition.reason == "still needed"
        assert not finished.is_set()
        release.set()
        with anyio.fail_after(10):
            await finished.wait()

    async def test_release_cancels_now(self) -> None:
        """arelease() cancels and awaits the task at once and stops tracking it."""
        log: list[str] = []
        async with Scope() as scope:
            handle = scope.start_soon(sleep_forever, log, "released")
            scope.callback(log.append, "callback")
            await anyio.lowlevel.checkpoint()
            await scope.arelease(handle)
            assert log == ["released ended"]
            assert scope.resources() == []
        assert log == ["released ended", "callback"]

    async def test_sync_release_refuses_inside_the_loop(self) -> None:
        """A sync release() of a task points to arelease() and keeps tracking it."""
        log: list[str] = []
        async with Scope() as scope:
            handle = scope.start_soon(sleep_forever, log, "task")
            with pytest.raises(ScopeStateError, match=r"arelease"):
                scope.release(handle)
            assert scope.resources() == [handle]
        assert log == ["task ended"]

    async def test_forget_leaves_the_task_running(self) -> None:
        """A forgotten task is no longer tracked and keeps running."""
        log: list[str] = []
        release = anyio.Event()
        finished = anyio.Event()

        async def until_released() -> None:
            await release.wait()
            finished.set()

        async with Scope() as scope:
            handle = scope.start_soon(until_released)
            tracked = scope.start_soon(sleep_forever, log, "tracked")
            scope.forget(handle)
            assert scope.resources() == [tracked]
        assert log == ["tracked ended"]
        assert not finished.is_set()
        release.set()
        with anyio.fail_after(10):
            await finished.wait()

    async def test_sync_close_inside_the_loop_points_to_aclose(self) -> None:
        """A scope holding a task refuses a sync close() inside the loop."""
        log: list[str] = []
        scope = Scope()
        scope.start_soon(sleep_forever, log, "task")
        with pytest.raises(ScopeStateError, match=r"aclose"):
            scope.close()
        await scope.aclose()
        assert log == ["task ended"]


class TestBadInput:
    async def test_coroutine_object(self) -> None:
        """Passing a coroutine instead of a function is a TypeError that says so."""
        log: list[str] = []
        coroutine = sleep_forever(log, "never")
        async with Scope() as scope:
            with pytest.raises(TypeError, match=r"start_soon\(fn, \*args\)"):
                scope.start_soon(coroutine)  # type: ignore[arg-type]
            assert scope.resources() == []

    async def test_not_callable(self) -> None:
        """A non-callable is refused by name."""
        async with Scope() as scope:
            with pytest.raises(TypeError, match=r"not 42"):
                scope.start_soon(42)  # type: ignore[arg-type]

    async def test_sync_function(self) -> None:
        """A function that returns no awaitable is refused, naming what it returned."""

        def plain() -> int:
            return 7

        async with Scope() as scope:
            with pytest.raises(TypeError, match=r"returned 7"):
                scope.start_soon(plain)  # type: ignore[arg-type]
            assert scope.resources() == []

    async def test_bad_name(self) -> None:
        """A task name must be a string."""
        log: list[str] = []
        async with Scope() as scope:
            with pytest.raises(TypeError, match=r"name must be a str"):
                scope.start_soon(sleep_forever, log, "x", name=3)  # type: ignore[arg-type]


class TestOutsideALoop:
    def test_no_running_loop(self) -> None:
        """Without a running event loop, start_soon() raises ScopeStateError."""
        called: list[str] = []

        async def work() -> None:
            called.append("ran")

        scope = Scope()
        with pytest.raises(ScopeStateError, match=r"no asyncio or trio event loop"):
            scope.start_soon(work)
        assert called == []
        assert scope.resources() == []

    def test_from_a_worker_thread(self) -> None:
        """A worker thread of a loop has no running loop of its own."""

        async def work() -> None:
            pass

        async def main() -> None:
            scope = Scope()
            with pytest.raises(ScopeStateError):
                await anyio.to_thread.run_sync(scope.start_soon, work)

        anyio.run(main)

    @pytest.mark.parametrize("backend", ["asyncio", "trio"])
    def test_a_task_of_an_ended_loop(self, backend: str) -> None:
        """A scope closed after its loop ended still reports the task's error."""
        scope = Scope()
        log: list[str] = []

        async def broken() -> None:
            raise OSError("lost")

        async def main() -> None:
            scope.start_soon(broken)
            scope.start_soon(sleep_forever, log, "cut short")
            await anyio.sleep(0.01)

        anyio.run(main, backend=backend)
        assert log == ["cut short ended"]
        with pytest.raises(CleanupError) as info:
            scope.close()
        assert [type(exc) for exc in info.value.exceptions] == [OSError]


class TestTrio:
    def test_a_trio_nursery_in_a_task(self) -> None:
        """A trio nursery's Cancelled group inside a task is no error."""
        trio = pytest.importorskip("trio")
        log: list[str] = []

        async def supervisor() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sleep_forever, log, "child")
                await sleep_forever(log, "supervisor")

        async def main() -> None:
            async with Scope() as scope:
                scope.start_soon(supervisor)
                await trio.sleep(0.01)
            assert scope.dispositions == ()

        trio.run(main)
        assert sorted(log) == ["child ended", "supervisor ended"]


class TestKind:
    def test_registered_by_name_and_alias(self) -> None:
        """'task' and 'tasks' name the same in-process runtime kind."""
        kind = cleanroom.get_kind("tasks")
        assert kind is cleanroom.get_kind("task") is tasks.TASKS
        assert kind.category == "runtime"
        assert not kind.external
        assert kind.concurrent

    def test_cleaned_at_every_level(self) -> None:
        """Tasks are in-process: even level 'none' cleans them."""
        policy = cleanroom.Policy(level="none")
        decision = policy.decide(tasks.TASKS, cleanroom.Outcome.FAILED)
        assert decision is cleanroom.Decision.CLEAN
