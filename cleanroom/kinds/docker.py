"""
Docker containers, networks, volumes and images: created labelled, removed in
parallel, found again by their labels after a crash.

``scope.docker`` (this module's :func:`family`) mirrors docker-py:
:meth:`~DockerFamily.run`, :meth:`~DockerFamily.create`,
:meth:`~DockerFamily.network` and :meth:`~DockerFamily.volume` take the
arguments of ``containers.run``, ``containers.create``, ``networks.create`` and
``volumes.create``, add cleanroom's ownership labels and track what they
made. ``scope.add(container)`` adopts a docker-py object made elsewhere, and
``scope.track("container", id_or_name)`` tracks one by name.

docker-py is imported when first used, never by ``import cleanroom`` nor by
importing this module: install it with ``pip install cleanroom[docker]``.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self

import anyio.to_thread
import attrs

from cleanroom._core._capabilities import Owned
from cleanroom._core._ownership import Ownership, label_key, ownership_labels
from cleanroom._core._resource import BaseKind, Resource, register_kind
from cleanroom._core._session import current_owner, pid_alive
from cleanroom.exceptions import (
    BackendUnavailableError,
    CleanroomError,
    NameConflictError,
)

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container
    from docker.models.networks import Network
    from docker.models.volumes import Volume

    from cleanroom._core._creation import Creation
    from cleanroom._core._scope import Scope

__all__ = [
    "CONTAINERS",
    "IMAGES",
    "NETWORKS",
    "POOL_SIZE",
    "VOLUMES",
    "ContainerKind",
    "DockerFamily",
    "DockerKind",
    "ImageKind",
    "NetworkKind",
    "VolumeKind",
    "Watch",
    "client",
    "family",
    "roundtrip",
]

_log = logging.getLogger("cleanroom.docker")

#: How many HTTP connections each docker-py client keeps, at least a policy's
#: default ``concurrency`` (100), so that parallel teardown never waits for a
#: connection nor logs "Connection pool is full".
POOL_SIZE: Final = 100

#: The label that every object cleanroom made carries (with the session's id).
_SESSION: Final = label_key("session")
#: A random value per object, journaled with its name before the object
#: exists: an object found by that name is ours only if it carries the token.
_TOKEN: Final = label_key("token")

#: Seconds to wait for the engine to confirm a removal, or for a volume or
#: network to be released by containers that are being removed.
_WAIT: Final = 30.0
#: Attempts at creating a container whose name a dead session's container held.
_CONFLICT_ATTEMPTS: Final = 3


# -- clients -----------------------------------------------------------------------

_clients: dict[tuple[int, str | None], docker.DockerClient] = {}
_clients_lock = threading.Lock()


def client(engine: str | None = None) -> docker.DockerClient:
    """
    Return this process's docker-py client for *engine*.

    Args:
        engine: A ``DOCKER_HOST`` URL; by default the environment's
            (``DOCKER_HOST``, ``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``), as
            ``docker.from_env()`` reads it, so rootless engines work too.

    Returns:
        A client whose connection pool holds :data:`POOL_SIZE` connections.
        It is shared, closed at exit, and made anew in a forked child.

    .. versionadded:: 0.2.0
    """
    import docker

    key = (os.getpid(), engine)
    with _clients_lock:
        found = _clients.get(key)
        if found is None:
            if engine is None or engine == os.environ.get("DOCKER_HOST"):
                # The environment's TLS settings go with its DOCKER_HOST.
                found = docker.from_env(max_pool_size=POOL_SIZE)
            else:
                found = docker.DockerClient(base_url=engine, max_pool_size=POOL_SIZE)
            _clients[key] = found
        return found


@atexit.register
def _close_clients() -> None:
    with _clients_lock:
        mine = [key for key in _clients if key[0] == os.getpid()]
        for key in mine:
            with contextlib.suppress(Exception):
                _clients.pop(key).close()


def _engine() -> str | None:
    """The engine that objects are created on, when not the default one."""
    return os.environ.get("DOCKER_HOST") or None


def _api(resource: Resource) -> Any:
    return client(resource.identity.get("engine")).api


def _errors() -> Any:
    import docker.errors

    return docker.errors


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _wait_until(done: Callable[[], bool], what: str, timeout: float = _WAIT) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.02
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _refused(exc: BaseException) -> bool:
    """
    Tell whether a create failed because the engine refused it (so nothing was
    made), rather than because the answer was lost (so something may exist).
    """
    if isinstance(exc, NameConflictError):
        return True
    status = _status(exc)
    return status is not None and 400 <= status < 500  # noqa: PLR2004


def _hint_prefix(resource: Resource) -> str:
    engine = resource.identity.get("engine")
    return f"docker -H {engine}" if engine else "docker"


# -- the kinds -----------------------------------------------------------------------


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
        resource = scope.track(self, name or obj.name, id=obj.id, **_engine_identity())
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
        return labels is not None and labels.get(_TOKEN) == token


def _engine_identity() -> dict[str, str]:
    engine = _engine()
    return {"engine": engine} if engine else {}


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
        errors = _errors()
        api = _api(resource)
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
            if _status(exc) != 409 or "in progress" not in str(exc):  # noqa: PLR2004
                raise
            if wait:
                _wait_until(lambda: not self.exists(resource), f"removal of {ref}")

    def exists(self, resource: Resource) -> bool:
        """Ask the engine whether the container exists."""
        try:
            labels = (
                _api(resource)
                .inspect_container(self.ref(resource))["Config"]
                .get("Labels")
            )
        except _errors().NotFound:
            return False
        return self._token_matches(labels, resource)

    def delete_hint(self, resource: Resource) -> str:
        """Return ``docker rm -f <id>``."""
        return f"{_hint_prefix(resource)} rm -f {self.ref(resource)}"

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
        return f"Docker {version.get('Version')} at {engine.api.base_url}"

    def roundtrip(self, scope: Scope) -> str:
        """
        Create one container in *scope* from a local image, never started
        nor pulled, and remove it; without local images, a volume.

        Raises:
            CleanroomError: When what was created is still there after.
        """
        docker_ = family(scope)
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
        found = client().containers.list(
            all=True, sparse=True, filters={"label": _SESSION}
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
                    {"id": container.id, **_engine_identity()},
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
        errors = _errors()
        api = _api(resource)
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
            _wait_until(
                lambda: not self.exists(resource), f"removal of network {ident}"
            )

    def exists(self, resource: Resource) -> bool:
        """Ask the engine whether the network exists."""
        try:
            info = _api(resource).inspect_network(self.ref(resource))
        except _errors().NotFound:
            return False
        return self._token_matches(info.get("Labels"), resource)

    def delete_hint(self, resource: Resource) -> str:
        """Return ``docker network rm <id>``."""
        return f"{_hint_prefix(resource)} network rm {self.ref(resource)}"

    def list_owned(self) -> Iterable[Owned]:
        """List the engine's networks that carry cleanroom's labels."""
        for info in client().api.networks(filters={"label": _SESSION}):
            ownership = Ownership.from_labels(info.get("Labels"))
            if ownership is not None:
                yield Owned(
                    Resource(
                        self.name,
                        info["Name"],
                        {"id": info["Id"], **_engine_identity()},
                        scope=ownership.scope,
                        declarative=True,
                    ),
                    ownership,
                )


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
        resource = scope.track(
            self, name or obj.name, id=obj.name, **_engine_identity()
        )
        scope.alias(resource, obj)
        return resource

    def delete(self, resource: Resource, *, wait: bool) -> None:  # noqa: ARG002
        """
        Remove the volume; succeed when it is gone already. A volume still in
        use by containers being removed is waited for, a few seconds at most.
        """
        errors = _errors()
        api = _api(resource)
        name = self.ref(resource)
        if not self.exists(resource):
            return
        deadline = time.monotonic() + _WAIT / 6
        while True:
            try:
                api.remove_volume(name)
            except errors.NotFound:
                return
            except errors.APIError as exc:
                if _status(exc) != 409 or time.monotonic() > deadline:  # noqa: PLR2004
                    raise
                time.sleep(0.1)
            else:
                return

    def exists(self, resource: Resource) -> bool:
        """Ask the engine whether the volume exists."""
        try:
            info = _api(resource).inspect_volume(self.ref(resource))
        except _errors().NotFound:
            return False
        return self._token_matches(info.get("Labels"), resource)

    def delete_hint(self, resource: Resource) -> str:
        """Return ``docker volume rm <name>``."""
        return f"{_hint_prefix(resource)} volume rm {self.ref(resource)}"

    def list_owned(self) -> Iterable[Owned]:
        """List the engine's volumes that carry cleanroom's labels."""
        found = client().api.volumes(filters={"label": _SESSION})
        for info in found.get("Volumes") or ():
            ownership = Ownership.from_labels(info.get("Labels"))
            if ownership is not None:
                yield Owned(
                    Resource(
                        self.name,
                        info["Name"],
                        {"id": info["Name"], **_engine_identity()},
                        scope=ownership.scope,
                        declarative=True,
                    ),
                    ownership,
                )


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
            self, name or (tags[0] if tags else obj.id), id=obj.id, **_engine_identity()
        )
        scope.alias(resource, obj)
        return resource

    def ref(self, resource: Resource) -> str:
        """Return the image's name when it has one, so only that tag goes."""
        return resource.name

    def delete(self, resource: Resource, *, wait: bool) -> None:  # noqa: ARG002
        """Remove the image's tag; succeed when it is gone already."""
        errors = _errors()
        try:
            _api(resource).remove_image(self.ref(resource))
        except errors.NotFound:
            return

    def exists(self, resource: Resource) -> bool:
        """Ask the engine whether the image exists."""
        try:
            _api(resource).inspect_image(self.ref(resource))
        except _errors().NotFound:
            return False
        return True

    def delete_hint(self, resource: Resource) -> str:
        """Return ``docker rmi <name>``."""
        return f"{_hint_prefix(resource)} rmi {self.ref(resource)}"


