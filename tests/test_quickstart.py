"""
The README's quick start, the CI script that runs it, and what the test run imports.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cleanroom

ROOT = Path(__file__).resolve().parents[1]
CI_SCRIPT = ROOT / ".ci" / "run"


@pytest.mark.skipif(not CI_SCRIPT.is_file(), reason="needs a checkout with .ci/run")
class TestQuickStart:
    def test_ci_runs_the_readme_test_line(self) -> None:
        """.ci/run runs the README's one quick-start line that runs pytest."""
        readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
        line = next(x for x in readme if x.endswith(".venv/bin/pytest"))
        result = subprocess.run(
            ["bash", "-c", "source .ci/run && readme_test_line"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout.strip() == line

    def test_quick_start_has_two_lines(self) -> None:
        """The quick start installs and checks, then installs and tests."""
        readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
        lines = [x for x in readme if x.startswith("python3 -m venv .venv && ")]
        assert len(lines) == 2
        assert lines[0].endswith(".venv/bin/cleanroom check")
        assert "--group tests" in lines[1]
        assert lines[1].endswith(".venv/bin/pytest")


def test_suite_imports_the_installed_package() -> None:
    """The tests import cleanroom as installed, not from the source tree by path."""
    result = subprocess.run(
        [sys.executable, "-I", "-c", "import cleanroom; print(cleanroom.__file__)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(cleanroom.__file__).resolve() == Path(result.stdout.strip()).resolve()
