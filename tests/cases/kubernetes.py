"""
The Kubernetes kinds in the kind conformance suite: pods, Jobs and
namespaces made through ``scope.k8s``, on the real control plane.

Each child source is the body of the harness's
``with cleanroom.managed_resources() as scope:`` block.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest

import kube
from cleanroom import Resource, Scope
from cleanroom.kinds import kubernetes as k8s
from conformance import KindCase

NAMESPACE = "default"

_state: dict[str, Any] = {}


def _found() -> kube.ControlPlane | str:
    if "found" not in _state:
        _state["found"] = kube.find()
    found: kube.ControlPlane | str = _state["found"]
    return found


def _client() -> Any:
    if "client" not in _state:
        found = _found()
        assert not isinstance(found, str), found
        _state["client"] = kube.api_client(found.kubeconfig)
        k8s.configure(_state["client"])
    return _state["client"]


def _child_prelude() -> str:
    # The child, and the reaper it starts, load the configuration from there.
    found = _found()
    assert not isinstance(found, str), found
    return f"import os\nos.environ['KUBECONFIG'] = {str(found.kubeconfig)!r}\n"


def _exists(read: Any, *args: Any) -> bool:
    try:
        read(*args)
    except Exception as exc:
        if getattr(exc, "status", None) == 404:
            return False
        raise
    return True


class _Case(KindCase):
    marks = (pytest.mark.kubernetes,)

    def available(self) -> str | None:
        try:
            import kubernetes  # noqa: F401
        except ImportError:
            return "needs pip install cleanroom[kubernetes]"
        found = _found()
        if isinstance(found, str):
            return found
        _client()
        return None

    def run_hint(self, hint: str) -> None:
        found = _found()
        assert not isinstance(found, str), found
        env = {**os.environ, "KUBECONFIG": str(found.kubeconfig)}
        subprocess.run(hint, shell=True, check=True, timeout=120, env=env)

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(_client())


class PodCase(_Case):
    kind = "pods"

    def create(self, scope: Scope) -> Resource:
        family = scope.k8s
        pod = family.create(kube.pod_manifest(), namespace=NAMESPACE)
        return family.handle(pod.metadata.name, kind="pods", namespace=NAMESPACE)

    def exists(self, resource: Resource) -> bool:
        return _exists(self.core().read_namespaced_pod, resource.name, NAMESPACE)

    def destroy(self, resource: Resource) -> None:
        self.core().delete_namespaced_pod(resource.name, NAMESPACE)

    def child_source(self) -> str:
        return (
            _child_prelude()
            + f"""
from cleanroom.kinds import kubernetes as k8s
family = scope.k8s
pod = family.create({kube.pod_manifest()!r}, namespace={NAMESPACE!r})
resource = family.handle(pod.metadata.name, kind="pods", namespace={NAMESPACE!r})
"""
        )


class JobCase(_Case):
    kind = "jobs"

    def create(self, scope: Scope) -> Resource:
        family = scope.k8s
        name = f"job-{os.urandom(4).hex()}"
        family.create(kube.job_manifest(name, 1), namespace=NAMESPACE)
        return family.handle(name, kind="jobs", namespace=NAMESPACE)

    def batch(self) -> Any:
        from kubernetes import client

        return client.BatchV1Api(_client())

    def exists(self, resource: Resource) -> bool:
        return _exists(self.batch().read_namespaced_job, resource.name, NAMESPACE)

    def destroy(self, resource: Resource) -> None:
        self.batch().delete_namespaced_job(
            resource.name, NAMESPACE, propagation_policy="Background"
        )

    def child_source(self) -> str:
        return (
            _child_prelude()
            + f"""
from cleanroom.kinds import kubernetes as k8s
name = "job-" + os.urandom(4).hex()
manifest = {kube.job_manifest("NAME", 1)!r}
manifest["metadata"]["name"] = name
family = scope.k8s
family.create(manifest, namespace={NAMESPACE!r})
resource = family.handle(name, kind="jobs", namespace={NAMESPACE!r})
"""
        )


class NamespaceCase(_Case):
    kind = "namespaces"

    def create(self, scope: Scope) -> Resource:
        family = scope.k8s
        return family.handle(family.namespace())

    def exists(self, resource: Resource) -> bool:
        # A namespace being deleted is as good as gone: its controller
        # finishes the job.
        try:
            ns = self.core().read_namespace(resource.name)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return False
            raise
        return ns.metadata.deletion_timestamp is None

    def destroy(self, resource: Resource) -> None:
        self.core().delete_namespace(resource.name)

    def child_source(self) -> str:
        return (
            _child_prelude()
            + """
from cleanroom.kinds import kubernetes as k8s
family = scope.k8s
resource = family.handle(family.namespace())
"""
        )


CASES = [PodCase(), JobCase(), NamespaceCase()]
