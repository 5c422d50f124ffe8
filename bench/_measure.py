"""
Timing helpers shared by the benchmarks: interleaved repetitions and medians.
"""

from __future__ import annotations

import gc
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Result:
    """One benchmark's verdict: what was measured against what was promised."""

    name: str
    measured: float
    goal: float
    unit: str
    higher_is_better: bool = False
    detail: str = ""

    @property
    def met(self) -> bool:
        if self.higher_is_better:
            return self.measured >= self.goal
        return self.measured <= self.goal

    def row(self) -> tuple[str, str, str, str]:
        sign = ">=" if self.higher_is_better else "<="
        return (
            self.name,
            f"{self.measured:.3g} {self.unit}",
            f"{sign} {self.goal:g} {self.unit}",
            "ok" if self.met else "MISSED",
        )


def timed(fn: Callable[[], object]) -> float:
    """
    Run *fn* once after a full collection; return the CPU seconds it took.

    CPU time rather than wall time: on a shared machine, time spent waiting
    for a processor is not the code's cost, and only makes numbers noisy.
    """
    gc.collect()
    started = time.process_time()
    fn()
    return time.process_time() - started


def interleaved(
    repetitions: int, contenders: dict[str, Callable[[], float]]
) -> dict[str, float]:
    """
    Run each contender *repetitions* times, alternating between them (and their
    order) so that drifts in machine load hit all alike; return the medians.
    """
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for repetition in range(repetitions):
        order = names if repetition % 2 == 0 else names[::-1]
        for name in order:
            samples[name].append(contenders[name]())
    return {name: statistics.median(values) for name, values in samples.items()}


def child_cpu(
    argv: Sequence[str], *, cwd: Path | str, env: Mapping[str, str] | None = None
) -> float:
    """
    Run *argv* in *cwd* with its output discarded; return the CPU seconds (user
    and system) that it used, from ``wait4``.

    Raises:
        RuntimeError: When it fails, with its standard error.
    """
    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=None if env is None else dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read() if process.stderr else b""
    if process.stderr:
        process.stderr.close()
    if process.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed in {cwd} ({process.returncode}): "
            f"{stderr.decode(errors='replace')}"
        )
    return usage.ru_utime + usage.ru_stime
