"""
Reliability: misbehaving cleanups, cancellation, threads, bad input, and the
order in which async cleanups run.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import cleanroom
from cleanroom import (
    CleanupError,
    CleanupTimeoutError,
    PolicyError,
    Scope,
    ScopeStateError,
    State,
    UnknownKindError,
)

# Of every ten cleanups, those in these positions misbehave: 30 % in all.
RAISING = (0, 5)
HANGING = (7,)
# A hang lasts far longer than any test; the timeout must cut it.
HANG = 1000.0
# A generous bound that only a hang that was not cut would exceed.
BOUND = 30.0


class Item:
    """A tracked object that knows how its cleanup should behave."""

    def __init__(self, index: int, behaviour: str = "ok") -> None:
        self.index = index
        self.behaviour = behaviour

    def __repr__(self) -> str:
        return f"<Item {self.index} {self.behaviour}>"


def behaviour(index: int) -> str:
    position = index % 10
    if position in RAISING:
        return "raise"
    if position in HANGING:
        return "hang"
    return "ok"


def items(count: int) -> list[Item]:
    return [Item(index, behaviour(index)) for index in range(count)]


class Calls:
    """Counts cleanup calls per item, safely across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[int] = Counter()

    def __call__(self, item: Item) -> None:
        with self._lock:
            self.counts[item.index] += 1


def misbehave(item: Item, release: threading.Event) -> None:
    """Clean *item* as it says: raise, hang until *release* is set, or succeed."""
    if item.behaviour == "raise":
        raise RuntimeError(f"cleanup of item {item.index} failed")
    if item.behaviour == "hang":
        release.wait(HANG)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event that lets abandoned hanging threads finish after the test."""
    event = threading.Event()
    yield event
    event.set()


def check_failures(error: CleanupError, tracked: list[Item], scope: Scope) -> None:
    """Every misbehaving item is reported once, with the right error and name."""
    bad = {f"item-{item.index}": item for item in tracked if item.behaviour != "ok"}
    assert len(bad) * 10 == len(tracked) * 3
    assert len(error.exceptions) == len(bad)
    assert len(error.resources) == len(bad)
    assert {resource.name for resource in error.resources} == set(bad)
    for exc, resource in zip(error.exceptions, error.resources, strict=True):
        item = bad[resource.name]
        if item.behaviour == "raise":
            assert isinstance(exc, RuntimeError)
            assert str(exc) == f"cleanup of item {item.index} failed"
        else:
            assert isinstance(exc, CleanupTimeoutError)
        assert any(resource.name in note for note in exc.__notes__)
    failed = [d for d in scope.dispositions if d.state is State.FAILED]
    assert {d.resource.name for d in failed} == set(bad)


class TestMisbehavingCleanupsSync:
    @pytest.mark.parametrize("concurrency", [4, 100])
    def test_raising_and_hanging(
        self, concurrency: int, release: threading.Event
    ) -> None:
        """With 30 % of cleanups raising or hanging, all others run, hangs are cut."""
        calls = Calls()
        tracked = items(60)

        def cleanup(item: Item) -> None:
            calls(item)
            misbehave(item, release)

        scope = Scope(timeout=0.2, concurrency=concurrency)
        below: list[str] = []
        scope.callback(below.append, "callback below")
        for item in tracked:
            scope.add(item, cleanup, kind="flaky", name=f"item-{item.index}")
        started = time.monotonic()
        with pytest.raises(CleanupError) as info:
            scope.close()
        assert time.monotonic() - started < BOUND
        assert calls.counts == Counter(range(60))
        assert below == ["callback below"]
        check_failures(info.value, tracked, scope)

    def test_raising_plain_objects(self) -> None:
        """Raising cleanups of plain objects (run inline, in order) stop no other."""
        calls = Calls()
        tracked = [Item(i, "raise" if i % 10 in (0, 3, 6) else "ok") for i in range(50)]
        order: list[int] = []

        def cleanup(item: Item) -> None:
            calls(item)
            order.append(item.index)
            if item.behaviour == "raise":
                raise RuntimeError(f"cleanup of item {item.index} failed")

        scope = Scope()
        for item in tracked:
            scope.add(item, cleanup, name=f"item-{item.index}")
        with pytest.raises(CleanupError) as info:
            scope.close()
        assert order == list(range(49, -1, -1))
        assert calls.counts == Counter(range(50))
        assert len(info.value.exceptions) == 15

    def test_groups_between_callbacks(self, release: threading.Event) -> None:
        """Failures in one group do not stop the callbacks and groups below it."""
        calls = Calls()
        log: list[str] = []
        tracked = items(20)

        def cleanup(item: Item) -> None:
            calls(item)
            misbehave(item, release)

        scope = Scope(timeout=0.2)
        for item in tracked:
            scope.callback(log.append, f"before {item.index}")
            scope.add(item, cleanup, kind="flaky", name=f"item-{item.index}")
        with pytest.raises(CleanupError) as info:
            scope.close()
        assert calls.counts == Counter(range(20))
        assert log == [f"before {index}" for index in range(19, -1, -1)]
        check_failures(info.value, tracked, scope)

    def test_warn_instead_of_raise(self, release: threading.Event) -> None:
        """With on_error='warn', every failure becomes a warning and all run."""
        calls = Calls()
        tracked = items(20)

        def cleanup(item: Item) -> None:
            calls(item)
            misbehave(item, release)

        scope = Scope(timeout=0.2, on_error="warn")
        for item in tracked:
            scope.add(item, cleanup, kind="flaky", name=f"item-{item.index}")
        with pytest.warns(cleanroom.CleanupWarning) as record:
            scope.close()
        assert calls.counts == Counter(range(20))
        assert len(record) == 6

    def test_body_error_is_kept(self, release: threading.Event) -> None:
        """The body's exception is the context of the CleanupError."""
        tracked = items(10)

        def cleanup(item: Item) -> None:
            misbehave(item, release)

        with pytest.raises(CleanupError) as info, Scope(timeout=0.2) as scope:
            for item in tracked:
                scope.add(item, cleanup, kind="flaky", name=f"item-{item.index}")
            raise KeyError("body")
        assert isinstance(info.value.__context__, KeyError)
        check_failures(info.value, tracked, scope)


