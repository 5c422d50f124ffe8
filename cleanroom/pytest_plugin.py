"""
The pytest plugin: scopes that clean by the test's outcome, the ``cleanroom``
marker, options and ini keys, a summary of what was kept and how to delete it,
and cleanups that run on Ctrl+C and SIGTERM.

It is active as soon as cleanroom is installed (entry point ``pytest11``);
``-p no:cleanroom`` turns it off. A suite that never requests its fixtures nor
uses its marker does no per-test work for it.

Fixtures:

- ``cleanroom`` (and the seed's name ``resource_manager``): a
  :class:`~cleanroom.Scope` per test, closed in the test's teardown after the
  fixtures that use it. A failure of the test's setup or call (or of one of
  its subtests) keeps external resources, by the policy's ``on_failure``; a
  skip or an expected failure counts as passed; Ctrl+C and SIGTERM clean.
  (A fixture's failure in the same teardown is reported by pytest only after
  the scope has closed, so it does not count.)
- ``cleanroom_class``, ``cleanroom_module``, ``cleanroom_session``: a scope per
  class, module and session (per xdist worker), failed when a test failed in
  any phase while it was open.

In an async test (anyio's plugin, pytest-asyncio), a scope is closed inside
the event loop that ran the test, by a companion async fixture that comes
before the fixtures that use the scope; a wider scope too, when that loop
lives at least as long as it.

Each scope is the current scope while it is open, so
:func:`~cleanroom.with_cleanup` and :func:`~cleanroom.managed_resources` in a
test create its children. Policies resolve as: arguments given in code, then
the ``cleanroom`` marker (the closest one wins, setting by setting), then the
command line, then ``CLEANROOM_*`` variables, then ini keys, then
``[tool.cleanroom]`` in ``pyproject.toml``.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from ._core import new_id
from ._core._exceptions import PolicyError, Terminated
from ._core._settings import (
    POLICY_FIELDS,
    env_settings,
    project_file,
    setting_help,
)
from ._leaks import LEAKS_PROPERTY

if TYPE_CHECKING:
    from ._core._registry import Report
    from ._core._scope import Scope
    from ._core._signals import Cleaning
    from ._leaks._pytest import LeakChecks
    from ._pytest_scopes import Scopes

# What a run that never uses cleanroom's fixtures, marker or leak checks needs
# is here; the rest is in ._pytest_scopes, and in ._leaks._pytest, imported on
# first use: pytest compiles a plugin's modules afresh on every run where
# bytecode is not written.

#: Settings the ``cleanroom`` marker accepts: the policy's, the seed's
#: ``cleanup_level`` (another name for ``level``) and ``check_leaks``.
MARKER_SETTINGS: Final = (*POLICY_FIELDS, "cleanup_level", "check_leaks")

#: Values of ``--cleanroom-check-leaks`` and the ``cleanroom_check_leaks`` ini key.
LEAK_MODES: Final = ("off", "warn", "raise")

_PLUGIN: Final = pytest.StashKey["_Plugin"]()
_MARKER: Final = pytest.StashKey[dict[str, Any]]()

#: The fixtures whose use makes the plugin track which test is being set up.
FIXTURES: Final = frozenset(
    {
        "cleanroom",
        "resource_manager",
        "cleanroom_class",
        "cleanroom_module",
        "cleanroom_session",
    }
)

# The plugins of the runs in progress, innermost last (pytester runs pytest
# inside pytest).
_active: list[_Plugin] = []

_ENV_SESSION: Final = "CLEANROOM_SESSION"
_ENV_JOURNAL: Final = "CLEANROOM_JOURNAL"
_REGISTRY: Final = "cleanroom._core._registry"
_SIGNALS: Final = "cleanroom._core._signals"
#: What a run that uses cleanroom loads besides its public names' modules.
_INLINE_RUN_MODULES: Final = ("._pytest_scopes", "._crash._recorder", "._leaks._pytest")


# -- options -----------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add cleanroom's command-line options and ini keys."""
    group = parser.getgroup("cleanroom", "cleanroom: clean up what tests create")
    for field in POLICY_FIELDS:
        metavar, text = setting_help(field)
        option = f"--cleanroom-{field.replace('_', '-')}"
        # The seed's name for --cleanroom-level.
        aliases = ("--resource-cleanup",) if field == "level" else ()
        if metavar == "BOOL":
            group.addoption(
                option,
                dest=f"cleanroom_{field}",
                action="store_const",
                const=True,
                default=None,
                help=text,
            )
            group.addoption(
                f"--cleanroom-no-{field.replace('_', '-')}",
                dest=f"cleanroom_{field}",
                action="store_const",
                const=False,
                help=f"the opposite of {option}",
            )
        else:
            group.addoption(
                option,
                *aliases,
                dest=f"cleanroom_{field}",
                metavar=metavar,
                default=None,
                help=text,
            )
        parser.addini(f"cleanroom_{field}", f"cleanroom: {text}", default="")
    group.addoption(
        "--cleanroom-keep-failed",
        dest="cleanroom_keep_failed",
        action="store_true",
        default=False,
        help="keep the resources of failed tests for debugging (the default), "
        "whatever the environment and ini files say",
    )
    group.addoption(
        "--cleanroom-no-sweep",
        dest="cleanroom_no_sweep",
        action="store_true",
        default=False,
        help="do not remove the orphaned resources of dead sessions at start",
    )
    group.addoption(
        "--cleanroom-retention-count",
        dest="cleanroom_retention_count",
        metavar="N",
        default=None,
        help="keep what failed tests (or a level) kept for the last N sessions "
        "before a sweep removes it (default 3; 'none': no limit by count)",
    )
    group.addoption(
        "--cleanroom-retention-age",
        dest="cleanroom_retention_age",
        metavar="DURATION",
        default=None,
        help="remove kept resources older than DURATION (90s, 15m, 2h, 7d) "
        "whatever the count (default: none)",
    )
    group.addoption(
        "--cleanroom-journal",
        dest="cleanroom_journal",
        metavar="PATH",
        default=None,
        help="the journal of created resources (sets CLEANROOM_JOURNAL); "
        "'off' turns journaling off",
    )
    group.addoption(
        "--cleanroom-check-leaks",
        dest="cleanroom_check_leaks",
        metavar="MODE",
        choices=LEAK_MODES,
        default=None,
        help="check each test for threads, tasks, file descriptors and child "
        "processes it left behind: off (default), warn (list them in the "
        "summary) or raise (fail the test's teardown)",
    )
    parser.addini(
        "cleanroom_journal",
        "cleanroom: the journal of created resources, relative to the ini file",
        default="",
    )
    parser.addini(
        "cleanroom_retention_count",
        "cleanroom: how many sessions' kept resources stay (default 3, or none)",
        default="",
    )
    parser.addini(
        "cleanroom_retention_age",
        "cleanroom: how long kept resources stay at most (a duration, or none)",
        default="",
    )
    parser.addini(
        "cleanroom_check_leaks",
        "cleanroom: check each test for leaks: off (default), warn or raise",
        default="",
    )
    parser.addini(
        "cleanroom_sweep",
        "cleanroom: remove orphaned resources of dead sessions at start",
        type="bool",
        default=True,
    )


