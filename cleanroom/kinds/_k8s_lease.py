"""
Session Leases: a ``coordination.k8s.io/v1`` Lease per session, renewed while
it runs, that tells runners on other hosts a live session from a dead one.
"""

from __future__ import annotations

import contextlib
import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, Self

import attrs

from ._k8s_api import (
    LEASE_NAMESPACE_ENV,
    MANAGED_BY,
    SESSION_LABEL,
    Cluster,
    _not_found,
    default_cluster,
    label_value,
)


def lease_name(session: str) -> str:
    """
    Return the name of the Lease that says *session* is alive.

    .. versionadded:: 0.2.0
    """
    return "cleanroom-" + label_value(session).lower()[:50].strip("-_.")


def lease_namespace() -> str:
    """
    Return the namespace of session Leases: ``CLEANROOM_K8S_LEASE_NAMESPACE``,
    by default ``default``.

    .. versionadded:: 0.2.0
    """
    return os.environ.get(LEASE_NAMESPACE_ENV, "").strip() or "default"


@attrs.define
class SessionLease:
    """
    A ``coordination.k8s.io/v1`` Lease renewed while the session lives, so
    that runners on other hosts sharing the cluster can tell it from a dead
    one; a context manager, and a daemon thread renews it.

    Args:
        session: The session's id.
        cluster: The cluster; by default :func:`default_cluster`.
        namespace: Where the Lease lives; by default :func:`lease_namespace`.
        duration: Seconds the Lease lasts without renewal.

    .. versionadded:: 0.2.0
    """

    session: str
    cluster: Cluster = attrs.field(factory=default_cluster)
    namespace: str = attrs.field(factory=lease_namespace)
    duration: int = 60
    _stop: threading.Event = attrs.field(factory=threading.Event, init=False)
    _thread: threading.Thread | None = attrs.field(default=None, init=False)

    @property
    def name(self) -> str:
        """The Lease's name."""
        return lease_name(self.session)

    def renew(self) -> None:
        """Create the Lease, or renew it."""
        api = self.cluster.api("coordination.k8s.io/v1", "Lease")
        now = _micro_time(datetime.now(UTC))
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {
                    MANAGED_BY: "cleanroom",
                    SESSION_LABEL: label_value(self.session),
                },
            },
            "spec": {
                "holderIdentity": self.session,
                "leaseDurationSeconds": self.duration,
                "renewTime": now,
            },
        }
        try:
            api.patch(
                body={"spec": body["spec"]},
                name=self.name,
                namespace=self.namespace,
                content_type="application/merge-patch+json",
            )
        except Exception as exc:
            if not _not_found(exc):
                raise
            body["spec"]["acquireTime"] = now
            api.create(body=body, namespace=self.namespace)

    def start(self) -> None:
        """Create the Lease and renew it every third of its duration."""
        self.renew()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"cleanroom-lease-{self.session}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.duration / 3):
            with contextlib.suppress(Exception):
                self.renew()

    def stop(self) -> None:
        """Stop renewing and delete the Lease."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        api = self.cluster.api("coordination.k8s.io/v1", "Lease")
        with contextlib.suppress(Exception):
            api.delete(name=self.name, namespace=self.namespace)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def session_alive(
    session: str,
    *,
    cluster: Cluster | None = None,
    namespace: str | None = None,
    now: datetime | None = None,
) -> bool | None:
    """
    Tell from its Lease whether *session* is alive.

    Returns:
        ``True`` while the Lease was renewed within its duration, ``False``
        once it expired, ``None`` when the session has no Lease (it may run
        without one: decide by other means).

    .. versionadded:: 0.2.0
    """
    api = (cluster or default_cluster()).api("coordination.k8s.io/v1", "Lease")
    try:
        lease = api.get(
            name=lease_name(session), namespace=namespace or lease_namespace()
        )
    except Exception as exc:
        if _not_found(exc):
            return None
        raise
    spec = lease.spec
    renewed = spec.renewTime or spec.acquireTime
    if renewed is None:
        return False
    when = (
        renewed
        if isinstance(renewed, datetime)
        else datetime.fromisoformat(str(renewed))
    )
    expires = when + timedelta(seconds=int(spec.leaseDurationSeconds or 0))
    return expires > (now or datetime.now(UTC))


def _micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
