"""
Conformance cases of the Docker kinds: a container, an internal network and a
named volume, made through ``scope.docker`` and checked with a client of the
case's own (see ``tests/conformance.py``).
"""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from cleanroom import Resource, Scope
from conformance import KindCase
from dockerenv import IMAGE, unavailable


def _engine() -> Any:
    import docker

    return docker.from_env()


def _made(scope: Scope, kind: str) -> Resource:
    """The resource of *kind* that the scope tracked last."""
    return next(r for r in scope.resources() if r.kind == kind)


class _DockerCase(KindCase):
    marks = (pytest.mark.docker,)

    def available(self) -> str | None:
        return unavailable()

    def child_source(self) -> str:
        return textwrap.dedent(f"""
            import cleanroom
            with cleanroom.managed_resources() as scope:
                {self.make_in_child}
                resource = next(r for r in scope.resources() if r.kind == {self.kind!r})
        """)

    make_in_child = ""


class ContainerCase(_DockerCase):
    kind = "container"
    make_in_child = (
        f"scope.docker.run({IMAGE!r}, ['sleep', '300'], network_mode='none')"
    )

    def create(self, scope: Scope) -> Resource:
        scope.docker.run(IMAGE, ["sleep", "300"], network_mode="none")
        return _made(scope, self.kind)

    def exists(self, resource: Resource) -> bool:
        import docker.errors

        try:
            _engine().api.inspect_container(resource.identity["id"])
        except docker.errors.NotFound:
            return False
        return True

    def destroy(self, resource: Resource) -> None:
        _engine().api.remove_container(resource.identity["id"], force=True, v=True)


class NetworkCase(_DockerCase):
    kind = "network"
    make_in_child = "scope.docker.network('cleanroom-conformance', internal=True)"

    def create(self, scope: Scope) -> Resource:
        scope.docker.network("cleanroom-conformance", internal=True)
        return _made(scope, self.kind)

    def exists(self, resource: Resource) -> bool:
        import docker.errors

        try:
            _engine().api.inspect_network(resource.identity["id"])
        except docker.errors.NotFound:
            return False
        return True

    def destroy(self, resource: Resource) -> None:
        _engine().api.remove_network(resource.identity["id"])


class VolumeCase(_DockerCase):
    kind = "volume"
    make_in_child = "scope.docker.volume()"

    def create(self, scope: Scope) -> Resource:
        scope.docker.volume()
        return _made(scope, self.kind)

    def exists(self, resource: Resource) -> bool:
        import docker.errors

        try:
            _engine().api.inspect_volume(resource.name)
        except docker.errors.NotFound:
            return False
        return True

    def destroy(self, resource: Resource) -> None:
        _engine().api.remove_volume(resource.name)


CASES = [ContainerCase(), NetworkCase(), VolumeCase()]
