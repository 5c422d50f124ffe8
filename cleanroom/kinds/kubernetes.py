"""
Kubernetes: pods, jobs, namespaces and any other object, cleaned through the
API server.

Install it with ``pip install cleanroom[kubernetes]``; the official
``kubernetes`` client is imported only when a cluster is first used. Objects
made with :meth:`K8s.create` and :meth:`K8s.namespace` carry cleanroom's
ownership labels plus ``app.kubernetes.io/managed-by: cleanroom``, so that a
scope deletes all of one kind in one namespace with a single delete-collection
call, and a later sweep finds what a dead session left behind.

Deletion always names its ``propagationPolicy`` (``batch/v1`` Jobs orphan
their pods by default): ``Background``, or ``Foreground`` when the policy
waits. At level ``pods`` a Job is kept with its status while its pods are
deleted; an active Job is suspended first so that it does not recreate them.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import functools
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlparse

import attrs

from cleanroom._core._capabilities import Owned
from cleanroom._core._ownership import Ownership, ownership_labels
from cleanroom._core._resource import BaseKind, Resource, get_kind, register_kind
from cleanroom._core._session import current_owner
from cleanroom.exceptions import BackendUnavailableError

from ._k8s_api import (
    JOB_NAME_LABEL,
    LABEL_PREFIX,
    LEASE_NAMESPACE_ENV,
    LOGS_ENV,
    MANAGED_BY,
    SCOPE_LABEL,
    SESSION_LABEL,
    WAIT_TIMEOUT,
    Cluster,
    _blocked,
    _delete_group,
    _delete_options,
    _describe,
    _finished,
    _meta,
    _not_found,
    _wait_gone,
    configure,
    default_cluster,
    label_value,
    save_pod_logs,
)
from ._k8s_lease import SessionLease, lease_name, lease_namespace, session_alive

if TYPE_CHECKING:
    from cleanroom._core._scope import Scope

__all__ = [
    "JOBS",
    "JOB_NAME_LABEL",
    "LABEL_PREFIX",
    "LEASE_NAMESPACE_ENV",
    "LOGS_ENV",
    "MANAGED_BY",
    "NAMESPACES",
    "OBJECTS",
    "PODS",
    "SCOPE_ID_LABEL",
    "SCOPE_LABEL",
    "SESSION_LABEL",
    "WAIT_TIMEOUT",
    "Cluster",
    "JobsKind",
    "K8s",
    "NamespacesKind",
    "ObjectsKind",
    "SessionLease",
    "configure",
    "default_cluster",
    "family",
    "label_value",
    "lease_name",
    "lease_namespace",
    "save_pod_logs",
    "session_alive",
]


_LOCAL_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})

# -- kinds -----------------------------------------------------------------------


@attrs.define
class ObjectsKind(BaseKind):
    """
    Kubernetes objects of one API kind (``pods``, ``jobs``...), or of any kind
    named in each resource's identity (the kind ``kubernetes``).

    A resource's identity holds its ``namespace`` (empty for cluster-scoped
    objects), and for the generic kind its ``api_version`` and ``object_kind``.
    Objects cleanroom labelled carry their ``selector`` too: a group of them
    in one namespace goes in one delete-collection call.

    .. versionadded:: 0.2.0
    """

    api_version: str = ""
    object_kind: str = ""
    bulk: bool = True
    cluster: Cluster | None = None
    #: Fully qualified names of client model types that ``scope.add`` adopts.
    adopts: tuple[str, ...] = ()
    #: Whether sweeps list this kind's labelled objects in the cluster.
    sweeps: bool = False

    def _cluster(self) -> Cluster:
        return self.cluster or default_cluster()

    def session_alive(self, session: str) -> bool | None:
        """
        Tell from its Lease whether *session* is alive (see
        :func:`session_alive`); ``None`` without a Lease or a cluster.
        """
        try:
            return session_alive(session, cluster=self._cluster())
        except Exception:
            return None

    def adopt(self, scope: Scope, obj: Any, *, name: str | None = None) -> Resource:
        """
        Track the object *obj* (a client model or a dynamic client's
        ``ResourceInstance``) by its kind, name and namespace.

        Args:
            scope: The scope that tracks it.
            obj: The object, as the API server returned it.
            name: Ignored: the object's own name identifies it.
        """
        del name
        meta = obj.metadata
        api_version = getattr(obj, "api_version", None) or getattr(
            obj, "apiVersion", None
        )
        kind = getattr(obj, "kind", None)
        if api_version is None or kind is None:
            kind_obj: ObjectsKind = self
        else:
            kind_obj = _kind_for(api_version, kind)
        k8s: K8s = scope.k8s
        resource = k8s.track(
            kind_obj,
            meta.name,
            namespace=meta.namespace or "",
            api_version=api_version or kind_obj.api_version,
            object_kind=kind or kind_obj.object_kind,
        )
        # Client models compare by value and cannot be hashed, which aliases
        # need: such an object is adopted, but is not a handle itself.
        with contextlib.suppress(TypeError):
            scope.alias(resource, obj)
        return resource

    def list_owned(self) -> Iterable[Owned]:
        """
        List the objects of this kind, in every namespace, that carry
        cleanroom's ownership labels, for the sweep; never an object without
        them. Only pods, Jobs and namespaces are listed (what a dead session
        leaves running or holding), and nothing when no cluster is configured.
        """
        if not self.sweeps:
            return []
        try:
            labelled = list(self.labelled_objects())
        except BackendUnavailableError:
            return []
        owned = []
        for resource, labels in labelled:
            ownership = Ownership.from_labels(labels, style="kubernetes")
            if ownership is not None:
                owned.append(Owned(resource, ownership))
        return owned

    def labelled_objects(self) -> Iterator[tuple[Resource, Mapping[str, str]]]:
        """Yield each object of this kind labelled as cleanroom's, with its labels."""
        api = self._cluster().api(self.api_version, self.object_kind)
        listed = api.get(label_selector=f"{MANAGED_BY}=cleanroom", _request_timeout=10)
        for item in listed.items:
            meta = _meta(item)
            if meta.deletionTimestamp is not None:
                continue  # being deleted already: nothing left to sweep
            labels = dict(meta.labels or {})
            selector = _selector_of(labels)
            identity: dict[str, Any] = {"namespace": meta.namespace or ""}
            if selector:
                identity["selector"] = selector
            yield (
                Resource(
                    self.name,
                    meta.name,
                    identity,
                    scope=labels.get(SCOPE_LABEL, ""),
                    declarative=True,
                ),
                labels,
            )

    def target(self, resource: Resource) -> tuple[str, str, str]:
        """Return the ``(api_version, kind, namespace)`` of *resource*."""
        identity = resource.identity
        return (
            identity.get("api_version") or self.api_version,
            identity.get("object_kind") or self.object_kind,
            identity.get("namespace") or "",
        )

    def delete(self, resource: Resource, *, wait: bool) -> None:
        """Delete *resource*; succeed when it is already gone."""
        (error,) = self.delete_many([resource], wait=wait)
        if error is not None:
            raise error

    def delete_many(
        self, resources: Sequence[Resource], *, wait: bool
    ) -> Sequence[BaseException | None]:
        """
        Delete *resources*: one delete-collection per namespace where they
        all carry the scope's labels, one delete each otherwise.
        """
        groups: dict[tuple[str, str, str, str], list[int]] = {}
        for index, resource in enumerate(resources):
            key = (*self.target(resource), resource.identity.get("selector") or "")
            groups.setdefault(key, []).append(index)
        results: list[BaseException | None] = [None] * len(resources)
        for (api_version, kind, namespace, selector), indexes in groups.items():
            names = [resources[i].name for i in indexes]
            wait_here = wait and bool(self._waits(resources[indexes[0]]))
            try:
                api = self._cluster().api(api_version, kind)
                errors = _delete_group(
                    api,
                    names,
                    namespace,
                    selector,
                    wait=wait_here,
                    timeout=self._cluster().wait_timeout,
                    describe=functools.partial(_describe, kind, namespace=namespace),
                )
            except Exception as exc:
                for i in indexes:
                    results[i] = exc
            else:
                for i, name in zip(indexes, names, strict=True):
                    results[i] = errors.get(name)
        return results

    def _waits(self, resource: Resource) -> bool:  # noqa: ARG002 - per resource below
        return True

    def exists(self, resource: Resource) -> bool:
        """Ask the API server whether *resource* exists."""
        api_version, kind, namespace = self.target(resource)
        api = self._cluster().api(api_version, kind)
        try:
            api.get(name=resource.name, namespace=namespace or None)
        except Exception as exc:
            if _not_found(exc):
                return False
            raise
        return True

    def delete_hint(self, resource: Resource) -> str:
        """Return the ``kubectl delete`` command for *resource*."""
        api_version, kind, namespace = self.target(resource)
        group = api_version.rpartition("/")[0]
        # kubectl knows the built-in kinds by their short names; anything
        # else is spelled with its API group, which cannot be ambiguous.
        what = kind.lower()
        if self.object_kind != kind and group:
            what += f".{group}"
        where = f" -n {namespace}" if namespace else ""
        return f"kubectl delete {what} {resource.name}{where}"

    def describe(self, resource: Resource) -> str:
        """Return ``"Job 'name' in namespace 'ns'"``."""
        _, kind, namespace = self.target(resource)
        return _describe(kind, resource.name, namespace=namespace)


