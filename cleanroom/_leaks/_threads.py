"""
Threads: a baseline by identity (thread idents are reused, thread objects are
not while the baseline holds them), reported with name, target and origin.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from . import _origins
from ._records import Allow, Leak

Baseline = dict[threading.Thread, int | None]


def take() -> Baseline:
    """Return every thread alive now, with its ident."""
    return {thread: thread.ident for thread in threading.enumerate()}


def new_since(before: Baseline, allow: Allow) -> list[tuple[object, Leak]]:
    """Return the threads alive now that *before* did not hold, as leaks."""
    leaks: list[tuple[object, Leak]] = []
    for thread, ident in take().items():
        if thread in before and before[thread] == ident:
            continue
        if not thread.is_alive() or allow.thread(thread.name, daemon=thread.daemon):
            continue
        leaks.append((thread, describe(thread)))
    return leaks


def _function(fn: Any) -> str:
    code = getattr(fn, "__code__", None)
    name = getattr(fn, "__qualname__", None) or repr(fn)
    if code is None:
        return name
    return f"{name} ({code.co_filename}:{code.co_firstlineno})"


def describe(thread: threading.Thread) -> Leak:
    """Describe *thread* for a report."""
    # Thread keeps its target in a private attribute, dropped when run() ends.
    target = getattr(thread, "_target", None)
    running = _function(target) if target is not None else type(thread).__qualname__
    daemon = " (daemon)" if thread.daemon else ""
    details = []
    if target is not None:
        details.append(f"target: {_function(target)}")
    origin = _origins.started.get(thread)
    details.append(f"started at: {origin or 'unknown (before the check began)'}")
    frame = sys._current_frames().get(thread.ident or -1)  # noqa: SLF001 (documented CPython API)
    now = _origins.where(frame)
    if now is not None:
        details.append(f"now at: {now}")
    name = running.split(" (", 1)[0]
    return Leak(
        "thread", f"thread {thread.name!r}{daemon} running {name}", tuple(details)
    )
