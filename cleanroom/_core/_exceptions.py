"""
Exceptions and warnings raised by cleanroom; :mod:`cleanroom.exceptions` is their
public home.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from cleanroom._leaks._records import Leak

    from ._resource import Resource


class CleanroomError(Exception):
    """
    Raised when cleanroom itself cannot do what it was asked; the base of
    cleanroom's own errors.

    .. versionadded:: 0.1.0
    """


class PolicyError(CleanroomError, ValueError):
    """
    Raised when a policy setting, level or option has an unknown or bad value.

    The message names the bad value and lists the valid ones.

    .. versionadded:: 0.1.0
    """


class UnknownKindError(CleanroomError, LookupError):
    """
    Raised when a kind name is not registered.

    The message lists the registered kinds.

    .. versionadded:: 0.1.0
    """


class UnsafePathError(CleanroomError, ValueError):
    """
    Raised when a path may not be tracked or deleted: ``/``, a home directory,
    an allowed root itself or one of its ancestors, or a place outside every
    allowed root. Nothing is deleted.

    .. versionadded:: 0.1.0
    """


class BackendUnavailableError(CleanroomError, ConnectionError):
    """
    Raised when a kind's backend (a Docker engine, a Kubernetes cluster, a
    command-line tool) cannot be reached; the message says why.

    .. versionadded:: 0.2.0
    """


class NameConflictError(CleanroomError, RuntimeError):
    """
    Raised when a name cleanroom was asked to create is held by something it
    may not remove: an object of a live session, or one cleanroom did not
    create. The message names the holder and its owner; nothing is deleted.

    .. versionadded:: 0.2.0
    """


class ScopeStateError(CleanroomError, RuntimeError):
    """
    Raised when a scope is used in a way its state does not allow: a sync
    ``close()`` with async cleanups inside a running event loop, ``start_soon``
    outside an async context, or a handle that belongs to another scope.

    .. versionadded:: 0.1.0
    """


class CleanupTimeoutError(CleanroomError, TimeoutError):
    """
    Raised (inside a :class:`CleanupError`) when one cleanup took longer than
    the policy's ``timeout``; it was abandoned.

    .. versionadded:: 0.1.0
    """


class DeletionBlockedError(CleanroomError, TimeoutError):
    """
    Raised (inside a :class:`CleanupError`) when resources still exist when
    waiting for their deletion ends; the message names each one and what holds
    it, such as a Kubernetes finalizer.

    Attributes:
        blocked: The name of each resource still there, with what holds it.

    .. versionadded:: 0.2.0
    """

    def __init__(self, message: str, blocked: Mapping[str, Sequence[str]]) -> None:
        super().__init__(message)
        self.blocked = dict(blocked)


class CommandError(CleanroomError, RuntimeError):
    """
    Raised when a command of a command kind cannot run or fails: a create, a
    delete that failed on every attempt, an ``exists`` or ``list`` command.

    The message holds the command, quoted for a shell, its exit status and
    the end of its standard error.

    Attributes:
        argv: The command that failed.
        returncode: Its exit status, or ``None`` when it did not finish.
        stderr: Its standard error.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        message: str,
        *,
        argv: Sequence[str] = (),
        returncode: int | None = None,
        stderr: str = "",
    ) -> None:
        super().__init__(message)
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (type(self), str(self), self.argv, self.returncode, self.stderr),
        )


class CommandTimeoutError(CommandError, TimeoutError):
    """
    Raised when a command of a command kind outlived its timeout; its process
    group was ended.

    .. versionadded:: 0.2.0
    """


def _rebuild(
    cls: type[CommandError],
    message: str,
    argv: Sequence[str],
    returncode: int | None,
    stderr: str,
) -> CommandError:
    return cls(message, argv=argv, returncode=returncode, stderr=stderr)


class CleanupError(ExceptionGroup[Exception]):
    """
    Raised when cleaning one or more tracked resources failed.

    Every cleanup of the scope ran; this groups the failures, one member
    exception per resource, in the order the cleanups ran. Each member carries
    a note naming its resource, and :attr:`resources` lists the resources in
    the same order as :attr:`exceptions`. An exception raised by the body of
    the scope is this error's ``__context__``.

    .. versionadded:: 0.1.0
    """

    resources: tuple[Resource, ...]

    def __new__(
        cls,
        message: str,
        exceptions: Sequence[Exception],
        resources: Sequence[Resource] = (),
    ) -> Self:
        """Create the group of *exceptions*, one per resource in *resources*."""
        self = super().__new__(cls, message, exceptions)
        self.resources = tuple(resources)
        return self

    def __init__(
        self,
        message: str,
        exceptions: Sequence[Exception],
        resources: Sequence[Resource] = (),  # noqa: ARG002 (stored by __new__)
    ) -> None:
        super().__init__(message, exceptions)

    def derive(self, excs: Sequence[Exception]) -> CleanupError:  # type: ignore[override]
        """Keep the type and the matching resources when the group is split."""
        pairs = zip(self.exceptions, self.resources, strict=False)
        by_id = {id(exc): res for exc, res in pairs}
        kept = [by_id[id(exc)] for exc in excs if id(exc) in by_id]
        return CleanupError(self.message, excs, kept)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, list(self.exceptions), self.resources))


class LeakError(CleanroomError, AssertionError):
    """
    Raised when a leak check finds what the checked code left behind after
    the grace period: threads still running, tasks still pending, file
    descriptors still open, child processes still running or never waited
    for, cleaned objects still alive, or memory grown past its limit.

    It is an :exc:`AssertionError`, so test runners report a failed check.
    The message lists each leak and where it came from; :attr:`leaks` holds
    them as :class:`~cleanroom.leaks.Leak` records.

    .. versionadded:: 0.2.0
    """

    leaks: tuple[Leak, ...]

    def __init__(self, message: str, leaks: Sequence[Leak] = ()) -> None:
        super().__init__(message)
        self.leaks = tuple(leaks)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.leaks))


class Terminated(KeyboardInterrupt, SystemExit):
    """
    Raised in the main thread when the process receives SIGTERM, so that
    ``with`` blocks, ``finally`` clauses and scopes unwind as they do on Ctrl+C.

    It is a :exc:`KeyboardInterrupt`: pytest and unittest stop the run and
    tear down as they do on Ctrl+C, and ``except Exception`` does not catch it.
    It is also a :exc:`SystemExit` whose ``code`` is 143 (128 + SIGTERM),
    so a program that lets it propagate exits with that status.

    Attributes:
        signum: The signal received.

    .. versionadded:: 0.1.0
    """

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(128 + signum)
        self.code = 128 + signum
        self.signum = signum

    def __str__(self) -> str:
        return f"received {signal.Signals(self.signum).name}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.signum,))


class CleanroomWarning(UserWarning):
    """
    Base of the warnings cleanroom emits.

    .. versionadded:: 0.1.0
    """


class CleanupWarning(CleanroomWarning):
    """
    Emitted instead of raising :class:`CleanupError` when the policy's
    ``on_error`` is ``"warn"``.

    .. versionadded:: 0.1.0
    """


class LeakWarning(CleanroomWarning):
    """
    Emitted instead of raising :class:`LeakError` when a leak check's
    ``on_leak`` is ``"warn"``, and once per process for each check that
    cannot run here (its message says what to install).

    .. versionadded:: 0.2.0
    """
