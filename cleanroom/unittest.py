# ruff: noqa: A005  (the module is named after what it integrates with)
"""
unittest integration: a scope per test and per class, cleaned by the test's
outcome — also when the run is interrupted with Ctrl+C or SIGTERM, where
unittest itself skips ``tearDown`` and the ``addCleanup`` callbacks.

Example::

    import unittest

    from cleanroom.unittest import CleanroomTestCase


    class TestServer(CleanroomTestCase):
        cleanroom_policy = {"level": "pods"}

        def test_starts(self):
            workdir = self.cleanroom.tempdir()
            self.assertTrue(workdir.is_dir())

The same classes work under ``python -m unittest`` and when pytest collects
them.
"""

from __future__ import annotations

import unittest
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final

from ._core import _context
from ._core._context import CheckLeaks
from ._core._policy import Outcome, Policy
from ._core._scope import Scope
from ._leaks._check import LeakCheck, from_setting

if TYPE_CHECKING:
    from types import TracebackType

    _ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

__all__ = [
    "CleanroomMixin",
    "CleanroomTestCase",
    "IsolatedAsyncioCleanroomTestCase",
]

# Result methods that report a failed (or unexpectedly passing) test.
_FAILING: Final = frozenset({"addError", "addFailure", "addUnexpectedSuccess"})


class _Watcher:
    """
    Stands in for a test's result object and notes what it was told, so that
    the outcome is known without unittest's private ``_Outcome``.
    """

    __slots__ = ("_result", "failed", "skipped")

    def __init__(self, result: unittest.TestResult) -> None:
        object.__setattr__(self, "_result", result)
        object.__setattr__(self, "failed", False)
        object.__setattr__(self, "skipped", False)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._result, name)
        if name in _FAILING:

            def failing(*args: Any) -> Any:
                object.__setattr__(self, "failed", True)
                return attribute(*args)

            return failing
        if name == "addSubTest":

            def sub_test(test: Any, subtest: Any, err: _ExcInfo | None) -> Any:
                if err is not None:
                    object.__setattr__(self, "failed", True)
                return attribute(test, subtest, err)

            return sub_test
        if name == "addSkip":

            def skip(*args: Any) -> Any:
                object.__setattr__(self, "skipped", True)
                return attribute(*args)

            return skip
        return attribute

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._result, name, value)

    def outcome(self) -> Outcome:
        if self.failed:
            return Outcome.FAILED
        return Outcome.SKIPPED if self.skipped else Outcome.PASSED