@attrs.define
class NamespacesKind(ObjectsKind):
    """
    Namespaces: deleted with everything in them, without waiting unless the
    namespace was made with ``wait=True`` (waiting can take minutes on real
    clusters).

    It is also the backend's probe for ``cleanroom check``.

    .. versionadded:: 0.2.0
    """

    def _waits(self, resource: Resource) -> bool:
        return bool(resource.identity.get("wait"))

    def probe(self) -> str:
        """
        Describe the cluster when its API server answers; only a cluster on
        this machine (127.0.0.1, ``::1``, ``localhost``) is contacted.

        Raises:
            BackendUnavailableError: When no configuration is found, the
                cluster is not local, or its API server does not answer.
        """
        cluster = self._cluster()
        host = cluster.client().configuration.host
        if urlparse(host).hostname not in _LOCAL_HOSTS:
            raise BackendUnavailableError(f"cluster {host} not checked (not local)")
        from kubernetes import client

        try:
            version = client.VersionApi(cluster.client()).get_code(_request_timeout=5)
        except Exception as exc:
            raise BackendUnavailableError(f"cluster {host} unreachable: {exc}") from exc
        return f"Kubernetes {version.git_version} at {host}"

    def roundtrip(self, scope: Scope) -> str:
        """Create a labelled namespace in *scope* and delete it again."""
        k8s: K8s = scope.k8s
        name = k8s.namespace(prefix="cleanroom-check-")
        scope.release(k8s.handle(name))
        return f"created and deleted namespace {name}"