@pytest.mark.anyio
class TestMisbehavingCleanupsAsync:
    @pytest.mark.parametrize(("kind", "count"), [("flaky", 60), ("object", 20)])
    async def test_raising_and_hanging(self, kind: str, count: int) -> None:
        """With 30 % of async cleanups raising or hanging, all others run."""
        calls = Calls()
        tracked = items(count)

        async def cleanup(item: Item) -> None:
            calls(item)
            await anyio.lowlevel.checkpoint()
            if item.behaviour == "raise":
                raise RuntimeError(f"cleanup of item {item.index} failed")
            if item.behaviour == "hang":
                await anyio.sleep(HANG)

        scope = Scope(timeout=0.2)
        below: list[str] = []
        scope.callback(below.append, "callback below")
        for item in tracked:
            scope.add(item, cleanup, kind=kind, name=f"item-{item.index}")
        started = time.monotonic()
        with pytest.raises(CleanupError) as info:
            await scope.aclose()
        assert time.monotonic() - started < BOUND
        assert calls.counts == Counter(range(count))
        assert below == ["callback below"]
        check_failures(info.value, tracked, scope)

    async def test_sync_cleanups_of_a_named_kind(self) -> None:
        """Raising sync cleanups of a named kind, closed from async code, stop none."""
        calls = Calls()
        tracked = [Item(i, "raise" if i % 10 in (0, 3, 6) else "ok") for i in range(30)]

        def cleanup(item: Item) -> None:
            # From async code these run inline, on the loop's thread, as objects
            # bound to the loop require; so none of them may hang here.
            calls(item)
            if item.behaviour == "raise":
                raise RuntimeError(f"cleanup of item {item.index} failed")

        scope = Scope(timeout=0.2)
        for item in tracked:
            scope.add(item, cleanup, kind="flaky", name=f"item-{item.index}")
        with pytest.raises(CleanupError) as info:
            await scope.aclose()
        assert calls.counts == Counter(range(30))
        assert len(info.value.exceptions) == 9
        assert all(isinstance(exc, RuntimeError) for exc in info.value.exceptions)

    async def test_misbehaving_tasks(self) -> None:
        """Tasks that fail or will not stop are reported; the others are cancelled."""
        tracked = items(20)
        started: set[int] = set()
        all_started = anyio.Event()
        ended: set[int] = set()
        all_ended = anyio.Event()
        never = anyio.Event()

        async def task(item: Item) -> None:
            started.add(item.index)
            if len(started) == len(tracked):
                all_started.set()
            try:
                if item.behaviour == "raise":
                    raise RuntimeError(f"cleanup of item {item.index} failed")
                await anyio.sleep_forever()
            finally:
                if item.behaviour == "hang":
                    with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                        await never.wait()
                ended.add(item.index)
                if len(ended) == len(tracked):
                    all_ended.set()

        scope = Scope(timeout=0.2)
        for item in tracked:
            scope.start_soon(task, item, name=f"item-{item.index}")
        with anyio.fail_after(10):
            await all_started.wait()
        with pytest.raises(CleanupError) as info:
            await scope.aclose()
        check_failures(info.value, tracked, scope)
        never.set()
        with anyio.fail_after(10):
            await all_ended.wait()


