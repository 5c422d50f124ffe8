"""
The Kubernetes backend against a real control plane (etcd, kube-apiserver and
kube-controller-manager on 127.0.0.1), through the real ``kubernetes`` client.

There is no kubelet: pods stay Pending, which is all deletion needs, and the
job controller, the garbage collector and the namespace controller run.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import cleanroom
import kube
from cleanroom import CleanupError, managed_resources
from cleanroom.kinds import kubernetes as k8s

pytestmark = [pytest.mark.kubernetes, pytest.mark.usefixtures("api_client")]


def pod_names(core: Any, namespace: str, selector: str | None = None) -> set[str]:
    return kube.names(
        core.list_namespaced_pod(namespace, label_selector=selector).items
    )


def job_pods(core: Any, namespace: str, job: str) -> set[str]:
    return pod_names(core, namespace, f"{k8s.JOB_NAME_LABEL}={job}")


def exists(read: Any, *args: Any) -> bool:
    try:
        read(*args)
    except Exception as exc:
        if getattr(exc, "status", None) == 404:
            return False
        raise
    return True


class TestCreate:
    def test_create_labels_and_deletes(self, core: Any, namespace: str) -> None:
        """create() labels the object as cleanroom's and the scope deletes it."""
        with managed_resources() as scope:
            pod = scope.k8s.create(kube.pod_manifest("one"), namespace=namespace)
            labels = core.read_namespaced_pod("one", namespace).metadata.labels
            assert labels[k8s.MANAGED_BY] == "cleanroom"
            assert labels[k8s.SESSION_LABEL]
            assert pod.metadata.name == "one"
        assert pod_names(core, namespace) == set()

    def test_generate_name_is_resolved_first(self, core: Any, namespace: str) -> None:
        """A generateName becomes a name before creation, so it is journaled."""
        with managed_resources() as scope:
            pod = scope.k8s.create(kube.pod_manifest(), namespace=namespace)
            assert pod.metadata.name.startswith("pod-")
            assert pod_names(core, namespace) == {pod.metadata.name}
        assert pod_names(core, namespace) == set()

    def test_client_model_manifest(self, core: Any, namespace: str) -> None:
        """A client model object is a manifest too; any kind works (a ConfigMap)."""
        from kubernetes import client

        model = client.V1ConfigMap(
            api_version="v1",
            kind="ConfigMap",
            metadata=client.V1ObjectMeta(name="settings"),
            data={"a": "1"},
        )
        with managed_resources() as scope:
            scope.k8s.create(model, namespace=namespace)
            assert core.read_namespaced_config_map("settings", namespace).data == {
                "a": "1"
            }
        assert not exists(core.read_namespaced_config_map, "settings", namespace)

    def test_namespace_with_everything_in_it(self, core: Any) -> None:
        """scope.k8s.namespace() is deleted with what it holds."""
        with managed_resources() as scope:
            family = scope.k8s
            name = family.namespace()
            family.create(kube.pod_manifest("inside"), namespace=name)
            ns = core.read_namespace(name)
            assert ns.metadata.labels[k8s.MANAGED_BY] == "cleanroom"
        # Not waited for by default: it is Terminating or gone.
        kube.wait_for(
            lambda: not exists(core.read_namespace, name), 60, "the namespace to go"
        )

    def test_failed_create_leaves_nothing(self, core: Any, namespace: str) -> None:
        """A create the API server refuses tracks nothing and leaves nothing."""
        bad = kube.pod_manifest("bad")
        bad["spec"]["containers"] = []
        with managed_resources() as scope:
            with pytest.raises(Exception, match=r"(?i)invalid|required"):
                scope.k8s.create(bad, namespace=namespace)
            assert scope.resources() == []
        assert pod_names(core, namespace) == set()