def _option_settings(config: pytest.Config) -> dict[str, Any]:
    settings = {
        field: value
        for field in POLICY_FIELDS
        if (value := config.getoption(f"cleanroom_{field}")) is not None
    }
    if config.getoption("cleanroom_keep_failed"):
        settings.update(force=False, on_failure="keep")
    return settings


def _leak_mode(config: pytest.Config) -> str:
    """
    The run's default leak check: the option, else the ini key, else off.

    Raises:
        pytest.UsageError: On a value outside :data:`LEAK_MODES`.
    """
    value = config.getoption("cleanroom_check_leaks", None)
    if value is None:
        value = str(config.getini("cleanroom_check_leaks")).strip() or "off"
    value = str(value).lower()
    if value not in LEAK_MODES:
        raise pytest.UsageError(
            "cleanroom: check_leaks must be one of "
            f"{', '.join(LEAK_MODES)}, not {value!r}"
        )
    return value


def _retention_given(config: pytest.Config) -> bool:
    """
    Tell whether the retention of kept resources is set anywhere: an option,
    an ini key, a ``CLEANROOM_RETENTION_*`` variable or ``[tool.cleanroom]``.
    """
    table = _project_table()
    return any(
        config.getoption(f"cleanroom_retention_{name}") is not None
        or str(config.getini(f"cleanroom_retention_{name}")).strip()
        or os.environ.get(f"CLEANROOM_RETENTION_{name.upper()}", "").strip()
        or f"retention_{name}" in table
        for name in ("count", "age")
    )