class TestCancellation:
    def test_asyncio_task_cancel_during_aclose(self) -> None:
        """task.cancel() while aclose() runs: every cleanup still completes."""
        done: list[str] = []

        async def main() -> None:
            started = asyncio.Event()

            async def slow(item: Item) -> None:
                started.set()
                await asyncio.sleep(0.05)
                done.append(f"item {item.index}")

            async def callback() -> None:
                done.append("callback")

            scope = Scope()
            scope.push_async_callback(callback)
            scope.add(Item(0), slow, weak=False)
            for index in (1, 2, 3):
                scope.add(Item(index), slow, kind="socket", weak=False)
            task = asyncio.create_task(scope.aclose())
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert scope.resources() == []

        asyncio.run(main())
        assert sorted(done[:3]) == ["item 1", "item 2", "item 3"]
        assert done[3:] == ["item 0", "callback"]

    def test_asyncio_cancel_repeatedly(self) -> None:
        """Cancelling again and again does not cut a cleanup short either."""
        done: list[int] = []

        async def main() -> None:
            started = asyncio.Event()

            async def slow(item: Item) -> None:
                started.set()
                for _ in range(20):
                    await asyncio.sleep(0)
                done.append(item.index)

            scope = Scope()
            for index in range(3):
                scope.add(Item(index), slow, weak=False)
            task = asyncio.create_task(scope.aclose())
            await started.wait()
            while not task.done():
                task.cancel()
                await asyncio.sleep(0)
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        assert done == [2, 1, 0]

    def test_asyncio_timeout_during_cleanup(self) -> None:
        """asyncio.timeout() expiring during cleanup: the cleanup completes first."""
        done: list[str] = []

        async def main() -> None:
            async def slow(item: Item) -> None:
                # Expire the enclosing timeout now, in the middle of the cleanup.
                deadline.reschedule(asyncio.get_running_loop().time())
                await asyncio.sleep(0.01)
                await asyncio.sleep(0.01)
                done.append("cleaned")

            with pytest.raises(TimeoutError):
                async with asyncio.timeout(None) as deadline, Scope() as scope:
                    scope.add(Item(0), slow, kind="socket", weak=False)
            assert scope.resources() == []

        asyncio.run(main())
        assert done == ["cleaned"]

    def test_asyncio_timeout_in_the_body(self) -> None:
        """A body cut by asyncio.timeout() is still cleaned, tasks included."""
        log: list[str] = []

        async def main() -> None:
            async def forever() -> None:
                try:
                    await asyncio.sleep(HANG)
                finally:
                    log.append("task ended")

            async def slow(item: Item) -> None:
                await asyncio.sleep(0.01)
                log.append("cleaned")

            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01), Scope() as scope:
                    scope.add(Item(0), slow, weak=False)
                    scope.start_soon(forever)
                    await asyncio.sleep(HANG)

        asyncio.run(main())
        assert log == ["task ended", "cleaned"]

    @pytest.mark.anyio
    async def test_cancel_scope_cancelled_during_cleanup(self) -> None:
        """An enclosing cancel scope cancelled mid-cleanup does not cut it short."""
        done: list[str] = []
        started = anyio.Event()
        cancelled = anyio.Event()

        async def slow(item: Item) -> None:
            started.set()
            await cancelled.wait()
            await anyio.sleep(0.01)
            done.append(f"item {item.index}")

        async def callback() -> None:
            await anyio.sleep(0.01)
            done.append("callback")

        async def canceller(scope: anyio.CancelScope) -> None:
            await started.wait()
            scope.cancel()
            cancelled.set()

        async with anyio.create_task_group() as group:
            with anyio.CancelScope() as outer:
                group.start_soon(canceller, outer)
                async with Scope() as scope:
                    scope.push_async_callback(callback)
                    scope.add(Item(0), slow, weak=False)
                    scope.add(Item(1), slow, kind="socket", weak=False)
                    scope.add(Item(2), slow, kind="socket", weak=False)
                await anyio.lowlevel.checkpoint()
        assert outer.cancelled_caught
        assert sorted(done[:2]) == ["item 1", "item 2"]
        assert done[2:] == ["item 0", "callback"]

    @pytest.mark.anyio
    async def test_fail_after_expiring_during_cleanup(self) -> None:
        """fail_after() expiring mid-cleanup: cleanup completes, then TimeoutError."""
        done: list[str] = []

        async def slow(item: Item) -> None:
            deadline.deadline = anyio.current_time()
            await anyio.sleep(0.01)
            await anyio.sleep(0.01)
            done.append(f"item {item.index}")

        with pytest.raises(TimeoutError):
            with anyio.fail_after(HANG) as deadline:
                async with Scope() as scope:
                    scope.add(Item(0), slow, weak=False)
                    scope.add(Item(1), slow, kind="socket", weak=False)
                await anyio.lowlevel.checkpoint()
        assert done == ["item 1", "item 0"]

    @pytest.mark.anyio
    async def test_fail_after_in_the_body(self) -> None:
        """A body cut by fail_after() is still cleaned, tasks included."""
        log: list[str] = []

        async def forever() -> None:
            try:
                await anyio.sleep_forever()
            finally:
                log.append("task ended")

        async def slow(item: Item) -> None:
            await anyio.sleep(0.01)
            log.append("cleaned")

        with pytest.raises(TimeoutError), anyio.fail_after(0.01):
            async with Scope() as scope:
                scope.add(Item(0), slow, weak=False)
                scope.start_soon(forever)
                await anyio.sleep_forever()
        assert log == ["task ended", "cleaned"]


