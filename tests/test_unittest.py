"""
Tests for cleanroom.unittest: scopes per test and per class, bound to the
outcome, closed on interrupts, under unittest's runner and under pytest.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
import unittest
from pathlib import Path
from typing import Any, ClassVar

import pytest

import cleanroom
from cleanroom import BaseKind, PolicyError, Resource, Scope, register_kind
from cleanroom.unittest import (
    CleanroomMixin,
    CleanroomTestCase,
    IsolatedAsyncioCleanroomTestCase,
)

pytest_plugins = ["pytester"]


class FileKind(BaseKind):
    """Resources that are files; deleting one removes the file."""

    def delete(self, resource: Resource, *, wait: bool) -> None:
        Path(resource.identity["path"]).unlink(missing_ok=True)


register_kind(FileKind("unittest-file", category="runtime"), replace=True)


def make(scope: Scope, folder: Path, name: str) -> Path:
    """Create a file and track it in *scope*."""
    path = folder / name
    path.write_text("")
    scope.track("unittest-file", name, path=str(path))
    return path


def run(*cases: type[unittest.TestCase]) -> unittest.TestResult:
    """Run every test of *cases* as unittest's runner does, class fixtures included."""
    loader = unittest.TestLoader()
    suite = unittest.TestSuite(loader.loadTestsFromTestCase(case) for case in cases)
    result = unittest.TestResult()
    suite.run(result)
    return result


