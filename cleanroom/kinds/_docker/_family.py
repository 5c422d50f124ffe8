"""
``scope.docker``: creating containers, networks and volumes that a scope
tracks, as docker-py does, with cleanroom's labels.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import anyio.to_thread
import attrs

from cleanroom._core._ownership import Ownership, ownership_labels
from cleanroom.exceptions import NameConflictError

from ._client import (
    TOKEN_LABEL,
    client,
    docker_errors,
    engine_of,
    refused,
    status_of,
)
from ._kinds import CONTAINERS, NETWORKS, VOLUMES
from ._watch import Watch

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container
    from docker.models.networks import Network
    from docker.models.volumes import Volume

    from cleanroom._core._creation import Creation
    from cleanroom._core._scope import Scope

_log = logging.getLogger("cleanroom.docker")

#: Attempts at creating a container whose name a dead session's container held.
_CONFLICT_ATTEMPTS: Final = 3


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
    return {**labels, **ownership_labels(scope), TOKEN_LABEL: token}


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
    engine: str | None = attrs.field(factory=engine_of)

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
            if refused(exc):
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
        errors = docker_errors()
        containers = self.client.containers
        for _ in range(_CONFLICT_ATTEMPTS):
            try:
                return containers.create(image, command, name=name, **kwargs)
            except errors.APIError as exc:
                conflict = status_of(exc) == 409  # noqa: PLR2004
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
        errors = docker_errors()
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
            if refused(exc):
                made.abandon(f"the engine refused it: {exc}")
            raise
        made.update(id=network.id)
        made.alias(network)
        return network

    def _make_volume(self, made: Creation, plan: _Plan) -> Volume:
        try:
            volume = self.client.volumes.create(plan.name, **plan.kwargs)
        except Exception as exc:
            if refused(exc):
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


def family(scope: Scope) -> DockerFamily:
    """
    Return ``scope.docker`` for *scope*.

    .. versionadded:: 0.2.0
    """
    return DockerFamily(scope)
