"""
How the Kubernetes backend talks to the API server: the connection, deletion
(one delete-collection per kind and namespace where it can, always with an
explicit propagation policy) and waiting until objects are gone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from cleanroom.exceptions import BackendUnavailableError, DeletionBlockedError

#: The label every object cleanroom creates carries, with the value ``cleanroom``.
MANAGED_BY: Final = "app.kubernetes.io/managed-by"
#: The prefix of cleanroom's ownership labels.
LABEL_PREFIX: Final = "cleanroom.dev/"
SESSION_LABEL: Final = LABEL_PREFIX + "session"
SCOPE_LABEL: Final = LABEL_PREFIX + "scope"
#: The label the job controller puts on a Job's pods.
JOB_NAME_LABEL: Final = "batch.kubernetes.io/job-name"

#: Seconds that waiting for deletion lasts before it names what blocks.
WAIT_TIMEOUT: Final = 60.0
#: The environment variable naming a folder to save deleted pods' logs into.
LOGS_ENV: Final = "CLEANROOM_K8S_LOGS"
#: The environment variable naming the namespace of session Leases.
LEASE_NAMESPACE_ENV: Final = "CLEANROOM_K8S_LEASE_NAMESPACE"

_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]+")


def label_value(text: str) -> str:
    """
    Return *text* made into a valid label value: at most 63 characters of
    letters, digits, ``-``, ``_`` and ``.``, starting and ending with an
    alphanumeric character; a digest keeps long values distinct.

    .. versionadded:: 0.2.0
    """
    value = _LABEL_VALUE.sub("-", text).strip("-_.")
    if len(value) > 63:  # noqa: PLR2004 - the API's limit
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        value = value[:52].rstrip("-_.") + "-" + digest
    return value or "x"


# -- the connection --------------------------------------------------------------


@attrs.define
class Cluster:
    """
    One cluster as the backend talks to it: an ``ApiClient`` and the dynamic
    client over it, both made on first use.

    Args:
        api_client: An explicit ``kubernetes.client.ApiClient``; by default
            one from ``KUBECONFIG`` or ``~/.kube/config``, else the in-cluster
            service account.
        wait_timeout: Seconds that waiting for deletion lasts.

    .. versionadded:: 0.2.0
    """

    api_client: Any = None
    wait_timeout: float = WAIT_TIMEOUT
    _dynamic: Any = attrs.field(default=None, init=False, repr=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    def client(self) -> Any:
        """
        Return the ``ApiClient``, loading the configuration on first use.

        Raises:
            BackendUnavailableError: When the client is not installed or no
                configuration is found.
        """
        with self._lock:
            if self.api_client is None:
                self.api_client = _load_client()
            return self.api_client

    def dynamic(self) -> Any:
        """Return the ``kubernetes.dynamic.DynamicClient`` over :meth:`client`."""
        client = self.client()
        with self._lock:
            if self._dynamic is None:
                from kubernetes import dynamic

                # Discovery is cached in cleanroom's cache folder rather than as
                # a stray file in the temporary directory.
                host = client.configuration.host
                digest = hashlib.sha256(host.encode()).hexdigest()[:16]
                cache = _cache_dir() / f"discovery-{digest}.json"
                cache.parent.mkdir(parents=True, exist_ok=True)
                self._dynamic = dynamic.DynamicClient(  # type: ignore[no-untyped-call]
                    client, cache_file=str(cache)
                )
            return self._dynamic

    def api(self, api_version: str, kind: str) -> Any:
        """Return the dynamic client's resource for *api_version* and *kind*."""
        return self.dynamic().resources.get(api_version=api_version, kind=kind)

    def close(self) -> None:
        """Close the ``ApiClient``'s connections."""
        with self._lock:
            client, self.api_client, self._dynamic = self.api_client, None, None
        if client is not None:
            client.close()


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cleanroom" / "kubernetes"


