"""
Tests for the pytest plugin: fixtures, the marker, options and ini keys,
teardown errors, the terminal summary, async tests, sessions and xdist.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cleanroom._core._settings import POLICY_FIELDS
from cleanroom._crash._journal import Journal

pytest_plugins = ["pytester"]

# Kinds whose resources are files in ``left/`` next to the test files: what a
# run leaves behind is what that directory holds afterwards.
CONFTEST = """
import pathlib

import pytest

from cleanroom import BaseKind, register_kind

LEFT = pathlib.Path(__file__).parent / "left"


class FileKind(BaseKind):
    def delete(self, resource, *, wait):
        pathlib.Path(resource.identity["path"]).unlink(missing_ok=True)

    def exists(self, resource):
        return pathlib.Path(resource.identity["path"]).exists()

    def delete_hint(self, resource):
        return f"rm {resource.identity['path']}"


register_kind(FileKind("fake-pod", category="runtime"), replace=True)
register_kind(FileKind("fake-job", category="record"), replace=True)


@pytest.fixture
def make():
    def make(scope, kind, name):
        LEFT.mkdir(exist_ok=True)
        path = LEFT / name
        path.write_text(kind)
        return scope.track(kind, name, path=str(path))

    return make
"""

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
"""


@pytest.fixture
def pytester(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    """A pytester whose runs journal under its directory, with cleanroom's kinds."""
    monkeypatch.setenv("CLEANROOM_JOURNAL", str(pytester.path / "journal.sqlite"))
    monkeypatch.delenv("CLEANROOM_SESSION", raising=False)
    for field in POLICY_FIELDS:
        monkeypatch.delenv(f"CLEANROOM_{field.upper()}", raising=False)
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    return pytester


def left(pytester: pytest.Pytester) -> list[str]:
    """Return the names of the fake resources still in place."""
    folder = pytester.path / "left"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


class TestFunctionScope:
    def test_yields_a_scope(self, pytester: pytest.Pytester) -> None:
        """The fixture yields a Scope named after the test."""
        pytester.makepyfile(
            """
            from cleanroom import Scope

            def test_it(cleanroom):
                assert isinstance(cleanroom, Scope)
                assert cleanroom.name == "test_yields_a_scope.py::test_it"
            """
        )
        pytester.runpytest().assert_outcomes(passed=1)

    def test_passed_test_cleans(self, pytester: pytest.Pytester) -> None:
        """A passing test's resources are cleaned after it."""
        pytester.makepyfile(
            """
            def test_it(cleanroom, make):
                make(cleanroom, "fake-pod", "pod-1")
                make(cleanroom, "fake-job", "job-1")
            """
        )
        pytester.runpytest().assert_outcomes(passed=1)
        assert left(pytester) == []

    def test_callbacks_run(self, pytester: pytest.Pytester) -> None:
        """Callbacks registered like on an ExitStack run after the test."""
        pytester.makepyfile(
            """
            import pathlib

            def test_it(cleanroom):
                cleanroom.callback(pathlib.Path("called").write_text, "yes")
            """
        )
        pytester.runpytest().assert_outcomes(passed=1)
        assert (pytester.path / "called").read_text() == "yes"

    def test_failed_call_keeps(self, pytester: pytest.Pytester) -> None:
        """A test that fails keeps its external resources for debugging."""
        pytester.makepyfile(
            """
            def test_it(cleanroom, make):
                make(cleanroom, "fake-pod", "pod-1")
                assert False
            """
        )
        pytester.runpytest().assert_outcomes(failed=1)
        assert left(pytester) == ["pod-1"]

    def test_failed_setup_keeps(self, pytester: pytest.Pytester) -> None:
        """A failure while setting up a later fixture counts as failed."""
        pytester.makepyfile(
            """
            import pytest

            @pytest.fixture
            def broken(cleanroom, make):
                make(cleanroom, "fake-pod", "pod-1")
                raise RuntimeError("setup failed")

            def test_it(broken):
                pass
            """
        )
        pytester.runpytest().assert_outcomes(errors=1)
        assert left(pytester) == ["pod-1"]

    def test_skip_cleans(self, pytester: pytest.Pytester) -> None:
        """A test that skips itself counts as passed."""
        pytester.makepyfile(
            """
            import pytest

            def test_it(cleanroom, make):
                make(cleanroom, "fake-pod", "pod-1")
                pytest.skip("not today")
            """
        )
        pytester.runpytest().assert_outcomes(skipped=1)
        assert left(pytester) == []

    def test_xfail_cleans(self, pytester: pytest.Pytester) -> None:
        """An expected failure counts as passed."""
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.xfail(strict=True)
            def test_it(cleanroom, make):
                make(cleanroom, "fake-pod", "pod-1")
                assert False
            """
        )
        pytester.runpytest().assert_outcomes(xfailed=1)
        assert left(pytester) == []

    def test_strict_xpass_keeps(self, pytester: pytest.Pytester) -> None:
        """A strict xfail test that passes has failed, and keeps."""
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.xfail(strict=True)
            def test_it(cleanroom, make):
                make(cleanroom, "fake-pod", "pod-1")
            """
        )
        pytester.runpytest().assert_outcomes(failed=1)
        assert left(pytester) == ["pod-1"]

    def test_failed_subtest_keeps(self, pytester: pytest.Pytester) -> None:
        """A failed subtest keeps the test's resources."""
        pytester.makepyfile(
            """
            def test_it(cleanroom, make, subtests):
                make(cleanroom, "fake-pod", "pod-1")
                with subtests.test("part"):
                    assert False
            """
        )
        result = pytester.runpytest()
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        assert left(pytester) == ["pod-1"]

    def test_cleans_after_later_fixtures(self, pytester: pytest.Pytester) -> None:
        """Fixtures that use the scope tear down before the scope closes."""
        pytester.makepyfile(
            """
            import pytest

            order = []

            @pytest.fixture
            def server(cleanroom):
                cleanroom.callback(order.append, "scope")
                yield
                order.append("server")

            def test_it(server):
                pass

            def test_order():
                assert order == ["server", "scope"]
            """
        )
        pytester.runpytest().assert_outcomes(passed=2)

    def test_resource_manager_is_the_same_scope(
        self, pytester: pytest.Pytester
    ) -> None:
        """The seed's resource_manager is the test's cleanroom scope."""
        pytester.makepyfile(
            """
            def test_it(cleanroom, resource_manager):
                assert resource_manager is cleanroom
            """
        )
        pytester.runpytest().assert_outcomes(passed=1)

    def test_is_the_current_scope(self, pytester: pytest.Pytester) -> None:
        """Inside the test, current_scope() is the test's scope."""
        pytester.makepyfile(
            """
            import cleanroom as cr

            def test_it(cleanroom):
                assert cr.current_scope() is cleanroom
                with cr.managed_resources("inner") as inner:
                    assert inner.parent is cleanroom
            """
        )
        pytester.runpytest().assert_outcomes(passed=1)

    def test_current_scope_is_reset_after(self, pytester: pytest.Pytester) -> None:
        """After the test, the current scope is what it was before."""
        pytester.makepyfile(
            """
            import cleanroom as cr

            def test_one(cleanroom):
                pass

            def test_two():
                assert cr.current_scope() is cr.Registry.default().session
            """
        )
        pytester.runpytest().assert_outcomes(passed=2)

    def test_requested_dynamically(self, pytester: pytest.Pytester) -> None:
        """getfixturevalue("cleanroom") finds the running test's scope too."""
        pytester.makepyfile(
            """
            def test_it(request, make):
                scope = request.getfixturevalue("cleanroom")
                assert scope.name.endswith("::test_it")
                make(scope, "fake-pod", "pod-1")
                assert False
            """
        )
        pytester.runpytest().assert_outcomes(failed=1)
        assert left(pytester) == ["pod-1"]

    def test_unused_plugin_registers_no_report_hook(
        self, pytester: pytest.Pytester
    ) -> None:
        """Without a cleanroom fixture, no per-test hook is registered."""
        pytester.makepyfile(
            """
            def test_it(request):
                plugins = request.config.pluginmanager
                assert plugins.get_plugin("cleanroom-tracker") is None
            """
        )
        pytester.runpytest().assert_outcomes(passed=1)


