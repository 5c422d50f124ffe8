"""
The Docker kinds: containers, networks, volumes and images, and how each is
removed, found and listed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final

import attrs

from cleanroom._core._capabilities import Owned
from cleanroom._core._ownership import Ownership
from cleanroom._core._resource import BaseKind, Resource
from cleanroom.exceptions import BackendUnavailableError, CleanroomError

from ._client import (
    SESSION_LABEL,
    TOKEN_LABEL,
    WAIT,
    api_of,
    client,
    docker_errors,
    engine_identity,
    engine_of,
    hint_prefix,
    status_of,
    wait_until,
)

if TYPE_CHECKING:
    from cleanroom._core._scope import Scope


@attrs.define
class DockerKind(BaseKind):
    """
    The base of the Docker kinds: what they share in adopting objects and
    listing the engine's labelled objects.

    .. versionadded:: 0.2.0
    """

    #: Fully qualified docker-py types that ``scope.add()`` turns into this kind.
    adopts: ClassVar[tuple[str, ...]] = ()

    def ref(self, resource: Resource) -> str:
        """Return what the engine knows *resource* by: its id, else its name."""
        return str(resource.identity.get("id") or resource.name)

    def adopt(self, scope: Scope, obj: Any, *, name: str | None = None) -> Resource:
        """
        Track the docker-py object *obj* by its id, so that cleanup depends on
        the object in the engine, not on the Python object.
        """
        resource = scope.track(self, name or obj.name, id=obj.id, **engine_identity())
        scope.alias(resource, obj)
        return resource

    def list_owned(self) -> Iterable[Owned]:
        """Return every object of this kind that carries cleanroom's labels."""
        return ()

    def _token_matches(
        self, labels: Mapping[str, str] | None, resource: Resource
    ) -> bool:
        """
        Tell whether an object found by name is the one *resource* stands for.

        An object tracked by id is; one journaled by name before it was made
        (an intent) must carry the token written into the journal with it, so
        that a name taken by someone else's object never gets it deleted.
        """
        token = resource.identity.get("token")
        if token is None or resource.identity.get("id"):
            return True
        return labels is not None and labels.get(TOKEN_LABEL) == token


def _owned(kind: BaseKind, info: Mapping[str, Any], ident: str) -> Iterator[Owned]:
    """The engine's object described by *info*, if it carries cleanroom's labels."""
    ownership = Ownership.from_labels(info.get("Labels"))
    if ownership is not None:
        yield Owned(
            Resource(
                kind.name,
                info["Name"],
                {"id": ident, **engine_identity()},
                scope=ownership.scope,
                declarative=True,
            ),
            ownership,
        )


def _listing_client() -> Any:
    """
    The engine's client for listing owned objects.

    Raises:
        BackendUnavailableError: When docker-py is missing or no engine answers,
            so that a sweep passes Docker by quietly on a machine without it.
    """
    try:
        import docker.errors
    except ImportError:
        raise BackendUnavailableError("the docker package is not installed") from None
    try:
        engine = client()
        engine.ping()
    except docker.errors.DockerException as exc:
        raise BackendUnavailableError(f"no Docker engine answers: {exc}") from None
    return engine


