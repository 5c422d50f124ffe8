"""
Fixtures shared by the whole test suite.
"""

from __future__ import annotations

import pytest


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