#: The kind of containers, runtime things cleaned at level ``pods``.
CONTAINERS: Final = ContainerKind("container", aliases=("containers",))
#: The kind of networks, runtime things cleaned at level ``pods``.
NETWORKS: Final = NetworkKind("network", aliases=("networks",))
#: The kind of named volumes, records kept at level ``pods`` (a custom
#: :class:`~cleanroom.Level` with ``kinds=("volume",)`` cleans them there).
VOLUMES: Final = VolumeKind("volume", aliases=("volumes",), category="record")
#: The kind of images, records kept at level ``pods``.
IMAGES: Final = ImageKind("image", aliases=("images",), category="record")

for _kind in (CONTAINERS, NETWORKS, VOLUMES, IMAGES):
    register_kind(_kind)
del _kind


# -- creating ------------------------------------------------------------------------


def _new_name() -> str:
    return f"cleanroom-{uuid.uuid4().hex[:12]}"


def _labelled(given: object, scope: Scope, token: str) -> dict[str, str]:
    """Merge the caller's labels (a mapping or a list of names) with cleanroom's."""
    if given is None:
        labels: dict[str, str] = {}
    elif isinstance(given, Mapping):
        labels = {str(key): str(value) for key, value in given.items()}
    elif isinstance(given, Iterable) and not isinstance(given, str):
        labels = dict.fromkeys(map(str, given), "")
    else:
        raise TypeError(f"labels must be a mapping or a list of names, not {given!r}")
    return {**labels, **ownership_labels(scope), _TOKEN: token}


