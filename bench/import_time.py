"""
Import cost: ``import cleanroom`` in a fresh interpreter against ``import
attrs, anyio`` (its dependencies, a floor it cannot go below), and which
optional backends the import pulls in (it must pull in none).

Each interpreter's cost is its CPU time (user + system, from ``wait4``), so
that a busy machine does not count time spent waiting for a processor.
Bytecode is cached in a private directory and warmed up first, as an
installed package's would be, even where ``PYTHONDONTWRITEBYTECODE`` is set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from _measure import Result, child_cpu, interleaved

OPTIONAL = ("docker", "kubernetes")
DEPENDENCIES = "import attrs, anyio"
CLEANROOM = "import attrs, anyio, cleanroom"
SCOPE = "import attrs, anyio; from cleanroom import Scope"

_LIST_MODULES = (
    "import cleanroom, json, sys; "
    "print(json.dumps(sorted(m for m in sys.modules "
    f"if m.split('.')[0] in {OPTIONAL!r})))"
)


def _environment(cache: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    return env


def _cpu_seconds(code: str, env: dict[str, str]) -> float:
    # Run outside the source tree: python -c puts the working directory first
    # on sys.path, and the checkout's cleanroom would shadow the installed one.
    return child_cpu([sys.executable, "-c", code], cwd=tempfile.gettempdir(), env=env)


def _optional_modules(env: dict[str, str]) -> list[str]:
    output = subprocess.run(
        [sys.executable, "-c", _LIST_MODULES],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
    ).stdout
    modules: list[str] = json.loads(output)
    return modules


def run(repetitions: int) -> list[Result]:
    """Measure the added import time, and list optional modules imported."""
    with tempfile.TemporaryDirectory(prefix="cleanroom-bench-") as cache:
        env = _environment(cache)
        for _ in range(2):
            _cpu_seconds(CLEANROOM, env)
        medians = interleaved(
            repetitions * 4,
            {
                "pass": lambda: _cpu_seconds("pass", env),
                "deps": lambda: _cpu_seconds(DEPENDENCIES, env),
                "import": lambda: _cpu_seconds(CLEANROOM, env),
                "scope": lambda: _cpu_seconds(SCOPE, env),
            },
        )
        imported = _optional_modules(env)
    added = (medians["import"] - medians["deps"]) * 1e3
    return [
        Result(
            "import cleanroom, added to import attrs, anyio",
            added,
            10.0,
            "ms",
            detail=(
                f"import attrs, anyio, cleanroom {medians['import'] * 1e3:.1f} ms, "
                f"import attrs, anyio {medians['deps'] * 1e3:.1f} ms, "
                f"pass {medians['pass'] * 1e3:.1f} ms of CPU; "
                f"from cleanroom import Scope (loaded on first use) adds "
                f"{(medians['scope'] - medians['deps']) * 1e3:.1f} ms"
            ),
        ),
        Result(
            f"{' and '.join(OPTIONAL)} modules imported by import cleanroom",
            len(imported),
            0,
            "modules",
            detail=", ".join(imported) or "none",
        ),
    ]
