"""
Crash safety's costs: sweeping orphans, starting a reaper, journaling.

(a) Sweep: 1,000 journaled orphan paths (files of a dead owner, cleaned by the
    built-in ``path`` kind): wall time of one ``sweep()``, median of the
    repetitions. Goal: at most 1 s.

(b) Reaper start: the owner's cost of starting its reaper (the ``Popen``
    call), and the time until the reaper ignores SIGTERM, which it does just
    before it starts watching (read from ``/proc/PID/status``). Goal: ready in
    under 100 ms.

(c) Journaling: what the journal adds to each declarative resource (an
    intent, a created and a cleaned row) with ``scope.track_path()``, against
    the same with ``CLEANROOM_JOURNAL=off``, per resource.

Usage: ``python bench/bench_sweep.py [--quick]``. The journal is a temporary
file; the user's is never touched.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from _measure import Result

if TYPE_CHECKING:
    from cleanroom._core._session import Owner

ORPHANS = 1000


def _dead_owner(session: str) -> Owner:
    from cleanroom._core import new_id
    from cleanroom._core._session import Owner, hostname, process_start_time

    process = subprocess.Popen(["sleep", "0"])
    start = process_start_time(process.pid)
    process.wait()
    return Owner(new_id(), session, hostname(), process.pid, start)


def sweep_once(base: Path) -> float:
    """Journal 1,000 orphan files and time one sweep that removes them."""
    from cleanroom._crash._journal import Journal
    from cleanroom._crash._sweep import sweep

    folder = Path(tempfile.mkdtemp(dir=base))
    owner = _dead_owner("bench")
    with Journal(folder / "journal.sqlite3") as journal:
        journal.add_owner(owner)
        for index in range(ORPHANS):
            path = folder / f"orphan-{index:04}"
            path.write_bytes(b"x")
            journal.insert(
                owner,
                scope="bench",
                kind="path",
                module="cleanroom.kinds.files",
                name=str(path),
                identity={"path": str(path), "root": str(base)},
                state="created",
            )
        began = time.perf_counter()
        report = sweep(journal)
        took = time.perf_counter() - began
    if report.removed != ORPHANS or any(folder.glob("orphan-*")):
        raise AssertionError(f"the sweep removed {report.removed} of {ORPHANS}")
    return took


def reaper_start() -> tuple[float, float]:
    """Return (Popen's cost, time until the reaper is ready), in seconds."""
    from cleanroom._core import new_id
    from cleanroom._core._session import Owner, current_owner
    from cleanroom._crash._recorder import start_reaper

    me = current_owner()
    fake = Owner(new_id(), "bench", me.host, me.pid, me.start_time)
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        reaper = start_reaper(Path(folder) / "journal.sqlite3", fake)
        spawned = time.perf_counter()
        status = Path(f"/proc/{reaper.pid}/status")
        while True:
            text = status.read_text()
            mask = next(
                line for line in text.splitlines() if line.startswith("SigIgn:")
            )
            if int(mask.split()[1], 16) & (1 << 14):  # SIGTERM is 15
                break
            time.sleep(0.0002)
        ready = time.perf_counter()
        if reaper.stdin is not None:
            reaper.stdin.write(b"bye\n")
            reaper.stdin.close()
        reaper.wait(timeout=10)
    return spawned - began, ready - began


def journaling_cost(count: int = 500) -> tuple[float, float]:
    """Return seconds per tracked path with the journal on, and off."""
    code = f"""
import sys, tempfile, time
from pathlib import Path
from cleanroom import Scope
base = Path(tempfile.mkdtemp())
paths = [base / f"p{{i}}" for i in range({count})]
with Scope() as warm:
    warm.track_path(base / "warm", root=base)
began = time.perf_counter()
with Scope() as scope:
    for path in paths:
        scope.track_path(path, root=base)
print(time.perf_counter() - began)
"""
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for journal in (str(Path(folder) / "journal.sqlite3"), "off"):
            out = subprocess.run(
                [sys.executable, "-c", code],
                env={**os.environ, "CLEANROOM_JOURNAL": journal},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            results.append(float(out) / count)
    return results[0], results[1]


def run(repetitions: int) -> list[Result]:
    """Measure everything, *repetitions* times where it is cheap enough."""
    with tempfile.TemporaryDirectory() as folder:
        sweeps = [sweep_once(Path(folder)) for _ in range(max(3, repetitions // 2))]
    starts = [reaper_start() for _ in range(repetitions)]
    journaled, unjournaled = journaling_cost()
    spawn = statistics.median(s for s, _ in starts)
    return [
        Result(
            f"sweep of {ORPHANS:,} journaled orphan paths",
            statistics.median(sweeps),
            1.0,
            "s",
            detail=f"each run: {', '.join(f'{s:.3f}' for s in sweeps)} s",
        ),
        Result(
            "reaper ready after start",
            statistics.median(r for _, r in starts) * 1000,
            100.0,
            "ms",
            detail=f"the owner's Popen call took {spawn * 1000:.2f} ms (median)",
        ),
        Result(
            "journaling per tracked path (intent, created, cleaned)",
            (journaled - unjournaled) * 1e6,
            1000.0,
            "µs",
            detail=(
                f"{journaled * 1e6:.0f} µs with the journal, "
                f"{unjournaled * 1e6:.0f} µs without"
            ),
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    results = run(3 if args.quick else 11)
    for result in results:
        name, measured, goal, verdict = result.row()
        print(f"{name}: {measured} (goal {goal}) {verdict}")
        if result.detail:
            print(f"  {result.detail}")
    return 0 if all(result.met for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
