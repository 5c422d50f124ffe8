"""
The pytest plugin's cost, unused and used.

(a) Unused: a suite of 2,000 trivial tests that never touches cleanroom, run
    with the plugin (installed, so active) and with ``-p no:cleanroom``, in
    interleaved pairs; the verdict is the median of the pairs' ratios of the
    pytest process's CPU time. Goal: at most 1.03.

(b) Used: 2,000 tests that each request ``cleanroom`` and register one
    callback, against 2,000 that each request a plain yield fixture holding an
    ExitStack and register one callback; each measured as the median CPU time
    of one test's protocol (setup, call, teardown, reports) over that of a
    trivial test. Goal: cleanroom's overhead per test at most 1.5 times the
    ExitStack fixture's.

CPU time rather than wall time: on a shared machine, waiting for a processor
is not the code's cost. Usage:
``python bench/bench_plugin.py [--pairs N] [--only unused|used]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

from _measure import child_cpu

TESTS = 2000
FILES = 20

# Records the CPU time of each test's whole protocol (setup, call, teardown,
# reports) and writes their median: bursts of load on a shared machine hit a
# few tests, not the median.
TEST_TIMER = """
import statistics
import time

import pytest

times = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item):
    started = time.process_time_ns()
    try:
        return (yield)
    finally:
        times.append(time.process_time_ns() - started)


def pytest_sessionfinish():
    with open("test-time", "w") as file:
        file.write(repr(statistics.median(times) / 1e9))
"""

EXIT_STACK_FIXTURE = """
import contextlib

import pytest


@pytest.fixture
def stack():
    with contextlib.ExitStack() as stack:
        yield stack
"""

BODIES = {
    "plain": "def test_{i}():\n    pass\n",
    "exitstack": "def test_{i}(stack):\n    stack.callback(len, ())\n",
    "cleanroom": "def test_{i}(cleanroom):\n    cleanroom.callback(len, ())\n",
}


def write_suite(folder: Path, body: str, conftest: str = "") -> Path:
    """Write TESTS tests of *body* in FILES modules under *folder*."""
    folder.mkdir(parents=True)
    per_file = TESTS // FILES
    for number in range(FILES):
        source = "".join(body.format(i=i) for i in range(per_file))
        (folder / f"test_{number}.py").write_text(source)
    (folder / "conftest.py").write_text(textwrap.dedent(conftest))
    (folder / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    )
    return folder


def run_pytest(folder: Path, *args: str) -> float:
    """Run pytest quietly in *folder*; return the CPU seconds it used."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANROOM_")}
    env["CLEANROOM_JOURNAL"] = str(folder.parent / "journal.sqlite")
    # Measure an installed package's imports, from cached bytecode, not ones
    # compiled afresh on every run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return child_cpu(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=folder,
        env=env,
    )


def test_time(folder: Path) -> float:
    """Run pytest in *folder*; return the median CPU seconds of one test."""
    run_pytest(folder)
    return float((folder / "test-time").read_text())


def unused(root: Path, pairs: int) -> tuple[float, float, float]:
    """Return (median ratio, median seconds with, median seconds without)."""
    suite = write_suite(root / "unused", BODIES["plain"])
    run_pytest(suite)  # warm the caches of both
    ratios, with_plugin, without = [], [], []
    for pair in range(pairs):
        if pair % 2 == 0:
            on = run_pytest(suite)
            off = run_pytest(suite, "-p", "no:cleanroom")
        else:
            off = run_pytest(suite, "-p", "no:cleanroom")
            on = run_pytest(suite)
        ratios.append(on / off)
        with_plugin.append(on)
        without.append(off)
    return (
        statistics.median(ratios),
        statistics.median(with_plugin),
        statistics.median(without),
    )


def used(root: Path, repetitions: int) -> dict[str, float]:
    """Return the median CPU seconds of one test of each suite, over runs."""
    suites = {
        name: write_suite(
            root / name,
            body,
            TEST_TIMER + (EXIT_STACK_FIXTURE if name == "exitstack" else ""),
        )
        for name, body in BODIES.items()
    }
    for folder in suites.values():
        test_time(folder)  # warm up
    samples: dict[str, list[float]] = {name: [] for name in suites}
    names = list(suites)
    for repetition in range(repetitions):
        for name in names if repetition % 2 == 0 else names[::-1]:
            samples[name].append(test_time(suites[name]))
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument(
        "--pairs", type=int, default=15, help="interleaved runs of each (15)"
    )
    parser.add_argument(
        "--only", choices=("unused", "used"), help="run one of the two measures"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cleanroom-bench-") as tmp:
        root = Path(tmp)
        if args.only != "used":
            ratio, on, off = unused(root, args.pairs)
            print(
                f"(a) unused plugin: median ratio {ratio:.3f} (goal <= 1.03); "
                f"median CPU {on:.3f} s with, {off:.3f} s without, "
                f"{TESTS} tests, {args.pairs} pairs"
            )
        if args.only == "unused":
            return 0
        loops = used(root, args.pairs)
    per_test = {name: seconds * 1e6 for name, seconds in loops.items()}
    exit_stack = per_test["exitstack"] - per_test["plain"]
    cleanroom = per_test["cleanroom"] - per_test["plain"]
    print(
        f"(b) used: {cleanroom:.1f} us per test over a trivial test, against "
        f"{exit_stack:.1f} us for a yield fixture holding an ExitStack: "
        f"{cleanroom / exit_stack:.2f}x (goal <= 1.5x); "
        f"trivial test {per_test['plain']:.1f} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
