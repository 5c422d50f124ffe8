"""
The pytest plugin's scopes: of tests, classes, modules and the session, closed
by the outcome of what they covered and, for async tests, in the event loop
that ran them; the sweep at the start of a run, and the summary at its end.

:mod:`cleanroom.pytest_plugin` imports this only in a run that uses cleanroom's
fixtures or marker, sweeps, or has something to report: pytest compiles a
plugin's modules afresh on every run where bytecode is not written.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from inspect import iscoroutinefunction
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import pytest

from . import _pytest_loops
from ._core import _session
from ._core._exceptions import PolicyError
from ._core._policy import Outcome, Policy
from ._core._registry import Registry
from ._core._resource import Disposition, describe
from ._core._scope import Scope
from ._core._settings import is_given
from ._leaks import _from_setting

if TYPE_CHECKING:
    from ._crash._retention import Retention
    from .pytest_plugin import _Plugin

#: How many kept and how many failed resources the summary lists without -v.
SUMMARY_LINES: Final = 20


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

    __slots__ = ("_scopes",)

    def __init__(self, scopes: Scopes) -> None:
        self._scopes = scopes

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Remember the test being set up."""
        self._scopes.item = item


class Scopes:
    """The scopes that cleanroom's fixtures hold open during one pytest run."""

    def __init__(self, run: _Plugin) -> None:
        self.run = run
        #: Open scopes of tests, by node id; of classes, modules and the session.
        self.tests: dict[str, _Open] = {}
        self.broad: list[_Open] = []
        #: The test being set up, once the tracker is registered.
        self.item: pytest.Item | None = None
        self.companions: ModuleType | None = None

    def track(self) -> None:
        """Track which test is set up (once cleanroom's fixtures are in use)."""
        if not self.run.active:
            self.run.active = True
            self.run.config.pluginmanager.register(_Tracker(self), "cleanroom-tracker")

    def open_test(self) -> tuple[Scope, _Open]:
        """Open the scope of the test being set up, with its markers' policy."""
        item = self.item
        if item is None:
            # Requested dynamically (request.getfixturevalue) by a suite that
            # names no cleanroom fixture statically: find the test by its id.
            item = self._current_item()
            self.track()
        settings = self.run.test_settings(item)
        nodeid = item.nodeid
        scope = Scope(nodeid, **settings)
        opened = _Open(scope, nodeid, self._failures(), broad=False)
        self.tests[nodeid] = opened
        scope.__enter__()
        return scope, opened

    def open_broad(self, node: pytest.Collector) -> tuple[Scope, _Open]:
        """Open the scope of a class, a module or the session."""
        self.track()
        settings = self.run.node_settings(node)
        nodeid = node.nodeid
        scope = Scope(nodeid or "pytest-session", **settings)
        opened = _Open(scope, nodeid, self._failures(), broad=True)
        self.broad.append(opened)
        scope.__enter__()
        return scope, opened

    def _current_item(self) -> pytest.Item:
        current = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
        session = self.run.session
        if session is not None:
            for item in session.items:
                if item.nodeid == current:
                    return item
        raise RuntimeError(f"cleanroom: cannot find the running test {current!r}")

    def _failures(self) -> int:
        session = self.run.session
        return session.testsfailed if session is not None else 0

    def outcome(self, opened: _Open) -> Outcome:
        """
        Judge what a scope covered: failed when a test failed (in any phase)
        while it was open — pytest's count of failures excludes expected ones,
        and skips count as passed — interrupted after Ctrl+C or SIGTERM.
        """
        if self._failures() > opened.failed_before:
            return Outcome.FAILED
        if self.run.interrupt is not None:
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
                    asyncio=self.run.config.pluginmanager.has_plugin("asyncio"),
                )
                self.run.config.pluginmanager.register(
                    self.companions, "cleanroom-loops"
                )
            at = next(
                (
                    index
                    for index, other in enumerate(names)
                    if _pytest_loops.SCOPES.index(_fixture_scope(item, other)) <= rank
                ),
                len(names),
            )
            names.insert(at, name)

    def close_all(self, write: Callable[[str], None]) -> None:
        """Close the scopes of fixtures that pytest never tore down."""
        for opened in [*self.tests.values(), *reversed(self.broad)]:
            try:
                self.close(opened, Outcome.INTERRUPTED)
            except Exception as exc:
                write(f"cleanroom: closing {opened.scope.name} failed: {exc!r}")


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


