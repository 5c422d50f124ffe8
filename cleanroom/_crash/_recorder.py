"""
The recorder: the registry listener that writes this process's declarative
resources to the journal, registers the process as an owner and starts its
reaper.

The registry attaches it on the first declarative resource, so a process
that never creates one never opens the journal nor starts a reaper.
"""

# Failures here are expected ones (an unwritable cache directory, a full disk):
# the log names the cause, and a traceback would only be noise.
# ruff: noqa: TRY400

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import subprocess
import threading
import time
from typing import IO, TYPE_CHECKING, Any

from cleanroom._core._session import TOKEN_ENV, Owner, current_owner
from cleanroom._core._settings import PYPROJECT_ENV, find_pyproject

from . import _reaper
from ._journal import Journal
from ._location import journal_path

if TYPE_CHECKING:
    from pathlib import Path

    from cleanroom._core._registry import Registry
    from cleanroom._core._resource import Disposition, Kind, Resource
    from cleanroom._core._scope import Scope

log = logging.getLogger("cleanroom")

#: The states of settled resources, as the registry and the journal name them.
_SETTLED_STATES = frozenset({"cleaned", "kept", "failed", "forgotten"})


class ReaperProcess(subprocess.Popen[bytes]):
    """
    A reaper as its owner holds it: the owner never waits for it, and it
    outlives the owner on purpose.

    .. versionadded:: 0.1.0
    """

    def __del__(self, *args: Any, **kwargs: Any) -> None:
        # Popen warns about a child that still runs when it is collected; a
        # reaper is meant to run until its owner is gone.
        return

    @property
    def pipe(self) -> IO[bytes] | None:
        """The owner's end of the pipe; when it closes, the reaper acts."""
        return self.stdin


def start_reaper(journal: Path, owner: Owner) -> ReaperProcess:
    """
    Start the reaper of *owner*, which journals into *journal*.

    The reaper runs in a session of its own, with ``/`` as its directory and
    its output discarded (or appended to ``CLEANROOM_REAPER_LOG``); its
    standard input is a pipe whose other end only this process holds.

    Returns:
        The reaper process; keep it, and its pipe, for the rest of the
        process's life.

    Raises:
        OSError: When the process cannot be started.

    .. versionadded:: 0.1.0
    """
    env = dict(os.environ)
    # The owner may run under a popen() token itself; its reaper must not be
    # taken for one of the owner's children.
    env.pop(TOKEN_ENV, None)
    # The reaper runs in "/": tell it which project's settings (custom levels,
    # declared command kinds) its owner uses.
    project = find_pyproject()
    if project is not None:
        env[PYPROJECT_ENV] = str(project)
    log_file = env.get(_reaper.REAPER_LOG_ENV, "").strip()
    stderr: Any = subprocess.DEVNULL
    if log_file:
        stderr = open(log_file, "ab")  # noqa: SIM115, PTH123
    try:
        return ReaperProcess(
            _reaper.command(str(journal), owner),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
            close_fds=True,
            cwd="/",
            env=env,
        )
    finally:
        if log_file:
            stderr.close()