def _project_table() -> dict[str, Any]:
    """``[tool.cleanroom]``, its keys checked."""
    try:
        return project_file()[1]
    except PolicyError as exc:
        raise pytest.UsageError(f"cleanroom: {exc}") from None


def _anything_to_sweep() -> bool:
    """
    Tell, cheaply, whether a start-of-run sweep may find anything: a journal
    exists, or the project declares command kinds (whose prefix rules need no
    journal). A run on a machine where cleanroom never journaled imports no
    sweep machinery, journal or kind module.
    """
    from ._crash._location import journal_path

    try:
        path = journal_path()
    except Exception:
        return True  # let the sweep say what is wrong
    if path is not None and path.exists():
        return True
    try:
        return bool(project_file()[1].get("commands"))
    except PolicyError:
        return True


def _ini_settings(config: pytest.Config) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for field in POLICY_FIELDS:
        value = str(config.getini(f"cleanroom_{field}")).strip()
        if value:
            settings[field] = value
    return settings


# -- the marker ----------------------------------------------------------------------


def marker_settings(node: pytest.Item | pytest.Collector) -> dict[str, Any]:
    """
    Return the policy settings of the ``cleanroom`` markers on *node* and its
    parents, the closest marker winning setting by setting.

    Raises:
        PolicyError: On positional arguments, an unknown setting or a bad value;
            the message lists the valid ones.

    .. versionadded:: 0.1.0
    """
    from ._pytest_scopes import read_marker

    return read_marker(node, MARKER_SETTINGS)


def _marked(node: Any, cache: dict[int, bool]) -> bool:
    """Tell whether *node* or a parent carries the marker, remembering parents."""
    if any(mark.name == "cleanroom" for mark in node.own_markers):
        return True
    parent = node.parent
    if parent is None:
        return False
    key = id(parent)
    found = cache.get(key)
    if found is None:
        found = cache[key] = _marked(parent, cache)
    return found


# -- per-run state -------------------------------------------------------------------


