"""
Leak checks in pytest: per test, from before its setup to after its teardown,
with a mark after each phase; what broader fixtures (class, module, session)
set up meanwhile is theirs, not the test's. The terminal summary lists the
leaks of each test.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Final

import attrs
import pytest

from cleanroom._core._exceptions import LeakError, PolicyError

from . import LEAKS_PROPERTY
from . import _from_setting as from_setting

if TYPE_CHECKING:
    from ._check import LeakCheck

_TEMPLATE: Final = pytest.StashKey["LeakCheck"]()
_FAILED: Final = pytest.StashKey[bool]()
# How many leaks of one test the summary lists.
_SHOWN: Final = 10


def marker_setting(item: pytest.Item) -> object:
    """The ``check_leaks`` of the closest ``cleanroom`` marker that gives one."""
    for mark in item.iter_markers("cleanroom"):
        if "check_leaks" in mark.kwargs:
            return mark.kwargs["check_leaks"]
    return None


class LeakChecks:
    """Gives the tests that are checked their check, and brackets them."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._bracket: _Bracket | None = None

    def assign(self, items: list[pytest.Item], default: str | None) -> None:
        """
        Give each of *items* its check: its marker's ``check_leaks``, else
        *default* (the run's mode, ``None`` when off); bracket tests only if
        some are checked.

        Raises:
            pytest.UsageError: On a bad ``check_leaks`` in a marker.
        """
        checked = False
        for item in items:
            setting = marker_setting(item)
            try:
                check = from_setting(default if setting is None else setting)
            except PolicyError as exc:
                raise pytest.UsageError(f"{item.nodeid}: {exc}") from None
            if check is not None:
                item.stash[_TEMPLATE] = check
                checked = True
        if checked and self._bracket is None:
            self._bracket = _Bracket()
            self.config.pluginmanager.register(self._bracket, "cleanroom-leaks")


def write_leaks(
    terminalreporter: pytest.TerminalReporter,
    found: list[tuple[str, list[str]]],
) -> None:
    """List the leaks of each test, given as (node id, leaks) pairs."""
    write = terminalreporter.write_line
    terminalreporter.section("cleanroom: leaks")
    count = sum(len(leaks) for _, leaks in found)
    write(
        f"{count} leak{'s' if count != 1 else ''} in {len(found)} "
        f"test{'s' if len(found) != 1 else ''}"
    )
    for nodeid, leaks in found:
        write(f"{nodeid}:", yellow=True)
        for text in leaks[:_SHOWN]:
            for number, line in enumerate(text.splitlines()):
                write(f"    {'- ' if number == 0 else '  '}{line}")
        if len(leaks) > _SHOWN:
            write(f"    ... and {len(leaks) - _SHOWN} more")


class _Bracket:
    """The per-test hooks, registered only when some test is checked."""

    def __init__(self) -> None:
        self.current: LeakCheck | None = None

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        """Take the baselines before any fixture is set up."""
        template = item.stash.get(_TEMPLATE, None)
        if template is None:
            self.current = None
            return (yield)
        check = self.current = attrs.evolve(template, name=item.nodeid)
        check.start()
        try:
            return (yield)
        finally:
            check.mark("setup")

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(self) -> Generator[None, None, None]:
        """Note what the call left, to say which phase each leak comes from."""
        try:
            return (yield)
        finally:
            if self.current is not None and self.current.running:
                self.current.mark("call")

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any]
    ) -> Generator[None, None, Any]:
        """What a broader fixture sets up belongs to it, not to the test."""
        check = self.current
        if fixturedef.scope == "function" or check is None or not check.running:
            return (yield)
        with check.ignoring():
            return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        """
        After every fixture was torn down, wait for stragglers and report;
        raise when the test passed and its check says so.
        """
        __tracebackhide__ = True
        try:
            return (yield)
        finally:
            check, self.current = self.current, None
            if check is not None and check.running:
                # pytest drops the fixture values only after teardown.
                funcargs = getattr(item, "funcargs", None) or {}
                leaks = check.stop(phase="teardown", transient=funcargs.values())
                if leaks:
                    item.user_properties.append(
                        (LEAKS_PROPERTY, [str(x) for x in leaks])
                    )
                    # A failed test's leftovers may be kept on purpose
                    # (on_failure="keep"), and its failure says enough.
                    if check.on_leak == "raise" and not item.stash.get(_FAILED, False):
                        raise LeakError(check.report(), leaks)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Remember whether setup or call failed (or skipped)."""
        report = yield
        if report.when != "teardown" and not report.passed:
            item.stash[_FAILED] = True
        return report