@attrs.frozen
class _Plan:
    """
    What is decided before creating: the name, docker-py's arguments (labels
    included) and the identity journaled with the intent.
    """

    name: str
    kwargs: dict[str, Any]
    identity: dict[str, str]


def _describe(ownership: Ownership) -> str:
    return (
        f"cleanroom session {ownership.session} (pid {ownership.pid} on "
        f"{ownership.host}, scope {ownership.scope!r})"
    )


@attrs.define
class DockerFamily:
    """
    ``scope.docker``: create Docker containers, networks and volumes that the
    scope tracks and removes, mirroring docker-py's calls.

    Each method has an async twin (``arun``, ``acreate``, ``anetwork``,
    ``avolume``) that runs the blocking calls in a worker thread. What is
    created carries cleanroom's labels (session, scope, owner host, pid and
    start time, creation time) and is journaled before it is created, so that
    the reaper and ``cleanroom sweep`` find it after a crash.

    Args:
        scope: The scope that tracks what is created.
        engine: A ``DOCKER_HOST`` URL; by default the environment's.

    .. versionadded:: 0.2.0
    """

    scope: Scope
    engine: str | None = attrs.field(factory=_engine)

    @property
    def client(self) -> docker.DockerClient:
        """The docker-py client used to create things."""
        return client(self.engine)

    # -- containers ------------------------------------------------------------------

    def run(
        self, image: str, command: str | list[str] | None = None, **kwargs: Any
    ) -> Container:
        """
        Create and start a container, like docker-py's ``containers.run``
        with ``detach=True``; return the :class:`~docker.models.containers.Container`.

        The image is never pulled: a missing one raises
        ``docker.errors.ImageNotFound``. ``remove=True`` becomes
        ``auto_remove=True``. A container name taken by a container of a dead
        cleanroom session is freed and the creation retried.

        Args:
            image: The image to run.
            command: The command to run, as for docker-py.
            kwargs: docker-py's keyword arguments for ``containers.run``;
                ``name`` defaults to ``cleanroom-<random>`` so that the name
                is journaled before the container exists.

        Raises:
            NameConflictError: When the name is held by a live session's
                container or by one cleanroom did not create.
        """
        plan = self._plan(kwargs, run=True)
        with self.scope.creating(CONTAINERS, plan.name, **plan.identity) as made:
            return self._make_container(made, plan, image, command, start=True)

    def create(
        self, image: str, command: str | list[str] | None = None, **kwargs: Any
    ) -> Container:
        """
        Create a container without starting it, like docker-py's
        ``containers.create``; see :meth:`run` for names and conflicts.
        """
        plan = self._plan(kwargs, run=False)
        with self.scope.creating(CONTAINERS, plan.name, **plan.identity) as made:
            return self._make_container(made, plan, image, command, start=False)

    async def arun(
        self, image: str, command: str | list[str] | None = None, **kwargs: Any
    ) -> Container:
        """:meth:`run` from async code: docker-py's calls run in a worker thread."""
        plan = self._plan(kwargs, run=True)
        async with self.scope.acreating(CONTAINERS, plan.name, **plan.identity) as made:
            make = functools.partial(
                self._make_container, made, plan, image, command, start=True
            )
            return await anyio.to_thread.run_sync(make)

    async def acreate(
        self, image: str, command: str | list[str] | None = None, **kwargs: Any
    ) -> Container:
        """:meth:`create` from async code: docker-py's calls run in a worker thread."""
        plan = self._plan(kwargs, run=False)
        async with self.scope.acreating(CONTAINERS, plan.name, **plan.identity) as made:
            make = functools.partial(
                self._make_container, made, plan, image, command, start=False
            )
            return await anyio.to_thread.run_sync(make)

    def _plan(
        self, kwargs: dict[str, Any], *, run: bool, name: str | None = None
    ) -> _Plan:
        """Name, label and journal identity of a thing about to be created."""
        kwargs = dict(kwargs)
        if run:
            if not kwargs.pop("detach", True):
                raise TypeError(
                    "scope.docker.run() always detaches; detach=False is not supported"
                )
            for option in ("stdout", "stderr", "stream"):
                # They only shape the logs returned by an attached run.
                kwargs.pop(option, None)
            if kwargs.pop("remove", False):
                kwargs["auto_remove"] = True
        if name is None:
            name = kwargs.pop("name", None) or _new_name()
        token = uuid.uuid4().hex
        kwargs["labels"] = _labelled(kwargs.get("labels"), self.scope, token)
        identity = {"token": token, **({"engine": self.engine} if self.engine else {})}
        return _Plan(name, kwargs, identity)

    def _make_container(
        self,
        made: Creation,
        plan: _Plan,
        image: str,
        command: str | list[str] | None,
        *,
        start: bool,
    ) -> Container:
        try:
            container = self._create_freeing_name(
                image, command, plan.name, plan.kwargs
            )
        except Exception as exc:
            if _refused(exc):
                # The engine said no: nothing exists to be deleted.
                made.abandon(f"the engine refused it: {exc}")
            raise
        made.update(id=container.id)
        made.alias(container)
        if start:
            container.start()
            container.reload()
        return container

    def _create_freeing_name(
        self, image: str, command: object, name: str, kwargs: dict[str, Any]
    ) -> Container:
        errors = _errors()
        containers = self.client.containers
        for _ in range(_CONFLICT_ATTEMPTS):
            try:
                return containers.create(image, command, name=name, **kwargs)
            except errors.APIError as exc:
                conflict = _status(exc) == 409  # noqa: PLR2004
                if not conflict or isinstance(exc, errors.ImageNotFound):
                    raise
                self._free_name(name)
        raise NameConflictError(
            f"container name {name!r} is still taken after {_CONFLICT_ATTEMPTS} "
            "attempts at freeing it"
        )

    def _free_name(self, name: str) -> None:
        """
        Remove the container of a dead session that holds *name*, or raise an
        error that names its holder.
        """
        errors = _errors()
        api = self.client.api
        try:
            info = api.inspect_container(name)
        except errors.NotFound:
            return
        holder = info["Id"]
        ownership = Ownership.from_labels(info["Config"].get("Labels"))
        prefix = "docker" if self.engine is None else f"docker -H {self.engine}"
        if ownership is None:
            image = info["Config"].get("Image")
            status = info["State"].get("Status")
            raise NameConflictError(
                f"container name {name!r} is taken by container {holder[:12]} "
                f"(image {image!r}, {status}),"
                " which cleanroom did not create, so it is left alone; remove it "
                f"with '{prefix} rm -f {holder[:12]}' or choose another name"
            )
        owner = _describe(ownership)
        alive = ownership.alive()
        if alive is not False:
            state = "live" if alive else "(on another host, so maybe live)"
            raise NameConflictError(
                f"container name {name!r} is taken by container {holder[:12]} of "
                f"the {state} {owner}, so it is left alone; choose another "
                "name, or end that session first"
            )
        _log.warning(
            "removing container %s, which holds the name %r for the %s, whose "
            "owner is gone",
            holder[:12],
            name,
            owner,
        )
        with contextlib.suppress(errors.NotFound):
            api.remove_container(holder, force=True, v=True)

    # -- networks and volumes ----------------------------------------------------

    def network(self, name: str, **kwargs: Any) -> Network:
        """
        Create a network, like docker-py's ``networks.create``; return the
        :class:`~docker.models.networks.Network`.

        It is removed after the containers created later in the scope;
        cleanroom's containers still attached to it are disconnected first.
        """
        plan = self._plan(kwargs, run=False, name=name)
        with self.scope.creating(NETWORKS, plan.name, **plan.identity) as made:
            return self._make_network(made, plan)

    def volume(self, name: str | None = None, **kwargs: Any) -> Volume:
        """
        Create a named volume, like docker-py's ``volumes.create``; return the
        :class:`~docker.models.volumes.Volume`.

        Volumes are records: level ``pods`` keeps them, ``all`` removes them
        (after the containers created later in the scope).

        Args:
            name: The volume's name; by default ``cleanroom-<random>``.
            kwargs: docker-py's keyword arguments for ``volumes.create``.
        """
        plan = self._plan(kwargs, run=False, name=name or _new_name())
        with self.scope.creating(VOLUMES, plan.name, **plan.identity) as made:
            return self._make_volume(made, plan)

    async def anetwork(self, name: str, **kwargs: Any) -> Network:
        """:meth:`network` from async code: docker-py runs in a worker thread."""
        plan = self._plan(kwargs, run=False, name=name)
        async with self.scope.acreating(NETWORKS, plan.name, **plan.identity) as made:
            make = functools.partial(self._make_network, made, plan)
            return await anyio.to_thread.run_sync(make)

    async def avolume(self, name: str | None = None, **kwargs: Any) -> Volume:
        """:meth:`volume` from async code: docker-py runs in a worker thread."""
        plan = self._plan(kwargs, run=False, name=name or _new_name())
        async with self.scope.acreating(VOLUMES, plan.name, **plan.identity) as made:
            make = functools.partial(self._make_volume, made, plan)
            return await anyio.to_thread.run_sync(make)

    def _make_network(self, made: Creation, plan: _Plan) -> Network:
        try:
            network = self.client.networks.create(plan.name, **plan.kwargs)
        except Exception as exc:
            if _refused(exc):
                made.abandon(f"the engine refused it: {exc}")
            raise
        made.update(id=network.id)
        made.alias(network)
        return network

    def _make_volume(self, made: Creation, plan: _Plan) -> Volume:
        try:
            volume = self.client.volumes.create(plan.name, **plan.kwargs)
        except Exception as exc:
            if _refused(exc):
                made.abandon(f"the engine refused it: {exc}")
            raise
        made.update(id=volume.name)
        made.alias(volume)
        return volume

    # -- watching ------------------------------------------------------------------

    def watch(self, filters: Mapping[str, Any] | None = None) -> Watch:
        """
        Adopt the containers that code under test creates, without cleanroom,
        from now until the returned :class:`Watch` stops (at the end of its
        ``with`` block, or when the scope closes).

        What is adopted is decided from the engine's ``create`` events of the
        window, limited to what this process could have created: containers
        without cleanroom's labels (labelled ones are tracked already), created
        while no other process on this host had a watch open on the engine
        (those are ambiguous, logged and left alone), and matching *filters*.

        Args:
            filters: Further filters of the engine's events, as for
                ``docker events --filter`` (``{"image": "app:test"}``,
                ``{"label": "team=qa"}``, ``{"container": "app-"}``...).

        Returns:
            The watch; its :attr:`~Watch.adopted` lists what it tracked.
        """
        watch = Watch(self, dict(filters or {}))
        watch.start()
        self.scope.callback(watch.stop)
        return watch