@attrs.define
class JobsKind(ObjectsKind):
    """
    Jobs: records, kept at level ``pods`` with their status while their pods
    are deleted (the :class:`~cleanroom.FreesRuntime` capability), and deleted
    with their pods at level ``all``.

    Freeing a Job's runtime suspends it if it is still active (so that it does
    not recreate its pods), saves the pods' logs when a folder is set
    (``CLEANROOM_K8S_LOGS`` or :meth:`K8s.save_logs`), and deletes the pods by
    the ``batch.kubernetes.io/job-name`` label.

    .. versionadded:: 0.2.0
    """

    def free_runtime(self, resource: Resource, *, wait: bool) -> None:
        """Suspend the Job if it is active and delete its pods; keep the Job."""
        cluster = self._cluster()
        namespace = resource.identity.get("namespace") or "default"
        jobs = cluster.api("batch/v1", "Job")
        try:
            job = jobs.get(name=resource.name, namespace=namespace)
        except Exception as exc:
            if not _not_found(exc):
                raise
        else:
            if _meta(job).deletionTimestamp is None and not _finished(job):
                jobs.patch(
                    name=resource.name,
                    namespace=namespace,
                    body={"spec": {"suspend": True}},
                    content_type="application/merge-patch+json",
                )
        pods = cluster.api("v1", "Pod")
        selector = f"{JOB_NAME_LABEL}={resource.name}"
        logs = resource.identity.get("logs") or os.environ.get(LOGS_ENV)
        if logs:
            save_pod_logs(cluster, namespace, selector, Path(logs))
        pods.delete(
            namespace=namespace,
            label_selector=selector,
            body=_delete_options(wait=wait),
        )
        if wait:
            left = _wait_gone(pods, namespace, selector, None, cluster.wait_timeout)
            if left:
                raise _blocked("Pod", namespace, left, cluster.wait_timeout)


_MODELS: Final = "kubernetes.client.models."

