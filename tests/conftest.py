"""
Fixtures and settings shared by the whole test suite.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_JOURNAL_DIR = "_cleanroom_test_journal_dir"


def pytest_configure(config: pytest.Config) -> None:
    """Give the run a journal of its own, never the user's cache."""
    if "CLEANROOM_JOURNAL" in os.environ:
        return
    folder = tempfile.mkdtemp(prefix="cleanroom-tests-")
    setattr(config, _JOURNAL_DIR, folder)
    # Set before pytest-xdist starts its workers, so that they share it.
    os.environ["CLEANROOM_JOURNAL"] = str(Path(folder) / "journal.sqlite3")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the run's journal."""
    folder = getattr(config, _JOURNAL_DIR, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("CLEANROOM_JOURNAL", None)


@pytest.fixture(
    scope="session",
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ],
)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run each ``@pytest.mark.anyio`` test on asyncio and on trio."""
    return str(request.param)