# -- watching for containers made by others ---------------------------------------


def _watch_dir() -> Path:
    import tempfile

    return Path(tempfile.gettempdir()) / "cleanroom-docker-watches"


@attrs.define(eq=False)
class Watch:
    """
    A window during which containers created on the engine are adopted into a
    scope; see :meth:`DockerFamily.watch`.

    Use it as a (sync or async) context manager to close the window early.

    Attributes:
        family: The ``scope.docker`` whose scope adopts the containers.
        filters: The engine's event filters that narrow what is adopted.
        adopted: The resources tracked when the window closed.

    .. versionadded:: 0.2.0
    """

    family: DockerFamily
    filters: dict[str, Any]
    adopted: list[Resource] = attrs.field(factory=list)
    _since: int = 0
    _until: int | None = None
    _marker: Path | None = None

    def start(self) -> None:
        """Open the window, and note it where other watchers on this host see it."""
        self._since = time.time_ns()
        folder = _watch_dir()
        folder.mkdir(exist_ok=True)
        owner = current_owner()
        marker = folder / f"{owner.pid}-{owner.start_time or 0}-{uuid.uuid4().hex[:8]}"
        marker.write_text(f"{self._since}\n", encoding="ascii")
        self._marker = marker

    def stop(self) -> list[Resource]:
        """
        Close the window and track the containers adopted from it (once).

        Returns:
            The adopted resources.
        """
        if self._until is not None:
            return self.adopted
        self._until = time.time_ns()
        try:
            others = self._other_windows(self._until)
            for ident, name, when in self._created(self._until):
                if any(start <= when <= end for start, end in others):
                    _log.warning(
                        "not adopting container %s (%s): another process on this "
                        "host watched the engine when it was created",
                        ident[:12],
                        name,
                    )
                    continue
                resource = self.family.scope.track(
                    CONTAINERS, name, id=ident, **_engine_identity()
                )
                self.adopted.append(resource)
        finally:
            self._close_marker(self._until)
        return self.adopted

    def _created(self, until: int) -> list[tuple[str, str, int]]:
        """The unlabelled containers created in the window, oldest first."""
        scope = self.family.scope
        tracked = {r.identity.get("id") for r in scope.resources()}
        # The engine takes whole seconds: widen, then filter by the exact time.
        events = self.family.client.api.events(
            since=self._since // 1_000_000_000,
            until=until // 1_000_000_000 + 1,
            filters={**self.filters, "type": "container", "event": "create"},
            decode=True,
        )
        found: list[tuple[str, str, int]] = []
        try:
            for event in events:
                when = int(event.get("timeNano") or 0)
                actor = event.get("Actor") or {}
                ident = actor.get("ID") or event.get("id")
                attributes = actor.get("Attributes") or {}
                if (
                    self._since <= when <= until
                    and ident
                    and ident not in tracked
                    and _SESSION not in attributes
                ):
                    found.append((ident, attributes.get("name", ident[:12]), when))
        finally:
            with contextlib.suppress(Exception):
                events.close()
        return found

    def _other_windows(self, until: int) -> list[tuple[int, int]]:
        """The windows that other processes on this host had open."""
        windows: list[tuple[int, int]] = []
        with contextlib.suppress(OSError):
            for path in _watch_dir().iterdir():
                if path == self._marker:
                    continue
                with contextlib.suppress(OSError, ValueError):
                    pid, start_time, _ = path.name.split("-", 2)
                    times = [int(line) for line in path.read_text("ascii").split()]
                    if len(times) == 1 and not pid_alive(
                        int(pid), int(start_time) or None
                    ):
                        path.unlink()  # a dead watcher's window
                        continue
                    windows.append((times[0], times[1] if len(times) > 1 else until))
        return windows

    def _close_marker(self, until: int) -> None:
        """Record the window's end; drop the markers of windows closed long ago."""
        if self._marker is None:
            return
        with contextlib.suppress(OSError), self._marker.open("a") as file:
            file.write(f"{until}\n")
        # A closed window stays visible a while, for watchers that overlapped it.
        limit = time.time() - 3600
        with contextlib.suppress(OSError):
            for path in _watch_dir().iterdir():
                with contextlib.suppress(OSError):
                    if path.stat().st_mtime < limit:
                        path.unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await anyio.to_thread.run_sync(self.stop)


def family(scope: Scope) -> DockerFamily:
    """
    Return ``scope.docker`` for *scope*.

    .. versionadded:: 0.2.0
    """
    return DockerFamily(scope)


# -- cleanroom check ---------------------------------------------------------------


def roundtrip(scope: Scope) -> str:
    """
    Create and remove one container in *scope*, for ``cleanroom check``; see
    :meth:`ContainerKind.roundtrip`.

    .. versionadded:: 0.2.0
    """
    return CONTAINERS.roundtrip(scope)
