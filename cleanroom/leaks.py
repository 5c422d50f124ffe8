"""
Leak detection: what a block of code left behind.

:func:`no_leaks` brackets a block (``with`` or ``async with``) and reports,
after a grace period in which stragglers may finish:

- threads still running (name, target, where started, where running now);
- asyncio tasks still pending (coroutine, where created, where waiting), and
  trio tasks under trio;
- file descriptors still open (the path, the socket and its peer, the pipe)
  and the Python objects that hold them;
- child processes still running, or ended and never waited for (pid,
  command line);
- objects a scope cleaned during the block that are still alive after it and
  a garbage collection (type, and what refers to them);
- opt-in, memory traced by :mod:`tracemalloc` grown past a limit.

Example::

    import threading

    import cleanroom

    stop = threading.Event()
    with cleanroom.no_leaks(grace=0.1):
        worker = threading.Thread(target=stop.wait, name="worker")
        worker.start()
        stop.set()  # the thread ends within the grace period: no leak

What existed before the block is never reported, nor what the allow-list
lets pass (:class:`Allow`, with :data:`DEFAULT_ALLOW` for anyio's, trio's
and asyncio's own threads). Scopes, ``with_cleanup`` and pytest's plugin
take ``check_leaks=`` to run the same check.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._leaks._check import LeakCheck, OnLeak
from ._leaks._objects import watch_cleaned as _watch_cleaned
from ._leaks._records import DEFAULT_ALLOW, Allow, Leak

__all__ = [
    "DEFAULT_ALLOW",
    "Allow",
    "Leak",
    "LeakCheck",
    "memory_growth",
    "no_leaks",
    "watch_cleaned",
]


def no_leaks(
    *,
    threads: bool = True,
    tasks: bool = True,
    fds: bool = True,
    processes: bool = True,
    objects: bool = True,
    memory_mb: float | None = None,
    grace: float = 1.0,
    allow: Allow | None = None,
    on_leak: OnLeak = "raise",
    name: str | None = None,
) -> LeakCheck:
    """
    Return a leak check for a ``with`` or ``async with`` block.

    At the end of the block it waits up to *grace* seconds, polling, for
    things to settle, then raises :class:`~cleanroom.LeakError` listing what
    is left — or, with ``on_leak="warn"``, warns. When the block raises, its
    exception propagates with the report added as a note.

    Args:
        threads: Check for threads left running.
        tasks: Check for asyncio (and trio) tasks left pending.
        fds: Check for file descriptors left open.
        processes: Check for child processes left running or unwaited.
        objects: Check for objects cleaned during the block and still alive.
        memory_mb: A limit, in MiB, on memory growth traced by
            :mod:`tracemalloc`; ``None`` does not measure memory.
        grace: Seconds to wait for stragglers before anything counts.
        allow: What may be left behind, on top of
            :data:`~cleanroom.leaks.DEFAULT_ALLOW`.
        on_leak: ``"raise"`` or ``"warn"``.
        name: What is checked, for the report.

    Returns:
        The :class:`~cleanroom.leaks.LeakCheck`; after the block its
        :attr:`~cleanroom.leaks.LeakCheck.leaks` lists what was found.

    Raises:
        ValueError: On a bad *grace*, *memory_mb* or *on_leak*.

    .. versionadded:: 0.2.0
    """
    return LeakCheck(
        threads=threads,
        tasks=tasks,
        fds=fds,
        processes=processes,
        objects=objects,
        memory_mb=memory_mb,
        grace=grace,
        allow=Allow() if allow is None else allow,
        on_leak=on_leak,
        name=name,
    )


def watch_cleaned(obj: object, scope: str | None = None) -> None:
    """
    Tell the running leak checks that *obj* was just cleaned, so that each
    reports it if it is still alive when the check ends.

    Scopes call this for every object they clean; call it for objects
    cleaned some other way. It does nothing when no check with
    ``objects=True`` runs, or when *obj* does not support weak references.

    Args:
        obj: The cleaned object; it is held weakly.
        scope: The name of the scope that cleaned it, for the report.

    .. versionadded:: 0.2.0
    """
    _watch_cleaned(obj, scope)


def memory_growth(fn: Callable[[], Any], *, runs: int = 5) -> float:
    """
    Measure how much memory *fn* keeps per call: call it once to warm up
    (caches, imports), then *runs* more times, tracing with
    :mod:`tracemalloc`, and return the growth in MiB per run.

    A bounded cache grows on the first call only and measures close to 0;
    one that grows with every call measures what each call adds.

    Example::

        from cleanroom.leaks import memory_growth

        assert memory_growth(lambda: sum(range(1000))) < 0.01

    Args:
        fn: What to run, without arguments.
        runs: How many measured runs, after the warm-up.

    Returns:
        MiB still held after the runs (with a garbage collection), per run.

    Raises:
        ValueError: When *runs* is less than 1.

    .. versionadded:: 0.2.0
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1, not {runs!r}")
    from ._leaks._memory import growth_per_run

    return growth_per_run(fn, runs)[0]


for _value in (Allow, Leak, LeakCheck):
    _value.__module__ = __name__
del _value
# The package re-exports it, and its names show as cleanroom.X however they
# are reached.
no_leaks.__module__ = "cleanroom"