class TestBroadScopes:
    def test_module_scope_closes_after_the_module(
        self, pytester: pytest.Pytester
    ) -> None:
        """The module's scope is shared by its tests and closed after the last."""
        pytester.makepyfile(
            test_a="""
            def test_one(cleanroom_module, make):
                make(cleanroom_module, "fake-pod", "pod-1")

            def test_two(cleanroom_module):
                assert [r.name for r in cleanroom_module.resources()] == ["pod-1"]
            """,
            test_b="""
            import pathlib

            def test_three():
                assert not (pathlib.Path(__file__).parent / "left" / "pod-1").exists()
            """,
        )
        pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=3)

    def test_module_scope_keeps_if_a_test_failed(
        self, pytester: pytest.Pytester
    ) -> None:
        """A failed test in the module keeps the module scope's resources."""
        pytester.makepyfile(
            """
            def test_one(cleanroom_module, make):
                make(cleanroom_module, "fake-pod", "pod-1")

            def test_two():
                assert False
            """
        )
        pytester.runpytest().assert_outcomes(passed=1, failed=1)
        assert left(pytester) == ["pod-1"]

    def test_module_scope_keeps_after_a_teardown_error(
        self, pytester: pytest.Pytester
    ) -> None:
        """A test whose teardown failed counts as failed for the module's scope."""
        pytester.makepyfile(
            """
            import pytest

            @pytest.fixture
            def broken():
                yield
                raise RuntimeError("teardown failed")

            def test_one(cleanroom_module, make):
                make(cleanroom_module, "fake-pod", "pod-1")

            def test_two(broken):
                pass

            def test_three():
                pass
            """
        )
        pytester.runpytest().assert_outcomes(passed=3, errors=1)
        assert left(pytester) == ["pod-1"]

    def test_module_scope_ignores_other_modules(
        self, pytester: pytest.Pytester
    ) -> None:
        """A failure in another module does not keep this module's resources."""
        pytester.makepyfile(
            test_a="""
            def test_one(cleanroom_module, make):
                make(cleanroom_module, "fake-pod", "pod-1")
            """,
            test_b="""
            def test_two():
                assert False
            """,
        )
        pytester.runpytest().assert_outcomes(passed=1, failed=1)
        assert left(pytester) == []

    def test_class_scope(self, pytester: pytest.Pytester) -> None:
        """The class's scope keeps when one of its tests failed, not others'."""
        pytester.makepyfile(
            """
            class TestFails:
                def test_one(self, cleanroom_class, make):
                    make(cleanroom_class, "fake-pod", "pod-1")

                def test_two(self):
                    assert False

            class TestPasses:
                def test_three(self, cleanroom_class, make):
                    make(cleanroom_class, "fake-pod", "pod-2")
            """
        )
        pytester.runpytest().assert_outcomes(passed=2, failed=1)
        assert left(pytester) == ["pod-1"]

    def test_session_scope(self, pytester: pytest.Pytester) -> None:
        """The session's scope is cleaned at the end of a passing run."""
        pytester.makepyfile(
            test_a="""
            def test_one(cleanroom_session, make):
                make(cleanroom_session, "fake-pod", "pod-1")
            """,
            test_b="""
            import pathlib

            def test_two(cleanroom_session):
                assert (pathlib.Path(__file__).parent / "left" / "pod-1").exists()
            """,
        )
        pytester.runpytest().assert_outcomes(passed=2)
        assert left(pytester) == []

    def test_session_scope_keeps_after_a_failure(
        self, pytester: pytest.Pytester
    ) -> None:
        """A failed test anywhere keeps the session scope's resources."""
        pytester.makepyfile(
            test_a="""
            def test_one(cleanroom_session, make):
                make(cleanroom_session, "fake-pod", "pod-1")
            """,
            test_b="""
            def test_two():
                assert False
            """,
        )
        pytester.runpytest().assert_outcomes(passed=1, failed=1)
        assert left(pytester) == ["pod-1"]


