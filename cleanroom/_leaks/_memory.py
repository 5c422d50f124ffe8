"""
Memory: growth of what tracemalloc traces (not the process's RSS, which
allocators and imports make too noisy to judge a test by).
"""

from __future__ import annotations

import gc
import os
import tracemalloc
from collections.abc import Callable
from typing import Any

from ._records import Leak

MIB = 1024 * 1024
# Frames of tracemalloc itself and of the leak check are not the block's.
_FILTERS = (
    tracemalloc.Filter(inclusive=False, filename_pattern=tracemalloc.__file__),
    tracemalloc.Filter(
        inclusive=False,
        filename_pattern=os.path.join(os.path.dirname(__file__), "*"),  # noqa: PTH118, PTH120
    ),
)


class Tracer:
    """Traces allocations from :meth:`start` to :meth:`growth`."""

    def __init__(self) -> None:
        self.started_tracing = False
        self.baseline: tracemalloc.Snapshot | None = None

    def start(self) -> None:
        """Start tracing (unless something already does) and take a baseline."""
        if not tracemalloc.is_tracing():
            tracemalloc.start()
            self.started_tracing = True
        gc.collect()
        self.baseline = tracemalloc.take_snapshot().filter_traces(_FILTERS)

    def growth(self) -> tuple[int, list[str]]:
        """Bytes still held that were allocated since :meth:`start`, and where."""
        assert self.baseline is not None  # noqa: S101 (start() was called)
        gc.collect()
        now = tracemalloc.take_snapshot().filter_traces(_FILTERS)
        stats = now.compare_to(self.baseline, "lineno")
        grown = sum(stat.size_diff for stat in stats)
        top = [
            f"{stat.traceback[0].filename}:{stat.traceback[0].lineno}: "
            f"+{stat.size_diff / MIB:.2f} MiB in {stat.count_diff:+d} blocks"
            for stat in sorted(stats, key=lambda s: s.size_diff, reverse=True)[:5]
            if stat.size_diff > 0
        ]
        return grown, top

    def stop(self) -> None:
        """Stop tracing if :meth:`start` started it."""
        self.baseline = None
        if self.started_tracing:
            tracemalloc.stop()
            self.started_tracing = False


def leak(grown: int, limit_mb: float, top: list[str]) -> Leak | None:
    """A leak when *grown* bytes exceed *limit_mb* MiB."""
    if grown <= limit_mb * MIB:
        return None
    return Leak(
        "memory",
        f"memory grew by {grown / MIB:.2f} MiB (limit {limit_mb:g} MiB)",
        tuple(f"allocated at {line}" for line in top),
    )


def growth_per_run(fn: Callable[[], Any], runs: int) -> tuple[float, list[str]]:
    """
    Call *fn* once to warm up, then *runs* times more; return the traced
    memory still held after those runs, in MiB per run, and where it grew.
    """
    fn()
    tracer = Tracer()
    tracer.start()
    try:
        for _ in range(runs):
            fn()
        grown, top = tracer.growth()
    finally:
        tracer.stop()
    return grown / MIB / runs, top
