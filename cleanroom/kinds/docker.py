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

from cleanroom._core._resource import register_kind

from ._docker._client import POOL_SIZE, client
from ._docker._family import DockerFamily, family
from ._docker._kinds import (
    CONTAINERS,
    IMAGES,
    NETWORKS,
    VOLUMES,
    ContainerKind,
    DockerKind,
    ImageKind,
    NetworkKind,
    VolumeKind,
)
from ._docker._watch import Watch

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
]


# Registered here, so that the journal names this module as the one whose
# import makes the kinds known (the reaper and sweeps import it).
for _kind in (CONTAINERS, NETWORKS, VOLUMES, IMAGES):
    register_kind(_kind)
for _public in (
    ContainerKind,
    DockerFamily,
    DockerKind,
    ImageKind,
    NetworkKind,
    VolumeKind,
    Watch,
    client,
    family,
):
    _public.__module__ = __name__
del _kind, _public
