"""
The pytest plugin's start-up cost on a real third-party suite.

pytest rewrites the asserts of every module of a plugin's distribution as it
is imported, and where bytecode is not written (``PYTHONDONTWRITEBYTECODE=1``,
common in CI images) it does so again on every run. This benchmark downloads
the sdist of a small pure-Python project that ships its tests (more-itertools
by default), installs it with pytest into three virtual environments: one
with cleanroom (not editable, as users install it), one with only cleanroom's
dependencies, one with neither. It runs ``pytest --co -q`` on its suite in
each, interleaved, with ``PYTHONDONTWRITEBYTECODE=1``, and in the first with
``-p no:cleanroom`` too. Two verdicts, each the median of the rounds' ratios
of CPU time: cleanroom installed over its dependencies alone (what cleanroom's
own files cost), and cleanroom's plugin on over off. Goal: at most 1.03 each.
Installed over neither is shown too: it counts the pytest plugins of
cleanroom's dependencies (anyio ships one, which loads wherever anyio is
installed).

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

from _measure import Result, child_cpu

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


def forget_rewritten(python: Path) -> None:
    """
    Delete the assert-rewritten bytecode that pytest wrote into *python*'s
    environment on a run where bytecode was written (by another benchmark,
    say): pytest reads it even where it writes none, which would hide the
    very cost measured here.
    """
    for cached in python.parent.parent.glob("lib/*/site-packages/**/*-pytest-*.pyc"):
        cached.unlink()


def collect(python: Path, suite: Path, *options: str) -> float:
    """Run ``pytest --co -q`` on *suite*; return the CPU seconds it used."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANROOM_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["CLEANROOM_JOURNAL"] = str(suite.parent / "journal.sqlite")
    return child_cpu(
        [str(python), "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", *options],
        cwd=suite,
        env=env,
    )


def run(
    pairs: int,
    project: str = "more-itertools",
    workdir: Path | None = None,
    cleanroom: Path = ROOT,
) -> list[Result]:
    """
    Measure the start-up cost on *project*'s suite of installing cleanroom
    over its dependencies alone (and over neither), and of cleanroom's
    own plugin (against ``-p no:cleanroom`` in the same environment).
    """
    with tempfile.TemporaryDirectory(prefix="cleanroom-startup-") as scratch:
        base = workdir or Path(scratch)
        base.mkdir(parents=True, exist_ok=True)
        suite = _suite(project, base)
        without = _environment(base / "without", "pytest", str(suite))
        installed = _environment(base / "with", "pytest", str(suite), str(cleanroom))
        dependencies = base / "dependencies" / "bin" / "python"
        if not dependencies.exists():
            # The very versions that cleanroom pulled in, without cleanroom.
            _environment(base / "dependencies", "pytest", str(suite), str(cleanroom))
            subprocess.run(
                [str(dependencies), "-m", "pip", "uninstall", "-q", "-y", "cleanroom"],
                check=True,
            )
        contenders = {
            "without": (without, ()),
            "dependencies": (dependencies, ()),
            "with": (installed, ()),
            "plugin off": (installed, ("-p", "no:cleanroom")),
        }
        for python, options in contenders.values():
            forget_rewritten(python)
            collect(python, suite, *options)  # warm the file system caches
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for pair in range(pairs):
            names = list(contenders)
            for name in names if pair % 2 == 0 else names[::-1]:
                python, options = contenders[name]
                times[name].append(collect(python, suite, *options))

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))

    installed_ratio = ratio("with", "dependencies")
    bare_ratio = ratio("with", "without")
    plugin_ratio = ratio("with", "plugin off")
    medians = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    detail = (
        f"median CPU {medians['with']:.0f} ms with cleanroom, "
        f"{medians['plugin off']:.0f} ms with it installed but -p no:cleanroom, "
        f"{medians['dependencies']:.0f} ms with its dependencies only, "
        f"{medians['without']:.0f} ms with neither ({bare_ratio:.2f}x: the "
        f"dependencies' plugins included), {pairs} interleaved rounds"
    )
    return [
        Result(
            f"pytest --co on {project}'s suite, PYTHONDONTWRITEBYTECODE=1, "
            "cleanroom installed / its dependencies only",
            installed_ratio,
            GOAL,
            "x",
            detail=detail,
        ),
        Result(
            f"pytest --co on {project}'s suite, PYTHONDONTWRITEBYTECODE=1, "
            "cleanroom's plugin on / off",
            plugin_ratio,
            GOAL,
            "x",
            detail=detail,
        ),
    ]


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
    results = run(args.pairs, args.project, args.workdir, args.cleanroom)
    for result in results:
        print("  ".join(result.row()))
    print(f"  {results[0].detail}")
    return 0 if all(result.met for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
