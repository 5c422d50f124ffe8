"""
Leak checks in pytest: per test, from before its setup to after its teardown,
with a mark after each phase; what broader fixtures (class, module, session)
set up meanwhile is theirs, not the test's. The terminal summary lists the
leaks of each test.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Final

import attrs
import pytest

from cleanroom._core._exceptions import LeakError, PolicyError

from ._check import LeakCheck, from_setting

#: Values of ``--cleanroom-check-leaks`` and the ``cleanroom_check_leaks`` ini key.
MODES: Final = ("off", "warn", "raise")

_TEMPLATE: Final = pytest.StashKey[LeakCheck]()
_FAILED: Final = pytest.StashKey[bool]()
_PROPERTY: Final = "cleanroom_leaks"
# How many leaks of one test the summary lists.
_SHOWN: Final = 10


def mode(config: pytest.Config) -> str:
    """
    The run's default leak check: the option, else the ini key, else off.

    Raises:
        pytest.UsageError: On a value outside :data:`MODES`.
    """
    value = config.getoption("cleanroom_check_leaks", None)
    if value is None:
        value = str(config.getini("cleanroom_check_leaks")).strip() or "off"
    value = str(value).lower()
    if value not in MODES:
        raise pytest.UsageError(
            f"cleanroom: check_leaks must be one of {', '.join(MODES)}, not {value!r}"
        )
    return value


def marker_setting(item: pytest.Item) -> object:
    """The ``check_leaks`` of the closest ``cleanroom`` marker that gives one."""
    for mark in item.iter_markers("cleanroom"):
        if "check_leaks" in mark.kwargs:
            return mark.kwargs["check_leaks"]
    return None


class LeakPlugin:
    """Decides which tests are checked, and lists their leaks at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.default = mode(config)
        self.found: list[tuple[str, list[str]]] = []
        self._bracket: _Bracket | None = None

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Give each checked test its check; bracket tests only if some are."""
        default = None if self.default == "off" else self.default
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

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect the leaks a test's teardown report carries (from xdist too)."""
        if report.when != "teardown":
            return
        for name, value in report.user_properties:
            if name == _PROPERTY and isinstance(value, list | tuple) and value:
                self.found.append((report.nodeid, [str(text) for text in value]))

    def pytest_terminal_summary(
        self, terminalreporter: pytest.TerminalReporter
    ) -> None:
        """List the leaks of each test."""
        if not self.found or hasattr(self.config, "workerinput"):
            return
        write = terminalreporter.write_line
        terminalreporter.section("cleanroom: leaks")
        count = sum(len(leaks) for _, leaks in self.found)
        write(
            f"{count} leak{'s' if count != 1 else ''} in {len(self.found)} "
            f"test{'s' if len(self.found) != 1 else ''}"
        )
        for nodeid, leaks in self.found:
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
                    item.user_properties.append((_PROPERTY, [str(x) for x in leaks]))
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


def add_options(parser: pytest.Parser, group: pytest.OptionGroup) -> None:
    """Add ``--cleanroom-check-leaks`` and the ``cleanroom_check_leaks`` ini key."""
    group.addoption(
        "--cleanroom-check-leaks",
        dest="cleanroom_check_leaks",
        metavar="MODE",
        choices=MODES,
        default=None,
        help="check each test for threads, tasks, file descriptors and child "
        "processes it left behind: off (default), warn (list them in the "
        "summary) or raise (fail the test's teardown)",
    )
    parser.addini(
        "cleanroom_check_leaks",
        "cleanroom: check each test for leaks: off (default), warn or raise",
        default="",
    )
