"""
Fixtures of the integration tests: direct clients of the services, which look
at and make things behind cleanroom's back.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dockerenv import IMAGE, OFFLINE, require_docker


@pytest.fixture
def engine() -> Iterator[Any]:
    """A docker-py client of its own, for looking at the engine directly."""
    require_docker()
    import docker

    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Names unique to the test: ``unique("web")`` → ``"crtest-web-1a2b3c4d"``."""
    run = uuid.uuid4().hex[:8]
    return lambda stem: f"crtest-{stem}-{run}"


@pytest.fixture
def foreign(engine: Any) -> Iterator[Callable[..., Any]]:
    """
    Make containers without cleanroom's labels, as other tools do; the test
    removes them at its end whatever happened.
    """
    made: list[Any] = []

    def make(name: str | None = None, **kwargs: Any) -> Any:
        container = engine.containers.create(
            IMAGE, ["sleep", "300"], name=name, **{**OFFLINE, **kwargs}
        )
        made.append(container)
        return container

    yield make
    for container in made:
        # Some are removed by the test itself, or by cleanroom.
        with contextlib.suppress(Exception):
            container.remove(force=True, v=True)
