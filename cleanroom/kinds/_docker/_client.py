"""
docker-py clients, shared per process and engine, and what the Docker kinds
share in talking to the engine: labels, errors, waiting.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from cleanroom._core._ownership import label_key
from cleanroom.exceptions import NameConflictError

if TYPE_CHECKING:
    import docker

    from cleanroom._core._resource import Resource

#: How many HTTP connections each docker-py client keeps, at least a policy's
#: default ``concurrency`` (100), so that parallel teardown never waits for a
#: connection nor logs "Connection pool is full".
POOL_SIZE: Final = 100

#: The label that every object cleanroom made carries (with the session's id).
SESSION_LABEL: Final = label_key("session")
#: A random value per object, journaled with its name before the object
#: exists: an object found by that name is ours only if it carries the token.
TOKEN_LABEL: Final = label_key("token")

#: Seconds to wait for the engine to confirm a removal, or for a volume or
#: network to be released by containers that are being removed.
WAIT: Final = 30.0

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
        A client whose connection pool holds
        :data:`~cleanroom.kinds.docker.POOL_SIZE` connections.
        It is shared, closed at exit, and made anew in a forked child.

    .. versionadded:: 0.2.0
    """
    # The environment's engine is the one DOCKER_HOST names now.
    key = (os.getpid(), engine or os.environ.get("DOCKER_HOST") or None)
    with _clients_lock:
        found = _clients.get(key)
        if found is None:
            found = _clients[key] = _connect(engine)
        return found


def _connect(engine: str | None) -> docker.DockerClient:
    """
    Make a client that speaks the API version of *engine*, as docker-py's
    ``version="auto"`` does, without leaving a socket open when no engine
    answers: docker-py does not close a Unix socket whose connection failed,
    which a stopped engine's stale socket file makes every connection do.

    Raises:
        docker.errors.DockerException: When no engine answers.
    """
    import docker
    from docker.constants import DEFAULT_DOCKER_API_VERSION, DEFAULT_UNIX_SOCKET

    url = engine or os.environ.get("DOCKER_HOST") or DEFAULT_UNIX_SOCKET
    if url.startswith(("unix://", "http+unix://")):
        path = url.split("://", 1)[1]
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(5.0)
                probe.connect(path)
        except OSError as exc:
            raise docker.errors.DockerException(
                f"Error while fetching server API version: {exc!r} ({path})"
            ) from None

    def make(version: str) -> docker.DockerClient:
        if engine is None or engine == os.environ.get("DOCKER_HOST"):
            # The environment's TLS settings go with its DOCKER_HOST.
            return docker.from_env(version=version, max_pool_size=POOL_SIZE)
        return docker.DockerClient(
            base_url=engine, version=version, max_pool_size=POOL_SIZE
        )

    asking = make(DEFAULT_DOCKER_API_VERSION)
    try:
        version = str(asking.api.version(api_version=False)["ApiVersion"])
    except Exception as exc:
        raise docker.errors.DockerException(
            f"Error while fetching server API version: {exc}"
        ) from None
    finally:
        asking.close()
    return make(version)


@atexit.register
def _close_clients() -> None:
    with _clients_lock:
        mine = [key for key in _clients if key[0] == os.getpid()]
        for key in mine:
            with contextlib.suppress(Exception):
                _clients.pop(key).close()


def engine_of() -> str | None:
    """The engine that objects are created on, when not the default one."""
    return os.environ.get("DOCKER_HOST") or None


def api_of(resource: Resource) -> Any:
    """The low-level client of the engine that *resource* lives on."""
    return client(resource.identity.get("engine")).api


def docker_errors() -> Any:
    """docker-py's exceptions, imported when first needed."""
    import docker.errors

    return docker.errors


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a docker-py error, if it has one."""
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def wait_until(done: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll *done* until it is true, backing off; raise ``TimeoutError`` after."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def refused(exc: BaseException) -> bool:
    """
    Tell whether a create failed because the engine refused it (so nothing was
    made), rather than because the answer was lost (so something may exist).
    """
    if isinstance(exc, NameConflictError):
        return True
    status = status_of(exc)
    return status is not None and 400 <= status < 500  # noqa: PLR2004


def hint_prefix(resource: Resource) -> str:
    """``docker``, with ``-H`` when *resource* lives on a ``DOCKER_HOST``."""
    engine = resource.identity.get("engine")
    return f"docker -H {engine}" if engine else "docker"


def engine_identity() -> dict[str, str]:
    """The identity of an object made on the environment's ``DOCKER_HOST``."""
    engine = engine_of()
    return {"engine": engine} if engine else {}