def _load_client() -> Any:
    try:
        from kubernetes import client, config
    except ImportError as exc:
        raise BackendUnavailableError(
            "the kubernetes client is not installed: pip install cleanroom[kubernetes]"
        ) from exc
    try:
        # KUBECONFIG read now: the client reads it once, when first imported.
        return config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=os.environ.get("KUBECONFIG") or None
        )
    except (config.ConfigException, OSError) as exc:
        configuration = client.Configuration()
        try:
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        except config.ConfigException:
            raise BackendUnavailableError(
                f"no Kubernetes configuration: {exc} (and not running in a cluster)"
            ) from exc
        return client.ApiClient(configuration)


_default = Cluster()


def configure(api_client: Any = None, *, wait_timeout: float = WAIT_TIMEOUT) -> Cluster:
    """
    Set the cluster that scopes use unless told otherwise.

    Args:
        api_client: A ``kubernetes.client.ApiClient``; ``None`` loads the
            usual configuration (``KUBECONFIG``, ``~/.kube/config``, in-cluster)
            on first use.
        wait_timeout: Seconds that waiting for deletion lasts before it fails
            naming what blocks.

    Returns:
        The new default :class:`Cluster`.

    .. versionadded:: 0.2.0
    """
    global _default  # noqa: PLW0603
    _default = Cluster(api_client, wait_timeout=wait_timeout)
    return _default


def default_cluster() -> Cluster:
    """
    Return the cluster that scopes use unless told otherwise.

    .. versionadded:: 0.2.0
    """
    return _default


def _not_found(exc: BaseException) -> bool:
    return getattr(exc, "status", None) == 404  # noqa: PLR2004


def _meta(obj: Any) -> Any:
    return obj.metadata


def _finalizers(obj: Any) -> list[str]:
    found = list(_meta(obj).finalizers or [])
    spec = getattr(obj, "spec", None)
    if spec is not None and getattr(spec, "finalizers", None):
        found += [f"spec: {name}" for name in spec.finalizers]
    return found


def _conditions(obj: Any) -> list[str]:
    status = getattr(obj, "status", None)
    conditions = getattr(status, "conditions", None) if status is not None else None
    return [
        f"{c.type}: {c.message}"
        for c in conditions or []
        if c.status == "True" and getattr(c, "message", None)
    ]


def _describe(kind: str, name: str, *, namespace: str) -> str:
    where = f" in namespace {namespace!r}" if namespace else ""
    return f"{kind} {name!r}{where}"


def _finished(job: Any) -> bool:
    status = job.status
    conditions = (getattr(status, "conditions", None) if status else None) or []
    return any(
        c.type in {"Complete", "Failed"} and c.status == "True" for c in conditions
    )


def _delete_options(*, wait: bool) -> dict[str, Any]:
    # Always explicit: batch/v1 Jobs orphan their pods when left to default.
    return {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "propagationPolicy": "Foreground" if wait else "Background",
    }


def _delete_group(
    api: Any,
    names: Sequence[str],
    namespace: str,
    selector: str,
    *,
    wait: bool,
    timeout: float,
    describe: Callable[[str], str],
) -> dict[str, BaseException]:
    """Delete *names* of one kind in one namespace; return the errors by name."""
    ns = namespace or None
    body = _delete_options(wait=wait)
    wanted = set(names)
    individually = list(dict.fromkeys(names))
    errors: dict[str, BaseException] = {}
    relisted = None
    if selector and len(wanted) > 1 and "deletecollection" in (api.verbs or ()):
        present = {
            _meta(item).name
            for item in api.get(namespace=ns, label_selector=selector).items
        }
        # One call deletes everything carrying the scope's labels: only when
        # that is exactly what is to be deleted (nothing kept or released).
        if present <= wanted:
            if present:
                api.delete(namespace=ns, label_selector=selector, body=body)
            # A delete-collection is not atomic: re-list, and delete one by one
            # whatever it did not reach.
            relisted = api.get(namespace=ns, label_selector=selector)
            individually = [
                _meta(item).name
                for item in relisted.items
                if _meta(item).deletionTimestamp is None
            ]
    for name in individually:
        try:
            api.delete(name=name, namespace=ns, body=body)
        except Exception as exc:
            if not _not_found(exc):
                errors[name] = exc
    if wait:
        # The re-list is where waiting starts, unless deletes came after it.
        initial = None if individually else relisted
        left = _wait_gone(
            api, ns, selector or None, wanted - errors.keys(), timeout, initial=initial
        )
        for name, obj in left.items():
            errors[name] = _blocked_one(describe(name), obj, timeout)
    return errors