class TestAdopt:
    def test_client_objects_are_adopted(self, core: Any, namespace: str) -> None:
        """scope.add(V1Pod) tracks the pod by kind, name and namespace."""
        pod = core.create_namespaced_pod(namespace, kube.pod_manifest("model"))
        with managed_resources() as scope:
            assert scope.add(pod) is pod
            (resource,) = scope.resources()
            assert (resource.kind, resource.name) == ("pods", "model")
            assert resource.identity["namespace"] == namespace
        assert pod_names(core, namespace) == set()

    def test_dynamic_objects_are_adopted(self, core: Any, namespace: str) -> None:
        """A dynamic client's ResourceInstance of any kind is adopted by its kind."""
        api = k8s.default_cluster().api("v1", "ConfigMap")
        made = api.create(
            body={"metadata": {"name": "dyn"}, "data": {}}, namespace=namespace
        )
        with managed_resources() as scope:
            scope.add(made)
            assert scope.resource_of(made).kind == "configmaps"
        assert not exists(core.read_namespaced_config_map, "dyn", namespace)

    def test_created_objects_are_handles(self, core: Any, namespace: str) -> None:
        """What create() returns is a handle for keep() and release()."""
        with managed_resources() as scope:
            kept = scope.k8s.create(kube.pod_manifest("kept"), namespace=namespace)
            gone = scope.k8s.create(kube.pod_manifest("gone"), namespace=namespace)
            scope.keep(kept, "to look at")
            scope.release(gone)
            assert pod_names(core, namespace) == {"kept"}
        assert pod_names(core, namespace) == {"kept"}


class TestDeletion:
    def test_bulk_is_one_delete_collection(
        self, core: Any, namespace: str, audit: kube.AuditLog
    ) -> None:
        """Ten pods of one scope go in one DELETE call, not ten."""
        with managed_resources() as scope:
            family = scope.k8s
            for i in range(10):
                family.create(kube.pod_manifest(f"p{i}"), namespace=namespace)
            mark = audit.mark()
        assert pod_names(core, namespace) == set()
        deletes = audit.count(
            mark, verbs=kube.DELETES, resource="pods", namespace=namespace
        )
        assert deletes == 1

    def test_foreign_objects_untouched(self, core: Any, namespace: str) -> None:
        """Pods the scope did not make stay, labelled by another scope or not at all."""
        core.create_namespaced_pod(namespace, kube.pod_manifest("foreign"))
        with managed_resources() as other:
            other.k8s.create(kube.pod_manifest("other"), namespace=namespace)
            with managed_resources() as scope:
                for i in range(3):
                    scope.k8s.create(kube.pod_manifest(f"mine{i}"), namespace=namespace)
            assert pod_names(core, namespace) == {"foreign", "other"}
        assert pod_names(core, namespace) == {"foreign"}

    def test_released_and_kept_objects_disable_the_bulk_call(
        self, core: Any, namespace: str
    ) -> None:
        """A kept pod carrying the scope's labels survives: no blanket delete then."""
        with managed_resources() as scope:
            family = scope.k8s
            for i in range(3):
                family.create(kube.pod_manifest(f"p{i}"), namespace=namespace)
            scope.keep(
                family.handle("p0", kind="pods", namespace=namespace), "look at it"
            )
        assert pod_names(core, namespace) == {"p0"}

    def test_tracked_by_name_and_absent(self, core: Any, namespace: str) -> None:
        """track() deletes an object made by others; one already gone is success."""
        core.create_namespaced_pod(namespace, kube.pod_manifest("theirs"))
        with managed_resources() as scope:
            scope.k8s.track("pods", "theirs", namespace=namespace)
            scope.track("pods", "never-existed", namespace=namespace)
        assert pod_names(core, namespace) == set()

    def test_reserved_name_that_appears(self, core: Any, namespace: str) -> None:
        """reserve() deletes the object if it appeared and is fine if it did not."""
        with managed_resources() as scope:
            family = scope.k8s
            family.reserve("pods", "later", namespace=namespace)
            family.reserve("pods", "never", namespace=namespace)
            core.create_namespaced_pod(namespace, kube.pod_manifest("later"))
        assert pod_names(core, namespace) == set()

    def test_keep_on_failure_with_hint(self, core: Any, namespace: str) -> None:
        """A failed body keeps the pod and says how to delete it."""
        with pytest.raises(RuntimeError), managed_resources(on_failure="keep") as scope:
            scope.k8s.create(kube.pod_manifest("evidence"), namespace=namespace)
            raise RuntimeError("boom")
        assert pod_names(core, namespace) == {"evidence"}
        (kept,) = [d for d in scope.dispositions if d.state is cleanroom.State.KEPT]
        assert kept.hint == f"kubectl delete pod evidence -n {namespace}"

    def test_forced_clean_on_failure(self, core: Any, namespace: str) -> None:
        """force=True cleans even when the body failed."""
        with pytest.raises(RuntimeError), managed_resources(force=True) as scope:
            scope.k8s.create(kube.pod_manifest("gone"), namespace=namespace)
            raise RuntimeError("boom")
        assert pod_names(core, namespace) == set()