class _ClassScope:
    """A class's scope, the failures seen while it was open, and its closing."""

    def __init__(self, cls: type, settings: Mapping[str, Any]) -> None:
        self.scope = Scope(f"{cls.__module__}.{cls.__qualname__}", **settings)
        self.failed = False
        self.closed = False

    def close(self, outcome: Outcome | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        self.scope.set_outcome(
            outcome or (Outcome.FAILED if self.failed else Outcome.PASSED)
        )
        self.scope.__exit__(None, None, None)


class _ClassScopeDescriptor:
    """``cleanroom_class``: the class's scope, opened on first use."""

    def __get__(self, instance: object, owner: type) -> Scope:
        return _class_scope(owner, create=True).scope  # type: ignore[union-attr]


def _class_scope(cls: type, *, create: bool) -> _ClassScope | None:
    state: _ClassScope | None = cls.__dict__.get("_cleanroom_class_state")
    if (state is None or state.closed) and create:
        state = _ClassScope(cls, _settings(cls))
        # Set on this very class: a subclass gets a scope of its own.
        type.__setattr__(cls, "_cleanroom_class_state", state)
        add_class_cleanup: Callable[..., None] = cls.addClassCleanup  # type: ignore[attr-defined]
        add_class_cleanup(state.close)
    return state


def _settings(cls: type) -> dict[str, Any]:
    return dict(getattr(cls, "cleanroom_policy", None) or {})


class CleanroomMixin:
    """
    Give a :class:`unittest.TestCase` a scope per test and per class.

    ``self.cleanroom`` is a :class:`~cleanroom.Scope` opened before ``setUp``
    and closed after ``tearDown`` and the ``addCleanup`` callbacks, as the
    test's last cleanup: a failure in it is an error of the test. It is the
    current scope during the test, so :func:`~cleanroom.with_cleanup` and
    :func:`~cleanroom.managed_resources` inside create its children.

    ``cls.cleanroom_class`` (also ``self.cleanroom_class``) is a scope for the
    whole class, opened on first use — in ``setUpClass`` for instance — and
    closed with the class's cleanups, after ``tearDownClass``.

    A test that fails or errors (in ``setUp``, the test, a subtest,
    ``tearDown`` or a cleanup), or passes although marked
    ``expectedFailure``, keeps its external resources by the policy's
    ``on_failure``; a skipped test and an expected failure clean. The class
    scope keeps when a test of the class failed while it was open. Ctrl+C and
    SIGTERM close both scopes as interrupted, which cleans them, although
    unittest itself skips ``tearDown`` and the cleanups then.

    With :attr:`cleanroom_check_leaks`, each test is checked for what it left
    behind (threads, tasks, file descriptors, child processes, objects), from
    before ``setUp`` to after its scope closed; a leak is an error of a test
    that otherwise passed.

    The policy comes from the class attribute :attr:`cleanroom_policy` (over
    the command line, the environment and ``pyproject.toml``); bad settings
    fail when the class is defined. A test method decorated with
    :func:`~cleanroom.with_cleanup` gets a child of the test's scope with the
    decorator's settings.

    Put the mixin before :class:`unittest.TestCase` in the bases, or use
    :class:`CleanroomTestCase`.

    .. versionadded:: 0.1.0
    """

    #: Policy settings for the test's and the class's scopes, such as
    #: ``{"level": "pods", "wait_after": 5}``.
    cleanroom_policy: ClassVar[Mapping[str, Any]] = {}

    #: Whether and how each test is checked for leaks, as ``check_leaks`` of
    #: :func:`~cleanroom.managed_resources` takes it — ``True`` or ``"raise"``,
    #: ``"warn"``, a dict of :func:`~cleanroom.no_leaks` settings — or ``None``
    #: (the default) for no check.
    #:
    #: .. versionadded:: 0.2.0
    cleanroom_check_leaks: ClassVar[CheckLeaks] = None

    #: The scope of the running test.
    cleanroom: Scope

    cleanroom_class: ClassVar[Scope] = _ClassScopeDescriptor()  # type: ignore[assignment]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Policy().evolve(**_settings(cls))
        from_setting(cls.cleanroom_check_leaks)

    def _cleanroom_open(self, watcher: _Watcher | None) -> Scope:
        scope = Scope(_test_id(self), **_settings(type(self)))
        self.cleanroom = scope
        check = from_setting(type(self).cleanroom_check_leaks)
        self._cleanroom_leaks = check
        if check is not None:
            check.name = _test_id(self)
            check.start()
        self._cleanroom_watcher = watcher
        test_context = getattr(self, "_asyncioTestContext", None)
        if test_context is not None:
            # IsolatedAsyncioTestCase runs the test in a context of its own.
            test_context.run(_context.current.set, scope)
        add_cleanup: Callable[..., None] = self.addCleanup  # type: ignore[attr-defined]
        add_cleanup(self._cleanroom_close)
        return scope

    def _cleanroom_outcome(self) -> Outcome:
        watcher = self._cleanroom_watcher
        if watcher is None:
            return Outcome.PASSED
        outcome = watcher.outcome()
        if outcome is Outcome.PASSED and self._cleanroom_unexpected_success():
            return Outcome.FAILED
        return outcome

    def _cleanroom_unexpected_success(self) -> bool:
        """
        Tell whether an ``expectedFailure`` test passed: unittest reports it
        only after the cleanups, but ``_outcome`` (3.11 to 3.13) holds the
        expected failure if there was one.
        """
        method = getattr(self, getattr(self, "_testMethodName", ""), None)
        if not (
            getattr(self, "__unittest_expecting_failure__", False)
            or getattr(method, "__unittest_expecting_failure__", False)
        ):
            return False
        outcome = getattr(self, "_outcome", None)
        return outcome is not None and getattr(outcome, "expectedFailure", 0) is None

    def _cleanroom_settle(self, outcome: Outcome) -> Scope:
        if outcome is Outcome.FAILED:
            state = _class_scope(type(self), create=False)
            if state is not None:
                state.failed = True
        scope = self.cleanroom
        scope.set_outcome(outcome)
        return scope

    def _cleanroom_close(self) -> None:
        try:
            self._cleanroom_settle(self._cleanroom_outcome()).__exit__(None, None, None)
        finally:
            check = self._cleanroom_leaks
            if check is not None and check.running:
                check.stop()
                self._cleanroom_conclude(check)

    def _cleanroom_conclude(self, check: LeakCheck) -> None:
        # A failed test's leftovers may be kept on purpose (on_failure="keep").
        if self._cleanroom_outcome() is not Outcome.FAILED:
            check.conclude()

    def _cleanroom_interrupted(self, exc: BaseException) -> None:
        """Close what unittest will not: it re-raises interrupts past its cleanups."""
        outcome = Outcome.from_exception(exc)
        check = self._cleanroom_leaks
        if check is not None and check.running:
            check.stop()
        try:
            self._cleanroom_settle(outcome).__exit__(type(exc), exc, exc.__traceback__)
        finally:
            if outcome is Outcome.INTERRUPTED:
                state = _class_scope(type(self), create=False)
                if state is not None:
                    state.close(Outcome.INTERRUPTED)

    def run(
        self, result: unittest.TestResult | None = None
    ) -> unittest.TestResult | None:
        """Run the test inside its scope; see :class:`CleanroomMixin`."""
        if result is None:
            result = self.defaultTestResult()  # type: ignore[attr-defined]
            start = getattr(result, "startTestRun", None)
            stop = getattr(result, "stopTestRun", None)
            if start is not None:
                start()
            try:
                self._cleanroom_run(result)
            finally:
                if stop is not None:
                    stop()
            return result
        self._cleanroom_run(result)
        return result

    def _cleanroom_run(self, result: unittest.TestResult) -> None:
        watcher = _Watcher(result)
        scope = self._cleanroom_open(watcher)
        token = _context.current.set(scope)
        try:
            super().run(watcher)  # type: ignore[misc]
        except BaseException as exc:
            self._cleanroom_interrupted(exc)
            raise
        finally:
            _context.current.reset(token)

    def debug(self) -> None:
        """Run the test without a result, inside its scope; errors propagate."""
        scope = self._cleanroom_open(None)
        token = _context.current.set(scope)
        try:
            super().debug()  # type: ignore[misc]
        except BaseException as exc:
            self._cleanroom_interrupted(exc)
            raise
        finally:
            _context.current.reset(token)


def _test_id(test: object) -> str:
    test_id = getattr(test, "id", None)
    return str(test_id()) if callable(test_id) else type(test).__qualname__


class CleanroomTestCase(CleanroomMixin, unittest.TestCase):
    """
    A :class:`unittest.TestCase` with ``self.cleanroom`` per test and
    ``cls.cleanroom_class`` per class; see :class:`CleanroomMixin`.

    .. versionadded:: 0.1.0
    """


class IsolatedAsyncioCleanroomTestCase(
    CleanroomMixin, unittest.IsolatedAsyncioTestCase
):
    """
    An :class:`unittest.IsolatedAsyncioTestCase` with ``self.cleanroom`` per
    test and ``cls.cleanroom_class`` per class; see :class:`CleanroomMixin`.

    The test's scope closes in the test's event loop, so async cleanups and
    the helpers that need a running loop (``start_soon``) work; it is the
    current scope inside async tests, ``asyncSetUp`` and ``asyncTearDown``.

    .. versionadded:: 0.1.0
    """

    def _cleanroom_open(self, watcher: _Watcher | None) -> Scope:
        scope = super()._cleanroom_open(watcher)
        # Close in the test's loop: the sync cleanup added by the mixin finds
        # the scope already closed and does nothing.
        self.addAsyncCleanup(self._cleanroom_aclose)
        return scope

    async def _cleanroom_aclose(self) -> None:
        try:
            await self._cleanroom_settle(self._cleanroom_outcome()).__aexit__(
                None, None, None
            )
        finally:
            check = self._cleanroom_leaks
            if check is not None and check.running:
                await check.astop()
                self._cleanroom_conclude(check)
