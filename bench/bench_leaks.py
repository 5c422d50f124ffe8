"""
The cost of a leak check per test.

A suite of 1,000 trivial tests runs with ``--cleanroom-check-leaks=raise``
and with ``=off``, alternately; each run records the median CPU time of one
test's whole protocol (setup, call, teardown, reports). The cost of a check is
the difference of those medians over the runs: threads, tasks, file
descriptors and child processes are snapshotted before setup, after setup,
after the call and after teardown, and compared. Memory is off, as it is by
default. Goal: under 1 ms per test, so that the check can stay on.

CPU time rather than wall time: on a shared machine, waiting for a processor
is not the code's cost. Usage: ``python bench/bench_leaks.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bench_plugin import TEST_TIMER, run_pytest

TESTS = 1000
FILES = 10
GOAL_MS = 1.0
BODY = "def test_{i}():\n    pass\n"


def write_suite(folder: Path) -> Path:
    """Write TESTS trivial tests in FILES modules, and the per-test timer."""
    folder.mkdir(parents=True)
    per_file = TESTS // FILES
    for number in range(FILES):
        source = "".join(BODY.format(i=i) for i in range(per_file))
        (folder / f"test_{number}.py").write_text(source)
    (folder / "conftest.py").write_text(TEST_TIMER)
    (folder / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    )
    return folder


def per_test(folder: Path, mode: str) -> tuple[float, float]:
    """Run the suite; return the median CPU seconds of one test, and of the run."""
    total = run_pytest(folder, f"--cleanroom-check-leaks={mode}")
    return float((folder / "test-time").read_text()), total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=11, help="runs of each (11)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cleanroom-bench-") as tmp:
        suite = write_suite(Path(tmp) / "suite")
        per_test(suite, "raise")  # warm the caches
        tests: dict[str, list[float]] = {"raise": [], "off": []}
        runs: dict[str, list[float]] = {"raise": [], "off": []}
        for run in range(args.runs):
            for mode in ("raise", "off") if run % 2 == 0 else ("off", "raise"):
                one, total = per_test(suite, mode)
                tests[mode].append(one)
                runs[mode].append(total)
    on, off = statistics.median(tests["raise"]), statistics.median(tests["off"])
    cost_ms = (on - off) * 1e3
    whole_ms = (statistics.median(runs["raise"]) - statistics.median(runs["off"])) * 1e3
    verdict = "ok" if cost_ms < GOAL_MS else "MISSED"
    print(
        f"leak check: {cost_ms * 1e3:.0f} us per test "
        f"(goal < {GOAL_MS:g} ms) {verdict}; "
        f"median test {on * 1e6:.0f} us checked, {off * 1e6:.0f} us unchecked; "
        f"whole run of {TESTS} tests {whole_ms / TESTS * 1e3:.0f} us per test more; "
        f"{args.runs} runs of each"
    )
    return 0 if cost_ms < GOAL_MS else 1


if __name__ == "__main__":
    sys.exit(main())
