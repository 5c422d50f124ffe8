"""
The pytest plugin's start-up cost on a real third-party suite.

pytest rewrites the asserts of every module of a plugin's distribution as it
is imported, and where bytecode is not written (``PYTHONDONTWRITEBYTECODE=1``,
common in CI images) it does so again on every run. This benchmark downloads
the sdist of a small pure-Python project that ships its tests (more-itertools
by default), installs it with pytest into two virtual environments, one of
them with cleanroom (not editable, as users install it), and runs
``pytest --co -q`` on its suite in both, interleaved, with
``PYTHONDONTWRITEBYTECODE=1``. The verdict is the median of the pairs'
ratios of CPU time (with cleanroom over without). Goal: at most 1.03.

Usage: ``python bench/bench_startup.py [--pairs N] [--project NAME]
[--workdir DIR] [--cleanroom SOURCE]``; a ``--workdir`` that holds the
environments already is reused.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from _measure import Result

ROOT = Path(__file__).resolve().parent.parent
GOAL = 1.03


def _pip(python: Path, *args: str) -> None:
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            *args,
        ],
        check=True,
    )


def _environment(folder: Path, *packages: str) -> Path:
    """Create a virtual environment in *folder* with *packages*; return its python."""
    python = folder / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        _pip(python, *packages)
    return python


def _suite(project: str, workdir: Path) -> Path:
    """Download and unpack *project*'s sdist; return the unpacked folder."""
    found = sorted(p for p in workdir.glob("*/") if (p / "tests").is_dir())
    if found:
        return found[0]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-d",
            str(workdir),
            project,
        ],
        check=True,
    )
    archive = next(workdir.glob("*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data")
    return next(p for p in workdir.glob("*/") if (p / "tests").is_dir())


def collect(python: Path, suite: Path) -> float:
    """Run ``pytest --co -q`` on *suite*; return the CPU seconds it used."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANROOM_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["CLEANROOM_JOURNAL"] = str(suite.parent / "journal.sqlite")
    process = subprocess.Popen(
        [str(python), "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider"],
        cwd=suite,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read() if process.stderr else b""
    if process.returncode != 0:
        raise RuntimeError(f"pytest --co failed in {suite}: {stderr.decode()}")
    return usage.ru_utime + usage.ru_stime


def run(
    pairs: int,
    project: str = "more-itertools",
    workdir: Path | None = None,
    cleanroom: Path = ROOT,
) -> Result:
    """Measure the plugin's start-up cost on *project*'s suite."""
    with tempfile.TemporaryDirectory(prefix="cleanroom-startup-") as scratch:
        base = workdir or Path(scratch)
        base.mkdir(parents=True, exist_ok=True)
        suite = _suite(project, base)
        without = _environment(base / "without", "pytest", str(suite))
        with_cleanroom = _environment(
            base / "with", "pytest", str(suite), str(cleanroom)
        )
        for python in (without, with_cleanroom):
            collect(python, suite)  # warm the file system caches
        ratios, times = [], {"with": [], "without": []}
        for pair in range(pairs):
            order = [("without", without), ("with", with_cleanroom)]
            if pair % 2:
                order.reverse()
            measured = {name: collect(python, suite) for name, python in order}
            for name, seconds in measured.items():
                times[name].append(seconds)
            ratios.append(measured["with"] / measured["without"])
    ratio = statistics.median(ratios)
    return Result(
        f"pytest --co on {project}'s suite, PYTHONDONTWRITEBYTECODE=1, "
        "with cleanroom / without",
        ratio,
        GOAL,
        "x",
        detail=(
            f"median CPU {statistics.median(times['with']) * 1e3:.0f} ms with "
            f"cleanroom, {statistics.median(times['without']) * 1e3:.0f} ms "
            f"without, {pairs} interleaved pairs"
        ),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--project", default="more-itertools")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--cleanroom",
        type=Path,
        default=ROOT,
        help="the cleanroom source tree to install (default: this one)",
    )
    args = parser.parse_args()
    result = run(args.pairs, args.project, args.workdir, args.cleanroom)
    print("  ".join(result.row()))
    print(f"  {result.detail}")
    return 0 if result.met else 1


if __name__ == "__main__":
    sys.exit(main())