PODS: Final = ObjectsKind(
    "pods",
    aliases=("pod",),
    api_version="v1",
    object_kind="Pod",
    adopts=(_MODELS + "v1_pod.V1Pod",),
    sweeps=True,
)
JOBS: Final = JobsKind(
    "jobs",
    aliases=("job", "jobs.batch"),
    category="record",
    api_version="batch/v1",
    object_kind="Job",
    adopts=(_MODELS + "v1_job.V1Job",),
    sweeps=True,
)
NAMESPACES: Final = NamespacesKind(
    "namespaces",
    aliases=("namespace", "ns"),
    category="record",
    api_version="v1",
    object_kind="Namespace",
    adopts=(_MODELS + "v1_namespace.V1Namespace",),
    sweeps=True,
)
#: Any other object: identity names its ``api_version`` and ``object_kind``.
OBJECTS: Final = ObjectsKind(
    "kubernetes",
    aliases=("k8s",),
    category="record",
    adopts=("kubernetes.dynamic.resource.ResourceInstance",),
)

# Common kinds by the names kubectl knows them by, so that
# ``scope.track("configmaps", name, namespace=...)`` works.
_COMMON_KINDS: list[ObjectsKind] = []
_COMMON: Final = {
    "configmaps": ("v1", "ConfigMap", "configmap", "cm"),
    "secrets": ("v1", "Secret", "secret"),
    "services": ("v1", "Service", "service", "svc"),
    "serviceaccounts": ("v1", "ServiceAccount", "serviceaccount", "sa"),
    "persistentvolumeclaims": ("v1", "PersistentVolumeClaim", "pvc"),
    "deployments": ("apps/v1", "Deployment", "deployment", "deploy"),
    "replicasets": ("apps/v1", "ReplicaSet", "replicaset", "rs"),
    "statefulsets": ("apps/v1", "StatefulSet", "statefulset", "sts"),
    "daemonsets": ("apps/v1", "DaemonSet", "daemonset", "ds"),
    "cronjobs": ("batch/v1", "CronJob", "cronjob", "cj"),
    "leases": ("coordination.k8s.io/v1", "Lease", "lease"),
}
_RUNTIME: Final = {"deployments", "replicasets", "statefulsets", "daemonsets"}
for _name, (_version, _kind, *_aliases) in _COMMON.items():
    _COMMON_KINDS.append(
        ObjectsKind(
            _name,
            aliases=tuple(_aliases),
            category="runtime" if _name in _RUNTIME else "record",
            api_version=_version,
            object_kind=_kind,
        )
    )
for _kind_obj in (PODS, JOBS, NAMESPACES, OBJECTS, *_COMMON_KINDS):
    register_kind(_kind_obj)
_BY_API_KIND: Final = {
    (kind.api_version, kind.object_kind): kind for kind in (PODS, JOBS, NAMESPACES)
}


def _kind_for(api_version: str, kind: str) -> ObjectsKind:
    known = _BY_API_KIND.get((api_version, kind))
    if known is not None:
        return known
    for candidate in _COMMON_KINDS:
        if (candidate.api_version, candidate.object_kind) == (api_version, kind):
            return candidate
    return OBJECTS


# -- the family: scope.k8s ---------------------------------------------------------


