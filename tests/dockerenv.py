"""
The Docker engine of the tests: whether one answers, the image they run, and
helpers that look at the engine directly, never through cleanroom.

Tests and doc examples marked ``docker`` skip with the reason when no engine
answers or the test image is missing, and fail instead under
``CLEANROOM_REQUIRE_DOCKER=1`` (CI). ``.ci/docker-engine`` starts an engine
and imports the image.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import pytest

#: The local image that tests run (``.ci/docker-engine`` imports it; nothing
#: is pulled).
IMAGE = os.environ.get("CLEANROOM_TEST_IMAGE", "cleanroom-test-busybox:latest")

#: Keyword arguments that keep a test container off every network.
OFFLINE: dict[str, Any] = {"network_mode": "none"}


@functools.cache
def unavailable() -> str | None:
    """Why the Docker tests cannot run here, or ``None`` when they can."""
    try:
        import docker
        import docker.errors
    except ImportError:
        return "the docker package is not installed (pip install cleanroom[docker])"
    try:
        client = docker.from_env()
    except docker.errors.DockerException as exc:
        return f"no Docker engine answers ({exc}); start one with .ci/docker-engine"
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        return f"the test image {IMAGE} is missing; .ci/docker-engine imports it"
    finally:
        client.close()
    return None


def require_docker() -> None:
    """Skip (or fail, under ``CLEANROOM_REQUIRE_DOCKER=1``) without an engine."""
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("CLEANROOM_REQUIRE_DOCKER", "").strip() not in {"", "0"}:
        pytest.fail(f"CLEANROOM_REQUIRE_DOCKER is set, but {reason}", pytrace=False)
    pytest.skip(reason)
