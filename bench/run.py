"""
Run cleanroom's benchmarks and print each measured ratio against its goal.

Usage: ``python bench/run.py [--check] [--quick] [--only NAME ...]``.
With ``--check`` the exit status is 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import async_cleanups
import callbacks
import import_time
from _measure import Result

BENCHMARKS: dict[str, Callable[[int], list[Result]]] = {
    "callbacks": callbacks.run,
    "async": async_cleanups.run,
    "import": import_time.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit with 1 when a goal is missed"
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions, noisier numbers"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        help="run only this benchmark (repeatable)",
    )
    args = parser.parse_args(argv)
    repetitions = 3 if args.quick else 11
    results: list[Result] = []
    for name in args.only or BENCHMARKS:
        print(f"running {name}...", file=sys.stderr, flush=True)
        results.extend(BENCHMARKS[name](repetitions))
    rows = [("benchmark", "measured", "goal", ""), *(r.row() for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print(
            "  ".join(
                cell.ljust(width) for cell, width in zip(row, widths, strict=True)
            )
        )
    for result in results:
        if result.detail:
            print(f"  {result.name}: {result.detail}")
    missed = [result.name for result in results if not result.met]
    if missed:
        print(f"missed: {'; '.join(missed)}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