class TestTestScope:
    def test_is_a_scope_per_test(self) -> None:
        """Each test gets a scope of its own, named after the test."""
        seen: list[Scope] = []

        class Case(CleanroomTestCase):
            def test_one(self) -> None:
                seen.append(self.cleanroom)

            def test_two(self) -> None:
                seen.append(self.cleanroom)

        assert run(Case).wasSuccessful()
        assert [s.name.rsplit(".", 1)[-1] for s in seen] == ["test_one", "test_two"]
        assert seen[0] is not seen[1]

    def test_is_current_during_the_test(self) -> None:
        """The test's scope is the current scope in setUp, the test and tearDown."""
        seen: list[bool] = []

        class Case(CleanroomTestCase):
            def setUp(self) -> None:
                seen.append(cleanroom.current_scope() is self.cleanroom)

            def test_it(self) -> None:
                seen.append(cleanroom.current_scope() is self.cleanroom)

            def tearDown(self) -> None:
                seen.append(cleanroom.current_scope() is self.cleanroom)

        before = cleanroom.current_scope()
        assert run(Case).wasSuccessful()
        assert seen == [True, True, True]
        assert cleanroom.current_scope() is before

    def test_closes_after_teardown_and_cleanups(self) -> None:
        """The scope closes last: after tearDown and the addCleanup callbacks."""
        order: list[str] = []

        class Case(CleanroomTestCase):
            def setUp(self) -> None:
                self.cleanroom.callback(order.append, "scope")
                self.addCleanup(order.append, "addCleanup")

            def test_it(self) -> None:
                pass

            def tearDown(self) -> None:
                order.append("tearDown")

        assert run(Case).wasSuccessful()
        assert order == ["tearDown", "addCleanup", "scope"]

    @pytest.mark.parametrize(
        ("body", "kept"),
        [
            ("pass", False),
            ("self.fail('no')", True),
            ("raise RuntimeError('no')", True),
            ("self.skipTest('later')", False),
        ],
    )
    def test_outcome(self, tmp_path: Path, body: str, *, kept: bool) -> None:
        """Failed and errored tests keep; passed and skipped ones clean."""
        namespace: dict[str, Any] = {}
        exec(
            f"def test_it(self):\n    make(self.cleanroom, folder, 'x')\n    {body}\n",
            {"make": make, "folder": tmp_path},
            namespace,
        )
        case = type("Case", (CleanroomTestCase,), {"test_it": namespace["test_it"]})
        run(case)
        assert (tmp_path / "x").exists() is kept

    def test_failed_subtest_keeps(self, tmp_path: Path) -> None:
        """A failed subtest keeps the test's resources."""

        class Case(CleanroomTestCase):
            def test_it(self) -> None:
                make(self.cleanroom, tmp_path, "x")
                with self.subTest(i=1):
                    self.fail("no")

        assert not run(Case).wasSuccessful()
        assert (tmp_path / "x").exists()

    def test_expected_failure_cleans(self, tmp_path: Path) -> None:
        """An expected failure counts as passed."""

        class Case(CleanroomTestCase):
            @unittest.expectedFailure
            def test_it(self) -> None:
                make(self.cleanroom, tmp_path, "x")
                self.fail("expected")

        result = run(Case)
        assert len(result.expectedFailures) == 1
        assert not (tmp_path / "x").exists()

    def test_unexpected_success_keeps(self, tmp_path: Path) -> None:
        """An expected failure that passes has failed, and keeps."""

        class Case(CleanroomTestCase):
            @unittest.expectedFailure
            def test_it(self) -> None:
                make(self.cleanroom, tmp_path, "x")

        result = run(Case)
        assert len(result.unexpectedSuccesses) == 1
        assert (tmp_path / "x").exists()

    def test_cleanup_failure_is_an_error(self) -> None:
        """A failing cleanup is an error of the test, its CleanupError readable."""

        def fail() -> None:
            raise OSError("the API said no")

        class Case(CleanroomTestCase):
            def test_it(self) -> None:
                self.cleanroom.add(object(), lambda _: fail(), name="api", weak=False)

        result = run(Case)
        [(_, text)] = result.errors
        assert "CleanupError: 1 cleanup failed" in text
        assert "OSError: the API said no" in text

    def test_policy_attribute(self, tmp_path: Path) -> None:
        """cleanroom_policy sets the scopes' policy."""

        class Case(CleanroomTestCase):
            cleanroom_policy: ClassVar[dict[str, Any]] = {"level": "none"}

            def test_it(self) -> None:
                make(self.cleanroom, tmp_path, "x")

        assert run(Case).wasSuccessful()
        assert (tmp_path / "x").exists()

    def test_bad_policy_fails_at_definition(self) -> None:
        """A bad policy attribute fails where the class is defined."""
        with pytest.raises(PolicyError, match="unknown level 'podz'"):

            class Case(CleanroomTestCase):
                cleanroom_policy: ClassVar[dict[str, Any]] = {"level": "podz"}

    def test_with_cleanup_decorator(self, tmp_path: Path) -> None:
        """with_cleanup on a test method opens a child of the test's scope."""
        parents: list[object] = []

        class Case(CleanroomTestCase):
            cleanroom_policy: ClassVar[dict[str, Any]] = {"level": "none"}

            @cleanroom.with_cleanup
            def test_it(self) -> None:
                scope = cleanroom.current_scope()
                parents.append(scope.parent is self.cleanroom)
                make(scope, tmp_path, "x")

        assert run(Case).wasSuccessful()
        assert parents == [True]
        assert (tmp_path / "x").exists()

    def test_mixin(self) -> None:
        """The mixin works with any TestCase subclass."""
        seen: list[Scope] = []

        class Base(unittest.TestCase):
            pass

        class Case(CleanroomMixin, Base):
            def test_it(self) -> None:
                seen.append(self.cleanroom)

        assert run(Case).wasSuccessful()
        assert len(seen) == 1

    def test_run_without_a_result(self) -> None:
        """run() without a result makes one and returns it."""

        class Case(CleanroomTestCase):
            def test_it(self) -> None:
                pass

        result = Case("test_it").run()
        assert result is not None
        assert result.wasSuccessful()

    def test_debug(self, tmp_path: Path) -> None:
        """debug() runs the test in its scope and lets errors through."""

        class Case(CleanroomTestCase):
            def test_it(self) -> None:
                make(self.cleanroom, tmp_path, "x")
                raise RuntimeError("debug me")

        with pytest.raises(RuntimeError, match="debug me"):
            Case("test_it").debug()
        assert (tmp_path / "x").exists()

    def test_keyboard_interrupt_closes_the_scopes(self, tmp_path: Path) -> None:
        """On KeyboardInterrupt, where unittest skips cleanups, both scopes clean."""

        class Case(CleanroomTestCase):
            @classmethod
            def setUpClass(cls) -> None:
                make(cls.cleanroom_class, tmp_path, "class")

            def test_it(self) -> None:
                make(self.cleanroom, tmp_path, "test")
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            run(Case)
        assert sorted(p.name for p in tmp_path.iterdir()) == []


