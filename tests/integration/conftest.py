"""
Fixtures of the backend tests: direct clients of the services (a real
Docker engine, a real Kubernetes control plane), which look at and make
things behind cleanroom's back.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import kube
from dockerenv import IMAGE, OFFLINE, require_docker


@pytest.fixture(scope="session")
def control_plane() -> Iterator[kube.ControlPlane]:
    """The cluster; skips without one, fails under CLEANROOM_REQUIRE_KUBERNETES=1."""
    pytest.importorskip("kubernetes", reason="needs pip install cleanroom[kubernetes]")
    found = kube.find()
    if isinstance(found, str):
        if kube.required():
            pytest.fail(f"{kube.REQUIRE_ENV} is set: {found}")
        pytest.skip(found)
    yield found
    found.stop()


@pytest.fixture(scope="session")
def api_client(control_plane: kube.ControlPlane) -> Iterator[Any]:
    """An ApiClient of the test cluster, made the backend's default."""
    import cleanroom.kinds.kubernetes as k8s

    client = kube.api_client(control_plane.kubeconfig)
    previous = k8s.default_cluster()
    k8s.configure(client, wait_timeout=30)
    yield client
    k8s.default_cluster().close()
    k8s.configure(previous.api_client, wait_timeout=previous.wait_timeout)


@pytest.fixture
def core(api_client: Any) -> Any:
    """The typed CoreV1Api, to look at the cluster behind cleanroom's back."""
    from kubernetes import client

    return client.CoreV1Api(api_client)


@pytest.fixture
def batch(api_client: Any) -> Any:
    """The typed BatchV1Api."""
    from kubernetes import client

    return client.BatchV1Api(api_client)


@pytest.fixture
def audit(control_plane: kube.ControlPlane) -> kube.AuditLog:
    """The API server's audit log."""
    if control_plane.audit_log is None:
        pytest.skip("this cluster's audit log is not readable here")
    return kube.AuditLog(control_plane.audit_log)


@pytest.fixture
def namespace(core: Any) -> Iterator[str]:
    """A namespace made behind cleanroom's back, deleted after the test."""
    import os

    name = f"test-{os.urandom(4).hex()}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name, propagation_policy="Background")


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
