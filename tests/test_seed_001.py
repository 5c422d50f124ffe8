"""
Seed 001 end to end: the ``resource_manager`` fixture tracking jobs, the
decorator with ``cleanup_level`` and ``wait_after``, the context manager with
a name and a level, the ``--resource-cleanup`` flag with none / pods / all,
and failed tests keeping their resources unless forced.

A stand-in cluster replaces Kubernetes: a *pod* is a real process (kind
``pods``, a runtime kind) and a *job* is a real file holding the job's log
(kind ``jobs``, a record kind, kept at level ``pods`` so its log stays
readable). Each scenario runs pytest in a child process, then checks which
processes still run and which logs are still there.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

from cleanroom import Scope

pytest_plugins = ["pytester"]

CLUSTER = '''
"""A stand-in cluster: pods are processes, jobs are log files."""

import os
import pathlib
import signal
import sys
import uuid

from cleanroom import BaseKind, register_kind

STATE = pathlib.Path(__file__).parent / "cluster"


class Pods(BaseKind):
    def delete(self, resource, *, wait):
        pid = resource.identity["pid"]
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        else:
            if wait:
                os.waitpid(pid, 0)
        (STATE / "pods" / resource.name).unlink(missing_ok=True)

    def delete_hint(self, resource):
        return f"kill {resource.identity['pid']}"


class Jobs(BaseKind):
    def delete(self, resource, *, wait):
        (STATE / "jobs" / resource.name).unlink(missing_ok=True)

    def delete_hint(self, resource):
        return f"rm {STATE / 'jobs' / resource.name}"


register_kind(Pods("pods", aliases=("pod",), category="runtime"), replace=True)
register_kind(Jobs("jobs", aliases=("job",), category="record"), replace=True)


def submit_evaluation(code):
    """Start a job for *code*: its log, and a pod that runs it; return the id."""
    eval_id = uuid.uuid4().hex[:8]
    (STATE / "jobs").mkdir(parents=True, exist_ok=True)
    (STATE / "pods").mkdir(parents=True, exist_ok=True)
    (STATE / "jobs" / f"evaluation-job-{eval_id}").write_text(f"ran {code}\\n")
    argv = [sys.executable, "-c", "import time; time.sleep(120)"]
    pid = os.posix_spawn(sys.executable, argv, os.environ)
    (STATE / "pods" / f"evaluation-pod-{eval_id}").write_text(str(pid))
    return eval_id, pid


def submit_and_track(scope, code):
    """Submit an evaluation and track its job and its pod, as seed 001 does."""
    eval_id, pid = submit_evaluation(code)
    scope.track("jobs", f"evaluation-job-{eval_id}")
    scope.track("pods", f"evaluation-pod-{eval_id}", pid=pid)
    return eval_id
'''

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
"""


@pytest.fixture
def cluster(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, cleanroom: Scope
) -> pytest.Pytester:
    """A pytester with the stand-in cluster; pods left running are ended after."""
    monkeypatch.setenv("CLEANROOM_JOURNAL", str(pytester.path / "journal.sqlite"))
    monkeypatch.delenv("CLEANROOM_SESSION", raising=False)
    monkeypatch.delenv("CLEANROOM_LEVEL", raising=False)
    pytester.makeini(INI)
    pytester.makepyfile(cluster=CLUSTER)
    pytester.makeconftest("import cluster  # registers the kinds")
    cleanroom.callback(_end_pods, pytester.path / "cluster" / "pods")
    return pytester


def _end_pods(folder: Path) -> None:
    for pid in _pids(folder):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _pids(folder: Path) -> list[int]:
    return [int(p.read_text()) for p in folder.iterdir()] if folder.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # An ended child of the finished pytest run is reaped by init; a pod that
    # still runs is a live process, not a zombie.
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def left(pytester: pytest.Pytester) -> dict[str, int]:
    """Count the jobs (log files) and the pods (live processes) left over."""
    state = pytester.path / "cluster"
    jobs = list((state / "jobs").iterdir()) if (state / "jobs").exists() else []
    pods = [pid for pid in _pids(state / "pods") if _alive(pid)]
    return {"jobs": len(jobs), "pods": len(pods)}


FIXTURE_TEST = """
from cluster import submit_and_track

def test_evaluation(resource_manager):
    submit_and_track(resource_manager, "print('test')")
"""


class TestFixture:
    @pytest.mark.parametrize(
        ("level", "expected"),
        [
            ("none", {"jobs": 1, "pods": 1}),
            ("pods", {"jobs": 1, "pods": 0}),
            ("all", {"jobs": 0, "pods": 0}),
        ],
    )
    def test_resource_cleanup_levels(
        self, cluster: pytest.Pytester, level: str, expected: dict[str, int]
    ) -> None:
        """--resource-cleanup none keeps all, pods deletes pods, all deletes both."""
        cluster.makepyfile(FIXTURE_TEST)
        result = cluster.runpytest_subprocess(f"--resource-cleanup={level}")
        result.assert_outcomes(passed=1)
        assert left(cluster) == expected

    def test_job_logs_stay_readable_at_pods(self, cluster: pytest.Pytester) -> None:
        """At level pods, the job's log can still be read after the test."""
        cluster.makepyfile(FIXTURE_TEST)
        cluster.runpytest_subprocess("--resource-cleanup", "pods")
        [log] = (cluster.path / "cluster" / "jobs").iterdir()
        assert log.read_text() == "ran print('test')\n"

    def test_many_resources(self, cluster: pytest.Pytester) -> None:
        """A test that tracks many jobs and pods has them all cleaned."""
        cluster.makepyfile(
            """
            from cluster import submit_and_track

            def test_many(resource_manager):
                for i in range(20):
                    submit_and_track(resource_manager, f"job {i}")
            """
        )
        result = cluster.runpytest_subprocess("--resource-cleanup=all")
        result.assert_outcomes(passed=1)
        assert left(cluster) == {"jobs": 0, "pods": 0}

    def test_default_level_from_the_ini_file(self, cluster: pytest.Pytester) -> None:
        """The seed's default, level none, can be the project's default."""
        cluster.makeini(INI + "cleanroom_level = none\n")
        cluster.makepyfile(FIXTURE_TEST)
        cluster.runpytest_subprocess().assert_outcomes(passed=1)
        assert left(cluster) == {"jobs": 1, "pods": 1}