class _Plugin:
    """What the plugin knows and changed during one pytest run, and its hooks."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.worker = hasattr(config, "workerinput")
        #: Whether cleanroom's fixtures are in use (the tracker is registered).
        self.active = False
        self.session: pytest.Session | None = None
        self.marked: dict[int, bool] = {}
        self.interrupt: BaseException | None = None
        self.remote: list[dict[str, Any]] = []
        #: What the sweep at the start of the run removed.
        self.swept: list[dict[str, Any]] = []
        #: The registry's report and its counts when the run began, if the
        #: registry existed then (it is made on first use otherwise).
        self.baseline: tuple[Report, int, int, int, int, int] | None = None
        self.leak_mode = "off"
        #: The leaks that tests' teardown reports carry (from xdist too).
        self.leaks: list[tuple[str, list[str]]] = []
        self._environ: dict[str, str | None] = {}
        self._registry_before: tuple[dict[str, Any], dict[str, Any]] | None = None
        self._signals_before = False
        self._signals_seen = 0
        self._hold: Cleaning | None = None
        self._command_set = False
        self._forget_hook: Callable[[], None] | None = None
        self._scopes: Scopes | None = None
        self._leak_checks: LeakChecks | None = None

    def scopes(self) -> Scopes:
        """The scopes of this run's fixtures (their machinery loads on first use)."""
        scopes = self._scopes
        if scopes is None:
            from ._pytest_scopes import Scopes

            scopes = self._scopes = Scopes(self)
        return scopes

    def test_settings(self, item: pytest.Item) -> dict[str, Any]:
        """The policy settings of *item*'s markers."""
        stash = item.stash
        if _MARKER in stash:  # not stash.get(): a miss raises inside it
            return stash[_MARKER]
        # Unmarked at collection; a marker may have been added since.
        return marker_settings(item) if item.own_markers else {}

    def node_settings(self, node: pytest.Collector) -> dict[str, Any]:
        """The policy settings of the markers of a class, a module or the session."""
        if isinstance(node, pytest.Session) or not _marked(node, self.marked):
            return {}
        return marker_settings(node)

    # -- configure / unconfigure

    def configure(self) -> None:
        config = self.config
        options = _option_settings(config)
        ini = _ini_settings(config)
        self.leak_mode = _leak_mode(config)
        # The registry takes the run's settings, checked at once, when one is
        # given anywhere or the registry exists already; a run that gives
        # none and never uses cleanroom does not load it.
        if (
            options
            or ini
            or _REGISTRY in sys.modules
            or env_settings()
            or _project_table()
        ):
            from ._pytest_scopes import configure_registry

            self._registry_before = configure_registry(self, options, ini)
        if self.worker:
            # The journal names the run's command, not the worker's "-c".
            workerinput = config.workerinput  # type: ignore[attr-defined]
            argv = workerinput.get("mainargv") or []
            if argv:
                from ._core._session import set_command

                set_command(
                    f"{' '.join(argv)} (xdist worker {workerinput['workerid']})"
                )
                self._command_set = True
        else:
            # Set before xdist starts its workers, so that they inherit them.
            if not os.environ.get(_ENV_SESSION):
                self._setenv(_ENV_SESSION, new_id())
            journal = config.getoption("cleanroom_journal")
            if journal:
                self._setenv(_ENV_JOURNAL, _journal_value(journal, Path.cwd()))
            elif not os.environ.get(_ENV_JOURNAL):
                ini_journal = str(config.getini("cleanroom_journal")).strip()
                if ini_journal:
                    base = config.inipath.parent if config.inipath else config.rootpath
                    self._setenv(_ENV_JOURNAL, _journal_value(ini_journal, base))
        # The SIGTERM handler is installed once the run uses cleanroom (see
        # use_signals); a run that never does keeps pytest's own behaviour.
        signals = sys.modules.get(_SIGNALS)
        if signals is not None:
            self._signals_before = signals.decided
            self._signals_seen = len(signals.received())

    def use_signals(self) -> None:
        """
        Make SIGTERM unwind the run, so that pending cleanups run and the run
        ends with 143: the run uses cleanroom. A scope made outside the
        plugin's fixtures installs the handler too, when it is made.
        """
        from ._core._signals import install_lazily

        install_lazily()

    def _setenv(self, name: str, value: str) -> None:
        self._environ.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def unconfigure(self) -> None:
        if self._forget_hook is not None:
            self._forget_hook()
            self._forget_hook = None
        if self._command_set:
            from ._core._session import set_command

            set_command(None)
            self._command_set = False
        for name, value in self._environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._environ.clear()
        signals = sys.modules.get(_SIGNALS)
        if signals is not None and not self._signals_before:
            signals.uninstall()
        before, self._registry_before = self._registry_before, None
        if before is not None:
            from ._pytest_scopes import restore_registry

            restore_registry(self, before)

    def _write(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)

    # -- hooks

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """
        Sweep what ended sessions left, once per run (in xdist's controller),
        and have xdist's controller pass SIGTERM on to its workers at once.
        """
        self.session = session
        config = self.config
        if self.worker:
            return
        if config.pluginmanager.has_plugin("dsession"):
            # Each worker runs its own tests' cleanups; without the signal,
            # xdist waits 10 s for workers that go on testing, then kills them.
            from ._core._signals import on_sigterm
            from ._pytest_scopes import terminate_workers

            self.use_signals()
            self._forget_hook = on_sigterm(terminate_workers)
        sweeping = not config.getoption("cleanroom_no_sweep") and config.getini(
            "cleanroom_sweep"
        )
        if sweeping and _anything_to_sweep():
            from ._pytest_scopes import sweep_at_start

            self.use_signals()
            self.swept = sweep_at_start(config, os.environ.get(_ENV_SESSION) or None)
        elif _retention_given(config):
            from ._pytest_scopes import retention

            retention(config)  # a bad value is a usage error, swept or not

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """
        Give every test that carries the ``cleanroom`` marker its scope, so that
        the marker's policy holds for ``with_cleanup`` and ``managed_resources``
        in it, and check the marker's settings once. Have async tests' scopes
        closed in their event loop. Track the tests only when some test uses
        cleanroom's fixtures. Give the tests that are checked for leaks their
        check.
        """
        cache = self.marked
        checking = self.leak_mode != "off"
        used = False
        checked: list[pytest.Item] = []
        for item in items:
            names: list[str] | None = getattr(item, "fixturenames", None)
            uses = names is not None and not FIXTURES.isdisjoint(names)
            marked = _marked(item, cache)
            if marked:
                try:
                    item.stash[_MARKER] = marker_settings(item)
                except PolicyError as exc:
                    raise pytest.UsageError(f"{item.nodeid}: {exc}") from None
                if names is not None:
                    uses = True
                    if "cleanroom" not in names:
                        names.append("cleanroom")
            if marked or checking:
                checked.append(item)
            if uses and names is not None:
                used = True
                self.scopes().close_in_loop(item, names)
        if used:
            self.use_signals()
            self.scopes().track()
        if checked:
            self._check_leaks(checked)

    def _check_leaks(self, items: list[pytest.Item]) -> None:
        """Give each of *items* that is checked for leaks its check."""
        from ._leaks._pytest import LeakChecks

        if self._leak_checks is None:
            self._leak_checks = LeakChecks(self.config)
        default = None if self.leak_mode == "off" else self.leak_mode
        self._leak_checks.assign(items, default)

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> None:
        """
        Remember the interrupt: the scopes torn down from now on were
        interrupted. For SIGTERM, keep only the traceback's last entry (the
        one pytest reports) unless ``--fulltrace`` is given: formatting the
        whole of it takes seconds of the grace a runner gives before SIGKILL.
        """
        self.interrupt = excinfo.value
        self._hold_signals()
        if isinstance(excinfo.value, Terminated) and not self.config.getoption(
            "fulltrace", False
        ):
            excinfo.traceback = excinfo.traceback[-1:]

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_sessionfinish(
        self, session: pytest.Session
    ) -> Generator[None, None, None]:
        """
        Hold back interrupts while the session's fixtures tear down, close what
        is left, hand a worker's summary to xdist's controller, and give the
        exit status of a signal: 143 for SIGTERM, 130 for Ctrl+C.
        """
        self._hold_signals()
        try:
            result = yield
        finally:
            self._release_signals()
        self._finish(session)
        return result

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any) -> None:
        """Collect a finished xdist worker's summary in the controller."""
        output = getattr(node, "workeroutput", None) or {}
        summary = output.get("cleanroom")
        if summary:
            self.remote.append(summary)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect the leaks a test's teardown report carries (from xdist too)."""
        if report.when != "teardown" or not report.user_properties:
            return
        for name, value in report.user_properties:
            if name == LEAKS_PROPERTY and isinstance(value, list | tuple) and value:
                self.leaks.append((report.nodeid, [str(text) for text in value]))

    def pytest_terminal_summary(
        self, terminalreporter: pytest.TerminalReporter
    ) -> None:
        """
        Show what was cleaned, kept (with why and how to delete it) and failed,
        nothing on a clean run unless ``-v`` is given; and the leaks of each
        test.
        """
        if self.worker:
            return
        if self.swept or self.remote or _REGISTRY in sys.modules:
            from ._pytest_scopes import write_summary

            write_summary(self, terminalreporter)
        if self.leaks:
            from ._leaks._pytest import write_leaks

            write_leaks(terminalreporter, self.leaks)

    # -- signals and the end of the session

    def _hold_signals(self) -> None:
        """Hold back SIGINT and SIGTERM until the session's teardown is done."""
        if self._hold is None and self.active:
            from ._core._signals import Cleaning

            self._hold = Cleaning(drop=True)
            self._hold.__enter__()

    def _release_signals(self) -> None:
        hold, self._hold = self._hold, None
        if hold is not None:
            hold.__exit__(None, None, None)

    def _finish(self, session: pytest.Session) -> None:
        if self._scopes is not None:
            self._scopes.close_all(self._write)
        if self.worker:
            if _REGISTRY in sys.modules:  # else nothing here used cleanroom
                from ._pytest_scopes import local_summary

                self.config.workeroutput["cleanroom"] = local_summary(self)  # type: ignore[attr-defined]
            return
        signals = sys.modules.get(_SIGNALS)
        seen = signals.received()[self._signals_seen :] if signals else ()
        terminated = signal.SIGTERM in seen or isinstance(self.interrupt, Terminated)
        if terminated or type(self.interrupt) is KeyboardInterrupt:
            from ._core._signals import EXIT_SIGINT, EXIT_SIGTERM

            session.exitstatus = EXIT_SIGTERM if terminated else EXIT_SIGINT