def _wait_gone(
    api: Any,
    namespace: str | None,
    selector: str | None,
    names: set[str] | None,
    timeout: float,
    *,
    initial: Any = None,
) -> dict[str, Any]:
    """
    Watch until the objects (*names*, or all matching *selector*) are gone;
    return those still there when *timeout* runs out. *initial* is a fresh
    listing to start from.
    """
    deadline = time.monotonic() + timeout
    listed = initial
    while True:
        if listed is None:
            listed = api.get(namespace=namespace, label_selector=selector)
        left = {
            _meta(item).name: item
            for item in listed.items
            if names is None or _meta(item).name in names
        }
        remaining = deadline - time.monotonic()
        if not left or remaining <= 0:
            return left
        version = _meta(listed).resourceVersion
        listed = None
        try:
            for event in api.watch(
                namespace=namespace,
                label_selector=selector,
                resource_version=version,
                timeout=max(1, min(int(remaining) + 1, 30)),
            ):
                if event["type"] == "DELETED":
                    left.pop(_meta(event["object"]).name, None)
                    if not left:
                        return {}
                if time.monotonic() > deadline:
                    break
        except Exception as exc:
            # An expired resource version or a dropped connection: list
            # again, after a pause so that a failing watch is not a busy loop.
            logging.getLogger("cleanroom").debug("watch ended: %s", exc)
            time.sleep(0.2)


def _blocked_one(what: str, obj: Any, timeout: float) -> DeletionBlockedError:
    finalizers = _finalizers(obj)
    detail = (
        "held by finalizer " + ", ".join(finalizers)
        if finalizers
        else "no finalizers; its controller has not finished"
    )
    conditions = _conditions(obj)
    if conditions:
        detail += "; " + "; ".join(conditions)
    return DeletionBlockedError(
        f"{what} still exists {timeout:g}s after its deletion: {detail}",
        {_meta(obj).name: finalizers},
    )


def _blocked(
    kind: str, namespace: str, left: Mapping[str, Any], timeout: float
) -> DeletionBlockedError:
    parts = [
        str(_blocked_one(_describe(kind, n, namespace=namespace), o, timeout))
        for n, o in left.items()
    ]
    return DeletionBlockedError(
        "; ".join(parts), {name: _finalizers(obj) for name, obj in left.items()}
    )


def save_pod_logs(
    cluster: Cluster, namespace: str, selector: str, folder: Path
) -> list[Path]:
    """
    Save the logs of the pods matching *selector* in *namespace* under
    *folder*, one file per container; pods whose logs the cluster cannot
    serve (not scheduled, no kubelet) are skipped.

    Returns:
        The files written.

    .. versionadded:: 0.2.0
    """
    from kubernetes import client

    core: Any = client.CoreV1Api(cluster.client())
    written: list[Path] = []
    for pod in core.list_namespaced_pod(namespace, label_selector=selector).items:
        if not pod.spec.node_name:
            continue
        for container in pod.spec.containers:
            try:
                text = core.read_namespaced_pod_log(
                    pod.metadata.name, namespace, container=container.name
                )
            except Exception as exc:
                logging.getLogger("cleanroom").debug(
                    "no log for %s/%s: %s", pod.metadata.name, container.name, exc
                )
                continue
            path = folder / namespace / f"{pod.metadata.name}.{container.name}.log"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
    if written:
        logging.getLogger("cleanroom").warning(
            "saved %d pod log(s) to %s", len(written), folder
        )
    return written