class TestThreads:
    THREADS = 8

    def hammer(
        self, scope: Scope, per_thread: int, kind: str
    ) -> tuple[Counter[int], list[Item]]:
        """Register from many threads while other threads keep closing."""
        calls = Calls()
        alive: list[Item] = []
        alive_lock = threading.Lock()
        stop = threading.Event()
        errors: list[BaseException] = []

        def register(thread: int) -> None:
            try:
                mine = [Item(thread * per_thread + j) for j in range(per_thread)]
                with alive_lock:
                    alive.extend(mine)
                for j, item in enumerate(mine):
                    scope.add(item, calls, kind=kind)
                    if j % 1000 == 999:
                        scope.close()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        def close() -> None:
            try:
                while not stop.is_set():
                    scope.close()
                    time.sleep(0.0005)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        registrars = [
            threading.Thread(target=register, args=(t,)) for t in range(self.THREADS)
        ]
        closers = [threading.Thread(target=close) for _ in range(2)]
        for thread in registrars + closers:
            thread.start()
        for thread in registrars:
            thread.join()
        stop.set()
        for thread in closers:
            thread.join()
        scope.close()
        assert errors == []
        return calls.counts, alive

    def test_eight_threads_of_ten_thousand(self) -> None:
        """8 threads x 10,000 registrations, concurrent closes: each cleaned once."""
        scope = Scope()
        counts, alive = self.hammer(scope, 10_000, "object")
        assert len(alive) == 80_000
        assert counts == Counter(range(80_000))
        assert scope.resources() == []

    def test_named_kind_cleaned_on_threads(self) -> None:
        """The same with a named kind, whose groups are cleaned on worker threads."""
        scope = Scope()
        counts, alive = self.hammer(scope, 2_000, "counted")
        assert counts == Counter(range(len(alive)))
        assert scope.resources() == []

    def test_scope_per_thread(self) -> None:
        """Threads with scopes of their own never clean each other's objects."""
        calls = Calls()
        per_thread = 10_000

        def work(thread: int) -> None:
            with Scope(f"thread-{thread}") as scope:
                for j in range(per_thread):
                    scope.add(Item(thread * per_thread + j), calls, weak=False)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert calls.counts == Counter(range(8 * per_thread))


