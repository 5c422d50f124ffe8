"""
The real Kubernetes control plane of the tests, and its audit log.

``tests/`` is on ``sys.path``, so tests import this as ``kube``. The cluster
is, in order: ``CLEANROOM_TEST_KUBECONFIG`` (``.ci/control-plane env`` sets it),
the control plane that ``.ci/control-plane`` runs, or one started here from
the script's cached binaries (and stopped at the end). Never the user's own
``KUBECONFIG``: the tests create and delete things.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "control-plane"
REQUIRE_ENV = "CLEANROOM_REQUIRE_KUBERNETES"


def required() -> bool:
    """Whether a missing cluster is a failure rather than a skip."""
    return os.environ.get(REQUIRE_ENV, "").strip() not in {"", "0"}


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


@attrs.frozen
class ControlPlane:
    """A reachable cluster: its kubeconfig, audit log, and whether we started it."""

    kubeconfig: Path
    audit_log: Path | None
    started: bool = False

    def stop(self) -> None:
        if self.started:
            _script("stop")


def find() -> ControlPlane | str:  # noqa: PLR0911 - one reason per way it fails
    """Return the cluster to test against, or why there is none."""
    explicit = os.environ.get("CLEANROOM_TEST_KUBECONFIG", "").strip()
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            return f"CLEANROOM_TEST_KUBECONFIG={explicit} does not exist"
        audit = os.environ.get("CLEANROOM_K8S_AUDIT_LOG") or path.parent / "audit.log"
        return ControlPlane(path, Path(audit) if Path(audit).is_file() else None)
    if not SCRIPT.is_file():
        return "no .ci/control-plane in this checkout"
    if _script("status").returncode == 0:
        path = Path(_script("kubeconfig").stdout.strip())
        return ControlPlane(path, path.parent / "audit.log")
    if _script("built").returncode != 0:
        return (
            "no Kubernetes control plane: run `.ci/control-plane start` "
            "(the first build takes about 15 minutes)"
        )
    started = _script("start")
    if started.returncode != 0:
        return f".ci/control-plane start failed: {started.stderr.strip()[-2000:]}"
    path = Path(_script("kubeconfig").stdout.strip())
    return ControlPlane(path, path.parent / "audit.log", started=True)


def api_client(kubeconfig: Path) -> Any:
    """A ``kubernetes.client.ApiClient`` for *kubeconfig*."""
    from kubernetes import config

    return config.new_client_from_config(config_file=str(kubeconfig))


@attrs.define
class AuditLog:
    """Count the API calls recorded in the API server's audit log."""

    path: Path
    user: str = "cleanroom-admin"

    def mark(self) -> int:
        """The current end of the log."""
        return self.path.stat().st_size

    def events(self, since: int) -> list[dict[str, Any]]:
        """The events of our user written after *since*, once the log is still."""
        size = -1
        # Events are written as responses complete; wait until it settles.
        while (now := self.path.stat().st_size) != size:
            size = now
            time.sleep(0.3)
        with self.path.open("rb") as log:
            log.seek(since)
            lines = log.read().splitlines()
        events = [json.loads(line) for line in lines if line.strip()]
        return [e for e in events if e.get("user", {}).get("username") == self.user]

    def count(
        self, since: int, *, verbs: set[str], resource: str, namespace: str
    ) -> int:
        """How many calls of *verbs* on *resource* in *namespace* since *since*."""
        return sum(
            1
            for e in self.events(since)
            if e.get("verb") in verbs
            and e.get("objectRef", {}).get("resource") == resource
            and e.get("objectRef", {}).get("namespace") == namespace
        )


DELETES = {"delete", "deletecollection"}


def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll *predicate* until it returns something true; fail after *timeout*."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def pod_manifest(name: str | None = None, **labels: str) -> dict[str, Any]:
    """A pod that never runs (there is no kubelet): deletion semantics only."""
    meta: dict[str, Any] = {"labels": dict(labels)}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = "pod-"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
    }


def job_manifest(name: str, parallelism: int = 2) -> dict[str, Any]:
    """A Job whose pods the job controller creates and that stay Pending."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "parallelism": parallelism,
            "completions": parallelism,
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox:1.36"}],
                }
            },
        },
    }


def names(items: Iterator[Any] | list[Any]) -> set[str]:
    """The names of listed objects."""
    return {item.metadata.name for item in items}
