"""
Signals: SIGTERM unwinds the main thread so that pending cleanups run, and an
interrupt that arrives while cleanups run waits until they are done.

Python turns SIGINT into :exc:`KeyboardInterrupt`, so ``with`` blocks and
``finally`` clauses run on Ctrl+C; but SIGTERM — what CI systems, container
runtimes and process managers send to stop a job — kills the process on the
spot, and nothing is cleaned. :func:`install` makes SIGTERM raise
:exc:`Terminated` in the main thread instead: a :exc:`KeyboardInterrupt` (so
test runners stop, and ``except Exception`` does not swallow it) that is also
a :exc:`SystemExit` with code 143, so an uncaught one ends the process with the
status a shell reports for SIGTERM.

While a scope's cleanups run in the main thread (:data:`cleaning`), SIGINT and
SIGTERM are held back and delivered when they finish, so a second Ctrl+C does
not abort the cleanup that the first one started. Three more Ctrl+C abort it
after all.

Set ``CLEANROOM_SIGNALS=0`` to leave the process's signal handlers alone.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ._exceptions import Terminated

if TYPE_CHECKING:
    from types import FrameType, TracebackType

    Handler = Callable[[int, FrameType | None], Any] | int | None

# The C module's getsignal() and signal() skip the enum conversions of the
# ``signal`` module's wrappers, which cost microseconds on every cleanup.
if TYPE_CHECKING:
    import signal as _raw
else:
    try:
        import _signal as _raw
    except ImportError:  # pragma: no cover - other implementations
        import signal as _raw

#: Exit status of a process ended by SIGTERM, as shells report it.
EXIT_SIGTERM: Final = 128 + signal.SIGTERM
#: Exit status of a process ended by SIGINT (Ctrl+C), as shells report it.
EXIT_SIGINT: Final = 128 + signal.SIGINT

#: Deferred Ctrl+C presses after which a cleanup is aborted after all.
ABORT_AFTER: Final = 3

_main_ident: int | None = threading.main_thread().ident

#: Whether the main thread has decided about the SIGTERM handler (installed
#: it, found SIGTERM ignored, or was told to keep out); checked on every root
#: scope, so it is a plain module global.
decided = False
_installed = False
_owner_pid = 0
_previous_sigterm: Handler = None

#: Called first when SIGTERM arrives (see :func:`on_sigterm`).
_sigterm_hooks: list[Callable[[], None]] = []

_depth = 0
_saved_sigint: Handler = None
_pending: list[int] = []
_interrupts = 0
# Whether the outermost guard says nothing of a held Ctrl+C.
_quiet = False
_received: list[int] = []


def _disabled() -> bool:
    value = os.environ.get("CLEANROOM_SIGNALS", "").strip().lower()
    return value in {"0", "false", "no", "off"}


def _in_main_thread() -> bool:
    return threading.get_ident() == _main_ident


def install() -> bool:
    """
    Make SIGTERM raise :exc:`Terminated` in the main thread.

    A handler installed before is chained: it is called first, then
    :exc:`Terminated` is raised. An ignored SIGTERM stays ignored. Calling this
    again, or from another thread than the main one, does nothing. A process
    forked from this one keeps the default behaviour of SIGTERM.

    Returns:
        ``True`` when this call installed the handler (and :func:`uninstall`
        may remove it), ``False`` otherwise.

    .. versionadded:: 0.1.0
    """
    global decided, _installed, _owner_pid, _previous_sigterm  # noqa: PLW0603
    if _installed or not _in_main_thread():
        return False
    if _disabled():
        decided = True
        return False
    try:
        previous = _raw.getsignal(signal.SIGTERM)
        if previous == signal.SIG_IGN:
            decided = True
            return False
        _raw.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # pragma: no cover - embedded interpreters
        decided = True
        return False
    _previous_sigterm = previous
    _owner_pid = os.getpid()
    _installed = decided = True
    return True


def install_lazily() -> None:
    """
    Install the SIGTERM handler on first use of cleanroom in the main thread.

    Called when a root scope is created; the check is one global lookup once
    the main thread has decided.

    .. versionadded:: 0.1.0
    """
    if not decided and _in_main_thread():
        install()


def uninstall() -> None:
    """
    Restore the SIGTERM handler that :func:`install` replaced, if it is still ours.

    .. versionadded:: 0.1.0
    """
    global decided, _installed, _previous_sigterm  # noqa: PLW0603
    if not _installed or not _in_main_thread():
        return
    if _raw.getsignal(signal.SIGTERM) is _on_sigterm:
        previous = _previous_sigterm
        _raw.signal(signal.SIGTERM, _raw.SIG_DFL if previous is None else previous)
    _previous_sigterm = None
    _installed = decided = False


def on_sigterm(hook: Callable[[], None]) -> Callable[[], None]:
    """
    Call *hook* as soon as this process receives SIGTERM, before anything
    else (even during a cleanup, which holds the signal itself back) — to
    pass the signal on to worker processes at once, say.

    Returns:
        What removes the hook again.

    .. versionadded:: 0.1.0
    """
    _sigterm_hooks.append(hook)

    def remove() -> None:
        if hook in _sigterm_hooks:
            _sigterm_hooks.remove(hook)

    return remove


def received() -> tuple[int, ...]:
    """
    Return the signals that cleanroom's handlers received, oldest first.

    .. versionadded:: 0.1.0
    """
    return tuple(_received)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _owner_pid:
        # A forked child inherited the handler: behave as if it were not there.
        _die_of(signum, _previous_sigterm, frame)
        return
    _received.append(signum)
    for hook in tuple(_sigterm_hooks):
        try:
            hook()
        except Exception as exc:  # a hook must not stop the unwinding
            sys.stderr.write(f"cleanroom: a SIGTERM hook failed: {exc!r}\n")
    if _depth:
        _pending.append(signum)
        return
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
    trio_handler = _trio_handler()
    if trio_handler is not None:
        # Raising inside Trio's own machinery would corrupt it; Trio delivers
        # its KeyboardInterrupt at the next checkpoint instead.
        trio_handler(signal.SIGINT, frame)
        return
    raise Terminated(signum)


def _die_of(signum: int, previous: Handler, frame: FrameType | None) -> None:
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    _raw.signal(signum, _raw.SIG_DFL)
    os.kill(os.getpid(), signum)


def _trio_handler() -> Callable[[int, FrameType | None], Any] | None:
    """Return Trio's SIGINT handler when Trio runs in KI-protected code now."""
    trio = sys.modules.get("trio")
    if trio is None:
        return None
    handler = _raw.getsignal(signal.SIGINT)
    if not callable(handler) or not str(getattr(handler, "__module__", "")).startswith(
        "trio."
    ):
        return None
    try:
        protected = (
            trio.lowlevel.in_trio_run() and trio.lowlevel.currently_ki_protected()
        )
    except Exception:
        return None
    return handler if protected else None