class TestClassScope:
    def test_closes_after_teardown_class(self) -> None:
        """The class's scope closes after tearDownClass, with the class cleanups."""
        order: list[str] = []

        class Case(CleanroomTestCase):
            @classmethod
            def setUpClass(cls) -> None:
                cls.cleanroom_class.callback(order.append, "class scope")

            @classmethod
            def tearDownClass(cls) -> None:
                order.append("tearDownClass")

            def test_one(self) -> None:
                order.append("test")

        assert run(Case).wasSuccessful()
        assert order == ["test", "tearDownClass", "class scope"]

    def test_shared_by_the_tests(self) -> None:
        """Every test of the class sees the same class scope."""
        seen: list[Scope] = []

        class Case(CleanroomTestCase):
            def test_one(self) -> None:
                seen.append(self.cleanroom_class)

            def test_two(self) -> None:
                seen.append(type(self).cleanroom_class)

        assert run(Case).wasSuccessful()
        assert seen[0] is seen[1]

    def test_keeps_when_a_test_failed(self, tmp_path: Path) -> None:
        """A failed test keeps the class scope's resources."""

        class Case(CleanroomTestCase):
            @classmethod
            def setUpClass(cls) -> None:
                make(cls.cleanroom_class, tmp_path, "x")

            def test_one(self) -> None:
                self.fail("no")

        run(Case)
        assert (tmp_path / "x").exists()

    def test_cleans_when_all_passed(self, tmp_path: Path) -> None:
        """When every test passed, the class scope cleans."""

        class Case(CleanroomTestCase):
            @classmethod
            def setUpClass(cls) -> None:
                make(cls.cleanroom_class, tmp_path, "x")

            def test_one(self) -> None:
                pass

        assert run(Case).wasSuccessful()
        assert not (tmp_path / "x").exists()

    def test_subclass_has_its_own(self) -> None:
        """A subclass gets a class scope of its own."""
        scopes: dict[str, Scope] = {}

        class Base(CleanroomTestCase):
            def test_it(self) -> None:
                scopes[type(self).__name__] = self.cleanroom_class

        class Derived(Base):
            pass

        assert run(Base, Derived).wasSuccessful()
        assert scopes["Base"] is not scopes["Derived"]
        assert scopes["Derived"].name.endswith("Derived")


class TestAsync:
    def test_closes_in_the_test_loop(self) -> None:
        """Async cleanups run in the test's own event loop."""
        seen: list[bool] = []

        class Case(IsolatedAsyncioCleanroomTestCase):
            async def test_it(self) -> None:
                loop = asyncio.get_running_loop()

                async def close() -> None:
                    seen.append(asyncio.get_running_loop() is loop)

                self.cleanroom.push_async_callback(close)

        assert run(Case).wasSuccessful()
        assert seen == [True]

    def test_is_current_in_async_code(self) -> None:
        """The test's scope is current in asyncSetUp and the async test."""
        seen: list[bool] = []

        class Case(IsolatedAsyncioCleanroomTestCase):
            async def asyncSetUp(self) -> None:
                seen.append(cleanroom.current_scope() is self.cleanroom)

            async def test_it(self) -> None:
                seen.append(cleanroom.current_scope() is self.cleanroom)

        assert run(Case).wasSuccessful()
        assert seen == [True, True]

    def test_failure_keeps(self, tmp_path: Path) -> None:
        """A failed async test keeps its resources."""

        class Case(IsolatedAsyncioCleanroomTestCase):
            async def test_it(self) -> None:
                make(self.cleanroom, tmp_path, "x")
                self.fail("no")

        run(Case)
        assert (tmp_path / "x").exists()