class TestMarker:
    def test_level(self, pytester: pytest.Pytester) -> None:
        """The marker's level applies to the test's scope."""
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.cleanroom(level="pods")
            def test_it(cleanroom, make):
                make(cleanroom, "fake-pod", "pod-1")
                make(cleanroom, "fake-job", "job-1")
            """
        )
        pytester.runpytest().assert_outcomes(passed=1)
        assert left(pytester) == ["job-1"]

    def test_force(self, pytester: pytest.Pytester) -> None:
        """force=True cleans a failed test's resources."""
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.cleanroom(force=True)
            def test_it(cleanroom, make):
                make(cleanroom, "fake-pod", "pod-1")
                assert False
            """
        )
        pytester.runpytest().assert_outcomes(failed=1)
        assert left(pytester) == []

    def test_closest_wins_per_setting(self, pytester: pytest.Pytester) -> None:
        """A function's marker overrides the class's, which overrides the module's."""
        pytester.makepyfile(
            """
            import pytest

            pytestmark = pytest.mark.cleanroom(level="none", wait_after=0)

            @pytest.mark.cleanroom(level="pods", on_failure="clean")
            class TestIt:
                @pytest.mark.cleanroom(level="all")
                def test_function(self, cleanroom):
                    policy = cleanroom.policy
                    assert policy.level.name == "all"
                    assert policy.on_failure == "clean"

                def test_class(self, cleanroom):
                    assert cleanroom.policy.level.name == "pods"

            def test_module(cleanroom):
                assert cleanroom.policy.level.name == "none"
            """
        )
        pytester.runpytest().assert_outcomes(passed=3)

    def test_module_marker_on_module_scope(self, pytester: pytest.Pytester) -> None:
        """A module's marker sets the policy of the module's scope."""
        pytester.makepyfile(
            """
            import pytest

            pytestmark = pytest.mark.cleanroom(level="pods")

            def test_it(cleanroom_module, make):
                make(cleanroom_module, "fake-job", "job-1")
            """
        )
        pytester.runpytest().assert_outcomes(passed=1)
        assert left(pytester) == ["job-1"]

    def test_applies_without_the_fixture(self, pytester: pytest.Pytester) -> None:
        """A marked test gets a scope, so with_cleanup inside follows the marker."""
        pytester.makepyfile(
            """
            import pytest
            from cleanroom import current_scope, with_cleanup

            @pytest.mark.cleanroom(level="pods")
            def test_it(make):
                @with_cleanup
                def work():
                    make(current_scope(), "fake-job", "job-1")
                    make(current_scope(), "fake-pod", "pod-1")
                work()
            """
        )
        pytester.runpytest().assert_outcomes(passed=1)
        assert left(pytester) == ["job-1"]

    def test_cleanup_level_alias(self, pytester: pytest.Pytester) -> None:
        """cleanup_level, the seed's name, sets the level."""
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.cleanroom(cleanup_level="none")
            def test_it(cleanroom):
                assert cleanroom.policy.level.name == "none"
            """
        )
        pytester.runpytest().assert_outcomes(passed=1)

    def test_check_leaks_is_accepted(self, pytester: pytest.Pytester) -> None:
        """check_leaks=True passes a test that leaves nothing behind."""
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.cleanroom(check_leaks=True)
            def test_it(cleanroom):
                pass
            """
        )
        pytester.runpytest().assert_outcomes(passed=1)

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            ('level="podz"', "*unknown level 'podz'; valid: 'none', 'pods', 'all'*"),
            (
                'on_failure="maybe"',
                "*unknown on_failure 'maybe'; valid: 'keep', 'clean'*",
            ),
            (
                'lvl="pods"',
                "*unknown @pytest.mark.cleanroom setting 'lvl'; valid: level*",
            ),
            ('"pods"', "*keyword arguments only*"),
            ('check_leaks="yes"', "*check_leaks must be True, False, 'raise'*"),
            ("wait_after=-1", "*wait_after must be zero or more seconds*"),
        ],
    )
    def test_bad_values_fail_the_run(
        self, pytester: pytest.Pytester, arguments: str, message: str
    ) -> None:
        """A bad marker stops the run with a message naming the valid values."""
        pytester.makepyfile(
            f"""
            import pytest

            @pytest.mark.cleanroom({arguments})
            def test_it():
                pass
            """
        )
        result = pytester.runpytest()
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*test_it: {message}"])

    def test_is_registered(self, pytester: pytest.Pytester) -> None:
        """The marker passes --strict-markers."""
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.cleanroom(level="all")
            def test_it():
                pass
            """
        )
        pytester.runpytest("--strict-markers").assert_outcomes(passed=1)


class TestOptions:
    def test_level(self, pytester: pytest.Pytester) -> None:
        """--cleanroom-level pods cleans pods and keeps jobs."""
        pytester.makepyfile(
            """
            def test_it(cleanroom, make):
                make(cleanroom, "fake-pod", "pod-1")
                make(cleanroom, "fake-job", "job-1")
            """
        )
        pytester.runpytest("--cleanroom-level", "pods").assert_outcomes(passed=1)
        assert left(pytester) == ["job-1"]

    @pytest.mark.parametrize(
        ("level", "remaining"),
        [("none", ["job-1", "pod-1"]), ("pods", ["job-1"]), ("all", [])],
    )
    def test_resource_cleanup_alias(
        self, pytester: pytest.Pytester, level: str, remaining: list[str]
    ) -> None:
        """--resource-cleanup, the seed's flag, takes none, pods and all."""
        pytester.makepyfile(
            """
            def test_it(cleanroom, make):
                make(cleanroom, "fake-pod", "pod-1")
                make(cleanroom, "fake-job", "job-1")
            """
        )
        pytester.runpytest(f"--resource-cleanup={level}").assert_outcomes(passed=1)
        assert left(pytester) == remaining

    def test_bad_level(self, pytester: pytest.Pytester) -> None:
        """An unknown level is a usage error that lists the valid ones."""
        pytester.makepyfile("def test_it(): pass")
        result = pytester.runpytest("--cleanroom-level", "podz")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            ["*cleanroom: unknown level 'podz'; valid: 'none', 'pods', 'all'*"]
        )

    def test_custom_level(self, pytester: pytest.Pytester) -> None:
        """A level registered in a conftest is valid on the command line."""
        pytester.makeconftest(
            CONFTEST
            + textwrap.dedent(
                """
                from cleanroom import Level, register_level

                register_level(Level("jobs-only", kinds=["fake-job"]))
                """
            )
        )
        pytester.makepyfile(
            """
            def test_it(cleanroom, make):
                make(cleanroom, "fake-pod", "pod-1")
                make(cleanroom, "fake-job", "job-1")
            """
        )
        pytester.runpytest("--cleanroom-level=jobs-only").assert_outcomes(passed=1)
        assert left(pytester) == ["pod-1"]

    def test_force(self, pytester: pytest.Pytester) -> None:
        """--cleanroom-force cleans failed tests' resources."""
        pytester.makepyfile(
            """
            def test_it(cleanroom, make):
                make(cleanroom, "fake-pod", "pod-1")
                assert False
            """
        )
        pytester.runpytest("--cleanroom-force").assert_outcomes(failed=1)
        assert left(pytester) == []

    def test_keep_failed_beats_the_environment(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """--cleanroom-keep-failed keeps even when the environment forces."""
        monkeypatch.setenv("CLEANROOM_FORCE", "1")
        monkeypatch.setenv("CLEANROOM_ON_FAILURE", "clean")
        pytester.makepyfile(
            """
            def test_it(cleanroom, make):
                make(cleanroom, "fake-pod", "pod-1")
                assert False
            """
        )
        pytester.runpytest("--cleanroom-keep-failed").assert_outcomes(failed=1)
        assert left(pytester) == ["pod-1"]

    def test_ini_keys(self, pytester: pytest.Pytester) -> None:
        """Ini keys set the policy."""
        pytester.makeini(
            INI
            + "cleanroom_level = pods\ncleanroom_on_failure = clean\n"
            + "cleanroom_timeout = 7\ncleanroom_wait_after = 0\n"
        )
        pytester.makepyfile(
            """
            def test_it(cleanroom):
                policy = cleanroom.policy
                assert (policy.level.name, policy.on_failure, policy.timeout) == (
                    "pods", "clean", 7.0
                )
            """
        )
        pytester.runpytest().assert_outcomes(passed=1)

    def test_bad_ini_value(self, pytester: pytest.Pytester) -> None:
        """A bad ini value is a usage error that lists the valid ones."""
        pytester.makeini(INI + "cleanroom_on_error = shout\n")
        pytester.makepyfile("def test_it(): pass")
        result = pytester.runpytest()
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            ["*unknown on_error 'shout'; valid: 'raise', 'warn'*"]
        )

    def test_precedence(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Marker over command line over environment over ini."""
        monkeypatch.setenv("CLEANROOM_LEVEL", "pods")
        monkeypatch.setenv("CLEANROOM_TIMEOUT", "5")
        pytester.makeini(
            INI
            + "cleanroom_level = all\ncleanroom_timeout = 9\n"
            + "cleanroom_concurrency = 3\n"
        )
        pytester.makepyfile(
            """
            import pytest

            def test_cli_over_env(cleanroom):
                assert cleanroom.policy.level.name == "none"

            def test_env_over_ini(cleanroom):
                assert cleanroom.policy.timeout == 5

            def test_ini(cleanroom):
                assert cleanroom.policy.concurrency == 3

            @pytest.mark.cleanroom(level="all")
            def test_marker_over_cli(cleanroom):
                assert cleanroom.policy.level.name == "all"

            @pytest.mark.cleanroom(level="all")
            def test_code_over_marker(cleanroom):
                from cleanroom import managed_resources

                with managed_resources(level="pods") as inner:
                    assert inner.policy.level.name == "pods"
                    assert inner.policy.timeout == 5
            """
        )
        pytester.runpytest("--cleanroom-level=none").assert_outcomes(passed=5)

    def test_options_are_restored_after_the_run(
        self, pytester: pytest.Pytester
    ) -> None:
        """The registry's settings are undone when the run ends."""
        from cleanroom import Registry

        before = Registry.default().base_policy()
        pytester.makepyfile("def test_it(): pass")
        pytester.runpytest("--cleanroom-level=none").assert_outcomes(passed=1)
        assert Registry.default().base_policy() == before


class TestCleanupErrors:
    def test_failure_is_a_teardown_error(self, pytester: pytest.Pytester) -> None:
        """A failing cleanup is an error at the teardown of the test that owned it."""
        pytester.makepyfile(
            """
            def fail():
                raise OSError("the API said no")

            def test_it(cleanroom):
                cleanroom.add(object(), lambda _: fail(), name="server", weak=False)
            """
        )
        result = pytester.runpytest()
        result.assert_outcomes(passed=1, errors=1)
        result.stdout.fnmatch_lines(
            [
                "*ERROR at teardown of test_it*",
                "*CleanupError: 1 cleanup failed in scope*test_it*",
                "*OSError: the API said no",
                "*while cleaning object 'server'*",
            ]
        )

    def test_every_member_is_shown(self, pytester: pytest.Pytester) -> None:
        """Each failed resource of the CleanupError appears in the report."""
        pytester.makepyfile(
            """
            from cleanroom import BaseKind, register_kind

            class Broken(BaseKind):
                def delete(self, resource, *, wait):
                    raise OSError(f"cannot delete {resource.name}")

            register_kind(Broken("broken-thing"), replace=True)

            def test_it(cleanroom):
                cleanroom.track("broken-thing", "first")
                cleanroom.track("broken-thing", "second")
            """
        )
        result = pytester.runpytest()
        result.assert_outcomes(passed=1, errors=1)
        result.stdout.fnmatch_lines(
            ["*OSError: cannot delete second*", "*OSError: cannot delete first*"],
            consecutive=False,
        )

    def test_failure_is_listed_in_the_summary(self, pytester: pytest.Pytester) -> None:
        """Failed cleanups appear in the cleanroom summary with how to delete them."""
        pytester.makepyfile(
            """
            from cleanroom import BaseKind, register_kind

            class Broken(BaseKind):
                def delete(self, resource, *, wait):
                    raise OSError("no")

                def delete_hint(self, resource):
                    return f"broken-cli delete {resource.name}"

            register_kind(Broken("broken-thing"), replace=True)

            def test_it(cleanroom):
                cleanroom.track("broken-thing", "first")
            """
        )
        result = pytester.runpytest()
        result.stdout.fnmatch_lines(
            [
                "*= cleanroom =*",
                "0 cleaned, 0 kept, 1 failed",
                "failed to clean broken-thing 'first' of test_*: OSError: no",
                "    delete it with: broken-cli delete first",
            ]
        )


class TestSummary:
    def test_quiet_on_a_clean_run(self, pytester: pytest.Pytester) -> None:
        """Nothing is printed when everything was cleaned."""
        pytester.makepyfile(
            """
            def test_it(cleanroom, make):
                make(cleanroom, "fake-pod", "pod-1")
            """
        )
        result = pytester.runpytest()
        result.assert_outcomes(passed=1)
        assert "= cleanroom =" not in result.stdout.str()

    def test_nothing_without_cleanroom(self, pytester: pytest.Pytester) -> None:
        """Nothing is printed, even with -v, when cleanroom did nothing."""
        pytester.makepyfile("def test_it(): pass")
        result = pytester.runpytest("-v")
        assert "= cleanroom =" not in result.stdout.str()

    def test_verbose_counts(self, pytester: pytest.Pytester) -> None:
        """-v shows the counts of a clean run."""
        pytester.makepyfile(
            """
            def test_it(cleanroom, make):
                make(cleanroom, "fake-pod", "pod-1")
                make(cleanroom, "fake-pod", "pod-2")
            """
        )
        result = pytester.runpytest("-v")
        result.stdout.fnmatch_lines(
            [
                "*= cleanroom =*",
                (
                    "2 cleaned, 0 kept, 0 failed, 0 collected before their scope "
                    "closed, 0 forgotten"
                ),
            ]
        )

    def test_kept_with_why_and_how_to_delete(self, pytester: pytest.Pytester) -> None:
        """Each kept resource is listed with why, and the command that deletes it."""
        pytester.makepyfile(
            """
            def test_it(cleanroom, make):
                make(cleanroom, "fake-pod", "pod-1")
                assert False
            """
        )
        result = pytester.runpytest()
        result.stdout.fnmatch_lines(
            [
                "*= cleanroom =*",
                "0 cleaned, 1 kept, 0 failed",
                (
                    "kept fake-pod 'pod-1' of test_kept_with_why_and_how_to_delete.py"
                    "::test_it: the failed body's resources are kept*"
                ),
                f"    delete it with: rm {pytester.path / 'left' / 'pod-1'}",
            ]
        )

    def test_long_lists_are_cut(self, pytester: pytest.Pytester) -> None:
        """Without -v, the summary lists 20 kept resources and counts the rest."""
        pytester.makepyfile(
            """
            def test_it(cleanroom, make):
                for i in range(25):
                    make(cleanroom, "fake-pod", f"pod-{i:02}")
                assert False
            """
        )
        result = pytester.runpytest()
        result.stdout.fnmatch_lines(
            ["0 cleaned, 25 kept, 0 failed", "... and 5 more kept (-v lists them all)"]
        )
        hints = [x for x in result.outlines if x.startswith("    delete it with: ")]
        assert len(hints) == 20

    def test_verbose_shows_identity(self, pytester: pytest.Pytester) -> None:
        """-v adds each kept resource's identity."""
        pytester.makepyfile(
            """
            def test_it(cleanroom, make):
                make(cleanroom, "fake-job", "job-1")
            """
        )
        result = pytester.runpytest("-v", "--cleanroom-level=pods")
        result.stdout.fnmatch_lines(
            ["kept fake-job 'job-1' of *::test_it (path='*job-1'): level 'pods' keeps*"]
        )


class TestAsync:
    def test_pytest_asyncio_aclose(self, pytester: pytest.Pytester) -> None:
        """An asyncio test awaits the scope's async cleanups itself."""
        pytester.makepyfile(
            """
            import asyncio
            import pytest

            @pytest.mark.asyncio
            async def test_it(cleanroom):
                done = []

                async def close():
                    await asyncio.sleep(0)
                    done.append(True)

                cleanroom.push_async_callback(close)
                await cleanroom.aclose()
                assert done == [True]
            """
        )
        pytester.runpytest("-p", "asyncio").assert_outcomes(passed=1)

    def test_pytest_asyncio_current_scope(self, pytester: pytest.Pytester) -> None:
        """In an asyncio test, the test's scope is the current scope."""
        pytester.makepyfile(
            """
            import pytest
            import cleanroom as cr

            @pytest.mark.asyncio
            async def test_it(cleanroom):
                assert cr.current_scope() is cleanroom
            """
        )
        pytester.runpytest("-p", "asyncio").assert_outcomes(passed=1)

    def test_pytest_asyncio_left_open(self, pytester: pytest.Pytester) -> None:
        """Async cleanups left to the fixture run in a fresh loop after the test."""
        pytester.makepyfile(
            """
            import asyncio
            import pathlib
            import pytest

            async def close():
                await asyncio.sleep(0)
                pathlib.Path("closed").write_text("yes")

            @pytest.mark.asyncio
            async def test_it(cleanroom):
                cleanroom.push_async_callback(close)
            """
        )
        pytester.runpytest("-p", "asyncio").assert_outcomes(passed=1)
        assert (pytester.path / "closed").read_text() == "yes"

    @pytest.mark.parametrize("backend", ["asyncio", "trio"])
    def test_anyio(self, pytester: pytest.Pytester, backend: str) -> None:
        """An anyio test (asyncio or trio) uses the scope's async methods."""
        pytester.makepyfile(
            f"""
            import anyio
            import pytest

            @pytest.fixture
            def anyio_backend():
                return "{backend}"

            @pytest.mark.anyio
            async def test_it(cleanroom):
                from cleanroom import current_scope

                assert current_scope() is cleanroom
                done = []

                async def close():
                    await anyio.sleep(0)
                    done.append(True)

                cleanroom.push_async_callback(close)
                await cleanroom.aclose()
                assert done == [True]
            """
        )
        pytester.runpytest("-p", "no:asyncio").assert_outcomes(passed=1)


class TestSession:
    def test_session_id_is_set(self, pytester: pytest.Pytester) -> None:
        """The run gets a session id in CLEANROOM_SESSION, removed afterwards."""
        pytester.makepyfile(
            """
            import os

            def test_it():
                assert len(os.environ["CLEANROOM_SESSION"]) == 32
            """
        )
        pytester.runpytest().assert_outcomes(passed=1)
        assert "CLEANROOM_SESSION" not in os.environ

    def test_session_id_is_kept(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A session id given by the environment (cleanroom run) is kept."""
        monkeypatch.setenv("CLEANROOM_SESSION", "given")
        pytester.makepyfile(
            """
            import os

            def test_it():
                assert os.environ["CLEANROOM_SESSION"] == "given"
            """
        )
        pytester.runpytest().assert_outcomes(passed=1)

    def test_journal_option(self, pytester: pytest.Pytester) -> None:
        """--cleanroom-journal sets CLEANROOM_JOURNAL to the absolute path."""
        pytester.makepyfile(
            """
            import os
            import pathlib

            def test_it():
                assert os.environ["CLEANROOM_JOURNAL"] == str(
                    pathlib.Path("sub/j.sqlite").absolute()
                )
            """
        )
        pytester.runpytest("--cleanroom-journal=sub/j.sqlite").assert_outcomes(passed=1)
        assert os.environ["CLEANROOM_JOURNAL"] == str(pytester.path / "journal.sqlite")

    def test_journal_ini(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The cleanroom_journal ini key is relative to the ini file."""
        monkeypatch.delenv("CLEANROOM_JOURNAL")
        pytester.makeini(INI + "cleanroom_journal = state/j.sqlite\n")
        expected = str(pytester.path / "state" / "j.sqlite")
        pytester.makepyfile(
            f"""
            import os

            def test_it():
                assert os.environ["CLEANROOM_JOURNAL"] == {expected!r}
            """
        )
        pytester.runpytest().assert_outcomes(passed=1)

    def test_sweep_at_start(self, pytester: pytest.Pytester) -> None:
        """Orphans of a dead session are swept at start; the summary says which."""
        orphan = make_orphan(pytester)
        pytester.makepyfile("def test_it(): pass")
        result = pytester.runpytest_subprocess("-p", "no:randomly")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(
            [
                "swept 1 resource of earlier sessions (1 orphaned):",
                f"    tempdir '{orphan}' of session * orphaned: its owner died",
            ]
        )
        assert not orphan.exists()

    def test_no_sweep(self, pytester: pytest.Pytester) -> None:
        """--cleanroom-no-sweep leaves orphans alone."""
        orphan = make_orphan(pytester)
        pytester.makepyfile("def test_it(): pass")
        result = pytester.runpytest_subprocess("--cleanroom-no-sweep")
        result.assert_outcomes(passed=1)
        assert "swept" not in result.stdout.str()
        assert orphan.exists()

    def test_kept_resources_survive_the_next_runs(
        self, pytester: pytest.Pytester
    ) -> None:
        """What a run kept stays for the last N sessions, then a sweep says so."""
        folder = pytester.mkdir("kept")
        pytester.makepyfile(
            f"""
            def test_it(cleanroom):
                cleanroom.tempdir(dir={str(folder)!r})
            """
        )
        pytester.makeini(INI + "cleanroom_retention_count = 2\n")
        first = pytester.runpytest_subprocess("--resource-cleanup", "none")
        first.assert_outcomes(passed=1)
        (made,) = folder.iterdir()
        second = pytester.runpytest_subprocess("--resource-cleanup", "none")
        second.assert_outcomes(passed=1)
        assert made.exists()
        assert str(made) not in second.stdout.str()
        (later,) = (p for p in folder.iterdir() if p != made)
        third = pytester.runpytest_subprocess()
        third.assert_outcomes(passed=1)
        assert list(folder.iterdir()) == [later]
        third.stdout.fnmatch_lines(
            [
                "swept 1 resource of earlier sessions (1 kept past their retention):",
                (
                    f"    tempdir '{made}' of session * kept; 2 newer sessions ran "
                    "(retention: 2)"
                ),
            ]
        )

    @pytest.mark.parametrize("source", ["option", "ini", "environment", "pyproject"])
    def test_retention_option_checked(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str
    ) -> None:
        """
        A bad retention is a usage error naming the value and the valid ones,
        wherever it is given, with a journal to sweep or not.
        """
        assert not (pytester.path / "journal.sqlite").exists()
        pytester.makepyfile("def test_it(): pass")
        args: list[str] = []
        if source == "option":
            args = ["--cleanroom-retention-count", "many"]
        elif source == "ini":
            pytester.makeini(INI + "cleanroom_retention_count = many\n")
        elif source == "environment":
            monkeypatch.setenv("CLEANROOM_RETENTION_COUNT", "many")
        else:
            pytester.makepyprojecttoml('[tool.cleanroom]\nretention_count = "many"\n')
        result = pytester.runpytest_subprocess(*args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            ["*must be a number of sessions (0 or more) or 'none', not 'many'"]
        )


class TestStartUp:
    #: What the plugin loads in a run that never uses cleanroom: pytest
    #: compiles each afresh where bytecode is not written.
    LIGHT = frozenset(
        {
            "cleanroom",
            "cleanroom._core",
            "cleanroom._core._exceptions",
            "cleanroom._core._settings",
            "cleanroom._crash",
            "cleanroom._crash._location",
            "cleanroom._leaks",
            "cleanroom.pytest_plugin",
        }
    )

    def loaded(self, pytester: pytest.Pytester, *args: str) -> set[str]:
        pytester.makeconftest(
            """
            import sys

            def pytest_unconfigure(config):
                names = sorted(m for m in sys.modules if m.split(".")[0] == "cleanroom")
                with open("loaded.txt", "w", encoding="utf-8") as file:
                    file.write("\\n".join(names))
            """
        )
        pytester.makepyfile("def test_it(): assert True")
        result = pytester.runpytest_subprocess(*args)
        result.assert_outcomes(passed=1)
        text = (pytester.path / "loaded.txt").read_text(encoding="utf-8")
        return set(text.split())

    def test_a_run_that_never_uses_cleanroom(self, pytester: pytest.Pytester) -> None:
        """No scope, registry, policy (attrs), journal, sweep or kind module loads."""
        assert not (pytester.path / "journal.sqlite").exists()
        assert self.loaded(pytester) == self.LIGHT

    def test_the_sweep_loads_only_the_backends_it_needs(
        self, pytester: pytest.Pytester
    ) -> None:
        """
        With a journal to sweep, the run imports the sweep, and no backend
        that neither the journal nor ``[tool.cleanroom]`` names.
        """
        with Journal(pytester.path / "journal.sqlite"):
            pass
        loaded = self.loaded(pytester)
        assert "cleanroom._crash._sweep" in loaded
        backends = {name for name in loaded if name.startswith("cleanroom.kinds.")}
        assert backends == set()

    def test_a_setting_loads_the_registry(self, pytester: pytest.Pytester) -> None:
        """A setting given anywhere is checked at once, so the registry loads."""
        loaded = self.loaded(pytester, "--cleanroom-level", "pods")
        assert "cleanroom._core._registry" in loaded
        assert "cleanroom._core._policy" in loaded


class TestInlineRuns:
    def test_runs_one_after_another(self, pytester: pytest.Pytester) -> None:
        """
        A suite that tests with pytester's inline runs, and imports nothing of
        cleanroom itself, sees one core in every run: the current scope is
        the test's, and a kind registered in one run is cleaned in the next.
        """
        pytester.makepyfile(
            test_inline='''
            import pathlib

            pytest_plugins = ["pytester"]

            CONFTEST = """
            import pathlib

            from cleanroom import BaseKind, register_kind

            class FileKind(BaseKind):
                def delete(self, resource, *, wait):
                    pathlib.Path(resource.identity["path"]).unlink(missing_ok=True)

            register_kind(FileKind("inline-file"), replace=True)
            """

            TEST = """
            import pathlib

            import cleanroom as cr

            def test_it(cleanroom, tmp_path):
                assert cr.current_scope() is cleanroom
                path = tmp_path / "made"
                path.write_text("")
                cleanroom.track("inline-file", "made", path=str(path))
                pathlib.Path("made.txt").write_text(str(path))
            """

            def run(pytester):
                pytester.makeconftest(CONFTEST)
                pytester.makepyfile(TEST)
                pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=1)
                made = pytester.path / "made.txt"
                assert not pathlib.Path(made.read_text()).exists()

            def test_first(pytester):
                run(pytester)

            def test_second(pytester):
                run(pytester)
            '''
        )
        result = pytester.runpytest_subprocess("-p", "no:randomly")
        result.assert_outcomes(passed=2)


def make_orphan(pytester: pytest.Pytester) -> Path:
    """Leave a journaled temporary directory behind a killed process."""
    script = pytester.makepyfile(
        orphan="""
        import os
        import signal
        import sys

        from cleanroom import Scope

        scope = Scope("orphan")
        path = scope.tempdir(dir=sys.argv[1])
        print(path, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    folder = pytester.mkdir("orphans")
    # Without its reaper, the killed process leaves the orphan to the sweep.
    env = {**os.environ, "CLEANROOM_REAPER": "off"}
    result = subprocess.run(
        [sys.executable, str(script), str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    script.unlink()
    assert result.returncode == -signal.SIGKILL, result.stderr
    orphan = Path(result.stdout.splitlines()[0])
    assert orphan.exists()
    return orphan


class TestXdist:
    def test_workers_clean_their_own(self, pytester: pytest.Pytester) -> None:
        """Each worker cleans its tests' resources and keeps the failed ones."""
        pytester.makepyfile(
            test_a="""
            def test_pass(cleanroom, make):
                make(cleanroom, "fake-pod", "a-pass")

            def test_fail(cleanroom, make):
                make(cleanroom, "fake-pod", "a-fail")
                assert False
            """,
            test_b="""
            def test_pass(cleanroom, make):
                make(cleanroom, "fake-pod", "b-pass")

            def test_fail(cleanroom, make):
                make(cleanroom, "fake-pod", "b-fail")
                assert False
            """,
        )
        result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist")
        result.assert_outcomes(passed=2, failed=2)
        assert left(pytester) == ["a-fail", "b-fail"]

    def test_journal_names_the_run_command(self, pytester: pytest.Pytester) -> None:
        """Workers journal the run's command line (cleanroom list), not '-c'."""
        pytester.makepyfile(
            test_a="""
            def test_pass(cleanroom, make):
                make(cleanroom, "fake-pod", "a-pass")
            """,
            test_b="""
            def test_pass(cleanroom, make):
                make(cleanroom, "fake-pod", "b-pass")
            """,
        )
        result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist")
        result.assert_outcomes(passed=2)
        with Journal(Path(os.environ["CLEANROOM_JOURNAL"])) as journal:
            commands = sorted(owner.command for owner in journal.owners())
        # One owner per worker that made something: xdist may give both
        # tests to one worker on a busy machine.
        assert 1 <= len(commands) <= 2
        for command in commands:
            assert "pytest" in command
            assert re.search(r" -n 2 -p xdist \(xdist worker gw[01]\)$", command)

    def test_summary_merges_the_workers(self, pytester: pytest.Pytester) -> None:
        """The controller's summary counts and lists what every worker did."""
        pytester.makepyfile(
            test_a="""
            def test_pass(cleanroom, make):
                make(cleanroom, "fake-pod", "a-pass")

            def test_fail(cleanroom, make):
                make(cleanroom, "fake-pod", "a-fail")
                assert False
            """,
            test_b="""
            def test_pass(cleanroom, make):
                make(cleanroom, "fake-pod", "b-pass")

            def test_fail(cleanroom, make):
                make(cleanroom, "fake-pod", "b-fail")
                assert False
            """,
        )
        result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist", "-v")
        result.stdout.fnmatch_lines(["*= cleanroom =*", "2 cleaned, 2 kept, 0 failed*"])
        result.stdout.fnmatch_lines(["kept fake-pod 'a-fail' of *[[]gw?[]]: *"])
        result.stdout.fnmatch_lines(["kept fake-pod 'b-fail' of *[[]gw?[]]: *"])

    def test_one_session_id(self, pytester: pytest.Pytester) -> None:
        """All workers of a run share the controller's session id."""
        pytester.makepyfile(
            test_a="""
            import os, pathlib

            def test_it():
                pathlib.Path("ids", os.environ["PYTEST_XDIST_WORKER"]).write_text(
                    os.environ["CLEANROOM_SESSION"]
                )
            """,
            test_b="""
            import os, pathlib, time

            def test_it():
                time.sleep(0.5)
                pathlib.Path("ids", os.environ["PYTEST_XDIST_WORKER"]).write_text(
                    os.environ["CLEANROOM_SESSION"]
                )
            """,
        )
        pytester.mkdir("ids")
        pytester.runpytest_subprocess("-n", "2", "-p", "xdist").assert_outcomes(
            passed=2
        )
        ids = {p.read_text() for p in (pytester.path / "ids").iterdir()}
        assert len(list((pytester.path / "ids").iterdir())) == 2
        assert len(ids) == 1

    def test_sweep_runs_once(self, pytester: pytest.Pytester) -> None:
        """The controller sweeps once; workers do not."""
        make_orphan(pytester)
        pytester.makepyfile(
            test_a="def test_it(): pass",
            test_b="def test_it(): pass",
        )
        result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist")
        result.assert_outcomes(passed=2)
        assert result.stdout.str().count("swept 1 resource") == 1


# Loop-bound resources for the tests of async tests: each writes its name to
# ``closed`` once it is really closed, which only its own event loop can do.
LOOP_CONFTEST = """
import asyncio
import pathlib

import pytest

CLOSED = pathlib.Path(__file__).parent / "closed"


class Stream:
    '''A connection to a server on 127.0.0.1, both in the running loop.'''

    def __init__(self, name, server, writer):
        self.name = name
        self.server = server
        self.writer = writer
        self.socket = writer.get_extra_info("socket")

    async def aclose(self):
        self.writer.close()
        await self.writer.wait_closed()
        await self.server.wait_closed()
        if self.socket.fileno() == -1:
            with CLOSED.open("a") as file:
                file.write(self.name + "\\n")


async def open_stream(name):
    server = await asyncio.start_server(
        lambda reader, writer: writer.close(), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    server.close()
    return Stream(name, server, writer)


class Channel:
    '''The sending end of a trio memory channel.'''

    def __init__(self, name):
        import trio

        self.name = name
        self.send, self.receive = trio.open_memory_channel(1)

    async def aclose(self):
        import trio

        await self.send.aclose()
        try:
            self.receive.receive_nowait()
        except trio.EndOfChannel:
            with CLOSED.open("a") as file:
                file.write(self.name + "\\n")


async def open_resource(name):
    import sniffio

    if sniffio.current_async_library() == "trio":
        return Channel(name)
    return await open_stream(name)


@pytest.fixture
def add():
    async def add(scope, name):
        return scope.add(await open_resource(name), name=name, weak=False)

    return add
"""


def closed(pytester: pytest.Pytester) -> list[str]:
    """Return the names of the loop-bound resources closed in their loop."""
    path = pytester.path / "closed"
    return sorted(path.read_text().split()) if path.exists() else []


class TestEventLoop:
    @pytest.fixture
    def pytester(self, pytester: pytest.Pytester) -> pytest.Pytester:
        """The plugin's pytester, with loop-bound resources in its conftest."""
        pytester.makeconftest(CONFTEST + LOOP_CONFTEST)
        return pytester

    @pytest.mark.parametrize("backend", ["asyncio", "trio"])
    def test_anyio(self, pytester: pytest.Pytester, backend: str) -> None:
        """An anyio test's scope closes in the test's loop, on asyncio and trio."""
        pytester.makepyfile(
            f"""
            import pytest

            @pytest.fixture
            def anyio_backend():
                return "{backend}"

            @pytest.mark.anyio
            async def test_it(cleanroom, add):
                await add(cleanroom, "conn")
            """
        )
        pytester.runpytest("-p", "no:asyncio").assert_outcomes(passed=1)
        assert closed(pytester) == ["conn"]

    @pytest.mark.parametrize("mode", ["strict", "auto"])
    @pytest.mark.parametrize(
        "loop_scope", ["function", "class", "module", "package", "session"]
    )
    def test_pytest_asyncio(
        self, pytester: pytest.Pytester, mode: str, loop_scope: str
    ) -> None:
        """A pytest-asyncio test's scope closes in its loop, whatever its scope."""
        mark = (
            "" if mode == "auto" else f"@pytest.mark.asyncio(loop_scope={loop_scope!r})"
        )
        pytester.makepyfile(
            f"""
            import pytest

            class TestIt:
                {mark}
                async def test_one(self, cleanroom, add):
                    await add(cleanroom, "one")

                {mark}
                async def test_two(self, resource_manager, add):
                    await add(resource_manager, "two")
            """
        )
        result = pytester.runpytest(
            "-p",
            "asyncio",
            "-o",
            f"asyncio_mode={mode}",
            "-o",
            f"asyncio_default_test_loop_scope={loop_scope}",
        )
        result.assert_outcomes(passed=2)
        assert closed(pytester) == ["one", "two"]

    def test_fixture_tears_down_first(self, pytester: pytest.Pytester) -> None:
        """An async fixture that uses the scope tears down before the scope closes."""
        pytester.makepyfile(
            """
            import pytest
            import pytest_asyncio

            @pytest_asyncio.fixture
            async def ws(cleanroom, add):
                stream = await add(cleanroom, "ws")
                yield stream
                # Still open: the scope closes after this fixture.
                assert not stream.writer.is_closing()
                stream.writer.write(b"bye")
                await stream.writer.drain()

            @pytest.mark.asyncio
            async def test_it(ws):
                assert not ws.writer.is_closing()
            """
        )
        pytester.runpytest("-p", "asyncio").assert_outcomes(passed=1)
        assert closed(pytester) == ["ws"]

    @pytest.mark.parametrize("runner", ["anyio", "asyncio"])
    @pytest.mark.parametrize(
        ("marker", "kept"),
        [("", ["pod-1"]), ("@pytest.mark.cleanroom(force=True)", [])],
    )
    def test_failure_keeps(
        self, pytester: pytest.Pytester, runner: str, marker: str, kept: list[str]
    ) -> None:
        """
        A failed async test keeps its external resources unless forced, and
        its in-process objects are cleaned in its loop, as in a sync test.
        """
        pytester.makepyfile(
            f"""
            import pytest

            @pytest.fixture
            def anyio_backend():
                return "asyncio"

            @pytest.mark.{runner}
            {marker}
            async def test_it(cleanroom, add, make):
                make(cleanroom, "fake-pod", "pod-1")
                await add(cleanroom, "conn")
                assert False
            """
        )
        result = pytester.runpytest("-p", "asyncio")
        result.assert_outcomes(failed=1)
        assert closed(pytester) == ["conn"]
        assert left(pytester) == kept
        if kept:
            result.stdout.fnmatch_lines(["kept fake-pod 'pod-1' of *test_it*"])

    @pytest.mark.parametrize(
        ("fixture", "loop_scope"),
        [
            ("cleanroom_class", "class"),
            ("cleanroom_module", "module"),
            ("cleanroom_module", "session"),
            ("cleanroom_session", "session"),
        ],
    )
    def test_pytest_asyncio_broad(
        self, pytester: pytest.Pytester, fixture: str, loop_scope: str
    ) -> None:
        """A wider scope closes in a pytest-asyncio loop that outlives it."""
        pytester.makepyfile(
            f"""
            import pytest

            pytestmark = pytest.mark.asyncio(loop_scope={loop_scope!r})

            class TestIt:
                async def test_one(self, {fixture}, add):
                    await add({fixture}, "one")

                async def test_two(self, {fixture}, add):
                    await add({fixture}, "two")
                    assert len({fixture}.resources()) == 2
            """
        )
        pytester.runpytest("-p", "asyncio").assert_outcomes(passed=2)
        assert closed(pytester) == ["one", "two"]

    @pytest.mark.parametrize("fixture", ["cleanroom_class", "cleanroom_module"])
    def test_anyio_broad(self, pytester: pytest.Pytester, fixture: str) -> None:
        """A wider scope used by anyio tests closes in their loop, per backend."""
        pytester.makepyfile(
            f"""
            import pytest

            @pytest.fixture(scope="module", params=["asyncio", "trio"])
            def anyio_backend(request):
                return request.param

            @pytest.mark.anyio
            class TestIt:
                async def test_one(self, {fixture}, add, anyio_backend):
                    await add({fixture}, "one-" + anyio_backend)

                async def test_two(self, {fixture}, add, anyio_backend):
                    await add({fixture}, "two-" + anyio_backend)
            """
        )
        pytester.runpytest("-p", "no:asyncio").assert_outcomes(passed=4)
        assert closed(pytester) == [
            "one-asyncio",
            "one-trio",
            "two-asyncio",
            "two-trio",
        ]

    def test_current_scope(self, pytester: pytest.Pytester) -> None:
        """The test's scope is current in the test and no longer after it."""
        pytester.makepyfile(
            """
            import pytest
            import cleanroom as cr

            @pytest.mark.asyncio
            async def test_async(cleanroom_module, cleanroom):
                assert cr.current_scope() is cleanroom

            def test_after(cleanroom_module):
                assert cr.current_scope() is cleanroom_module
            """
        )
        pytester.runpytest("-p", "asyncio", "-p", "no:randomly").assert_outcomes(
            passed=2
        )