@attrs.define
class ContainerKind(DockerKind):
    """
    Docker containers: removed with ``remove(force=True, v=True)``, which kills
    them at once (no 10 s stop timeout: a ``sleep`` as PID 1 ignores
    ``SIGTERM``) and removes their anonymous volumes.

    .. versionadded:: 0.2.0
    """

    adopts: ClassVar[tuple[str, ...]] = ("docker.models.containers.Container",)

    def delete(self, resource: Resource, *, wait: bool) -> None:
        """Remove the container; succeed when it is gone already."""
        errors = docker_errors()
        api = api_of(resource)
        ref = self.ref(resource)
        if not resource.identity.get("id") and resource.identity.get("token"):
            try:
                labels = api.inspect_container(ref)["Config"].get("Labels")
            except errors.NotFound:
                return
            if not self._token_matches(labels, resource):
                return
        try:
            api.remove_container(ref, force=True, v=True)
        except errors.NotFound:
            return
        except errors.APIError as exc:
            # Another remove of it is under way (a sweep, the reaper): wait
            # for that one. Otherwise the engine answers once the container
            # is gone, which is the confirmation that wait=True asks for.
            if status_of(exc) != 409 or "in progress" not in str(exc):  # noqa: PLR2004
                raise
            if wait:
                wait_until(lambda: not self.exists(resource), f"removal of {ref}")

    def exists(self, resource: Resource) -> bool:
        """Ask the engine whether the container exists."""
        try:
            labels = (
                api_of(resource)
                .inspect_container(self.ref(resource))["Config"]
                .get("Labels")
            )
        except docker_errors().NotFound:
            return False
        return self._token_matches(labels, resource)

    def delete_hint(self, resource: Resource) -> str:
        """Return ``docker rm -f <id>``."""
        return f"{hint_prefix(resource)} rm -f {self.ref(resource)}"

    def describe(self, resource: Resource) -> str:
        """Return ``container 'name' (id)``."""
        ident = resource.identity.get("id")
        return f"container {resource.name!r}" + (f" ({ident[:12]})" if ident else "")

    def probe(self) -> str:
        """
        Describe the reachable Docker engine.

        Raises:
            BackendUnavailableError: When docker-py is missing or no engine
                answers.
        """
        try:
            import docker.errors
        except ImportError:
            raise BackendUnavailableError(
                "the docker package is not installed (pip install cleanroom[docker])"
            ) from None
        try:
            engine = client()
            version = engine.version()
        except docker.errors.DockerException as exc:
            raise BackendUnavailableError(f"no Docker engine answers: {exc}") from None
        import docker.constants

        where = engine_of() or docker.constants.DEFAULT_UNIX_SOCKET.removeprefix(
            "http+"
        )
        return f"Docker {version.get('Version')} at {where}"

    def roundtrip(self, scope: Scope) -> str:
        """
        Create one container in *scope* from a local image, never started
        nor pulled, and remove it; without local images, a volume.

        Raises:
            CleanroomError: When what was created is still there after.
        """
        docker_ = scope.docker
        images = docker_.client.images.list()
        if not images:
            volume = docker_.volume()
            scope.release(volume)
            if VOLUMES.exists(Resource("volume", volume.name)):
                raise CleanroomError(f"volume {volume.name} still exists")
            return f"created volume {volume.name} and removed it (no local image)"
        image = images[0]
        reference = image.tags[0] if image.tags else image.id
        container = docker_.create(reference, ["true"], network_mode="none")
        scope.release(container)
        if self.exists(Resource("container", container.name, {"id": container.id})):
            raise CleanroomError(f"container {container.id[:12]} still exists")
        return f"created container {container.name} from {reference} and removed it"

    def list_owned(self) -> Iterable[Owned]:
        """List the engine's containers that carry cleanroom's labels."""
        found = _listing_client().containers.list(
            all=True, sparse=True, filters={"label": SESSION_LABEL}
        )
        for container in found:
            labels = container.attrs.get("Labels") or {}
            ownership = Ownership.from_labels(labels)
            if ownership is None:
                continue
            names = container.attrs.get("Names") or [container.id]
            yield Owned(
                Resource(
                    self.name,
                    names[0].lstrip("/"),
                    {"id": container.id, **engine_identity()},
                    scope=ownership.scope,
                    declarative=True,
                ),
                ownership,
            )


@attrs.define
class NetworkKind(DockerKind):
    """
    Docker networks: removed after cleanroom's containers are disconnected
    from them.

    .. versionadded:: 0.2.0
    """

    adopts: ClassVar[tuple[str, ...]] = ("docker.models.networks.Network",)

    def delete(self, resource: Resource, *, wait: bool) -> None:
        """Remove the network; succeed when it is gone already."""
        errors = docker_errors()
        api = api_of(resource)
        try:
            info = api.inspect_network(self.ref(resource))
        except errors.NotFound:
            return
        if not self._token_matches(info.get("Labels"), resource):
            return
        ident = info["Id"]
        # Containers of cleanroom's that are still attached are being removed
        # or were kept; either way they must not keep the network alive. A
        # foreign container attached to it is never touched: removal fails.
        for container in info.get("Containers") or {}:
            with contextlib.suppress(errors.NotFound, errors.APIError):
                labels = api.inspect_container(container)["Config"].get("Labels")
                if Ownership.from_labels(labels) is not None:
                    api.disconnect_container_from_network(container, ident, force=True)
        try:
            api.remove_network(ident)
        except errors.NotFound:
            return
        if wait:
            wait_until(lambda: not self.exists(resource), f"removal of network {ident}")

    def exists(self, resource: Resource) -> bool:
        """Ask the engine whether the network exists."""
        try:
            info = api_of(resource).inspect_network(self.ref(resource))
        except docker_errors().NotFound:
            return False
        return self._token_matches(info.get("Labels"), resource)

    def delete_hint(self, resource: Resource) -> str:
        """Return ``docker network rm <id>``."""
        return f"{hint_prefix(resource)} network rm {self.ref(resource)}"

    def list_owned(self) -> Iterable[Owned]:
        """List the engine's networks that carry cleanroom's labels."""
        for info in _listing_client().api.networks(filters={"label": SESSION_LABEL}):
            yield from _owned(self, info, info["Id"])


