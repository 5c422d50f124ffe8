"""
How quickly a stopped run ends and cleans up.

(a) ``SIGTERM`` to the controller of ``pytest -n 2`` alone (as ``docker stop``
    and CI runners send it), while each worker holds a process and a
    temporary directory: wall time from the signal to the run's exit, which
    must be 143 with everything cleaned. Goal: at most 3 s (xdist by itself
    waits 10 s for workers that never saw the signal).

(b) ``SIGKILL`` of ``cleanroom run``: wall time from the kill to the end of
    the wrapped command, which its reaper ends. Goal: at most 5 s.

Usage: ``python bench/bench_signals.py [--quick]``. Each measurement runs in
a temporary directory with a journal of its own; medians are printed.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _measure import Result

HOLDING_TEST = """
import os
import pathlib
import time

import pytest

@pytest.mark.parametrize("n", [1, 2])
def test_holds(cleanroom, n):
    child = cleanroom.popen(["sleep", "60"])
    folder = cleanroom.tempdir()
    pathlib.Path(f"held-{n}").write_text(f"{child.pid} {folder}")
    pathlib.Path(f"ready-{n}").write_text("")
    time.sleep(60)
"""

XDIST = ("-n", "2", "-p", "xdist")

WRAPPED = """
import os, pathlib, sys, time
pathlib.Path(sys.argv[1], "pid").write_text(str(os.getpid()))
time.sleep(60)
"""


def _environ(folder: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CLEANROOM_")}
    environ["CLEANROOM_JOURNAL"] = str(folder / "journal.sqlite3")
    return environ


def _wait_for(*paths: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not all(path.exists() for path in paths):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{paths} did not appear")
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


def xdist_sigterm() -> float:
    """Seconds from SIGTERM at an xdist controller to the run's exit."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "test_hold.py").write_text(textwrap.dedent(HOLDING_TEST))
        (folder / "pytest.ini").write_text(
            "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        )
        run = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *XDIST],
            cwd=folder,
            env=_environ(folder),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(folder / "ready-1", folder / "ready-2", process=run)
        held = [(folder / f"held-{n}").read_text().split() for n in (1, 2)]
        sent = time.monotonic()
        run.send_signal(signal.SIGTERM)
        status = run.wait()
        elapsed = time.monotonic() - sent
        if status != 143:
            raise RuntimeError(f"the run exited with {status}, not 143")
        for pid, made in held:
            if _alive(int(pid)) or Path(made).exists():
                raise RuntimeError(f"left behind: process {pid} or {made}")
        return elapsed


def run_sigkill() -> float:
    """Seconds from SIGKILL of ``cleanroom run`` to the end of its command."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        wrapped = [sys.executable, "-c", WRAPPED, str(folder)]
        run = subprocess.Popen(
            [sys.executable, "-m", "cleanroom", "run", "--", *wrapped],
            env=_environ(folder),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(folder / "pid", process=run)
        command = int((folder / "pid").read_text())
        killed = time.monotonic()
        run.kill()
        run.wait()
        while _alive(command):
            if time.monotonic() - killed > 60:
                os.kill(command, signal.SIGKILL)
                raise RuntimeError("the command outlived run by a minute")
            time.sleep(0.005)
        return time.monotonic() - killed


def run(repetitions: int) -> list[Result]:
    """Measure both, *repetitions* times each."""
    terms = [xdist_sigterm() for _ in range(repetitions)]
    kills = [run_sigkill() for _ in range(repetitions)]
    return [
        Result(
            "SIGTERM to an xdist controller (-n 2) until the run exits",
            statistics.median(terms),
            3.0,
            "s",
            detail=f"min {min(terms):.2f} s, max {max(terms):.2f} s",
        ),
        Result(
            "SIGKILL of cleanroom run until its command ends",
            statistics.median(kills),
            5.0,
            "s",
            detail=f"min {min(kills):.2f} s, max {max(kills):.2f} s",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    results = run(3 if args.quick else 7)
    for result in results:
        name, measured, goal, verdict = result.row()
        print(f"{name}: {measured} (goal {goal}) {verdict}")
        if result.detail:
            print(f"  {result.detail}")
    return 0 if all(result.met for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