def _on_sigint_while_cleaning(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
    global _interrupts  # noqa: PLW0603
    _received.append(signum)
    _interrupts += 1
    if _interrupts >= ABORT_AFTER:
        _restore_sigint()
        _pending.clear()
        raise KeyboardInterrupt
    if signum not in _pending:
        _pending.append(signum)
    if _interrupts == 1 and not _quiet:
        sys.stderr.write(
            "\ncleanroom: cleaning up; the interrupt is delivered when the "
            f"cleanup is done (press Ctrl+C {ABORT_AFTER - 1} more times to "
            "abort it)\n"
        )
        sys.stderr.flush()


def _hold_sigint() -> None:
    global _saved_sigint, _interrupts  # noqa: PLW0603
    _interrupts = 0
    try:
        current = _raw.getsignal(signal.SIGINT)
        if current is None or current == signal.SIG_IGN:
            return
        _raw.signal(signal.SIGINT, _on_sigint_while_cleaning)
    except (ValueError, OSError):  # pragma: no cover - embedded interpreters
        return
    _saved_sigint = current


def _restore_sigint() -> None:
    global _saved_sigint
    saved, _saved_sigint = _saved_sigint, None
    if saved is None:
        return
    try:
        if _raw.getsignal(signal.SIGINT) is _on_sigint_while_cleaning:
            _raw.signal(signal.SIGINT, saved)
    except (ValueError, OSError):  # pragma: no cover - embedded interpreters
        pass


def _enter(*, quiet: bool) -> None:
    global _depth, _quiet  # noqa: PLW0603
    _depth += 1
    if _depth == 1:
        _quiet = quiet
        _hold_sigint()


def _leave(exc: BaseException | None, *, drop: bool) -> None:
    global _depth  # noqa: PLW0603
    _depth -= 1
    if _depth > 0:
        return
    _depth = 0
    _restore_sigint()
    if not _pending:
        return
    signum = signal.SIGTERM if signal.SIGTERM in _pending else signal.SIGINT
    _pending.clear()
    if drop:
        return
    if isinstance(exc, KeyboardInterrupt) and (
        isinstance(exc, Terminated) or signum != signal.SIGTERM
    ):
        # The program is stopping already, for the same reason or a stronger one.
        return
    signal.raise_signal(signum)


class Cleaning:
    """
    A context manager that marks "cleanup in progress" in the main thread:
    SIGINT and SIGTERM received inside it are delivered when the outermost one
    exits (elsewhere it does nothing).

    Args:
        drop: Forget held signals instead of delivering them, for code that
            ends the program anyway (a test session's last teardown).
        quiet: Say nothing of a held Ctrl+C; for short sections, such as the
            creation of a resource, that are not cleanups.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_drop", "_quiet")

    def __init__(self, *, drop: bool = False, quiet: bool = False) -> None:
        self._drop = drop
        self._quiet = quiet

    def __enter__(self) -> None:
        if threading.get_ident() == _main_ident:
            _enter(quiet=self._quiet)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if threading.get_ident() == _main_ident:
            _leave(exc, drop=self._drop)


#: The guard that scopes hold while they unwind.
cleaning: Final = Cleaning()


def _after_fork_in_child() -> None:
    global _main_ident, _depth, _interrupts  # noqa: PLW0603
    _main_ident = threading.get_ident()
    _restore_sigint()
    _depth = 0
    _interrupts = 0
    _pending.clear()
    _received.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
