"""
Fixtures shared by the whole test suite.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

TESTS = Path(__file__).parent


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


@pytest.fixture
def markers(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The marker kind of ``tests/markerkinds.py``, importable by child processes."""
    monkeypatch.syspath_prepend(str(TESTS))
    return importlib.import_module("markerkinds")
