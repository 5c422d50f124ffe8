"""
Tests for levels, policies, their resolution, and outcomes.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import typing
import unittest
from pathlib import Path
from typing import Any

import attrs
import pytest

import cleanroom
from cleanroom import (
    ALL,
    NONE,
    PODS,
    BaseKind,
    Level,
    Outcome,
    Policy,
    PolicyError,
    Scope,
    pytest_plugin,
)
from cleanroom._cli._main import build_parser
from cleanroom._core._policy import Decision, project_config, project_settings
from cleanroom._core._settings import (
    NULLABLE,
    POLICY_FIELDS,
    env_settings,
    setting_help,
)
from cleanroom.unittest import CleanroomTestCase


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project directory as the working directory, with no CLEANROOM_*."""
    for name in list(os.environ):
        if name.startswith("CLEANROOM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_pyproject(folder: Path, table: str) -> None:
    (folder / "pyproject.toml").write_text(f"[tool.cleanroom]\n{table}\n")


class TestLevel:
    def test_builtin_levels(self) -> None:
        """none cleans nothing, pods cleans runtime kinds, all cleans both."""
        pod = BaseKind("p", category="runtime")
        job = BaseKind("j", category="record")
        assert not NONE.cleans(pod)
        assert not NONE.cleans(job)
        assert PODS.cleans(pod)
        assert not PODS.cleans(job)
        assert ALL.cleans(pod)
        assert ALL.cleans(job)

    def test_custom_level_by_kind_names(self) -> None:
        """A custom level can clean and keep kinds by name."""
        level = Level("jobs-only", kinds=["j"], keep=("p",))
        assert level.cleans(BaseKind("j", category="record"))
        assert not level.cleans(BaseKind("p"))

    def test_custom_level_by_alias(self) -> None:
        """Kind names in a level match aliases too."""
        level = Level("aliases", kinds="job")
        assert level.cleans(BaseKind("jobs", aliases=("job",), category="record"))

    def test_unknown_category(self) -> None:
        """An unknown category is refused, naming the valid ones."""
        with pytest.raises(PolicyError, match="'runtime', 'record'"):
            Level("bad", categories=("pods",))

    def test_register_and_lookup(self) -> None:
        """A registered level is found by name, case-insensitively."""
        level = cleanroom.register_level(Level("Runtime-Only", categories="runtime"))
        assert cleanroom.get_level("runtime-only") is not None
        assert cleanroom.register_level(level) is level

    def test_register_conflict(self) -> None:
        """Registering a different level under a taken name fails."""
        with pytest.raises(PolicyError, match="registered already"):
            cleanroom.register_level(Level("all"))

    def test_unknown_level(self) -> None:
        """An unknown level name lists the valid ones."""
        with pytest.raises(
            PolicyError, match=r"unknown level 'most'.*'none', 'pods', 'all'"
        ):
            cleanroom.get_level("most")

    def test_level_of_wrong_type(self) -> None:
        """A level that is neither a name nor a Level is refused."""
        with pytest.raises(PolicyError, match="not int 3"):
            cleanroom.get_level(3)  # type: ignore[arg-type]


class TestPolicy:
    def test_defaults(self) -> None:
        """The defaults clean everything and keep a failed body's resources."""
        policy = Policy()
        assert policy.level is ALL
        assert policy.on_failure == "keep"
        assert not policy.force
        assert policy.wait_after == 0
        assert policy.wait
        assert policy.timeout == 30
        assert policy.concurrency >= 50
        assert policy.on_error == "raise"

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("on_failure", "ignore", "'keep', 'clean'"),
            ("on_error", "explode", "'raise', 'warn'"),
            ("force", "perhaps", "true/false"),
            ("wait", 2, "true/false"),
            ("wait_after", -1, "zero or more"),
            ("wait_after", "soon", "number of seconds"),
            ("timeout", "nan", "zero or more"),
            ("timeout", [], "number of seconds or 'none'"),
            ("concurrency", 0, "positive integer"),
            ("concurrency", 2.5, "positive integer"),
            ("concurrency", True, "positive integer"),
            ("level", "most", "'none', 'pods', 'all'"),
        ],
    )
    def test_bad_values(self, field: str, value: object, message: str) -> None:
        """Every bad value is refused with the valid choices."""
        with pytest.raises(PolicyError, match=message):
            Policy(**{field: value})

    def test_strings_are_converted(self) -> None:
        """Values from text (the environment, options) are converted."""
        policy = Policy(
            level="PODS",
            force="yes",
            wait="0",
            wait_after="1.5",
            timeout="none",
            concurrency="8",
        )
        assert policy.level is PODS
        assert policy.force
        assert not policy.wait
        assert policy.wait_after == 1.5
        assert policy.timeout is None
        assert policy.concurrency == 8

    def test_evolve(self) -> None:
        """evolve() changes settings and ignores None values."""
        policy = Policy().evolve(level="none", force=None)
        assert policy.level is NONE
        assert not policy.force

    def test_evolve_unknown_setting(self) -> None:
        """evolve() refuses unknown settings, listing the valid ones."""
        with pytest.raises(
            PolicyError, match=r"unknown policy setting 'levle'.*'level'"
        ):
            Policy().evolve(levle="all")

    def test_decide(self) -> None:
        """The decision follows kind, outcome, on_failure, force and level."""
        pod = BaseKind("p")
        job = BaseKind("j", category="record")
        local = BaseKind("o", external=False)
        policy = Policy(level="pods")
        assert policy.decide(pod, Outcome.PASSED) is Decision.CLEAN
        assert policy.decide(job, Outcome.PASSED) is Decision.KEEP_LEVEL
        assert policy.decide(pod, Outcome.FAILED) is Decision.KEEP_FAILED
        assert policy.decide(local, Outcome.FAILED) is Decision.CLEAN
        assert policy.decide(pod, Outcome.INTERRUPTED) is Decision.CLEAN
        assert policy.evolve(force=True).decide(pod, Outcome.FAILED) is Decision.CLEAN