class TestJobs:
    def test_level_pods_keeps_the_job_without_pods(
        self, core: Any, batch: Any, namespace: str
    ) -> None:
        """Level pods suspends the Job, deletes its pods for good and keeps it."""
        with managed_resources(level="pods") as scope:
            scope.k8s.create(kube.job_manifest("work"), namespace=namespace)
            kube.wait_for(
                lambda: len(job_pods(core, namespace, "work")) == 2,
                30,
                "the job's pods",
            )
        job = batch.read_namespaced_job("work", namespace)
        assert job.spec.suspend is True
        assert job_pods(core, namespace, "work") == set()
        # The job controller does not bring them back.
        time.sleep(3)
        assert job_pods(core, namespace, "work") == set()
        (kept,) = [d for d in scope.dispositions if d.state is cleanroom.State.KEPT]
        assert kept.hint == f"kubectl delete job work -n {namespace}"

    def test_tracked_job_of_the_system_under_test(
        self, core: Any, batch: Any, namespace: str
    ) -> None:
        """A Job made by others and tracked by name gets the same treatment."""
        batch.create_namespaced_job(namespace, kube.job_manifest("sut", 1))
        kube.wait_for(lambda: job_pods(core, namespace, "sut"), 30, "the job's pod")
        with managed_resources(level="pods") as scope:
            scope.k8s.track("jobs", "sut", namespace=namespace)
        assert exists(batch.read_namespaced_job, "sut", namespace)
        assert job_pods(core, namespace, "sut") == set()

    def test_core_track_of_a_job_frees_its_pods(
        self, core: Any, batch: Any, namespace: str
    ) -> None:
        """scope.track("jobs", ...) at level pods deletes the Job's pods too."""
        batch.create_namespaced_job(namespace, kube.job_manifest("plain", 1))
        kube.wait_for(lambda: job_pods(core, namespace, "plain"), 30, "the job's pod")
        with managed_resources(level="pods") as scope:
            scope.track("jobs", "plain", namespace=namespace)
        assert job_pods(core, namespace, "plain") == set()

    def test_level_all_waits_foreground(
        self, core: Any, batch: Any, namespace: str
    ) -> None:
        """Level all with wait deletes the Job in the foreground, pods first."""
        with managed_resources(level="all", wait=True) as scope:
            scope.k8s.create(kube.job_manifest("fg"), namespace=namespace)
            kube.wait_for(lambda: job_pods(core, namespace, "fg"), 30, "the job's pods")
        assert not exists(batch.read_namespaced_job, "fg", namespace)
        assert job_pods(core, namespace, "fg") == set()

    def test_level_all_background_never_orphans(
        self, core: Any, batch: Any, namespace: str
    ) -> None:
        """Without waiting the Job goes in the background and the GC takes its pods."""
        with managed_resources(level="all", wait=False) as scope:
            scope.k8s.create(kube.job_manifest("bg"), namespace=namespace)
            kube.wait_for(lambda: job_pods(core, namespace, "bg"), 30, "the job's pods")
        assert not exists(batch.read_namespaced_job, "bg", namespace)
        kube.wait_for(
            lambda: not job_pods(core, namespace, "bg"), 30, "the GC to delete the pods"
        )

    def test_level_none_keeps_everything(
        self, core: Any, batch: Any, namespace: str
    ) -> None:
        """Level none touches nothing."""
        with managed_resources(level="none") as scope:
            scope.k8s.create(kube.job_manifest("keep", 1), namespace=namespace)
            kube.wait_for(
                lambda: job_pods(core, namespace, "keep"), 30, "the job's pod"
            )
        assert exists(batch.read_namespaced_job, "keep", namespace)
        assert job_pods(core, namespace, "keep")