class Recorder:
    """
    Writes declarative resources to the journal as a registry
    :class:`~cleanroom.Listener`: an ``intent`` row before a resource is
    created, then its creation and what became of it.

    Journaling never breaks the code that creates resources: a journal that
    cannot be written is reported in the log once, and resources are still
    cleaned in process.

    Args:
        path: The journal file.

    .. versionadded:: 0.1.0
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._journal: Journal | None = None
        self._owner: Owner | None = None
        self._generation = 0
        self._broken = False
        self._reaper: ReaperProcess | None = None
        #: The registries this recorder journals for.
        self.registries: list[Registry] = []
        #: Per live resource's id: its row's values, to write it again into a
        #: journal that had to be replaced.
        self._rows: dict[int, dict[str, Any]] = {}
        self._module_of: dict[int, str | None] = {}
        self._atexit = False

    @property
    def owner(self) -> Owner | None:
        """This process as the journal knows it, once it journaled something."""
        return self._owner

    @property
    def reaper(self) -> ReaperProcess | None:
        """The reaper process, once started."""
        return self._reaper

    def watch(self, registry: Registry) -> None:
        """Close *registry*'s session scope before marking the owner closed at exit."""
        with self._lock:
            if all(r is not registry for r in self.registries):
                self.registries.append(registry)

    # -- the journal and the owner ------------------------------------------------

    def _ready(self) -> Journal | None:
        """Open the journal and record the owner on first use; ``None`` if broken."""
        journal = self._journal
        owner = current_owner()
        if journal is not None and self._owner is owner:
            return journal
        if self._broken:
            return None
        with self._lock:
            if self._journal is not None and self._owner is owner:
                return self._journal
            try:
                journal = self._journal or Journal(self.path)
                journal.add_owner(owner, command=_command(), policy=_policy())
            except Exception as exc:
                self._broken = True
                log.error(
                    "cleanroom cannot journal to %s (%s); resources are still "
                    "cleaned by this process, but not after it is killed",
                    self.path,
                    exc,
                )
                return None
            self._journal = journal
            self._generation = journal.generation
            self._owner = owner
            self._start_reaper(journal, owner)
            if not self._atexit:
                atexit.register(self._at_exit)
                self._atexit = True
        return journal

    def _start_reaper(self, journal: Journal, owner: Owner) -> None:
        if not _reaper.enabled():
            return
        try:
            process = start_reaper(journal.path, owner)
        except OSError as exc:
            log.error("cannot start the cleanroom reaper: %s", exc)
            return
        self._reaper = process
        try:
            journal.set_reaper(owner.id, process.pid)
        except Exception as exc:
            log.debug("cannot record the reaper's pid: %s", exc)

    def _rejournal(self, journal: Journal, owner: Owner) -> None:
        """Write the owner and the live rows again, into a journal that was replaced."""
        with self._lock:
            if journal.generation == self._generation:
                return
            self._generation = journal.generation
            live = list(self._rows.items())
        try:
            journal.add_owner(owner, command=_command(), policy=_policy())
            if self._reaper is not None:
                journal.set_reaper(owner.id, self._reaper.pid)
            for key, values in live:
                journal.insert(owner, uid=self._uid(owner, key), **values)
        except Exception as exc:
            log.error("cannot restore the journal %s: %s", journal.path, exc)
        else:
            log.warning(
                "restored %d live resources into the fresh journal %s",
                len(live),
                journal.path,
            )

    def _write(
        self, journal: Journal, owner: Owner, key: int, changes: dict[str, Any]
    ) -> None:
        """Update the row of resource *key*, or write it whole if it is missing."""
        uid = self._uid(owner, key)
        values = self._rows.get(key)
        try:
            changed = journal.update_uid(uid, **changes)
            if not changed and values is not None:
                # The row is gone with a journal that had to be replaced.
                journal.insert(owner, uid=uid, **{**values, **changes})
        except Exception as exc:
            log.error("cleanroom could not journal resource %s: %s", key, exc)
        if journal.generation != self._generation:
            self._rejournal(journal, owner)

    @staticmethod
    def _uid(owner: Owner, key: int) -> str:
        return f"{owner.id}:{key}"

    # -- the Listener protocol ------------------------------------------------------

    def intent(self, scope: Scope, resource: Resource) -> None:
        """Write an ``intent`` row: *resource* is about to be created."""
        self._record(scope, resource, "intent")

    def created(self, scope: Scope, resource: Resource) -> None:
        """Record that *resource* exists now."""
        self._record(scope, resource, "created")

    def _record(self, scope: Scope, resource: Resource, state: str) -> None:
        if not resource.declarative:
            return
        journal = self._ready()
        owner = self._owner
        if journal is None or owner is None:
            return
        key = resource.id
        values = self._rows.get(key)
        if values is None:
            kind = _kind(resource.kind)
            values = {
                "scope": resource.scope or scope.name,
                "kind": resource.kind,
                "module": self._module(kind),
                "name": resource.name,
                "identity": dict(resource.identity),
                "state": state,
                "on_interrupt": _on_interrupt(scope, kind),
                "created": resource.created,
            }
            with self._lock:
                self._rows[key] = values
            try:
                journal.insert(owner, uid=self._uid(owner, key), **values)
            except Exception as exc:
                log.error("cleanroom could not journal %r: %s", resource, exc)
            if journal.generation != self._generation:
                self._rejournal(journal, owner)
            return
        changes = {
            "name": resource.name,
            "identity": dict(resource.identity),
            "state": state,
        }
        values.update(changes)
        self._write(journal, owner, key, changes)

    def settled(self, scope: Scope, disposition: Disposition) -> None:  # noqa: ARG002
        """Record what became of a journaled resource."""
        resource = disposition.resource
        journal, owner = self._journal, self._owner
        if journal is None or owner is None or resource.id not in self._rows:
            return
        state = disposition.state.value
        if state not in _SETTLED_STATES:
            return
        changes: dict[str, Any] = {"state": state, "actor": "owner"}
        if disposition.reason is not None:
            changes["reason"] = disposition.reason
        if disposition.hint is not None:
            changes["hint"] = disposition.hint
        if state == "kept":
            changes["expires"] = _kept_until()
        self._write(journal, owner, resource.id, changes)
        with self._lock:
            self._rows.pop(resource.id, None)

    # -- helpers --------------------------------------------------------------------

    def _module(self, kind: Kind | None) -> str | None:
        if kind is None:
            return None
        key = id(kind)
        try:
            return self._module_of[key]
        except KeyError:
            module = self._module_of[key] = kind_module(kind)
            return module

    def _at_exit(self) -> None:
        for registry in list(self.registries):
            registry.close_quietly()
        owner, journal = self._owner, self._journal
        if owner is None or journal is None or owner.pid != os.getpid():
            return
        try:
            journal.close_owner(owner.id)
        except Exception as exc:
            log.debug("cannot mark the owner closed: %s", exc)

    def close(self) -> None:
        """
        Stop journaling: mark the owner closed, tell the reaper to exit
        without cleaning, and close the journal. Resources still tracked are
        left to the next sweep.
        """
        with self._lock:
            owner, journal, reaper = self._owner, self._journal, self._reaper
            self._owner = self._journal = self._reaper = None
            self._rows = {}
            self._broken = True
        if owner is not None and journal is not None and owner.pid == os.getpid():
            with contextlib.suppress(Exception):
                journal.close_owner(owner.id)
        if reaper is not None and reaper.pipe is not None:
            with contextlib.suppress(OSError):
                reaper.pipe.write(_reaper.BYE)
                reaper.pipe.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                reaper.wait(timeout=5)
        if journal is not None:
            journal.close()

    def after_fork(self) -> None:
        """Forget the parent's connection, owner, rows and reaper in a forked child."""
        journal, reaper = self._journal, self._reaper
        self._journal = None
        self._owner = None
        self._reaper = None
        self._rows = {}
        self._broken = False
        if journal is not None:
            journal.abandon()
        if reaper is not None:
            # The parent's reaper must see end-of-file when the parent dies,
            # whatever this child does.
            pipe = reaper.pipe
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
            _forked_reapers.append(reaper)