@attrs.define
class VolumeKind(DockerKind):
    """
    Docker volumes: a record by default (kept at level ``pods``, removed at
    ``all``); removed after the containers that use them.

    .. versionadded:: 0.2.0
    """

    adopts: ClassVar[tuple[str, ...]] = ("docker.models.volumes.Volume",)

    def ref(self, resource: Resource) -> str:
        """Return the volume's name: volumes are known by name only."""
        return resource.name

    def adopt(self, scope: Scope, obj: Any, *, name: str | None = None) -> Resource:
        """Track the docker-py volume *obj* by its name."""
        resource = scope.track(self, name or obj.name, id=obj.name, **engine_identity())
        scope.alias(resource, obj)
        return resource

    def delete(self, resource: Resource, *, wait: bool) -> None:  # noqa: ARG002
        """
        Remove the volume; succeed when it is gone already. A volume still in
        use by containers being removed is waited for, a few seconds at most.
        """
        errors = docker_errors()
        api = api_of(resource)
        name = self.ref(resource)
        if not self.exists(resource):
            return
        deadline = time.monotonic() + WAIT / 6
        while True:
            try:
                api.remove_volume(name)
            except errors.NotFound:
                return
            except errors.APIError as exc:
                if status_of(exc) != 409 or time.monotonic() > deadline:  # noqa: PLR2004
                    raise
                time.sleep(0.1)
            else:
                return

    def exists(self, resource: Resource) -> bool:
        """Ask the engine whether the volume exists."""
        try:
            info = api_of(resource).inspect_volume(self.ref(resource))
        except docker_errors().NotFound:
            return False
        return self._token_matches(info.get("Labels"), resource)

    def delete_hint(self, resource: Resource) -> str:
        """Return ``docker volume rm <name>``."""
        return f"{hint_prefix(resource)} volume rm {self.ref(resource)}"

    def list_owned(self) -> Iterable[Owned]:
        """List the engine's volumes that carry cleanroom's labels."""
        found = _listing_client().api.volumes(filters={"label": SESSION_LABEL})
        for info in found.get("Volumes") or ():
            yield from _owned(self, info, info["Name"])


@attrs.define
class ImageKind(DockerKind):
    """
    Docker images, tracked with ``scope.track("image", "name:tag")`` or
    ``scope.add(image)``: a record by default. Removal untags the name (and
    deletes the image when no other tag or container holds it); it is never
    forced.

    .. versionadded:: 0.2.0
    """

    adopts: ClassVar[tuple[str, ...]] = ("docker.models.images.Image",)

    def adopt(self, scope: Scope, obj: Any, *, name: str | None = None) -> Resource:
        """Track the docker-py image *obj* by its first tag, else its id."""
        tags = list(obj.tags or ())
        resource = scope.track(
            self, name or (tags[0] if tags else obj.id), id=obj.id, **engine_identity()
        )
        scope.alias(resource, obj)
        return resource

    def ref(self, resource: Resource) -> str:
        """Return the image's name when it has one, so only that tag goes."""
        return resource.name

    def delete(self, resource: Resource, *, wait: bool) -> None:  # noqa: ARG002
        """Remove the image's tag; succeed when it is gone already."""
        errors = docker_errors()
        try:
            api_of(resource).remove_image(self.ref(resource))
        except errors.NotFound:
            return

    def exists(self, resource: Resource) -> bool:
        """Ask the engine whether the image exists."""
        try:
            api_of(resource).inspect_image(self.ref(resource))
        except docker_errors().NotFound:
            return False
        return True

    def delete_hint(self, resource: Resource) -> str:
        """Return ``docker rmi <name>``."""
        return f"{hint_prefix(resource)} rmi {self.ref(resource)}"


#: The kind of containers, runtime things cleaned at level ``pods``.
CONTAINERS: Final = ContainerKind("container", aliases=("containers",))
#: The kind of networks, runtime things cleaned at level ``pods``.
NETWORKS: Final = NetworkKind("network", aliases=("networks",))
#: The kind of named volumes, records kept at level ``pods`` (a custom
#: :class:`~cleanroom.Level` with ``kinds=("volume",)`` cleans them there).
VOLUMES: Final = VolumeKind("volume", aliases=("volumes",), category="record")
#: The kind of images, records kept at level ``pods``.
IMAGES: Final = ImageKind("image", aliases=("images",), category="record")