@attrs.define
class K8s:
    """
    The Kubernetes helpers of one scope, reached as ``scope.k8s``.

    Everything made here carries cleanroom's ownership labels, one label
    unique to this scope (so that its objects of one kind in one namespace go
    in one delete-collection call) and ``app.kubernetes.io/managed-by:
    cleanroom``.

    Args:
        scope: The scope that cleans what is made here.
        cluster: The cluster; by default :func:`default_cluster`.

    .. versionadded:: 0.2.0
    """

    scope: Scope
    cluster: Cluster = attrs.field(factory=default_cluster)
    _id: str = attrs.field(factory=lambda: os.urandom(6).hex(), init=False)
    _logs: Path | None = attrs.field(default=None, init=False)
    _handles: dict[tuple[str, str], Resource] = attrs.field(factory=dict, init=False)

    @property
    def labels(self) -> dict[str, str]:
        """The labels put on every object made through this scope."""
        labels = ownership_labels(self.scope, style="kubernetes")
        labels[SCOPE_ID_LABEL] = self._id
        return labels

    @property
    def selector(self) -> str:
        """The label selector that matches exactly what this scope made."""
        labels = self.labels
        return f"{SESSION_LABEL}={labels[SESSION_LABEL]},{SCOPE_ID_LABEL}={self._id}"

    def save_logs(self, folder: str | os.PathLike[str] | None) -> None:
        """
        Save the logs of a Job's pods into *folder* before deleting them
        (where the cluster serves logs); ``None`` stops saving.
        """
        self._logs = None if folder is None else Path(folder)

    def create(self, manifest: Any, *, namespace: str | None = None) -> Any:
        """
        Create any object from *manifest* and track it.

        Args:
            manifest: A dict as in a YAML manifest, or a client model object
                (``V1Pod``...). It is not modified. A ``generateName`` is
                resolved here, so that the name is journaled before the
                object exists.
            namespace: For namespaced kinds, unless the manifest names one;
                by default ``"default"``.

        Returns:
            The created object, as the dynamic client returns it
            (``obj.metadata.name``, ``obj.status``...).

        Raises:
            ValueError: When the manifest has no ``apiVersion`` or ``kind``.
        """
        body = _as_dict(manifest, self.cluster)
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if not api_version or not kind:
            raise ValueError(
                f"a manifest needs apiVersion and kind; got {api_version!r}, {kind!r}"
            )
        api = self.cluster.api(api_version, kind)
        meta = body.setdefault("metadata", {})
        if not meta.get("name"):
            prefix = meta.pop("generateName", None) or f"{kind.lower()}-"
            meta["name"] = prefix + os.urandom(3).hex()
        ns = (meta.get("namespace") or namespace or "default") if api.namespaced else ""
        if ns:
            meta["namespace"] = ns
        meta["labels"] = {**(meta.get("labels") or {}), **self.labels}
        kind_obj = _kind_for(api_version, kind)
        identity: dict[str, Any] = {"namespace": ns, "selector": self.selector}
        if kind_obj is OBJECTS:
            identity.update(api_version=api_version, object_kind=kind)
        if kind_obj is JOBS and self._logs is not None:
            identity["logs"] = str(self._logs)
        _hold_session_lease(self.cluster)
        with self.scope.creating(kind_obj, meta["name"], **identity) as creation:
            created = api.create(body=body, namespace=ns or None)
            creation.alias(created)
        self._handles[kind_obj.name, _key(meta["name"], ns)] = creation.resource
        return created

    async def acreate(self, manifest: Any, *, namespace: str | None = None) -> Any:
        """:meth:`create` from async code: the client runs in a worker thread."""
        import anyio.to_thread

        return await anyio.to_thread.run_sync(
            lambda: self.create(manifest, namespace=namespace)
        )

    async def anamespace(
        self,
        name: str | None = None,
        *,
        prefix: str = "cleanroom-",
        wait: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """:meth:`namespace` from async code: the client runs in a worker thread."""
        import anyio.to_thread

        return await anyio.to_thread.run_sync(
            lambda: self.namespace(name, prefix=prefix, wait=wait, labels=labels)
        )

    def namespace(
        self,
        name: str | None = None,
        *,
        prefix: str = "cleanroom-",
        wait: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """
        Create a labelled namespace, deleted with everything in it.

        Args:
            name: The name; by default *prefix* and a random suffix.
            prefix: The start of a generated name.
            wait: Wait for the namespace to be gone when cleaning it (only
                when the policy waits too). Off by default: it can take
                minutes on real clusters.
            labels: More labels.

        Returns:
            The namespace's name.
        """
        name = name or f"{prefix}{os.urandom(4).hex()}"
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {**(labels or {}), **self.labels}},
        }
        api = self.cluster.api("v1", "Namespace")
        identity = {"namespace": "", "selector": self.selector, "wait": wait}
        _hold_session_lease(self.cluster)
        with self.scope.creating(NAMESPACES, name, **identity) as creation:
            creation.alias(api.create(body=body))
        self._handles[NAMESPACES.name, _key(name, "")] = creation.resource
        return name

    def track(
        self,
        kind: str | ObjectsKind,
        name: str,
        *,
        namespace: str = "default",
        **identity: Any,
    ) -> Resource:
        """
        Track an object that something else created (the system under test),
        by kind and name; a Job's pods are tracked with it, so that level
        ``pods`` deletes them and keeps the Job.

        Args:
            kind: ``"jobs"``, ``"pods"``, ``"configmaps"``... or
                ``"kubernetes"`` with *api_version* and *object_kind* in
                *identity*.
            name: The object's name.
            namespace: Its namespace; ignored for cluster-scoped kinds.
            identity: ``api_version`` and ``object_kind`` for the generic kind.

        Returns:
            The resource, a handle for ``keep``, ``release`` and ``forget``.
        """
        kind_obj = get_kind(kind)
        if kind_obj is NAMESPACES:
            namespace = ""
        if kind_obj is JOBS and self._logs is not None:
            identity["logs"] = str(self._logs)
        if kind_obj is not OBJECTS:
            identity.pop("api_version", None)
            identity.pop("object_kind", None)
        resource = self.scope.track(kind_obj, name, namespace=namespace, **identity)
        self._handles[kind_obj.name, _key(name, namespace)] = resource
        return resource

    def reserve(self, kind: str, name: str, *, namespace: str = "default") -> Resource:
        """
        Record the name of an object about to be created by something else;
        cleanup deletes it if it appeared and counts "never appeared" as success.
        """
        kind_obj = get_kind(kind)
        identity: dict[str, Any] = {}
        if kind_obj is JOBS and self._logs is not None:
            identity["logs"] = str(self._logs)
        resource = self.scope.reserve(kind_obj, name, namespace=namespace, **identity)
        self._handles[kind_obj.name, _key(name, namespace)] = resource
        return resource

    def handle(
        self, name: str, *, kind: str = "namespaces", namespace: str = ""
    ) -> Resource:
        """Return the resource tracked here for *kind* and *name*."""
        return self._handles[get_kind(kind).name, _key(name, namespace)]