def _bad_scope(**settings: Any) -> Callable[[], object]:
    return lambda: Scope(**settings)


class TestBadInput:
    @pytest.mark.parametrize(
        ("settings", "bad", "valid"),
        [
            ({"level": "everything"}, "'everything'", "'none', 'pods', 'all'"),
            ({"level": 3}, "3", "'none', 'pods', 'all'"),
            ({"on_failure": "maybe"}, "'maybe'", "'keep', 'clean'"),
            ({"on_error": "explode"}, "'explode'", "'raise', 'warn'"),
            ({"force": "perhaps"}, "'perhaps'", "true/false"),
            ({"wait": "sometimes"}, "'sometimes'", "true/false"),
            ({"timeout": -1}, "-1", "zero or more seconds"),
            ({"timeout": "soon"}, "'soon'", "number of seconds"),
            ({"wait_after": float("nan")}, "nan", "zero or more seconds"),
            ({"concurrency": 0}, "0", "positive integer"),
            ({"concurrency": 2.5}, "2.5", "positive integer"),
            ({"concurrency": True}, "True", "positive integer"),
        ],
    )
    def test_bad_policy_values(
        self, settings: dict[str, Any], bad: str, valid: str
    ) -> None:
        """A bad policy value fails at once, naming it and what is valid."""
        with pytest.raises(PolicyError) as info:
            Scope(**settings)
        assert bad in str(info.value)
        assert valid in str(info.value)

    @pytest.mark.parametrize(
        "make",
        [
            lambda: cleanroom.managed_resources(level="everything"),
            lambda: cleanroom.with_cleanup(level="everything"),
            lambda: cleanroom.Policy(level="everything"),
            lambda: cleanroom.get_level("everything"),
        ],
    )
    def test_unknown_level_everywhere(self, make: Callable[[], object]) -> None:
        """Every entry point refuses an unknown level, listing the valid ones."""
        with pytest.raises(PolicyError, match=r"'everything'.*'none', 'pods', 'all'"):
            make()

    def test_unknown_policy_setting(self) -> None:
        """An unknown setting is named, with the list of valid ones."""
        with pytest.raises(PolicyError, match=r"'levle'.*'level', 'on_failure'"):
            cleanroom.Policy().evolve(levle="all")

    def test_bad_category(self) -> None:
        """A kind or level with an unknown category lists the valid ones."""
        with pytest.raises(PolicyError, match=r"'weird'.*'runtime', 'record'"):
            cleanroom.BaseKind("thing", category="weird")  # type: ignore[arg-type]
        with pytest.raises(PolicyError, match=r"'weird'.*'runtime', 'record'"):
            cleanroom.Level("custom", categories=["runtime", "weird"])

    def test_unknown_kind(self) -> None:
        """An unknown kind is named, with the registered ones."""
        scope = Scope()
        with pytest.raises(UnknownKindError, match=r"'gadget'; registered: .*'task'"):
            scope.track("gadget", "x")
        with pytest.raises(UnknownKindError, match=r"'gadget'"):
            cleanroom.get_kind("gadget")

    @pytest.mark.parametrize(
        ("call", "message"),
        [
            (lambda s: s.track(3, "x"), r"not int"),
            (lambda s: s.track("task", 3), r"non-empty str, not 3"),
            (lambda s: s.track("task", ""), r"non-empty str, not ''"),
            (lambda s: s.add(object()), r"no aclose\(\), close\(\)"),
            (lambda s: s.add(Item(0), cleanup=42), r"not 42"),
            (lambda s: s.add(3, print, weak=True), r"int objects do not support weak"),
            (lambda s: s.add(Item(0), print, kind=5), r"not int"),
        ],
    )
    def test_wrong_types(self, call: Callable[[Scope], object], message: str) -> None:
        """Wrong argument types raise TypeError naming the bad value."""
        scope = Scope()
        with pytest.raises(TypeError, match=message):
            call(scope)
        assert scope.resources() == []

    def test_empty_kind_name(self) -> None:
        """An empty kind name is refused."""
        with pytest.raises(PolicyError, match=r"must not be empty"):
            Scope().add(Item(0), print, kind="")

    def test_handles_of_another_scope(self) -> None:
        """keep/release/forget refuse what a scope does not track."""
        calls = Calls()
        mine, other = Scope(), Scope()
        item = other.add(Item(0), calls)
        for method in (mine.keep, mine.release, mine.forget):
            with pytest.raises(ScopeStateError, match=r"is not tracked by"):
                method(item)
        with pytest.raises(ScopeStateError, match=r"'nothing' is not tracked"):
            mine.keep("nothing")
        assert calls.counts == Counter()
        other.close()
        assert calls.counts == Counter([0])

    def test_nothing_cleaned_by_mistake(self) -> None:
        """After bad calls, tracked things are intact and cleaned exactly once."""
        calls = Calls()
        scope = Scope()
        tracked = [scope.add(Item(i), calls) for i in range(5)]
        bad_calls: list[Callable[[], object]] = [
            lambda: scope.track("gadget", "x"),
            lambda: scope.add(object()),
            lambda: scope.release(Item(99)),
            lambda: scope.forget(Item(99)),
            lambda: scope.child("c", level="everything"),
        ]
        for bad in bad_calls:
            with pytest.raises((TypeError, ValueError, LookupError, RuntimeError)):
                bad()
        assert calls.counts == Counter()
        assert len(scope.resources()) == 5
        scope.close()
        assert calls.counts == Counter(item.index for item in tracked)

    def test_bad_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A bad CLEANROOM_LEVEL names the variable's value and the valid ones."""
        monkeypatch.setenv("CLEANROOM_LEVEL", "everything")
        with pytest.raises(PolicyError, match=r"'everything'.*'none', 'pods', 'all'"):
            _ = Scope().policy


