"""
The check that brackets a block: baselines at the start, then after a grace
period spent polling until things settle, what is left over.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import attrs

from cleanroom._core._exceptions import LeakError, LeakWarning, PolicyError

from . import _fds, _objects, _origins, _processes, _tasks, _threads
from ._records import CATEGORIES, Allow, Leak

if TYPE_CHECKING:
    from ._memory import Tracer

OnLeak = Literal["raise", "warn"]
_ON_LEAK = ("raise", "warn")
# Checks that cannot run here, each said once per process.
_said: set[str] = set()
# Polling: first pause, and the longest.
_FIRST_PAUSE = 0.005
_LONGEST_PAUSE = 0.1


def _check_grace(_: object, __: object, value: float) -> None:
    if isinstance(value, bool) or value < 0:
        raise ValueError(f"grace must be a number of seconds >= 0, not {value!r}")


def _check_on_leak(_: object, __: object, value: str) -> None:
    if value not in _ON_LEAK:
        raise ValueError(
            f"on_leak must be one of {', '.join(map(repr, _ON_LEAK))}, not {value!r}"
        )


def _check_memory(_: object, __: object, value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or value < 0):
        raise ValueError(f"memory_mb must be None or a number >= 0, not {value!r}")


def _own() -> tuple[set[int], set[int], str | None]:
    """
    What cleanroom itself keeps for the whole run, started by whichever test
    first created a declarative resource: its reaper process, the reaper's
    pipe, and the journal's files (by path).
    """
    module = sys.modules.get("cleanroom._crash._recorder")
    found = None if module is None else module.existing()
    if found is None:
        return set(), set(), None
    pids: set[int] = set()
    fds: set[int] = set()
    reaper = found.reaper
    if reaper is not None:
        pids.add(reaper.pid)
        pipe = reaper.pipe
        if pipe is not None and not pipe.closed:
            fds.add(pipe.fileno())
    return pids, fds, str(found.path)


def format_report(leaks: list[Leak], what: str, grace: float) -> str:
    """The text of a report on *leaks* left behind by *what*."""
    count = f"{len(leaks)} thing{'s' if len(leaks) != 1 else ''}"
    head = f"{what} left {count} behind (after a {grace:g} s grace period):"
    return "\n".join(
        [head, *(f"- {str(leak).replace(chr(10), chr(10) + '  ')}" for leak in leaks)]
    )


@attrs.define
class LeakCheck:
    """
    A leak check around a block of code: what the block started or opened and
    left behind — threads, tasks, file descriptors, child processes, objects
    that outlived their scope and, opt-in, memory.

    Use it through :func:`~cleanroom.leaks.no_leaks` as a context manager
    (``with`` or ``async with``), or call :meth:`start` and :meth:`stop`.

    Args:
        threads: Check for threads left running.
        tasks: Check for asyncio tasks (and trio tasks, under trio) left
            pending.
        fds: Check for file descriptors left open: files, sockets, pipes.
        processes: Check for child processes left running or unwaited.
        objects: Check for objects cleaned by a scope during the block that
            are still alive after it and a garbage collection.
        memory_mb: Fail when memory traced by :mod:`tracemalloc` grew by more
            than this many MiB over the block; ``None`` (the default) does
            not measure memory, which slows the block down.
        grace: Seconds to wait, polling, for stragglers to finish before
            anything counts as leaked.
        allow: What may be left behind; :data:`~cleanroom.leaks.DEFAULT_ALLOW`
            is added unless it says ``defaults=False``.
        on_leak: ``"raise"`` a :class:`~cleanroom.LeakError`, or ``"warn"``
            with a :class:`~cleanroom.exceptions.LeakWarning`.
        name: What is checked, for the report (a test, a scope).

    Attributes:
        leaks: What the last :meth:`stop` found.

    .. versionadded:: 0.2.0
    """

    threads: bool = True
    tasks: bool = True
    fds: bool = True
    processes: bool = True
    objects: bool = True
    memory_mb: float | None = attrs.field(default=None, validator=_check_memory)
    grace: float = attrs.field(default=1.0, validator=_check_grace)
    allow: Allow = attrs.field(factory=Allow)
    on_leak: OnLeak = attrs.field(default="raise", validator=_check_on_leak)
    name: str | None = None
    leaks: list[Leak] = attrs.field(factory=list, init=False)
    _baseline: dict[str, Any] = attrs.field(factory=dict, init=False, repr=False)
    _phases: list[tuple[str, dict[str, Any]]] = attrs.field(
        factory=list, init=False, repr=False
    )
    _watch: _objects.Watch | None = attrs.field(default=None, init=False, repr=False)
    _tracer: Tracer | None = attrs.field(default=None, init=False, repr=False)
    _instrument: Any = attrs.field(default=None, init=False, repr=False)
    _running: bool = attrs.field(default=False, init=False, repr=False)
    _transient: tuple[object, ...] = attrs.field(default=(), init=False, repr=False)

    # -- snapshots ---------------------------------------------------------------

    def _enabled(self) -> list[str]:
        enabled = []
        if self.threads:
            enabled.append("thread")
        if self.tasks:
            enabled.append("task")
        if self.fds and self._can("fd", _fds.available()):
            enabled.append("fd")
        if self.processes and self._can("process", _processes.available()):
            enabled.append("process")
        return enabled

    def _can(self, category: str, reason: str | None) -> bool:
        if reason is None:
            return True
        if category not in _said:
            _said.add(category)
            warnings.warn(
                LeakWarning(
                    f"{reason}, so leaked {category}s are not checked; "
                    "install cleanroom[leaks] to check them"
                ),
                stacklevel=4,
            )
        return False

    def _take(self) -> dict[str, Any]:
        taken: dict[str, Any] = {}
        for category in self._enabled():
            if category == "thread":
                taken[category] = _threads.take()
            elif category == "task":
                taken[category] = _tasks.take()
            elif category == "fd":
                taken[category] = _fds.take()
            else:
                taken[category] = _processes.take()
        return taken

    def _new(self, *, detail: bool) -> list[tuple[object, Leak]]:
        allow = self.allow.effective()
        found: list[tuple[object, Leak]] = []
        baseline = self._baseline
        pids: set[int] = set()
        fds: set[int] = set()
        journal: str | None = None
        if "fd" in baseline or "process" in baseline:
            pids, fds, journal = _own()
        if journal is not None:
            # The journal's database and sqlite's -wal, -shm, -journal files.
            allow |= Allow(fds=(journal, f"{journal}-*"))
        if "thread" in baseline:
            found += _threads.new_since(baseline["thread"], allow)
        if "task" in baseline:
            found += _tasks.new_since(baseline["task"], allow)
        if "fd" in baseline:
            found += _fds.new_since(baseline["fd"], allow, fds, detail=detail)
        if "process" in baseline:
            found += _processes.new_since(baseline["process"], allow, pids)
        return found

    def _object_leaks(self) -> list[Leak]:
        watch = self._watch
        if watch is None or not watch.refs or not watch.alive():
            return []
        import gc

        gc.collect()
        alive = watch.alive()
        return _objects.report(alive, self._transient) if alive else []

    # -- the check ---------------------------------------------------------------

    def start(self) -> None:
        """
        Take the baselines: what exists now is never reported.

        Raises:
            RuntimeError: When the check is already running.
        """
        if self._running:
            raise RuntimeError(f"{self!r} is already running")
        self.leaks = []
        self._phases = []
        _origins.install()
        self._running = True
        self._baseline = self._take()
        if self.objects:
            self._watch = _objects.Watch().__enter__()
        if self.memory_mb is not None:
            from ._memory import Tracer

            self._tracer = Tracer()
            self._tracer.start()

    async def astart(self) -> None:
        """
        As :meth:`start`, inside an event loop; under trio it also notes where
        tasks are spawned, for the report.
        """
        self.start()
        self._instrument = _add_instrument()

    @property
    def running(self) -> bool:
        """Whether the check has started and not stopped yet."""
        return self._running

    def mark(self, phase: str) -> None:
        """
        Note that the block's *phase* ended, so that reports say in which
        phase each leak appeared (pytest's plugin marks setup and call).
        """
        self._phases.append((phase, self._take()))

    @contextlib.contextmanager
    def ignoring(self) -> Iterator[None]:
        """
        Add to the baselines whatever appears during the ``with`` block, so
        that it is never reported: pytest's plugin wraps the setup of class,
        module and session fixtures in it, as what they set up is theirs.
        """
        self._require_running()
        before = self._take()
        try:
            yield
        finally:
            if self._running:
                after = self._take()
                for category, taken in after.items():
                    baseline = self._baseline.get(category)
                    old = before.get(category, ())
                    if isinstance(baseline, dict):
                        baseline.update(
                            (k, v) for k, v in taken.items() if k not in old
                        )
                    elif isinstance(baseline, set):
                        baseline.update(k for k in taken if k not in old)

    def _settled(self) -> bool:
        """Whether nothing is left over now; :meth:`_finish` reports what is."""
        return not self._new(detail=False) and not self._object_leaks()

    def _finish(self, phase: str | None) -> list[Leak]:
        try:
            found = self._new(detail=True)
            leaks = [
                attrs.evolve(leak, phase=self._phase_of(key, leak, phase))
                for key, leak in found
            ]
            leaks += [attrs.evolve(leak, phase=phase) for leak in self._object_leaks()]
            if self._tracer is not None and self.memory_mb is not None:
                from ._memory import leak

                grown, top = self._tracer.growth()
                memory = leak(grown, self.memory_mb, top)
                if memory is not None:
                    leaks.append(attrs.evolve(memory, phase=phase))
        finally:
            self._transient = ()
            self._close()
        order = {category: index for index, category in enumerate(CATEGORIES)}
        leaks.sort(key=lambda leak: order[leak.category])
        self.leaks = leaks
        return leaks

    def _phase_of(self, key: object, leak: Leak, last: str | None) -> str | None:
        for phase, taken in self._phases:
            found = taken.get(leak.category, ())
            if leak.category == "fd":
                # Descriptors are keyed by (number, target): numbers are reused.
                pair: Any = key
                if found.get(pair[0]) == pair[1]:
                    return phase
            elif key in found:
                return phase
        return last if self._phases or last else None

    def _close(self) -> None:
        if not self._running:
            return
        self._running = False
        self._baseline = {}
        self._phases = []
        if self._watch is not None:
            self._watch.__exit__(None, None, None)
            self._watch = None
        if self._tracer is not None:
            self._tracer.stop()
            self._tracer = None
        if self._instrument is not None:
            _remove_instrument(self._instrument)
            self._instrument = None
        _origins.uninstall()

    def stop(
        self, phase: str | None = None, *, transient: Iterable[object] = ()
    ) -> list[Leak]:
        """
        Wait up to the grace period for stragglers, polling, and return what
        is still left over (also kept in :attr:`leaks`). It neither raises nor
        warns: :meth:`conclude` does.

        Args:
            phase: The phase that ends now, for leaks that no :meth:`mark`
                saw.
            transient: Objects about to be dropped (pytest's plugin passes a
                test's fixture values, which pytest keeps until just after
                teardown): cleaned objects they hold are not reported.
        """
        self._require_running()
        self._transient = tuple(transient)
        deadline = time.monotonic() + self.grace
        pause = _FIRST_PAUSE
        while not self._settled():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(pause, left))
            pause = min(pause * 2, _LONGEST_PAUSE)
        return self._finish(phase)

    async def astop(self, phase: str | None = None) -> list[Leak]:
        """
        As :meth:`stop`, but waits with the event loop running, so that
        tasks about to finish can.
        """
        import anyio
        import anyio.lowlevel

        self._require_running()
        deadline = time.monotonic() + self.grace
        pause = _FIRST_PAUSE
        with anyio.CancelScope(shield=True):
            # Let tasks scheduled a moment ago take their first step.
            await anyio.lowlevel.checkpoint()
            while not self._settled():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                await anyio.sleep(min(pause, left))
                pause = min(pause * 2, _LONGEST_PAUSE)
        return self._finish(phase)

    def _require_running(self) -> None:
        if not self._running:
            raise RuntimeError(f"{self!r} was not started")

    def report(self) -> str:
        """The text of the report on :attr:`leaks`."""
        return format_report(self.leaks, self.name or "the checked code", self.grace)

    def conclude(self, exc: BaseException | None = None) -> None:
        """
        Raise or warn, per ``on_leak``, when :attr:`leaks` is not empty.

        Args:
            exc: The exception the checked block raised, if any: the report
                is added to it as a note instead, so that it stays the error.

        Raises:
            LeakError: When something leaked and ``on_leak`` is ``"raise"``.
        """
        if not self.leaks:
            return
        if exc is not None:
            exc.add_note(self.report())
            return
        if self.on_leak == "warn":
            warnings.warn(LeakWarning(self.report()), stacklevel=3)
            return
        raise LeakError(self.report(), self.leaks)

    # -- context managers ----------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self.conclude(exc)

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()
        self.conclude(exc)


_SETTINGS = (
    "True",
    "False",
    "'raise'",
    "'warn'",
    "'off'",
    "a dict of no_leaks() settings",
)


def from_setting(setting: object) -> LeakCheck | None:
    """
    Turn a ``check_leaks`` setting into a new check, or ``None`` for none:
    ``True`` or ``"raise"``, ``"warn"``, ``False`` or ``"off"``, a mapping of
    :func:`~cleanroom.leaks.no_leaks` settings, or a :class:`LeakCheck` to copy.

    Raises:
        PolicyError: On any other value; the message lists the valid ones.
    """
    if setting is None or setting is False or setting == "off":
        return None
    if setting is True or setting == "raise":
        return LeakCheck()
    if setting == "warn":
        return LeakCheck(on_leak="warn")
    if isinstance(setting, LeakCheck):
        return attrs.evolve(setting)
    if isinstance(setting, Mapping):
        try:
            return LeakCheck(**setting)
        except (TypeError, ValueError) as exc:
            raise PolicyError(f"bad check_leaks settings {setting!r}: {exc}") from None
    raise PolicyError(
        f"check_leaks must be {', '.join(_SETTINGS[:-1])} or {_SETTINGS[-1]}, "
        f"not {setting!r}"
    )


def _add_instrument() -> Any:
    """Under trio, note where tasks are spawned; return what to remove."""
    trio = sys.modules.get("trio")
    if trio is None:
        return None
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return None

    class SpawnSites(trio.abc.Instrument):  # type: ignore[misc, name-defined]
        def task_spawned(self, task: Any) -> None:
            origin = _origins.where(sys._getframe(1))  # noqa: SLF001 (documented CPython API)
            if origin is not None:
                _origins.started[task] = origin

    instrument = SpawnSites()
    trio.lowlevel.add_instrument(instrument)
    return instrument


def _remove_instrument(instrument: Any) -> None:
    trio = sys.modules.get("trio")
    if trio is None:
        return
    # The run may have ended, or the instrument be gone already.
    with contextlib.suppress(RuntimeError, KeyError):
        trio.lowlevel.remove_instrument(instrument)