_forked_reapers: list[object] = []


def _kind(name: str) -> Kind | None:
    from cleanroom._core._resource import get_kind
    from cleanroom.exceptions import UnknownKindError

    try:
        return get_kind(name)
    except UnknownKindError:
        return None


def kind_module(kind: Kind) -> str | None:
    """
    Return the module that, imported in another process, registers *kind*.

    Kinds of installed backends are found through their entry points anyway;
    this names the module of a kind registered elsewhere (a conftest, a
    test helper), which the reaper and the sweep import to find it.

    .. versionadded:: 0.1.0
    """
    from cleanroom._core._resource import kind_origin

    return kind_origin(kind)


def _on_interrupt(scope: Scope, kind: Kind | None) -> str:
    if kind is None:
        return "clean"
    from cleanroom._core._policy import Decision, Outcome

    try:
        decision = scope.policy.decide(kind, Outcome.INTERRUPTED)
    except Exception:
        return "clean"
    return "clean" if decision is Decision.CLEAN else "keep"


def _kept_until() -> float | None:
    from ._retention import Retention

    try:
        seconds = Retention.resolve().age
    except ValueError as exc:
        log.error("bad retention setting: %s", exc)
        return None
    return None if seconds is None else time.time() + seconds


def _command() -> str:
    from cleanroom._core._session import command

    return command()


def _policy() -> dict[str, Any]:
    from cleanroom._core._registry import Registry

    try:
        policy = Registry.default().base_policy()
    except Exception:
        return {}
    return {"level": policy.level.name, "timeout": policy.timeout, "wait": policy.wait}


_recorder: Recorder | None = None
_recorder_lock = threading.Lock()
_resolved = False


def recorder() -> Recorder | None:
    """
    Return the process's recorder, or ``None`` when journaling is off.

    .. versionadded:: 0.1.0
    """
    global _recorder, _resolved  # noqa: PLW0603
    if _resolved:
        return _recorder
    with _recorder_lock:
        if not _resolved:
            try:
                path = journal_path()
            except Exception as exc:
                log.error("cannot tell where to journal: %s", exc)
                path = None
            _recorder = Recorder(path) if path is not None else None
            _resolved = True
    return _recorder


def existing() -> Recorder | None:
    """
    Return the process's recorder if one was made, without making one (leak
    checks ask it which processes and files are cleanroom's own).

    .. versionadded:: 0.2.0
    """
    return _recorder


def attach(registry: Registry) -> None:
    """
    Subscribe the process's recorder to *registry*; never raises.

    The registry calls this on its first declarative resource.

    .. versionadded:: 0.1.0
    """
    try:
        found = recorder()
        if found is not None:
            found.watch(registry)
            registry.subscribe(found)
    except Exception as exc:
        log.error("cannot attach the cleanroom journal: %s", exc)


def reset() -> None:
    """
    Close the process's recorder (see :meth:`Recorder.close`) and forget it,
    so that the next declarative resource reads ``CLEANROOM_JOURNAL`` again.

    .. versionadded:: 0.1.0
    """
    from cleanroom._core._registry import Registry

    global _recorder, _resolved
    with _recorder_lock:
        found, _recorder, _resolved = _recorder, None, False
    registries = [Registry.default()]
    if found is not None:
        registries += found.registries
        found.close()
    for registry in registries:
        if found is not None:
            registry.unsubscribe(found)
        registry.rearm()


def _after_fork() -> None:
    found = _recorder
    if found is not None:
        found.after_fork()


os.register_at_fork(after_in_child=_after_fork)
