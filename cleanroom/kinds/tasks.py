"""
The ``task`` kind: background tasks that their scope cancels and awaits.

A task started with :meth:`Scope.start_soon <cleanroom.Scope.start_soon>`
runs beside the scope's body rather than inside a task group, so the body
keeps the exact semantics of an :class:`~contextlib.AsyncExitStack`: no
exception groups, no cancel scope wrapped around it. On asyncio a task is an
:class:`asyncio.Task`, on trio a system task; either way its function runs
under a cancel scope of its own that the cleanup cancels (so shielded scopes
inside it are respected), the scope holds the task strongly (asyncio keeps
only weak references to its tasks), and an exception the task raised is
reported as that task's cleanup failure.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from typing import TYPE_CHECKING, Any, ClassVar, Final, cast

import anyio
import anyio.lowlevel
import attrs

from cleanroom._core._context import running_async_library
from cleanroom._core._resource import ObjectKind, Resource, register_kind
from cleanroom.exceptions import ScopeStateError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from cleanroom._core._scope import Scope

__all__ = ["TASKS", "TaskKind", "start_soon"]


@attrs.define
class TaskKind(ObjectKind):
    """
    Background tasks. An :class:`asyncio.Task` given to :meth:`Scope.add
    <cleanroom.Scope.add>` becomes one: the scope cancels it and waits for it
    to end, in the loop that runs it.

    .. versionadded:: 0.2.0
    """

    #: The types whose objects :meth:`Scope.add <cleanroom.Scope.add>` adopts.
    adopts: ClassVar[tuple[str, ...]] = ("_asyncio.Task", "asyncio.tasks.Task")

    def probe(self) -> str:
        """Name the event loops that tasks can run in."""
        import importlib.util

        loops = ["asyncio"] + (["trio"] if importlib.util.find_spec("trio") else [])
        return f"background tasks on {' and '.join(loops)}"

    def roundtrip(self, scope: Scope) -> str:
        """Start a task in a scope inside a new event loop, then cancel it."""
        seen: list[bool] = []

        async def forever() -> None:
            try:
                await anyio.sleep_forever()
            finally:
                seen.append(True)

        async def trip() -> None:
            async with scope.child("tasks") as child:
                start_soon(child, forever)
                await anyio.lowlevel.checkpoint()

        anyio.run(trip)
        if not seen:
            raise AssertionError("the task was not cancelled when its scope closed")
        return "started a task and cancelled it when its scope closed"

    def adopt(self, scope: Scope, obj: object, *, name: str | None) -> Resource:
        """Make *scope* cancel and await the :class:`asyncio.Task` *obj*."""
        task = cast("asyncio.Task[Any]", obj)
        handle = _AdoptedTask(name or task.get_name(), task)
        scope.add(handle, kind=self, name=handle.name)
        scope.alias(handle, task)
        return scope.resource_of(task)


#: Background tasks: in-process, runtime, cancelled together at exit.
TASKS: Final = TaskKind("task", aliases=("tasks",), category="runtime")


class _AdoptedTask:
    """An asyncio task started elsewhere, as its scope cancels and awaits it."""

    __slots__ = ("name", "task")

    def __init__(self, name: str, task: asyncio.Task[Any]) -> None:
        self.name = name
        self.task = task

    def __repr__(self) -> str:
        return f"<task {self.name!r}>"

    async def aclose(self) -> None:
        task = self.task
        if not task.done():
            if asyncio.get_running_loop() is not task.get_loop():
                raise ScopeStateError(
                    f"{self!r} belongs to another event loop; close its scope "
                    "with 'await scope.aclose()' in the loop that runs it"
                )
            task.cancel()
            await asyncio.wait((task,))
        if not task.cancelled() and task.exception() is not None:
            raise cast("BaseException", task.exception())


class _Task:
    """What a scope holds for one background task: how to cancel and await it."""

    __slots__ = ("_awaitable", "_error", "_name")

    def __init__(self, name: str, awaitable: Awaitable[Any]) -> None:
        self._name = name
        self._awaitable = awaitable
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        return f"<task {self._name!r}>"

    def _finish(self) -> None:
        """Raise what the task raised, once it has ended."""
        awaitable = self._awaitable
        if inspect.iscoroutine(awaitable):
            # A task that its event loop cancelled before its first step never
            # started its coroutine; closing it spares a "never awaited" warning.
            awaitable.close()
        error, self._error = self._error, None
        if error is not None:
            raise error

    async def aclose(self) -> None:
        """Cancel the task, wait for it to end and raise what it raised."""
        raise NotImplementedError


class _AsyncioTask(_Task):
    __slots__ = ("_cancel_requested", "_cancel_scope", "_task")

    def __init__(self, name: str, awaitable: Awaitable[Any]) -> None:
        super().__init__(name, awaitable)
        self._cancel_scope: anyio.CancelScope | None = None
        self._cancel_requested = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name=name)

    async def _run(self) -> None:
        # Cancelling through an anyio cancel scope, rather than task.cancel(),
        # respects the shielded scopes that the task's own cleanup may use; and
        # a task cancelled before it started still runs to its first
        # checkpoint, as on trio, so its try/finally blocks run.
        with anyio.CancelScope() as cancel_scope:
            self._cancel_scope = cancel_scope
            if self._cancel_requested:
                cancel_scope.cancel()
            await self._awaitable

    async def aclose(self) -> None:
        task = self._task
        if not task.done():
            if asyncio.get_running_loop() is not task.get_loop():
                raise ScopeStateError(
                    f"{self!r} belongs to another event loop; close its scope "
                    "with 'await scope.aclose()' in the loop that started it"
                )
            if self._cancel_scope is None:
                self._cancel_requested = True
            else:
                self._cancel_scope.cancel()
            # asyncio.wait() leaves the task alone if this wait is cancelled
            # (by the cleanup's timeout), where 'await task' would cancel it again.
            await asyncio.wait((task,))
        if not task.cancelled():
            self._error = task.exception()
        self._finish()


class _TrioTask(_Task):
    __slots__ = ("_cancel_scope", "_done", "_token")

    def __init__(self, name: str, awaitable: Awaitable[Any]) -> None:
        import trio

        super().__init__(name, awaitable)
        self._cancel_scope = trio.CancelScope()
        self._done = trio.Event()
        self._token = trio.lowlevel.current_trio_token()
        # A system task does not belong to any nursery of the body; it gets the
        # caller's context, as asyncio tasks do, so it sees the current scope.
        trio.lowlevel.spawn_system_task(
            self._run, name=name, context=contextvars.copy_context()
        )

    async def _run(self) -> None:
        import trio

        try:
            with self._cancel_scope:
                await self._awaitable
        except BaseException as exc:
            # The cancel scope took its own Cancelled, from nurseries too; what
            # else is Cancelled ends the run and must go on. Anything left is
            # the task's error: a system task must not raise it, or the run
            # would crash.
            rest: BaseException | None
            if isinstance(exc, BaseExceptionGroup):
                rest = exc.split(trio.Cancelled)[1]
            else:
                rest = None if isinstance(exc, trio.Cancelled) else exc
            if rest is None:
                raise
            self._error = exc
        finally:
            self._done.set()

    async def aclose(self) -> None:
        import trio

        if not self._done.is_set():
            try:
                same_run = trio.lowlevel.current_trio_token() is self._token
            except RuntimeError:
                same_run = False
            if not same_run:
                raise ScopeStateError(
                    f"{self!r} belongs to another trio run; close its scope "
                    "with 'await scope.aclose()' in the run that started it"
                )
            self._cancel_scope.cancel()
            await self._done.wait()
        self._finish()


def start_soon(
    scope: Scope,
    fn: Callable[..., Awaitable[Any]],
    *args: Any,
    name: str | None = None,
) -> Resource:
    """
    Start ``fn(*args)`` as a background task that *scope* cancels and awaits.

    The task belongs to the event loop running in this thread (asyncio or
    trio) and runs in a copy of the caller's context, so it sees the current
    scope. An exception it raises is kept and reported as that task's cleanup
    failure when the scope closes or the task is released; a task that ended
    on its own, or was cancelled, counts as cleaned. Adjacent tasks are
    cancelled together, each bounded by the policy's ``timeout``. A kept or
    forgotten task is left running.

    Args:
        scope: The scope that tracks the task.
        fn: An async function.
        args: Positional arguments for *fn*.
        name: The task's name in reports; by default *fn*'s qualified name.

    Returns:
        The task's resource, a handle for :meth:`~cleanroom.Scope.keep`,
        :meth:`~cleanroom.Scope.arelease` and :meth:`~cleanroom.Scope.forget`.

    Raises:
        ScopeStateError: When no asyncio or trio event loop runs in this thread.
        TypeError: When *fn* is not callable (a coroutine object, for example)
            or does not return an awaitable.

    .. versionadded:: 0.1.0
    """
    candidate: object = fn
    if inspect.iscoroutine(candidate):
        candidate.close()
        raise TypeError(
            f"start_soon() expects an async function and its arguments, not the "
            f"coroutine object {fn!r}; write start_soon(fn, *args), not "
            "start_soon(fn(*args))"
        )
    if not callable(fn):
        raise TypeError(f"start_soon() expects an async function, not {fn!r}")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"a task name must be a str, not {name!r}")
    library = running_async_library()
    if library is None:
        raise ScopeStateError(
            f"{scope!r} cannot start {_describe(fn)} as a task: no asyncio or "
            "trio event loop is running in this thread; call start_soon() from "
            "async code"
        )
    task_name = name or _describe(fn)
    awaitable = fn(*args)
    if not inspect.isawaitable(awaitable):
        raise TypeError(
            f"start_soon() expects an async function; {_describe(fn)} returned "
            f"{awaitable!r}, which is not awaitable"
        )
    handle: _Task
    if library == "trio":
        handle = _TrioTask(task_name, awaitable)
    else:
        handle = _AsyncioTask(task_name, awaitable)
    scope.add(handle, kind=TASKS, name=task_name)
    return scope.resource_of(handle)


def _describe(fn: object) -> str:
    name = getattr(fn, "__qualname__", None)
    return name if isinstance(name, str) else repr(fn)


register_kind(TASKS)