class TestPodLogs:
    def test_pods_without_logs_are_skipped(
        self, core: Any, namespace: str, tmp_path: Any
    ) -> None:
        """Logs are saved where the cluster serves them; here none does, and
        the pods are deleted all the same."""
        with managed_resources(level="pods") as scope:
            family = scope.k8s
            family.save_logs(tmp_path / "logs")
            family.create(kube.job_manifest("logged", 1), namespace=namespace)
            kube.wait_for(lambda: job_pods(core, namespace, "logged"), 30, "a pod")
        assert job_pods(core, namespace, "logged") == set()
        assert not (tmp_path / "logs").exists()


class TestWaiting:
    def test_finalizer_is_named(self, core: Any) -> None:
        """wait=True on a namespace held by a finalizer names the finalizer."""
        finalizer = "cleanroom.dev/test-hold"
        k8s.configure(k8s.default_cluster().api_client, wait_timeout=3)
        try:
            with (
                pytest.raises(CleanupError) as caught,
                managed_resources(wait=True) as scope,
            ):
                family = scope.k8s
                name = family.namespace(wait=True)
                core.patch_namespace(name, {"metadata": {"finalizers": [finalizer]}})
        finally:
            k8s.configure(k8s.default_cluster().api_client, wait_timeout=30)
        (error,) = caught.value.exceptions
        assert isinstance(error, cleanroom.DeletionBlockedError)
        assert finalizer in str(error)
        assert name in str(error)
        core.patch_namespace(name, {"metadata": {"finalizers": None}})
        kube.wait_for(
            lambda: not exists(core.read_namespace, name), 60, "the namespace"
        )


class TestAsync:
    @pytest.mark.anyio
    async def test_async_scope(self, core: Any, namespace: str) -> None:
        """An async scope deletes off the event loop, on asyncio and trio."""
        async with managed_resources() as scope:
            await scope.k8s.acreate(kube.pod_manifest("a"), namespace=namespace)
            assert pod_names(core, namespace) == {"a"}
        assert pod_names(core, namespace) == set()


