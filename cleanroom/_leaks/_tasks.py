"""
Tasks: pending asyncio tasks (of the running loop, or of every loop when none
runs) and trio tasks of the running trio run.
"""

from __future__ import annotations

import sys
from typing import Any

from . import _origins
from ._records import Allow, Leak

Baseline = set[Any]


def running_loop(asyncio: Any) -> Any:
    """The running asyncio loop of this thread, or ``None``."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _asyncio_tasks() -> set[Any]:
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        # No task can exist before asyncio is imported.
        return set()
    loop = running_loop(asyncio)
    if loop is not None:
        return {task for task in asyncio.all_tasks(loop) if not task.done()}
    # No loop runs: look at every loop's tasks, as pytest's hooks run between
    # the loops of fixtures and tests. asyncio keeps them in weak sets that
    # all_tasks() reads, one loop at a time.
    tasks = asyncio.tasks
    found: set[Any] = set()
    for name in ("_all_tasks", "_scheduled_tasks", "_eager_tasks"):
        pool = getattr(tasks, name, None)
        if pool is not None:
            found.update(task for task in list(pool) if not task.done())
    return found


def _trio_tasks() -> set[Any]:
    trio = sys.modules.get("trio")
    if trio is None:
        return set()
    try:
        root = trio.lowlevel.current_root_task()
    except RuntimeError:
        return set()
    found: set[Any] = set()
    todo = [root]
    while todo:
        task = todo.pop()
        found.add(task)
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return found


def take() -> Baseline:
    """Return the pending tasks of the running asyncio loop or trio run."""
    return _asyncio_tasks() | _trio_tasks()


def current() -> set[Any]:
    """The task running this code, and on trio its ancestors, which are never leaks."""
    mine: set[Any] = set()
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None and running_loop(asyncio) is not None:
        task = asyncio.current_task()
        if task is not None:
            mine.add(task)
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            task = trio.lowlevel.current_task()
        except RuntimeError:
            task = None
        while task is not None:
            mine.add(task)
            nursery = task.parent_nursery
            task = None if nursery is None else nursery.parent_task
    return mine


def new_since(before: Baseline, allow: Allow) -> list[tuple[object, Leak]]:
    """Return the tasks pending now that *before* did not hold, as leaks."""
    mine = current()
    leaks: list[tuple[object, Leak]] = []
    for task in take():
        if task in before or task in mine:
            continue
        name, coroutine = _names(task)
        if allow.task(name, coroutine):
            continue
        leaks.append((task, describe(task)))
    return leaks


def _names(task: Any) -> tuple[str, str]:
    """The task's name and its coroutine's: the first one outside the plumbing."""
    if hasattr(task, "get_coro"):
        coro = task.get_coro()
        name = task.get_name()
    else:
        coro = task.coro
        name = task.name
    outer = getattr(coro, "__qualname__", repr(coro))
    seen = 0
    while coro is not None and seen < 100:  # noqa: PLR2004 (a bound on odd chains)
        code = getattr(coro, "cr_code", None)
        if code is not None and not _origins.plumbing(code.co_filename):
            return name, getattr(coro, "__qualname__", outer)
        inner = getattr(coro, "cr_await", None)
        if inner is None:
            # A wrapper that has not started yet (anyio's, on trio) holds the
            # coroutine it will run, as an argument or an argument's attribute.
            inner = _argument_coroutine(coro)
        coro = inner
        seen += 1
    return name, outer


def _argument_coroutine(coro: Any) -> Any:
    frame = getattr(coro, "cr_frame", None)
    if frame is None or getattr(coro, "cr_running", False):
        return None
    import gc

    values = list(frame.f_locals.values())
    for candidate in [*values, *gc.get_referents(*values)]:
        if getattr(candidate, "cr_code", None) is not None and candidate is not coro:
            return candidate
    return None


def _waiting_at(coro: Any) -> str | None:
    """
    Where the coroutine chain that *coro* heads is suspended: the innermost
    frame outside asyncio, anyio and trio, or else the innermost.
    """
    innermost = outside = None
    seen = 0
    while coro is not None and seen < 100:  # noqa: PLR2004 (a bound on odd chains)
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            innermost = f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
            if not _origins.plumbing(code.co_filename):
                outside = innermost
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        seen += 1
    return outside or innermost


def describe(task: Any) -> Leak:
    """Describe an asyncio or trio *task* for a report."""
    name, coroutine = _names(task)
    library = "asyncio" if hasattr(task, "get_coro") else "trio"
    details = []
    origin = _origins.started.get(task)
    if origin is None:
        traceback = getattr(task, "_source_traceback", None)
        if traceback:
            filename, line, function, _ = traceback[-1]
            origin = f"{filename}:{line} in {function}"
    details.append(f"created at: {origin or 'unknown (before the check began)'}")
    coro = task.get_coro() if library == "asyncio" else task.coro
    waiting = _waiting_at(coro)
    if waiting is not None:
        details.append(f"waiting at: {waiting}")
    return Leak(
        "task",
        f"{library} task {name!r} running {coroutine}()",
        tuple(details),
    )
