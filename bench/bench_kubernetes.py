"""
Deleting 100 pods tracked in one scope, against the real control plane.

(a) cleanroom: 100 pods made with ``scope.k8s.create`` in one namespace, then
    ``scope.close()`` with ``wait=True``. The API server's audit log counts
    the DELETE calls (``delete`` and ``deletecollection``) and the list and
    watch calls of the wait. Goal: at most 2 DELETE calls.
(b) The same 100 pods deleted one ``delete_namespaced_pod`` call each, then
    waited for by polling the list, as hand-written cleanup code does.

Both are wall times of the deletion alone (creation is not timed), in the
same run, alternating which goes first. The pods never run (there is no
kubelet), so the numbers are the API's cost, not a kubelet's.

Usage: ``python bench/bench_kubernetes.py [--quick]``, with the control plane
started (``.ci/control-plane start``); it skips with a message without one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _measure import Result

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import kube

PODS = 100


def make_pods(core: Any, namespace: str, scope: Any = None) -> None:

    for i in range(PODS):
        manifest = kube.pod_manifest(f"pod-{i}")
        if scope is None:
            core.create_namespaced_pod(namespace, manifest)
        else:
            scope.k8s.create(manifest, namespace=namespace)


def with_cleanroom(core: Any, namespace: str, audit: kube.AuditLog) -> dict[str, float]:
    import cleanroom

    scope = cleanroom.managed_resources(wait=True)
    with scope:
        make_pods(core, namespace, scope)
        mark = audit.mark()
        started = time.perf_counter()
    seconds = time.perf_counter() - started
    assert not core.list_namespaced_pod(namespace).items
    events = [
        e
        for e in audit.events(mark)
        if e.get("objectRef", {}).get("resource") == "pods"
        and e.get("objectRef", {}).get("namespace") == namespace
    ]
    return {
        "seconds": seconds,
        "deletes": sum(e["verb"] in kube.DELETES for e in events),
        "lists": sum(e["verb"] == "list" for e in events),
        "watches": sum(e["verb"] == "watch" for e in events),
    }


def one_by_one(core: Any, namespace: str, audit: kube.AuditLog) -> dict[str, float]:
    make_pods(core, namespace)
    mark = audit.mark()
    started = time.perf_counter()
    for i in range(PODS):
        core.delete_namespaced_pod(
            f"pod-{i}", namespace, propagation_policy="Foreground"
        )
    while core.list_namespaced_pod(namespace).items:
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    deletes = audit.count(
        mark, verbs=kube.DELETES, resource="pods", namespace=namespace
    )
    return {"seconds": seconds, "deletes": deletes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 repetition, not 3")
    args = parser.parse_args(argv)
    found = kube.find()
    if isinstance(found, str) or found.audit_log is None:
        print(f"skipped: {found if isinstance(found, str) else 'no audit log'}")
        return 0
    from kubernetes import client

    from cleanroom.kinds import kubernetes as k8s

    api_client = kube.api_client(found.kubeconfig)
    k8s.configure(api_client)
    core = client.CoreV1Api(api_client)
    audit = kube.AuditLog(found.audit_log)
    runs: dict[str, list[dict[str, float]]] = {"cleanroom": [], "one by one": []}
    contenders = {"cleanroom": with_cleanroom, "one by one": one_by_one}
    try:
        for repetition in range(1 if args.quick else 3):
            order = list(contenders)
            if repetition % 2:
                order.reverse()
            for name in order:
                namespace = f"bench-{os.urandom(4).hex()}"
                core.create_namespace({"metadata": {"name": namespace}})
                try:
                    runs[name].append(contenders[name](core, namespace, audit))
                finally:
                    core.delete_namespace(namespace, propagation_policy="Background")
    finally:
        k8s.default_cluster().close()
        found.stop()
    ours, theirs = runs["cleanroom"], runs["one by one"]
    median = {key: statistics.median(run[key] for run in ours) for key in ours[0]}
    their_seconds = statistics.median(run["seconds"] for run in theirs)
    their_deletes = statistics.median(run["deletes"] for run in theirs)
    results = [
        Result(
            f"DELETE calls for {PODS} pods",
            median["deletes"],
            2,
            "calls",
            detail=(
                f"plus {median['lists']:g} list, {median['watches']:g} watch; "
                f"one by one: {their_deletes:g} DELETE calls"
            ),
        ),
        Result(
            f"delete {PODS} pods and wait, vs one by one",
            median["seconds"] / their_seconds,
            1.0,
            "x",
            detail=f"{median['seconds']:.2f} s vs {their_seconds:.2f} s",
        ),
    ]
    for result in results:
        print(" | ".join(result.row()), "|", result.detail)
    return 0 if all(r.met for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
