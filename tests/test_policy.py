"""
Tests for levels, policies, their resolution, and outcomes.
"""

from __future__ import annotations

import asyncio
import os
import unittest
from pathlib import Path

import pytest

import cleanroom
from cleanroom import ALL, NONE, PODS, BaseKind, Level, Outcome, Policy, PolicyError
from cleanroom._core._policy import Decision, project_config


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