class TestResolve:
    def test_defaults_without_sources(self, project: Path) -> None:
        """With no sources, the defaults apply."""
        assert Policy.resolve() == Policy()

    def test_environment(self, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """CLEANROOM_* variables set policy values."""
        monkeypatch.setenv("CLEANROOM_LEVEL", "pods")
        monkeypatch.setenv("CLEANROOM_FORCE", "1")
        monkeypatch.setenv("CLEANROOM_WAIT_AFTER", "2")
        policy = Policy.resolve()
        assert policy.level is PODS
        assert policy.force
        assert policy.wait_after == 2

    def test_bad_environment_value(
        self, project: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A bad environment value fails at once, naming the valid ones."""
        monkeypatch.setenv("CLEANROOM_ON_FAILURE", "shrug")
        with pytest.raises(PolicyError, match="'keep', 'clean'"):
            Policy.resolve()

    def test_pyproject(self, project: Path) -> None:
        """[tool.cleanroom] in the nearest pyproject.toml sets values."""
        write_pyproject(project, 'level = "none"\ntimeout = 3')
        nested = project / "a" / "b"
        nested.mkdir(parents=True)
        policy = Policy.resolve(start=nested)
        assert policy.level is NONE
        assert policy.timeout == 3

    def test_order(self, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Explicit > environment > configuration file > pyproject > default."""
        write_pyproject(project, 'level = "none"\non_failure = "clean"\ntimeout = 4')
        monkeypatch.setenv("CLEANROOM_LEVEL", "pods")
        monkeypatch.setenv("CLEANROOM_TIMEOUT", "5")
        policy = Policy.resolve(
            {"timeout": 6},
            config={"level": "all", "on_failure": "keep", "wait_after": 7},
        )
        assert policy.timeout == 6
        assert policy.level is PODS
        assert policy.on_failure == "keep"
        assert policy.wait_after == 7
        assert policy.concurrency == Policy().concurrency

    def test_layers_first_wins(self, project: Path) -> None:
        """Earlier layers win over later ones; None values are skipped."""
        policy = Policy.resolve({"level": None}, {"level": "pods"}, {"level": "none"})
        assert policy.level is PODS

    def test_unknown_pyproject_key(self, project: Path) -> None:
        """An unknown key in [tool.cleanroom] is refused, naming the valid ones."""
        write_pyproject(project, 'levle = "all"')
        with pytest.raises(PolicyError, match=r"unknown key 'levle'.*'level'"):
            Policy.resolve()

    def test_broken_pyproject(self, project: Path) -> None:
        """A pyproject.toml that does not parse is reported with its path."""
        (project / "pyproject.toml").write_text("[tool.cleanroom\n")
        with pytest.raises(PolicyError, match="cannot read"):
            Policy.resolve()

    def test_custom_levels_from_pyproject(self, project: Path) -> None:
        """[tool.cleanroom.levels.NAME] registers a custom level."""
        write_pyproject(
            project,
            'level = "keep-jobs"\n[tool.cleanroom.levels.keep-jobs]\n'
            'categories = ["runtime", "record"]\nkeep = ["jobs"]',
        )
        policy = Policy.resolve()
        assert policy.level.name == "keep-jobs"
        assert policy.level.keep == {"jobs"}
        assert project_config()["level"] == "keep-jobs"

    def test_bad_custom_level_key(self, project: Path) -> None:
        """An unknown key in a custom level's table is refused."""
        write_pyproject(project, "[tool.cleanroom.levels.odd]\ncleans = []")
        with pytest.raises(PolicyError, match="'categories', 'kinds', 'keep'"):
            Policy.resolve()

    def test_registry_layers(
        self, project: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The registry's options beat the environment; its config does not."""
        registry = cleanroom.Registry()
        monkeypatch.setenv("CLEANROOM_LEVEL", "pods")
        registry.configure(options={"timeout": 9}, config={"level": "none"})
        policy = registry.base_policy()
        assert policy.timeout == 9
        assert policy.level is PODS
        with pytest.raises(PolicyError):
            registry.configure(options={"level": "nope"})
        assert registry.base_policy().timeout == 9


class TestTimeoutNone:
    def test_none_means_no_limit_everywhere(self, project: Path) -> None:
        """timeout=None is no limit in every entry point; leaving it out inherits."""
        write_pyproject(project, "timeout = 7")
        assert cleanroom.Scope().policy.timeout == 7
        assert cleanroom.Scope(timeout=None).policy.timeout is None
        with cleanroom.Scope(timeout=None) as parent:
            assert parent.child("c").policy.timeout is None
            assert parent.child("d", timeout=2).policy.timeout == 2
        with cleanroom.Scope(timeout=3) as parent:
            assert parent.child("c", timeout=None).policy.timeout is None
        with cleanroom.managed_resources(timeout=None) as scope:
            assert scope.policy.timeout is None
        with cleanroom.managed_resources() as scope:
            assert scope.policy.timeout == 7

        @cleanroom.with_cleanup(timeout=None)
        def unbounded() -> float | None:
            return cleanroom.current_scope().policy.timeout

        assert unbounded() is None
        assert Policy(timeout=5).evolve(timeout=None).timeout is None
        assert Policy(timeout=5).evolve(level=None).timeout == 5
        assert Policy.resolve({"timeout": None}).timeout is None
        assert Policy().timeout == 30

    def test_marker(self, pytester: pytest.Pytester) -> None:
        """@pytest.mark.cleanroom(timeout=None) is no limit too."""
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.cleanroom(timeout=None)
            def test_unbounded(cleanroom):
                assert cleanroom.policy.timeout is None

            def test_default(cleanroom):
                assert cleanroom.policy.timeout == 30
            """
        )
        pytester.runpytest_subprocess().assert_outcomes(passed=2)


class TestOutcome:
    @pytest.mark.parametrize(
        ("exc", "outcome"),
        [
            (None, Outcome.PASSED),
            (ValueError(), Outcome.FAILED),
            (AssertionError(), Outcome.FAILED),
            (KeyboardInterrupt(), Outcome.INTERRUPTED),
            (SystemExit(1), Outcome.INTERRUPTED),
            (asyncio.CancelledError(), Outcome.INTERRUPTED),
            (unittest.SkipTest("x"), Outcome.SKIPPED),
            (ExceptionGroup("g", [ValueError()]), Outcome.FAILED),
            (BaseExceptionGroup("g", [KeyboardInterrupt()]), Outcome.INTERRUPTED),
            (
                BaseExceptionGroup("g", [KeyboardInterrupt(), ValueError()]),
                Outcome.FAILED,
            ),
        ],
    )
    def test_from_exception(self, exc: BaseException | None, outcome: Outcome) -> None:
        """Exceptions are classified as the contract says."""
        assert Outcome.from_exception(exc) is outcome

    def test_pytest_skip(self) -> None:
        """pytest's skip exception counts as skipped."""
        with pytest.raises(BaseException) as info:
            pytest.skip("later")
        assert Outcome.from_exception(info.value) is Outcome.SKIPPED

    def test_trio_cancellation(self) -> None:
        """trio's Cancelled counts as interrupted."""
        trio = pytest.importorskip("trio")

        async def main() -> BaseException:
            with trio.CancelScope() as cancel_scope:
                cancel_scope.cancel()
                try:
                    await trio.sleep(1)
                except trio.Cancelled as exc:
                    return exc
            raise AssertionError

        assert Outcome.from_exception(trio.run(main)) is Outcome.INTERRUPTED


# Keywords of the entry points that are not policy settings.
NOT_POLICY = frozenset({"parent", "policy", "name", "cleanup_level", "check_leaks"})


def _keywords(function: object) -> dict[str, inspect.Parameter]:
    return {
        name: parameter
        for name, parameter in inspect.signature(function).parameters.items()  # type: ignore[arg-type]
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _with_cleanup_overloads() -> list[Any]:
    """with_cleanup's overloads: typing files them under the defining module."""
    function: Any = cleanroom.with_cleanup
    public = function.__module__
    function.__module__ = "cleanroom._core._api"
    try:
        return typing.get_overloads(function)
    finally:
        function.__module__ = public


def _sample_settings() -> dict[str, str]:
    """One valid value per setting, as text, the way options and ini keys give it."""
    defaults = Policy()
    return {name: str(getattr(defaults, name)) for name in POLICY_FIELDS}


class TestOneDeclaration:
    """Every entry point accepts exactly the settings that Policy declares."""

    ENTRY_POINTS = (
        Scope.__init__,
        Scope.child,
        cleanroom.managed_resources,
        cleanroom.with_cleanup,
        *_with_cleanup_overloads(),
    )

    def test_overloads_found(self) -> None:
        """Both overloads of with_cleanup are checked."""
        assert len(_with_cleanup_overloads()) == 2

    def test_fields_are_policy_fields(self) -> None:
        """POLICY_FIELDS are the fields of Policy, in order."""
        assert tuple(f.name for f in attrs.fields(Policy)) == POLICY_FIELDS
        for name in POLICY_FIELDS:
            metavar, text = setting_help(name)
            assert metavar
            assert text

    @pytest.mark.parametrize(
        "function",
        ENTRY_POINTS,
        ids=[
            "Scope",
            "Scope.child",
            "managed_resources",
            "with_cleanup",
            "with_cleanup-bare",
            "with_cleanup-settings",
        ],
    )
    def test_signatures(self, function: Any) -> None:
        """Each signature takes every setting, by keyword, annotated as Scope's."""
        reference = _keywords(Scope.__init__)
        keywords = _keywords(function)
        if not keywords:
            # The bare @with_cleanup overload takes only the function.
            return
        policy = {name for name in keywords if name not in NOT_POLICY}
        assert policy == set(POLICY_FIELDS)
        for name in POLICY_FIELDS:
            # Left out means not given: None, or ... where None is a value.
            expected = ... if name in NULLABLE else None
            assert keywords[name].default is expected, name
            assert keywords[name].annotation == reference[name].annotation, name

    def test_command_line_of_run(self) -> None:
        """cleanroom run has an option for every setting."""
        parser = build_parser()
        argv = ["run"]
        for name, value in _sample_settings().items():
            if setting_help(name)[0] == "BOOL":
                prefix = "no-" if value == "False" else ""
                argv.append(f"--{prefix}{name.replace('_', '-')}")
            else:
                argv += [f"--{name.replace('_', '-')}", value]
        args = parser.parse_args([*argv, "--", "true"])
        given = {name for name in POLICY_FIELDS if getattr(args, name) is not None}
        assert given == set(POLICY_FIELDS)
        assert Policy.resolve({name: getattr(args, name) for name in given})

    def test_pytest_options_and_ini_keys(self, pytester: pytest.Pytester) -> None:
        """The plugin has a --cleanroom-* option and a cleanroom_* ini key each."""
        samples = _sample_settings()
        pytester.makeini(
            "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
            + "".join(
                f"cleanroom_{name} = {value}\n" for name, value in samples.items()
            )
        )
        options = []
        for name, value in samples.items():
            option = f"--cleanroom-{name.replace('_', '-')}"
            if setting_help(name)[0] != "BOOL":
                options.append(f"{option}={value}")
            elif value == "False":
                options.append(f"--cleanroom-no-{option[len('--cleanroom-') :]}")
            else:
                options.append(option)
        config = pytester.parseconfigure(*options)
        for name, value in samples.items():
            assert str(config.getini(f"cleanroom_{name}")) == value
            given = config.getoption(f"cleanroom_{name}")
            assert given is not None, name
            assert str(given) == value, name

    def test_marker(self) -> None:
        """The marker takes every setting."""
        assert set(pytest_plugin.MARKER_SETTINGS) - NOT_POLICY == set(POLICY_FIELDS)

    def test_environment_and_pyproject(self, project: Path) -> None:
        """CLEANROOM_<SETTING> and [tool.cleanroom] keys exist for every setting."""
        samples = _sample_settings()
        environ = {
            f"CLEANROOM_{name.upper()}": value for name, value in samples.items()
        }
        assert env_settings(environ) == samples
        write_pyproject(project, "\n".join(f'{k} = "{v}"' for k, v in samples.items()))
        assert project_settings(project) == samples

    def test_unittest_policy(self) -> None:
        """A unittest class's cleanroom_policy takes every setting."""
        samples = _sample_settings()

        class Test(CleanroomTestCase):
            cleanroom_policy = samples

        assert Test.cleanroom_policy == samples