def _key(name: str, namespace: str) -> str:
    return f"{namespace}/{name}"


def _as_dict(manifest: Any, cluster: Cluster) -> dict[str, Any]:
    if isinstance(manifest, Mapping):
        return copy.deepcopy(dict(manifest))
    if hasattr(manifest, "to_dict") and hasattr(manifest, "openapi_types"):
        body = cluster.client().sanitize_for_serialization(manifest)
        return dict(body)
    kind = type(manifest).__name__
    raise TypeError(f"a manifest is a dict or a kubernetes client model, not {kind}")


_leases: dict[int, SessionLease] = {}
_leases_lock = threading.Lock()


def _hold_session_lease(cluster: Cluster) -> None:
    """
    Hold this session's Lease in *cluster* from its first object on, renewed
    while the process lives and deleted at its exit, so that sweeps on other
    hosts know the session is alive. ``CLEANROOM_K8S_LEASE=off`` turns it off;
    a cluster that refuses the Lease only loses that protection.
    """
    if os.environ.get("CLEANROOM_K8S_LEASE", "").strip().lower() in {"off", "0"}:
        return
    key = id(cluster)
    if key in _leases:
        return
    with _leases_lock:
        if key in _leases:
            return
        lease = SessionLease(current_owner().session, cluster)
        try:
            lease.start()
        except Exception as exc:
            logging.getLogger("cleanroom").debug("no session Lease: %s", exc)
        _leases[key] = lease
        atexit.register(_release_lease, lease)


def _release_lease(lease: SessionLease) -> None:
    with contextlib.suppress(Exception):
        lease.stop()


def family(scope: Scope) -> K8s:
    """
    Make the Kubernetes helpers of *scope*: the factory behind ``scope.k8s``,
    which makes them once per scope (use that).

    .. versionadded:: 0.2.0
    """
    return K8s(scope)


# -- ownership -------------------------------------------------------------------

#: A label unique to each scope's helpers: with the session's, it selects
#: exactly what that scope made, for one delete-collection call.
SCOPE_ID_LABEL: Final = LABEL_PREFIX + "scope-id"


def _selector_of(labels: Mapping[str, str]) -> str:
    session, scope_id = labels.get(SESSION_LABEL), labels.get(SCOPE_ID_LABEL)
    if not session or not scope_id:
        return ""
    return f"{SESSION_LABEL}={session},{SCOPE_ID_LABEL}={scope_id}"


for _public in (
    Cluster,
    SessionLease,
    configure,
    default_cluster,
    label_value,
    lease_name,
    lease_namespace,
    save_pod_logs,
    session_alive,
):
    _public.__module__ = __name__