class TestSweepSupport:
    def test_list_owned_only_labelled(self, core: Any, namespace: str) -> None:
        """list_owned finds cleanroom's labelled objects and never a foreign one."""
        core.create_namespaced_pod(namespace, kube.pod_manifest("foreign"))
        with managed_resources() as scope:
            scope.k8s.create(kube.pod_manifest("ours"), namespace=namespace)
            found = {
                resource.name
                for resource, _ in k8s.PODS.labelled_objects()
                if resource.identity["namespace"] == namespace
            }
            assert found == {"ours"}

    def test_lease_alive_then_expired(self) -> None:
        """A session's Lease says alive while renewed and dead once expired."""
        session = f"lease-{os.urandom(4).hex()}"
        assert k8s.session_alive(session) is None
        lease = k8s.SessionLease(session, duration=5)
        with lease:
            assert k8s.session_alive(session) is True
            later = datetime.now(UTC) + timedelta(seconds=30)
            assert k8s.session_alive(session, now=later) is False
        assert k8s.session_alive(session) is None

    def test_sweep_asks_leases_of_other_hosts(
        self, core: Any, namespace: str, tmp_path: Any
    ) -> None:
        """Another host's labelled pod goes once its Lease expired, never before."""
        from cleanroom._crash._journal import Journal
        from cleanroom._crash._sweep import sweep

        sessions = {
            state: f"{state}-{os.urandom(4).hex()}"
            for state in ("renewed", "expired", "unknown")
        }
        for state, session in sessions.items():
            labels = cleanroom.Ownership(
                session, "t", "another-host", 1, None, time.time() - 60
            ).labels("kubernetes")
            core.create_namespaced_pod(namespace, kube.pod_manifest(state, **labels))
        renewed = k8s.SessionLease(sessions["renewed"], duration=60)
        expired = k8s.SessionLease(sessions["expired"], duration=1)
        expired.renew()  # and never again
        time.sleep(1.5)
        assert k8s.session_alive(sessions["expired"]) is False
        with renewed, Journal(tmp_path / "journal.sqlite3") as journal:
            report = sweep(journal, kinds=["pods"], session=None)
        expired.stop()
        removed = {r.name for r in report.results if r.action == "removed"}
        assert "expired" in removed
        assert not removed & {"renewed", "unknown"}
        kube.wait_for(
            lambda: pod_names(core, namespace) == {"renewed", "unknown"},
            60,
            "the expired session's pod to go",
        )

    def test_creating_holds_a_session_lease(self) -> None:
        """The first object a process creates starts its session's Lease."""
        from cleanroom._core._session import current_owner

        with managed_resources() as scope:
            scope.k8s.namespace()
            assert k8s.session_alive(current_owner().session) is True

    def test_probe_and_roundtrip(self, core: Any) -> None:
        """probe() names the version; roundtrip() makes and deletes a namespace."""
        assert "Kubernetes v1." in k8s.NAMESPACES.probe()
        with managed_resources() as scope:
            said = k8s.NAMESPACES.roundtrip(scope)
        name = said.rsplit(" ", 1)[1]
        assert name.startswith("cleanroom-check-")
        kube.wait_for(
            lambda: not exists(core.read_namespace, name), 60, "the namespace"
        )


CHILD = """
import sys, time
from kubernetes import config
from cleanroom import Scope
from cleanroom.kinds import kubernetes as k8s
scope = Scope("work").__enter__()
family = scope.k8s
for i in range(3):
    family.create(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"r{i}"},
         "spec": {"containers": [{"name": "main", "image": "busybox"}]}},
        namespace=sys.argv[1],
    )
print("ready", flush=True)
time.sleep(120)
"""


class TestCrash:
    def test_sigkill_of_the_owner(
        self, core: Any, namespace: str, control_plane: kube.ControlPlane, tmp_path: Any
    ) -> None:
        """The reaper deletes a SIGKILLed owner's pods through the API."""
        import subprocess
        import sys

        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, namespace],
            env={
                **{k: v for k, v in os.environ.items() if k != "CLEANROOM_SESSION"},
                "KUBECONFIG": str(control_plane.kubeconfig),
                "CLEANROOM_JOURNAL": str(tmp_path / "journal.sqlite3"),
            },
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        assert pod_names(core, namespace) == {"r0", "r1", "r2"}
        child.kill()
        child.wait()
        child.stdout.close()
        kube.wait_for(
            lambda: not pod_names(core, namespace), 60, "the reaper to delete the pods"
        )