@pytest.mark.anyio
class TestAsyncGrouping:
    async def test_named_kind_is_concurrent_up_to_the_limit(self) -> None:
        """Adjacent entries of a named kind overlap, at most `concurrency` at once."""
        active = peak = finished = 0
        gate = anyio.Event()
        full = anyio.Event()

        async def cleanup(item: Item) -> None:
            nonlocal active, peak, finished
            active += 1
            peak = max(peak, active)
            if active == 3:
                full.set()
            await gate.wait()
            active -= 1
            finished += 1

        async def watch() -> None:
            await full.wait()
            # Give a fourth cleanup every chance to start, if it could.
            for _ in range(50):
                await anyio.lowlevel.checkpoint()
            assert active == 3
            gate.set()

        scope = Scope(concurrency=3, timeout=10)
        for index in range(10):
            scope.add(Item(index), cleanup, kind="websocket", weak=False)
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(watch)
                await scope.aclose()
        assert peak == 3
        assert finished == 10

    async def test_default_concurrency_runs_all_at_once(self) -> None:
        """With the default settings, 20 adjacent entries all run at once."""
        active = peak = 0
        everyone = anyio.Event()

        async def cleanup(item: Item) -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            if active == 20:
                everyone.set()
            with anyio.fail_after(10):
                await everyone.wait()
            active -= 1

        scope = Scope()
        for index in range(20):
            scope.add(Item(index), cleanup, kind="websocket", weak=False)
        await scope.aclose()
        assert peak == 20

    async def test_plain_objects_and_callbacks_are_strictly_lifo(self) -> None:
        """Without a kind, async objects and callbacks run one at a time, LIFO."""
        active = 0
        order: list[str] = []
        overlaps: list[str] = []

        async def run(label: str) -> None:
            nonlocal active
            active += 1
            if active > 1:
                overlaps.append(label)
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
            order.append(label)
            active -= 1

        async def close_item(item: Item) -> None:
            await run(f"object {item.index}")

        scope = Scope()
        for index in range(6):
            if index % 2:
                scope.push_async_callback(run, f"callback {index}")
            else:
                scope.add(Item(index), close_item, weak=False)
        await scope.aclose()
        assert overlaps == []
        assert order == [
            "callback 5",
            "object 4",
            "callback 3",
            "object 2",
            "callback 1",
            "object 0",
        ]

    async def test_lifo_between_groups(self) -> None:
        """Each group ends before the group below it starts."""
        events: list[tuple[str, str]] = []

        async def cleanup(item: Item) -> None:
            events.append(("start", item.behaviour))
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
            events.append(("end", item.behaviour))

        scope = Scope()
        layout = ["a1", "a1", "b", "b", "b", "a2", "a2"]
        for index, group in enumerate(layout):
            kind = "alpha" if group.startswith("a") else "beta"
            scope.add(Item(index, group), cleanup, kind=kind, weak=False)
        scope.callback(events.append, ("callback", "top"))
        await scope.aclose()
        assert events[0] == ("callback", "top")
        groups = [label for _, label in events[1:]]
        # Group by group, top of the stack first, each start before any end.
        assert groups == ["a2"] * 4 + ["b"] * 6 + ["a1"] * 4
        for start in (1, 5, 11):
            size = {1: 2, 5: 3, 11: 2}[start]
            phases = [phase for phase, _ in events[start : start + 2 * size]]
            assert phases == ["start"] * size + ["end"] * size

    async def test_sync_close_inside_a_loop_points_to_aclose(self) -> None:
        """A sync close() of async cleanups inside a loop refuses, cleaning nothing."""
        calls = Calls()

        async def cleanup(item: Item) -> None:
            calls(item)

        scope = Scope()
        scope.add(Item(0), cleanup, kind="websocket", weak=False)
        with pytest.raises(ScopeStateError, match=r"aclose\(\)"):
            scope.close()
        with pytest.raises(ScopeStateError, match=r"aclose\(\)"), scope:
            pass
        assert calls.counts == Counter()
        await scope.aclose()
        assert calls.counts == Counter([0])