def _journal_value(value: str, base: Path) -> str:
    if value.strip().lower() in {"off", "none", "0", "false", "no", ""}:
        return value
    return str((base / Path(value).expanduser()).absolute())


# -- hooks of every run --------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and apply the options."""
    settings = ", ".join(f"{name}=..." for name in MARKER_SETTINGS)
    config.addinivalue_line(
        "markers",
        f"cleanroom({settings}): the cleanup policy of the test's cleanroom "
        "scopes; the closest marker wins, setting by setting. cleanup_level is "
        "another name for level; check_leaks=True, 'raise', 'warn', False or a "
        "dict of cleanroom.no_leaks() settings checks the test, from its setup "
        "to its teardown, for what it left behind.",
    )
    plugin = _Plugin(config)
    plugin.configure()
    config.stash[_PLUGIN] = plugin
    _active.append(plugin)
    config.pluginmanager.register(plugin, "cleanroom-run")


def pytest_plugin_registered(plugin_name: str | None) -> None:
    """
    With pytester, load cleanroom's core now, in the run that holds pytester.

    pytester's inline runs take the modules first imported during a run out
    of ``sys.modules`` again, while their packages keep them as attributes;
    the next run would then mix two copies of the core (two current scopes,
    two kind registries). Loaded before the first inline run, they stay.
    """
    if plugin_name == "pytester":
        from importlib import import_module

        package = import_module(__package__)
        for name in package.__all__:  # the modules of the public names
            getattr(package, name)
        for module in _INLINE_RUN_MODULES:
            import_module(module, __package__)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Undo what :func:`pytest_configure` changed in the process."""
    plugin = config.stash.get(_PLUGIN, None)
    if plugin is not None:
        plugin.unconfigure()
        if plugin in _active:
            _active.remove(plugin)


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture
def cleanroom() -> Iterator[Scope]:
    """
    A :class:`~cleanroom.Scope` for this test, cleaned by the test's outcome.

    .. versionadded:: 0.1.0
    """
    # No ``request`` argument: pytest builds three fixture definitions per
    # test for it, which would double this fixture's cost.
    scopes = _active[-1].scopes()
    scope, opened = scopes.open_test()
    yield scope
    scopes.close(opened)


@pytest.fixture
def resource_manager(cleanroom: Scope) -> Scope:
    """
    The test's scope under the name of the seed's fixture (same as ``cleanroom``).

    .. versionadded:: 0.1.0
    """
    return cleanroom


def _broad_scope(request: pytest.FixtureRequest) -> Iterator[Scope]:
    scopes = request.config.stash[_PLUGIN].scopes()
    scope, opened = scopes.open_broad(request.node)
    yield scope
    scopes.close(opened)


@pytest.fixture(scope="class")
def cleanroom_class(request: pytest.FixtureRequest) -> Iterator[Scope]:
    """
    A :class:`~cleanroom.Scope` for the test class, failed if a test in it failed.

    .. versionadded:: 0.1.0
    """
    yield from _broad_scope(request)


@pytest.fixture(scope="module")
def cleanroom_module(request: pytest.FixtureRequest) -> Iterator[Scope]:
    """
    A :class:`~cleanroom.Scope` for the module, failed if a test in it failed.

    .. versionadded:: 0.1.0
    """
    yield from _broad_scope(request)


@pytest.fixture(scope="session")
def cleanroom_session(request: pytest.FixtureRequest) -> Iterator[Scope]:
    """
    A :class:`~cleanroom.Scope` for the test session (for each xdist worker),
    failed if a test failed.

    .. versionadded:: 0.1.0
    """
    yield from _broad_scope(request)