# A unittest module whose test waits, with resources in the test's and the
# class's scopes; "ready" tells the driver the test runs.
WAITING_CASE = """
import pathlib
import time
import unittest

from cleanroom import BaseKind, register_kind
from cleanroom.unittest import CleanroomTestCase


class FileKind(BaseKind):
    def delete(self, resource, *, wait):
        pathlib.Path(resource.identity["path"]).unlink(missing_ok=True)


register_kind(FileKind("unittest-file"), replace=True)


def make(scope, name):
    pathlib.Path(name).write_text("")
    scope.track("unittest-file", name, path=str(pathlib.Path(name).absolute()))


class Case(CleanroomTestCase):
    @classmethod
    def setUpClass(cls):
        make(cls.cleanroom_class, "class-file")

    def test_waits(self):
        make(self.cleanroom, "test-file")
        pathlib.Path("ready").write_text("")
        time.sleep(60)
"""


class TestInterrupts:
    @pytest.mark.parametrize(
        ("signum", "status"),
        [(signal.SIGINT, -signal.SIGINT), (signal.SIGTERM, 143)],
        ids=["SIGINT", "SIGTERM"],
    )
    def test_python_m_unittest(self, tmp_path: Path, signum: int, status: int) -> None:
        """Ctrl+C and SIGTERM under python -m unittest clean both scopes."""
        (tmp_path / "test_waiting.py").write_text(WAITING_CASE)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANROOM_")}
        env["CLEANROOM_JOURNAL"] = str(tmp_path / "journal.sqlite")
        process = subprocess.Popen(
            [sys.executable, "-m", "unittest", "test_waiting"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not (tmp_path / "ready").exists():
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline
                time.sleep(0.02)
            process.send_signal(signum)
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == status, stderr
        assert not (tmp_path / "test-file").exists()
        assert not (tmp_path / "class-file").exists()


class TestUnderPytest:
    @pytest.fixture
    def pytester(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> pytest.Pytester:
        """A pytester whose runs journal under its directory."""
        monkeypatch.setenv("CLEANROOM_JOURNAL", str(pytester.path / "journal.sqlite"))
        monkeypatch.delenv("CLEANROOM_SESSION", raising=False)
        pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
        return pytester

    def test_outcomes(self, pytester: pytest.Pytester) -> None:
        """Collected by pytest, a failed test keeps and a passed one cleans."""
        pytester.makepyfile(
            textwrap.dedent(
                """
                import pathlib

                from cleanroom import BaseKind, register_kind
                from cleanroom.unittest import CleanroomTestCase

                class FileKind(BaseKind):
                    def delete(self, resource, *, wait):
                        pathlib.Path(resource.identity["path"]).unlink()

                register_kind(FileKind("unittest-file"), replace=True)

                def make(scope, name):
                    path = pathlib.Path(name).absolute()
                    path.write_text("")
                    scope.track("unittest-file", name, path=str(path))

                class Case(CleanroomTestCase):
                    @classmethod
                    def setUpClass(cls):
                        make(cls.cleanroom_class, "class-file")

                    def test_passes(self):
                        make(self.cleanroom, "passed-file")

                    def test_fails(self):
                        make(self.cleanroom, "failed-file")
                        self.fail("no")
                """
            )
        )
        pytester.runpytest().assert_outcomes(passed=1, failed=1)
        remaining = {p.name for p in pytester.path.iterdir() if p.name.endswith("file")}
        assert remaining == {"failed-file", "class-file"}

    def test_cleanup_failure_is_an_error(self, pytester: pytest.Pytester) -> None:
        """Collected by pytest, a failing cleanup fails the test with its error."""
        pytester.makepyfile(
            """
            from cleanroom.unittest import CleanroomTestCase

            def fail():
                raise OSError("the API said no")

            class Case(CleanroomTestCase):
                def test_it(self):
                    self.cleanroom.add(object(), lambda _: fail(), weak=False)
            """
        )
        result = pytester.runpytest()
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*CleanupError*", "*OSError: the API said no"])

    def test_async_case(self, pytester: pytest.Pytester) -> None:
        """Collected by pytest, the async variant closes in the test's loop."""
        pytester.makepyfile(
            """
            import asyncio

            from cleanroom.unittest import IsolatedAsyncioCleanroomTestCase

            seen = []

            class Case(IsolatedAsyncioCleanroomTestCase):
                async def test_it(self):
                    loop = asyncio.get_running_loop()

                    async def close():
                        seen.append(asyncio.get_running_loop() is loop)

                    self.cleanroom.push_async_callback(close)

            def test_seen():
                assert seen == [True]
            """
        )
        pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)
