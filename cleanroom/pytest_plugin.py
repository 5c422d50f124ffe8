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

import contextlib
import os
import signal
from collections.abc import (
    AsyncIterator,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from inspect import iscoroutinefunction
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import pytest

from ._core import _session, _signals
from ._core._policy import (
    POLICY_FIELDS,
    Outcome,
    Policy,
    is_given,
    project_config,
    setting_help,
)
from ._core._registry import Registry, Report
from ._core._resource import Disposition, describe
from ._core._session import new_id
from ._leaks import _from_setting as from_setting
from ._leaks import _pytest as _leaks_pytest
from .exceptions import PolicyError, Terminated

if TYPE_CHECKING:
    from ._core._scope import Scope
    from ._crash._retention import Retention

#: Settings the ``cleanroom`` marker accepts: the policy's, the seed's
#: ``cleanup_level`` (another name for ``level``) and ``check_leaks``.
MARKER_SETTINGS: Final = (*POLICY_FIELDS, "cleanup_level", "check_leaks")

_PLUGIN: Final = pytest.StashKey["_Plugin"]()
_MARKER: Final = pytest.StashKey[dict[str, Any]]()

#: How many kept and how many failed resources the summary lists without -v.
SUMMARY_LINES: Final = 20

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
    _leaks_pytest.add_options(parser, group)
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


def _retention(config: pytest.Config) -> Retention:
    """The retention of kept resources: options, environment, ini, pyproject."""
    from ._crash._retention import Retention

    ini = {
        name: str(config.getini(f"cleanroom_retention_{name}")).strip() or None
        for name in ("count", "age")
    }
    try:
        return Retention.resolve(
            count=config.getoption("cleanroom_retention_count"),
            age=config.getoption("cleanroom_retention_age"),
            config=ini,
        )
    except ValueError as exc:
        raise pytest.UsageError(f"cleanroom: {exc}") from None


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
    given: dict[str, Any] = {}
    for mark in node.iter_markers("cleanroom"):
        if mark.args:
            raise PolicyError(
                "@pytest.mark.cleanroom takes keyword arguments only, not "
                f"{mark.args!r}; valid: {', '.join(MARKER_SETTINGS)}"
            )
        for key, value in mark.kwargs.items():
            given.setdefault(key, value)
    unknown = sorted(set(given) - set(MARKER_SETTINGS))
    if unknown:
        raise PolicyError(
            f"unknown @pytest.mark.cleanroom setting{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; valid: {', '.join(MARKER_SETTINGS)}"
        )
    # Checked, and acted on, by the leak plugin: a test's check spans its
    # fixtures, not only its scope.
    from_setting(given.pop("check_leaks", None))
    alias = given.pop("cleanup_level", None)
    if alias is not None:
        level = given.get("level")
        if level is not None and level != alias:
            raise PolicyError(
                f"level={level!r} and cleanup_level={alias!r} disagree; give one"
            )
        given["level"] = alias
    settings = {key: value for key, value in given.items() if is_given(key, value)}
    if settings:
        Policy().evolve(**settings)
    return settings


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


class _Open:
    """
    A scope that a fixture holds open: a test's (*key* is its node id), or a
    class's, a module's or the session's; and how many tests of the session
    had failed when it opened.
    """

    __slots__ = ("broad", "failed_before", "key", "scope")

    def __init__(
        self, scope: Scope, key: str, failed_before: int, *, broad: bool
    ) -> None:
        self.scope = scope
        self.key = key
        self.failed_before = failed_before
        self.broad = broad


class _Tracker:
    """
    Tells the ``cleanroom`` fixture which test is being set up. Registered
    when collection finds a test that uses a cleanroom fixture or the marker,
    so suites that never use them pay for no per-test hook.
    """

    __slots__ = ("_plugin",)

    def __init__(self, plugin: _Plugin) -> None:
        self._plugin = plugin

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Remember the test being set up."""
        self._plugin.item = item


class _Plugin:
    """What the plugin knows and changed during one pytest run, and its hooks."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.worker = hasattr(config, "workerinput")
        self.active = False
        #: Open scopes of tests, by node id; of classes, modules and the session.
        self.tests: dict[str, _Open] = {}
        self.broad: list[_Open] = []
        self.item: pytest.Item | None = None
        self.session: pytest.Session | None = None
        self._marked: dict[int, bool] = {}
        self.interrupt: BaseException | None = None
        self.remote: list[dict[str, Any]] = []
        #: What the sweep at the start of the run removed.
        self.swept: list[dict[str, Any]] = []
        self._environ: dict[str, str | None] = {}
        self._registry_before: tuple[dict[str, Any], dict[str, Any]] | None = None
        self._own_signals = False
        self._signals_seen = 0
        self._baseline: tuple[Report, int, int, int, int, int] | None = None
        self._hold: _signals.Cleaning | None = None
        self._command_set = False
        self._forget_hook: Callable[[], None] | None = None
        self.companions: ModuleType | None = None

    # -- configure / unconfigure

    def configure(self) -> None:
        config = self.config
        registry = Registry.default()
        before = registry.settings()
        try:
            registry.configure(
                options=_option_settings(config), config=_ini_settings(config)
            )
        except PolicyError as exc:
            raise pytest.UsageError(f"cleanroom: {exc}") from None
        self._registry_before = before
        if self.worker:
            # The journal names the run's command, not the worker's "-c".
            workerinput = config.workerinput  # type: ignore[attr-defined]
            argv = workerinput.get("mainargv") or []
            if argv:
                _session.set_command(
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
        self._own_signals = _signals.install()
        self._signals_seen = len(_signals.received())
        report = registry.report
        self._baseline = (
            report,
            report.cleaned,
            len(report.kept),
            len(report.failed),
            report.collected,
            report.forgotten,
        )

    def _setenv(self, name: str, value: str) -> None:
        self._environ.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def unconfigure(self) -> None:
        if self._forget_hook is not None:
            self._forget_hook()
            self._forget_hook = None
        if self._command_set:
            _session.set_command(None)
            self._command_set = False
        for name, value in self._environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._environ.clear()
        if self._registry_before is not None:
            options, config = self._registry_before
            Registry.default().configure(options=options, config=config)
            self._registry_before = None
        if self._own_signals:
            _signals.uninstall()
            self._own_signals = False
        base, self._baseline = self._baseline, None
        if base is not None and base[0] is Registry.default().report:
            # A run inside another (pytester) leaves the outer run's report as
            # it found it; this run's summary has been shown already.
            report = base[0]
            report.cleaned, report.collected, report.forgotten = (
                base[1],
                base[4],
                base[5],
            )
            del report.kept[base[2] :]
            del report.failed[base[3] :]

    # -- scopes

    def track(self) -> None:
        """Track which test is set up (once cleanroom's fixtures are in use)."""
        if not self.active:
            self.active = True
            self.config.pluginmanager.register(_Tracker(self), "cleanroom-tracker")

    def open_test(self) -> tuple[Scope, _Open]:
        """Open the scope of the test being set up, with its markers' policy."""
        item = self.item
        if item is None:
            # Requested dynamically (request.getfixturevalue) by a suite that
            # names no cleanroom fixture statically: find the test by its id.
            item = self._current_item()
            self.track()
        settings = item.stash.get(_MARKER, None)
        if settings is None:
            # Unmarked at collection; a marker may have been added since.
            settings = marker_settings(item) if item.own_markers else {}
        nodeid = item.nodeid
        scope = _scope_class()(nodeid, **settings)
        opened = _Open(scope, nodeid, self._failures(), broad=False)
        self.tests[nodeid] = opened
        scope.__enter__()
        return scope, opened

    def open_broad(self, node: pytest.Collector) -> tuple[Scope, _Open]:
        """Open the scope of a class, a module or the session."""
        self.track()
        if isinstance(node, pytest.Session):
            settings: dict[str, Any] = {}
        else:
            settings = marker_settings(node) if _marked(node, self._marked) else {}
        nodeid = node.nodeid
        scope = _scope_class()(nodeid or "pytest-session", **settings)
        opened = _Open(scope, nodeid, self._failures(), broad=True)
        self.broad.append(opened)
        scope.__enter__()
        return scope, opened

    def _current_item(self) -> pytest.Item:
        current = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
        session = self.session
        if session is not None:
            for item in session.items:
                if item.nodeid == current:
                    return item
        raise RuntimeError(f"cleanroom: cannot find the running test {current!r}")

    def _failures(self) -> int:
        session = self.session
        return session.testsfailed if session is not None else 0

    def outcome(self, opened: _Open) -> Outcome:
        """
        Judge what a scope covered: failed when a test failed (in any phase)
        while it was open — pytest's count of failures excludes expected ones,
        and skips count as passed — interrupted after Ctrl+C or SIGTERM.
        """
        if self._failures() > opened.failed_before:
            return Outcome.FAILED
        if self.interrupt is not None:
            return Outcome.INTERRUPTED
        return Outcome.PASSED

    def close(self, opened: _Open, outcome: Outcome | None = None) -> None:
        """
        Close a fixture's scope by the outcome of what it covered. One closed
        in the test's loop already has nothing left to clean: this leaves the
        context that the fixture entered it in.
        """
        if opened.broad:
            if opened not in self.broad:
                return
            self.broad.remove(opened)
        elif self.tests.pop(opened.key, None) is None:
            return
        scope = opened.scope
        scope.set_outcome(outcome or self.outcome(opened))
        scope.__exit__(None, None, None)

    @asynccontextmanager
    async def in_loop(self, scope: Scope) -> AsyncIterator[None]:
        """
        Enter *scope* in the running event loop and close it there, by the
        outcome of what it covered, when the block ends.
        """
        opened = next(
            (o for o in (*self.tests.values(), *self.broad) if o.scope is scope), None
        )
        if opened is None:
            yield
            return
        await scope.__aenter__()
        try:
            yield
        finally:
            # The fixture closes it again (with nothing left to clean, unless
            # something was added since): a wider scope may be entered in
            # another loop, anyio's next backend, before then.
            scope.set_outcome(self.outcome(opened))
            await scope.__aexit__(None, None, None)

    def close_in_loop(self, item: pytest.Item, names: list[str]) -> None:
        """
        Have the scopes that the async test *item* uses closed in its event
        loop: put the companion fixture of each before the first fixture that
        could use that scope.
        """
        runner = _async_runner(item)
        if runner is None:
            return
        from . import _pytest_loops

        library, loop_scope = runner
        if loop_scope not in _pytest_loops.SCOPES:
            return  # pytest-asyncio reports the bad marker
        widest = _pytest_loops.SCOPES.index(loop_scope)
        for scope, fixture in _pytest_loops.FIXTURES.items():
            rank = _pytest_loops.SCOPES.index(scope)
            if fixture not in names or rank > widest:
                # A loop that ends before the fixture does: it closes as a
                # sync fixture, in a loop of its own.
                continue
            if library == "anyio":
                name = _pytest_loops.anyio_name(scope)
            else:
                name = _pytest_loops.asyncio_name(scope, loop_scope)
            if name in names:
                continue
            if self.companions is None:
                self.companions = _pytest_loops.companions(
                    self.in_loop,
                    asyncio=self.config.pluginmanager.has_plugin("asyncio"),
                )
                self.config.pluginmanager.register(self.companions, "cleanroom-loops")
            at = next(
                (
                    index
                    for index, other in enumerate(names)
                    if _pytest_loops.SCOPES.index(_fixture_scope(item, other)) <= rank
                ),
                len(names),
            )
            names.insert(at, name)

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
        if self._own_signals and config.pluginmanager.has_plugin("dsession"):
            # Each worker runs its own tests' cleanups; without the signal,
            # xdist waits 10 s for workers that go on testing, then kills them.
            self._forget_hook = _signals.on_sigterm(_terminate_workers)
        if config.getoption("cleanroom_no_sweep") or not config.getini(
            "cleanroom_sweep"
        ):
            return
        self.swept = _sweep_at_start(config)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """
        Give every test that carries the ``cleanroom`` marker its scope, so that
        the marker's policy holds for ``with_cleanup`` and ``managed_resources``
        in it, and check the marker's settings once. Have async tests' scopes
        closed in their event loop. Track the tests only when some test uses
        cleanroom's fixtures.
        """
        cache = self._marked
        used = False
        for item in items:
            names: list[str] | None = getattr(item, "fixturenames", None)
            uses = names is not None and not FIXTURES.isdisjoint(names)
            if _marked(item, cache):
                try:
                    item.stash[_MARKER] = marker_settings(item)
                except PolicyError as exc:
                    raise pytest.UsageError(f"{item.nodeid}: {exc}") from None
                if names is not None:
                    uses = True
                    if "cleanroom" not in names:
                        names.append("cleanroom")
            if uses and names is not None:
                used = True
                self.close_in_loop(item, names)
        if used:
            self.track()

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

    def pytest_terminal_summary(
        self, terminalreporter: pytest.TerminalReporter
    ) -> None:
        """
        Show what was cleaned, kept (with why and how to delete it) and failed;
        nothing on a clean run unless ``-v`` is given.
        """
        if self.worker:
            return
        _write_summary(terminalreporter, self.summary(), self.config.get_verbosity())

    # -- signals and the end of the session

    def _hold_signals(self) -> None:
        """Hold back SIGINT and SIGTERM until the session's teardown is done."""
        if self._hold is None and self.active:
            self._hold = _signals.Cleaning(drop=True)
            self._hold.__enter__()

    def _release_signals(self) -> None:
        hold, self._hold = self._hold, None
        if hold is not None:
            hold.__exit__(None, None, None)

    def _finish(self, session: pytest.Session) -> None:
        for opened in [*self.tests.values(), *reversed(self.broad)]:
            # A fixture that pytest never tore down: the run stopped early.
            try:
                self.close(opened, Outcome.INTERRUPTED)
            except Exception as exc:
                self._write(f"cleanroom: closing {opened.scope.name} failed: {exc!r}")
        if self.worker:
            self.config.workeroutput["cleanroom"] = self.local_summary()  # type: ignore[attr-defined]
            return
        seen = _signals.received()[self._signals_seen :]
        if signal.SIGTERM in seen or isinstance(self.interrupt, Terminated):
            session.exitstatus = _signals.EXIT_SIGTERM
        elif type(self.interrupt) is KeyboardInterrupt:
            session.exitstatus = _signals.EXIT_SIGINT

    # -- the summary

    def local_summary(self) -> dict[str, Any]:
        """What this process's scopes did since the run began, as plain data."""
        report = Registry.default().report
        base = self._baseline
        if base is not None and base[0] is report:
            _, cleaned, kept, failed, collected, forgotten = base
        else:
            cleaned = kept = failed = collected = forgotten = 0
        worker = self.config.workerinput["workerid"] if self.worker else None  # type: ignore[attr-defined]
        return {
            "cleaned": report.cleaned - cleaned,
            "collected": report.collected - collected,
            "forgotten": report.forgotten - forgotten,
            "kept": [_describe(d, worker) for d in report.kept[kept:]],
            "failed": [_describe(d, worker) for d in report.failed[failed:]],
        }

    def summary(self) -> dict[str, Any]:
        """The local summary with those of xdist's workers added."""
        total = self.local_summary()
        total["swept"] = list(self.swept)
        for remote in self.remote:
            for key in ("cleaned", "collected", "forgotten"):
                total[key] += int(remote.get(key, 0))
            total["kept"].extend(remote.get("kept", ()))
            total["failed"].extend(remote.get("failed", ()))
        return total


def _scope_class() -> type[Scope]:
    # Imported on first use: a run that never uses cleanroom does not load
    # (nor have pytest rewrite) the scope's modules.
    from ._core._scope import Scope

    return Scope


def _terminate_workers() -> None:
    """Send SIGTERM to this process's xdist workers (execnet's popen gateways)."""
    try:
        from execnet.gateway_io import popen_bootstrapline
    except ImportError:  # pragma: no cover - xdist needs execnet
        return
    proc = Path("/proc")
    if not proc.is_dir():  # pragma: no cover - found through /proc (Linux)
        return
    marker = b"\0-c\0" + popen_bootstrapline.encode() + b"\0"
    me = str(os.getpid())
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _session.stat_fields(int(entry.name))
        if fields is None or len(fields) < 2 or fields[1] != me:  # noqa: PLR2004
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGTERM)


def _sweep_at_start(config: pytest.Config) -> list[dict[str, Any]]:
    """
    Remove what ended sessions left: orphans, kept resources past their
    retention, and names that kinds' declared prefix rules match; return what
    was removed, for the summary.
    """
    retention = _retention(config)
    if not _anything_to_sweep():
        return []
    try:
        from ._crash import _sweep

        report = _sweep.session_start_sweep(
            os.environ.get(_ENV_SESSION) or None, retention
        )
    except Exception:  # it promises not to raise; a sweep must never stop a run
        return []
    if report is None:
        return []
    return [
        {
            "what": result.description,
            "reason": result.reason or "",
            "session": result.session or "",
        }
        for result in report.results
        if result.action == "removed"
    ]


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
        return bool(project_config().get("commands"))
    except PolicyError:
        return True


def _swept_line(swept: Sequence[Mapping[str, Any]]) -> str:
    """Say how many resources of earlier sessions the start-of-run sweep removed."""
    kept = sum(1 for entry in swept if entry["reason"].startswith("kept"))
    parts = []
    if len(swept) - kept:
        parts.append(f"{len(swept) - kept} orphaned")
    if kept:
        parts.append(f"{kept} kept past their retention")
    plural = "s" if len(swept) != 1 else ""
    return (
        f"swept {len(swept)} resource{plural} of earlier sessions ({', '.join(parts)})"
    )


def _write_summary(
    terminalreporter: pytest.TerminalReporter,
    summary: Mapping[str, Any],
    verbosity: int,
) -> None:
    verbose = verbosity > 0
    kept, failed = summary["kept"], summary["failed"]
    swept = summary.get("swept", [])
    if not (kept or failed or swept or (verbose and _anything(summary))):
        return
    write = terminalreporter.write_line
    terminalreporter.section("cleanroom")
    if swept:
        write(f"{_swept_line(swept)}:")
        shown_swept = None if verbose else SUMMARY_LINES
        for entry in swept[:shown_swept]:
            write(
                f"    {entry['what']} of session {entry['session'][:12]}: "
                f"{entry['reason']}"
            )
        if shown_swept is not None and len(swept) > shown_swept:
            write(f"    ... and {len(swept) - shown_swept} more (-v lists them all)")
    counts = [
        f"{summary['cleaned']} cleaned",
        f"{len(kept)} kept",
        f"{len(failed)} failed",
    ]
    if verbose:
        counts.append(f"{summary['collected']} collected before their scope closed")
        counts.append(f"{summary['forgotten']} forgotten")
    if kept or failed or verbose:
        write(", ".join(counts))
    shown = None if verbose else SUMMARY_LINES
    _write_entries(write, kept, "kept", "kept", shown, verbose=verbose)
    _write_entries(
        write, failed, "failed to clean", "failed", shown, verbose=verbose, red=True
    )


def _write_entries(
    write: Callable[..., None],
    entries: Sequence[Mapping[str, Any]],
    verb: str,
    what: str,
    shown: int | None,
    *,
    verbose: bool,
    red: bool = False,
) -> None:
    """Write the first *shown* entries (all if ``None``) and how to delete them."""
    for entry in entries[:shown]:
        write(f"{verb} {_where(entry, verbose=verbose)}: {entry['reason']}", red=red)
        if entry["hint"]:
            write(f"    delete it with: {entry['hint']}")
    if shown is not None and len(entries) > shown:
        write(f"... and {len(entries) - shown} more {what} (-v lists them all)")


def _async_runner(item: pytest.Item) -> tuple[str, str] | None:
    """
    Tell which plugin runs the async test *item* and how long its event loop
    may live: ``("asyncio", loop scope)`` for pytest-asyncio, ``("anyio",
    the scope of anyio_backend)`` for anyio's plugin; ``None`` for the rest.
    """
    if not iscoroutinefunction(getattr(item, "obj", None)):
        return None
    config = item.config
    marker = item.get_closest_marker("asyncio")
    if marker is not None and config.pluginmanager.has_plugin("asyncio"):
        loop_scope = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope")
        if not loop_scope:
            try:
                loop_scope = config.getini("asyncio_default_test_loop_scope")
            except ValueError:  # pytest-asyncio before 0.26 has no such key
                loop_scope = None
        return "asyncio", str(loop_scope or "function")
    if "anyio_backend" in item.fixturenames:  # type: ignore[attr-defined]
        return "anyio", _fixture_scope(item, "anyio_backend")
    return None


def _fixture_scope(item: pytest.Item, name: str) -> str:
    """Return the scope of *item*'s fixture *name*: "function" if unknown."""
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.get(name) if info is not None else None
    return str(definitions[-1].scope) if definitions else "function"


def _journal_value(value: str, base: Path) -> str:
    if value.strip().lower() in {"off", "none", "0", "false", "no", ""}:
        return value
    return str((base / Path(value).expanduser()).absolute())


def _describe(disposition: Disposition, worker: str | None) -> dict[str, Any]:
    resource = disposition.resource
    return {
        "what": describe(resource),
        "scope": resource.scope,
        "reason": disposition.reason or "",
        # Objects live in this process only: there is nothing to delete by hand.
        "hint": (disposition.hint or "") if resource.declarative else "",
        "identity": {key: repr(value) for key, value in resource.identity.items()},
        "worker": worker,
    }


# -- hooks of every run --------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, apply the options and install the SIGTERM handler."""
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
    config.pluginmanager.register(
        _leaks_pytest.LeakPlugin(config), "cleanroom-leak-checks"
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    """Undo what :func:`pytest_configure` changed in the process."""
    plugin = config.stash.get(_PLUGIN, None)
    if plugin is not None:
        plugin.unconfigure()
        if plugin in _active:
            _active.remove(plugin)


def _anything(summary: Mapping[str, Any]) -> bool:
    return bool(
        summary["cleaned"]
        or summary["kept"]
        or summary["failed"]
        or summary["collected"]
        or summary["forgotten"]
    )


def _where(entry: Mapping[str, Any], *, verbose: bool) -> str:
    text = str(entry["what"])
    if entry["scope"]:
        text += f" of {entry['scope']}"
    if verbose:
        identity = entry.get("identity") or {}
        if identity:
            text += " (" + ", ".join(f"{k}={v}" for k, v in identity.items()) + ")"
        if entry.get("worker"):
            text += f" [{entry['worker']}]"
    return text


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture
def cleanroom() -> Iterator[Scope]:
    """
    A :class:`~cleanroom.Scope` for this test, cleaned by the test's outcome.

    .. versionadded:: 0.1.0
    """
    # No ``request`` argument: pytest builds three fixture definitions per
    # test for it, which would double this fixture's cost.
    plugin = _active[-1]
    scope, opened = plugin.open_test()
    yield scope
    plugin.close(opened)


@pytest.fixture
def resource_manager(cleanroom: Scope) -> Scope:
    """
    The test's scope under the name of the seed's fixture (same as ``cleanroom``).

    .. versionadded:: 0.1.0
    """
    return cleanroom


def _broad_scope(request: pytest.FixtureRequest) -> Iterator[Scope]:
    plugin = request.config.stash[_PLUGIN]
    scope, opened = plugin.open_broad(request.node)
    yield scope
    plugin.close(opened)


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