class TestFailedTests:
    FAILING = """
    from cluster import submit_and_track

    def test_evaluation(resource_manager):
        submit_and_track(resource_manager, "print('test')")
        assert False, "the evaluation went wrong"
    """

    def test_keep_their_resources(self, cluster: pytest.Pytester) -> None:
        """A failed test keeps its pods and jobs for debugging."""
        cluster.makepyfile(self.FAILING)
        result = cluster.runpytest_subprocess("--resource-cleanup=all")
        result.assert_outcomes(failed=1)
        assert left(cluster) == {"jobs": 1, "pods": 1}

    def test_summary_says_how_to_delete(self, cluster: pytest.Pytester) -> None:
        """The summary lists each kept resource with the command that deletes it."""
        cluster.makepyfile(self.FAILING)
        result = cluster.runpytest_subprocess("--resource-cleanup=all")
        jobs = cluster.path / "cluster" / "jobs"
        result.stdout.fnmatch_lines(
            [
                "*= cleanroom =*",
                "0 cleaned, 2 kept, 0 failed",
                "kept pods 'evaluation-pod-*' of *::test_evaluation: *",
                "    delete it with: kill *",
                "kept jobs 'evaluation-job-*' of *::test_evaluation: *",
                f"    delete it with: rm {jobs}/evaluation-job-*",
            ]
        )

    def test_forced_cleanup(self, cluster: pytest.Pytester) -> None:
        """--cleanroom-force cleans a failed test's resources too."""
        cluster.makepyfile(self.FAILING)
        result = cluster.runpytest_subprocess(
            "--resource-cleanup=all", "--cleanroom-force"
        )
        result.assert_outcomes(failed=1)
        assert left(cluster) == {"jobs": 0, "pods": 0}


class TestDecorator:
    def test_cleanup_level_and_wait_after(self, cluster: pytest.Pytester) -> None:
        """with_cleanup(cleanup_level="pods", wait_after=...) ends pods, keeps jobs."""
        cluster.makepyfile(
            """
            from cleanroom import with_cleanup
            from cluster import submit_and_track

            @with_cleanup(cleanup_level="pods", wait_after=0.1)
            def test_concurrent_evaluations(scope):
                assert scope.policy.wait_after == 0.1
                for i in range(3):
                    submit_and_track(scope, f"evaluation {i}")
            """
        )
        # The decorator's explicit level wins over the command line's.
        result = cluster.runpytest_subprocess("--resource-cleanup=all")
        result.assert_outcomes(passed=1)
        assert left(cluster) == {"jobs": 3, "pods": 0}

    def test_failure_keeps(self, cluster: pytest.Pytester) -> None:
        """A decorated test that fails keeps its resources."""
        cluster.makepyfile(
            """
            from cleanroom import with_cleanup
            from cluster import submit_and_track

            @with_cleanup(cleanup_level="pods")
            def test_concurrent_evaluations(scope):
                submit_and_track(scope, "evaluation")
                assert False
            """
        )
        cluster.runpytest_subprocess().assert_outcomes(failed=1)
        assert left(cluster) == {"jobs": 1, "pods": 1}


class TestContextManager:
    def test_named_with_a_level(self, cluster: pytest.Pytester) -> None:
        """managed_resources("my_test", cleanup_level="all") cleans at its exit."""
        cluster.makepyfile(
            """
            import pathlib

            from cleanroom import managed_resources
            from cluster import submit_and_track

            def test_with_context():
                with managed_resources("my_test", cleanup_level="all") as scope:
                    assert scope.name == "my_test"
                    submit_and_track(scope, "evaluation")
                jobs = pathlib.Path(__file__).parent / "cluster" / "jobs"
                assert list(jobs.iterdir()) == []
            """
        )
        # The context manager's explicit level wins over --resource-cleanup none.
        result = cluster.runpytest_subprocess("--resource-cleanup=none")
        result.assert_outcomes(passed=1)
        assert left(cluster) == {"jobs": 0, "pods": 0}

    def test_error_in_the_block_keeps(self, cluster: pytest.Pytester) -> None:
        """An exception in the block keeps what it created."""
        cluster.makepyfile(
            """
            import pytest

            from cleanroom import managed_resources
            from cluster import submit_and_track

            def test_with_context():
                with pytest.raises(RuntimeError):
                    with managed_resources("my_test", cleanup_level="all") as scope:
                        submit_and_track(scope, "evaluation")
                        raise RuntimeError("boom")
            """
        )
        cluster.runpytest_subprocess().assert_outcomes(passed=1)
        assert left(cluster) == {"jobs": 1, "pods": 1}
