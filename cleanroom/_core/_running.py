"""
Running cleanups: on worker threads, bounded by a timeout, shielded from
cancellation.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from . import _context
from ._entries import Entry
from ._exceptions import CleanupTimeoutError
from ._resource import Kind, Resource

T = TypeVar("T")


def declarative_call(entry: Entry, wait: bool) -> Callable[[], Any]:
    """Return the sync call that deletes a resource known by its record alone."""
    kind = entry.kind
    resource = entry.resource
    if entry.reserved:
        return lambda: clean_reserved(kind, resource, wait=wait)
    return lambda: kind.delete(resource, wait=wait)


def clean_reserved(
    kind: Kind, resource: Resource, *, wait: bool, grace: float | None = None
) -> None:
    """
    Delete a reserved *resource* if it exists, or appears within *grace*
    seconds (the kind's grace period by default); never appearing is success.
    """
    deadline = time.monotonic() + (kind.grace if grace is None else grace)
    while True:
        if kind.exists(resource):
            kind.delete(resource, wait=wait)
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(0.05, remaining))


def call_sync(entry: Entry, call: Callable[[], Any]) -> BaseException | None:
    """Run *call* here and now; return what it raised, if anything."""
    try:
        result = call()
        if entry.is_async:
            # Only reached from sync unwinding without a loop: run it in a fresh one.
            async def await_it() -> None:
                await result

            anyio.run(await_it)
    except BaseException as exc:
        return exc
    return None


def async_call(
    entry: Entry, call: Callable[[], Any], wait: bool
) -> Callable[[], Awaitable[Any]]:
    """Return the async call that cleans *entry*, given its sync *call*."""
    if entry.ref is None and not entry.reserved and entry.freeing is None:
        kind = entry.kind
        resource = entry.resource
        return lambda: kind.adelete(resource, wait=wait)
    if entry.is_async:
        return call
    if entry.ref is None or entry.kind.external:
        # Waiting for a reservation, or deleting what outlives the process,
        # blocks: it runs on a worker thread.
        return lambda: anyio.to_thread.run_sync(call, abandon_on_cancel=True)

    async def inline() -> None:
        call()

    return inline


async def shielded(coroutine: Coroutine[Any, Any, T]) -> T:
    """
    Await *coroutine* to its end, even through a native asyncio cancellation.

    anyio's shielded scopes stop anyio's and trio's cancellation, but not
    ``task.cancel()`` on asyncio (``asyncio.timeout``, ``wait_for``, Ctrl-C in
    ``asyncio.run``): there the cleanups run in a task of their own that the
    cancellation cannot reach, and the cancellation is raised after them.
    """
    if _context.running_async_library() != "asyncio":
        return await coroutine
    import asyncio

    task = asyncio.ensure_future(coroutine)
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            if task.done():
                raise
            cancelled = exc
        else:
            break
    if cancelled is not None:
        raise cancelled
    return result


async def bounded(
    fn: Callable[[], Awaitable[Any]], limit: float | None, what: str
) -> BaseException | None:
    """Await ``fn()``; return ``None``, its error, or a CleanupTimeoutError."""
    try:
        with anyio.move_on_after(limit) as cancel_scope:
            await fn()
    except Exception as exc:
        return exc
    if cancel_scope.cancelled_caught:
        return CleanupTimeoutError(f"cleaning {what} took longer than {limit} s")
    return None


def run_threads(
    calls: list[Callable[[], BaseException | None]],
    concurrency: int,
    timeout: float | None,
    names: list[str],
) -> list[BaseException | None]:
    """
    Run *calls* on daemon threads, at most *concurrency* at once, each bounded
    by *timeout*; a call past its time is abandoned and reported.

    The threads are daemons so that a hung cleanup never holds up the
    interpreter's exit.
    """
    return _ThreadRun(calls, timeout, names).run(concurrency)


class _ThreadRun:
    """The state of one :func:`run_threads` call, shared by its workers."""

    def __init__(
        self,
        calls: list[Callable[[], BaseException | None]],
        timeout: float | None,
        names: list[str],
    ) -> None:
        count = len(calls)
        self.calls = calls
        self.timeout = timeout
        self.names = names
        self.results: list[BaseException | None] = [None] * count
        self.started: list[float | None] = [None] * count
        self.done = [False] * count
        self.queue = deque(range(count))
        self.condition = threading.Condition()

    def run(self, concurrency: int) -> list[BaseException | None]:
        for _ in range(min(len(self.calls), concurrency)):
            self.spawn()
        with self.condition:
            while not all(self.done):
                wake = self.expire(time.monotonic())
                if all(self.done):
                    break
                self.condition.wait(
                    None if wake is None else max(0.0, wake - time.monotonic())
                )
        return self.results

    def spawn(self) -> None:
        threading.Thread(
            target=self.work, name="cleanroom-cleanup", daemon=True
        ).start()

    def work(self) -> None:
        while True:
            with self.condition:
                if not self.queue:
                    return
                index = self.queue.popleft()
                self.started[index] = time.monotonic()
            try:
                outcome = self.calls[index]()
            except BaseException as exc:
                outcome = exc
            with self.condition:
                if not self.done[index]:
                    self.results[index] = outcome
                    self.done[index] = True
                self.condition.notify_all()

    def expire(self, now: float) -> float | None:
        """Abandon the calls past their time; return the next deadline."""
        if self.timeout is None:
            return None
        wake: float | None = None
        for index, begun in enumerate(self.started):
            if self.done[index] or begun is None:
                continue
            deadline = begun + self.timeout
            if deadline <= now:
                self.done[index] = True
                self.results[index] = CleanupTimeoutError(
                    f"cleaning {self.names[index]} took longer than {self.timeout} s"
                )
                if self.queue:
                    # The abandoned thread is stuck: another takes its place.
                    self.spawn()
            elif wake is None or deadline < wake:
                wake = deadline
        return wake