class TestSyncCloseOfAsyncCleanups:
    def test_runs_them_in_a_fresh_loop(self) -> None:
        """Without a running loop, sync close() runs async cleanups in a new loop."""
        order: list[str] = []
        active = peak = 0
        loops: set[int] = set()

        async def cleanup(item: Item) -> None:
            nonlocal active, peak
            loops.add(id(asyncio.get_running_loop()))
            active += 1
            peak = max(peak, active)
            with anyio.fail_after(10):
                while active < 5 and peak < 5:
                    await anyio.lowlevel.checkpoint()
            active -= 1
            order.append(f"item {item.index}")

        async def callback() -> None:
            await anyio.lowlevel.checkpoint()
            order.append("callback")

        with Scope() as scope:
            scope.push_async_callback(callback)
            for index in range(5):
                scope.add(Item(index), cleanup, kind="websocket", weak=False)
        assert sorted(order[:5]) == [f"item {index}" for index in range(5)]
        assert order[5] == "callback"
        assert peak == 5
        assert len(loops) == 1

    def test_bounded_and_reported(self) -> None:
        """Hangs and errors of async cleanups closed from sync code are reported."""
        calls = Calls()
        tracked = items(20)

        async def cleanup(item: Item) -> None:
            calls(item)
            if item.behaviour == "raise":
                raise RuntimeError(f"cleanup of item {item.index} failed")
            if item.behaviour == "hang":
                await anyio.sleep(HANG)

        scope = Scope(timeout=0.2)
        for item in tracked:
            scope.add(item, cleanup, kind="flaky", name=f"item-{item.index}")
        with pytest.raises(CleanupError) as info:
            scope.close()
        assert calls.counts == Counter(range(20))
        check_failures(info.value, tracked, scope)