SEED_TEST = '''
import os
import pytest
from kubernetes import client, config
from cleanroom.kinds import kubernetes as k8s

NAMESPACE = os.environ["SEED_NAMESPACE"]


def submit_evaluation(eval_id):
    """The system under test: it starts a Job per evaluation."""
    batch = client.BatchV1Api(config.new_client_from_config())
    batch.create_namespaced_job(NAMESPACE, {
        "metadata": {"name": f"evaluation-job-{eval_id}"},
        "spec": {"parallelism": 2, "completions": 2, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}],
        }}},
    })
    core = client.CoreV1Api(config.new_client_from_config())
    selector = f"batch.kubernetes.io/job-name=evaluation-job-{eval_id}"
    for _ in range(150):
        if len(core.list_namespaced_pod(NAMESPACE, label_selector=selector).items) == 2:
            return
        import time
        time.sleep(0.2)
    raise AssertionError("the job controller made no pods")


def test_passes(resource_manager):
    submit_evaluation("pass")
    family = resource_manager.k8s
    family.track("jobs", "evaluation-job-pass", namespace=NAMESPACE)


def test_fails(resource_manager):
    submit_evaluation("fail")
    family = resource_manager.k8s
    family.track("jobs", "evaluation-job-fail", namespace=NAMESPACE)
    assert False, "the evaluation went wrong"
'''


class TestSeed001:
    @pytest.mark.parametrize(
        ("level", "force", "jobs", "pods"),
        [
            ("none", False, {"pass", "fail"}, {"pass", "fail"}),
            ("pods", False, {"pass", "fail"}, {"fail"}),
            ("pods", True, {"pass", "fail"}, set()),
            ("all", False, {"fail"}, {"fail"}),
        ],
    )
    def test_resource_cleanup(  # noqa: PLR0917 - fixtures and parameters
        self,
        pytester: pytest.Pytester,
        monkeypatch: pytest.MonkeyPatch,
        control_plane: kube.ControlPlane,
        core: Any,
        batch: Any,
        namespace: str,
        level: str,
        force: bool,
        jobs: set[str],
        pods: set[str],
    ) -> None:
        """--resource-cleanup none/pods/all, failed tests kept unless forced."""
        pytester.makepyfile(test_seed=SEED_TEST)
        monkeypatch.setenv("SEED_NAMESPACE", namespace)
        monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
        args = ["--resource-cleanup", level, "-p", "no:randomly"]
        if force:
            args.append("--cleanroom-force")
        result = pytester.runpytest_subprocess(*args)
        result.assert_outcomes(passed=1, failed=1)
        left_jobs = {
            j.metadata.name.removeprefix("evaluation-job-")
            for j in batch.list_namespaced_job(namespace).items
        }
        assert left_jobs == jobs

        def left_pods() -> set[str]:
            return {
                p.metadata.labels[k8s.JOB_NAME_LABEL].removeprefix("evaluation-job-")
                for p in core.list_namespaced_pod(namespace).items
                if p.metadata.deletion_timestamp is None
            }

        # Level "all" without waiting leaves the garbage collector a moment.
        kube.wait_for(lambda: left_pods() == pods, 30, f"pods {pods}")
        if level == "pods" and not force:
            result.stdout.fnmatch_lines(
                [f"*kubectl delete job evaluation-job-pass -n {namespace}*"]
            )


class TestCheck:
    def test_cleanroom_check_round_trip(
        self, control_plane: kube.ControlPlane, tmp_path: Any
    ) -> None:
        """`cleanroom check` makes and deletes a namespace on the cluster."""
        import json
        import subprocess
        import sys

        result = subprocess.run(
            [sys.executable, "-m", "cleanroom", "check", "--json"],
            env={
                **os.environ,
                "KUBECONFIG": str(control_plane.kubeconfig),
                "CLEANROOM_JOURNAL": str(tmp_path / "journal.sqlite3"),
            },
            capture_output=True,
            text=True,
            check=False,
        )
        report = json.loads(result.stdout)
        (trip,) = [t for t in report["roundtrips"] if t["name"] == "k8s"]
        assert trip["ok"], trip
