"""
Fixtures shared by the whole test suite.
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from vms import SlowVM, Tmux

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


@pytest.fixture
def slowvm(tmp_path: Path) -> Iterator[SlowVM]:
    """A state folder of ``tests/slowvm.py``; its kinds are unregistered after."""
    vms = SlowVM(tmp_path / "slowvm")
    yield vms
    vms.close()


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    """A private tmux server (its own socket), killed after the test."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    server = Tmux()
    yield server
    server.close()