def terminate_workers() -> None:
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


def retention(config: pytest.Config) -> Retention:
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


def sweep_at_start(config: pytest.Config, session: str | None) -> list[dict[str, Any]]:
    """
    Remove what ended sessions left: orphans, kept resources past their
    retention, and names that kinds' declared prefix rules match; return what
    was removed, for the summary.
    """
    chosen = retention(config)
    try:
        from ._crash import _sweep

        report = _sweep.session_start_sweep(session, chosen)
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


def read_marker(
    node: pytest.Item | pytest.Collector, valid: tuple[str, ...]
) -> dict[str, Any]:
    """
    :func:`cleanroom.pytest_plugin.marker_settings`: the settings of the
    ``cleanroom`` markers on *node* and its parents, *valid* naming those a
    marker takes.
    """
    given: dict[str, Any] = {}
    for mark in node.iter_markers("cleanroom"):
        if mark.args:
            raise PolicyError(
                "@pytest.mark.cleanroom takes keyword arguments only, not "
                f"{mark.args!r}; valid: {', '.join(valid)}"
            )
        for key, value in mark.kwargs.items():
            given.setdefault(key, value)
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise PolicyError(
            f"unknown @pytest.mark.cleanroom setting{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; valid: {', '.join(valid)}"
        )
    # Checked, and acted on, by the leak plugin: a test's check spans its
    # fixtures, not only its scope.
    _from_setting(given.pop("check_leaks", None))
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


def configure_registry(
    run: _Plugin, options: dict[str, Any], ini: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """
    Give the registry the run's settings, checked at once, and note its
    report's counts; return its settings before, for :func:`restore_registry`.

    Raises:
        pytest.UsageError: On a bad setting, from anywhere.
    """
    registry = Registry.default()
    before = registry.settings()
    try:
        registry.configure(options=options, config=ini)
    except PolicyError as exc:
        raise pytest.UsageError(f"cleanroom: {exc}") from None
    report = registry.report
    run.baseline = (
        report,
        report.cleaned,
        len(report.kept),
        len(report.failed),
        report.collected,
        report.forgotten,
    )
    return before


def restore_registry(
    run: _Plugin, before: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """Give the registry its settings *before* the run, and its report's counts."""
    options, config = before
    registry = Registry.default()
    registry.configure(options=options, config=config)
    base, run.baseline = run.baseline, None
    if base is not None and base[0] is registry.report:
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


def local_summary(run: _Plugin) -> dict[str, Any]:
    """What this process's scopes did since the run began, as plain data."""
    report = Registry.default().report
    base = run.baseline
    if base is not None and base[0] is report:
        _, cleaned, kept, failed, collected, forgotten = base
    else:
        cleaned = kept = failed = collected = forgotten = 0
    config = run.config
    worker = config.workerinput["workerid"] if run.worker else None  # type: ignore[attr-defined]
    return {
        "cleaned": report.cleaned - cleaned,
        "collected": report.collected - collected,
        "forgotten": report.forgotten - forgotten,
        "kept": [_describe(d, worker) for d in report.kept[kept:]],
        "failed": [_describe(d, worker) for d in report.failed[failed:]],
    }


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


def gather(run: _Plugin) -> dict[str, Any]:
    """The local summary with those of xdist's workers added."""
    total = local_summary(run)
    total["swept"] = list(run.swept)
    for remote in run.remote:
        for key in ("cleaned", "collected", "forgotten"):
            total[key] += int(remote.get(key, 0))
        total["kept"].extend(remote.get("kept", ()))
        total["failed"].extend(remote.get("failed", ()))
    return total


def _anything(summary: Mapping[str, Any]) -> bool:
    return bool(
        summary["cleaned"]
        or summary["kept"]
        or summary["failed"]
        or summary["collected"]
        or summary["forgotten"]
    )


def write_summary(run: _Plugin, terminalreporter: pytest.TerminalReporter) -> None:
    """
    Show what was cleaned, kept (with why and how to delete it) and failed;
    nothing on a clean run unless ``-v`` is given.
    """
    summary = gather(run)
    verbose = run.config.get_verbosity() > 0
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
