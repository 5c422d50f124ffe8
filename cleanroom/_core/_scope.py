"""
Scope: a LIFO stack of cleanups that is also a registry of tracked resources.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
import weakref
from collections import deque
from collections.abc import (
    Awaitable,
    Callable,
)
from types import EllipsisType
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeVar, cast, overload

import anyio

from cleanroom import _core

from . import _context, _signals
from ._context import CheckLeaks
from ._creating import Creating
from ._entries import (
    Callback,
    ChildExit,
    Entry,
    Strong,
    default_cleanup,
    is_async_callable,
)
from ._exceptions import ScopeStateError
from ._families import Families
from ._handles import Handles
from ._policy import Level, OnError, OnFailure, Outcome, Policy, given_settings
from ._registry import Registry, set_scope_class
from ._resource import (
    Disposition,
    Kind,
    Resource,
    State,
    adopter,
    get_kind,
    object_kind,
)
from ._running import (
    shielded,
)
from ._settling import Settling
from ._unwinding import ExcDetails, Unwinding

if TYPE_CHECKING:
    from types import TracebackType

    from ._capabilities import Adopts

T = TypeVar("T")
P = ParamSpec("P")

_NO_EXC: ExcDetails = (None, None, None)
# How many pending resources the warning of an unclosed scope names.
_LISTED = 5


class Scope(
    Families,
    Creating,
    Handles,
    Settling,
    Unwinding,
    contextlib.ExitStack,
    contextlib.AsyncExitStack,
):
    """
    A stack of cleanups that also tracks resources: a drop-in superset of
    :class:`contextlib.ExitStack` and :class:`contextlib.AsyncExitStack`.

    Use it with ``with`` or ``async with``. Everything an exit stack does works
    as in the standard library (``callback``, ``push``, ``enter_context``,
    ``enter_async_context``, ``push_async_exit``, ``push_async_callback``,
    ``pop_all``, ``close``, ``aclose``). On top of that, a scope tracks
    *resources* — objects with a cleanup (:meth:`add`), things known by kind and
    name (:meth:`track`, :meth:`reserve`) and what the kinds' helpers create
    (:meth:`tempdir`, :meth:`popen`...) — and cleans them by its
    :class:`~cleanroom.Policy` when it closes, according to how its body ended:

    - a passed, skipped or interrupted body cleans what the policy's level
      cleans;
    - a failed body keeps external resources for debugging (each reported
      with the command that deletes it) unless ``on_failure="clean"`` or
      ``force=True``.

    Every cleanup runs even when others raise or hang; failures of tracked
    resources are raised together as one :class:`~cleanroom.CleanupError`.
    Adjacent tracked resources of one kind are cleaned together (concurrently,
    or in one bulk call); plain callbacks and objects of the default kind stay
    strictly last-in, first-out.

    Args:
        name: A name for reports and the journal; by default a number.
        parent: The scope whose policy this one inherits; by default none, and
            the policy is resolved from the environment and ``pyproject.toml``.
        policy: A whole policy to use instead of resolving one.
        level: See :class:`~cleanroom.Policy`.
        on_failure: See :class:`~cleanroom.Policy`.
        force: See :class:`~cleanroom.Policy`.
        wait_after: See :class:`~cleanroom.Policy`.
        wait: See :class:`~cleanroom.Policy`.
        timeout: See :class:`~cleanroom.Policy`; ``None`` for no limit. When
            left out, the parent's (or the configured) timeout holds: 30
            seconds by default.
        concurrency: See :class:`~cleanroom.Policy`.
        on_error: See :class:`~cleanroom.Policy`.
        check_leaks: Check what the scope's body left behind once the scope
            closed (:func:`~cleanroom.no_leaks`): ``True`` or ``"raise"``
            raises :class:`~cleanroom.LeakError`, ``"warn"`` warns,
            ``False``, ``"off"`` or ``None`` (the default) checks nothing; a
            dict of :func:`~cleanroom.no_leaks` settings chooses what is
            checked. Only a scope used with ``with`` or ``async with`` checks.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 *check_leaks*.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        parent: Scope | None = None,
        policy: Policy | None = None,
        level: str | Level | None = None,
        on_failure: OnFailure | None = None,
        force: bool | None = None,
        wait_after: float | None = None,
        wait: bool | None = None,
        timeout: float | EllipsisType | None = ...,
        concurrency: int | None = None,
        on_error: OnError | None = None,
        check_leaks: CheckLeaks = None,
    ) -> None:
        overrides = given_settings(locals())
        self._exit_callbacks: deque[tuple[bool, Any]] = deque()
        self._name = name
        self._parent = parent
        if overrides:
            # Check values now, so that bad ones fail where they are written.
            base = policy if policy is not None else Policy()
            base.evolve(**overrides)
        self._overrides = overrides
        self._policy = policy if not overrides else None
        self._base_policy = policy
        self._outcome: Outcome | None = None
        self._has_async = False
        self._handles: dict[object, Entry] = {}
        self._kept: dict[int, str] = {}
        self._dispositions: list[Disposition] = []
        self._collected = 0
        self._tokens: list[Any] = []
        self._registry: Registry | None = None
        self._families: dict[str, object] = {}
        self._leak_check: _context.LeakCheck | None = None
        if check_leaks is not None and check_leaks is not False:
            self._leak_check = _leak_check(check_leaks)
        if parent is None and not _signals.decided:
            # A root scope may soon hold cleanups: make SIGTERM unwind to them.
            _signals.install_lazily()

    # -- identity and policy ---------------------------------------------------

    @property
    def name(self) -> str:
        """The scope's name, as shown in reports and journal rows."""
        if self._name is None:
            self._name = f"scope-{id(self):x}"
        return self._name

    @property
    def parent(self) -> Scope | None:
        """The scope this one inherits its policy from, if any."""
        return self._parent

    @property
    def policy(self) -> Policy:
        """
        The resolved policy: explicit settings over the parent's policy (or, for a
        root scope, over the environment and ``pyproject.toml``).
        """
        policy = self._policy
        if policy is None:
            if self._base_policy is not None:
                base = self._base_policy
            elif self._parent is not None:
                base = self._parent.policy
            else:
                base = Registry.default().base_policy()
            policy = self._policy = base.evolve(**self._overrides)
        return policy

    @property
    def outcome(self) -> Outcome | None:
        """The outcome set with :meth:`set_outcome`, if any."""
        return self._outcome

    def set_outcome(self, outcome: Outcome | str | None) -> None:
        """
        Declare how the guarded code ended, for integrations that know better
        than the exception that reaches ``__exit__`` (a test whose failure was
        already reported, for example). ``None`` goes back to judging by the
        exception.
        """
        self._outcome = None if outcome is None else Outcome(outcome)

    @property
    def dispositions(self) -> tuple[Disposition, ...]:
        """What became of the resources that were kept, failed or forgotten."""
        return tuple(self._dispositions)

    @property
    def collected(self) -> int:
        """
        How many weakly tracked objects were garbage-collected before the
        scope closed (so there was nothing left to clean).
        """
        return self._collected

    @property
    def registry(self) -> Registry:
        """The registry that hears of this scope's resources."""
        registry = self._registry
        if registry is None:
            registry = self._registry = Registry.default()
        return registry

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} entries={len(self._exit_callbacks)}>"
        )

    # -- the ExitStack protocol --------------------------------------------------

    def _push_exit_callback(self, callback: Any, is_sync: bool = True) -> None:
        if not is_sync:
            self._has_async = True
        self._exit_callbacks.append((is_sync, callback))

    def callback(
        self, callback: Callable[P, T], /, *args: P.args, **kwds: P.kwargs
    ) -> Callable[P, T]:
        """
        Register *callback* to be called with *args* and *kwds* at close.

        As :meth:`contextlib.ExitStack.callback`, with a lighter wrapper: test
        suites push many callbacks. Returns *callback*, so that this can be
        used as a decorator.
        """
        self._exit_callbacks.append((True, Callback(callback, args, kwds)))
        return callback

    def pop_all(self) -> Scope:
        """
        Move every cleanup and tracked resource to a new scope of the same
        type, name and policy, and return it.
        """
        new = type(self)()
        new._name = self._name
        new._parent = self._parent
        new._overrides = self._overrides
        new._policy = self._policy
        new._base_policy = self._base_policy
        new._has_async = self._has_async
        new._exit_callbacks = self._exit_callbacks
        new._handles = self._handles
        new._kept = self._kept
        new._registry = self._registry
        self._exit_callbacks = deque()
        self._handles = {}
        self._kept = {}
        self._has_async = False
        return new

    def __enter__(self) -> Self:
        self._tokens.append(_context.current.set(self))
        check = self._leak_check
        if check is not None and not check.running:
            check.name = f"scope {self.name!r}"
            check.start()
        return self

    async def __aenter__(self) -> Self:
        self._tokens.append(_context.current.set(self))
        check = self._leak_check
        if check is not None and not check.running:
            check.name = f"scope {self.name!r}"
            await check.astart()
        return self

    def _reset_current(self) -> None:
        # Undo the entry made in this context: a scope entered in several
        # (a pytest fixture's, then the test's event loop) is left in each by
        # its own token, whatever the order of the exits.
        for index in range(len(self._tokens) - 1, -1, -1):
            try:
                _context.current.reset(self._tokens[index])
            except ValueError:
                continue
            del self._tokens[index]
            return
        if self._tokens and _context.current.get() is self:
            # Entered only in another context (an async fixture's setup task).
            _context.current.set(self._parent)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        check = self._leak_check
        if check is not None and check.running:
            return self._exit_checked(check, (exc_type, exc, tb))
        self._reset_current()
        if self._has_async and any(not is_sync for is_sync, _ in self._exit_callbacks):
            library = _context.running_async_library()
            if library is not None:
                raise ScopeStateError(
                    f"{self!r} has async cleanups and is closed with a sync "
                    f"close()/with inside a running {library} event loop; use "
                    "'await scope.aclose()' or 'async with' instead"
                )
            with _signals.cleaning:
                return anyio.run(self._unwind_async, (exc_type, exc, tb))
        with _signals.cleaning:
            return self._unwind_sync((exc_type, exc, tb))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        check = self._leak_check
        if check is not None and check.running:
            return await self._aexit_checked(check, (exc_type, exc, tb))
        self._reset_current()
        with _signals.cleaning:
            return await self._unwind_async((exc_type, exc, tb))

    def _exit_checked(self, check: _context.LeakCheck, exc_details: ExcDetails) -> bool:
        """Close the scope, then check what it and its body left behind."""
        self._leak_check = None
        try:
            suppressed = self.__exit__(*exc_details)
        except BaseException as error:
            check.stop()
            check.conclude(error)
            raise
        finally:
            self._leak_check = check
        check.stop()
        check.conclude(None if suppressed else exc_details[1])
        return suppressed

    async def _aexit_checked(
        self, check: _context.LeakCheck, exc_details: ExcDetails
    ) -> bool:
        """As :meth:`_exit_checked`, waiting for stragglers with the loop running."""
        self._leak_check = None
        try:
            suppressed = await self.__aexit__(*exc_details)
        except BaseException as error:
            await check.astop()
            check.conclude(error)
            raise
        finally:
            self._leak_check = check
        await check.astop()
        check.conclude(None if suppressed else exc_details[1])
        return suppressed

    def close(self) -> None:
        """Run every cleanup now, as if the ``with`` block ended without error."""
        self.__exit__(None, None, None)

    async def aclose(self) -> None:
        """Run every cleanup now, as if the ``async with`` block ended without error."""
        await self.__aexit__(None, None, None)

    # -- unwinding ---------------------------------------------------------------

    # -- settling groups of tracked resources -------------------------------------

    # -- tracking ----------------------------------------------------------------

    @overload
    def add(
        self,
        obj: T,
        cleanup: Callable[[T], Any] | None = None,
        *,
        kind: str | Kind = "object",
        name: str | None = None,
        weak: bool = False,
    ) -> T: ...

    @overload
    def add(
        self,
        obj: T,
        cleanup: Callable[[T], Awaitable[Any]],
        *,
        kind: str | Kind = "object",
        name: str | None = None,
        weak: bool = False,
    ) -> T: ...

    def add(
        self,
        obj: T,
        cleanup: Callable[[T], Any] | None = None,
        *,
        kind: str | Kind = "object",
        name: str | None = None,
        weak: bool = False,
    ) -> T:
        """
        Track *obj* and clean it when the scope closes; return *obj*.

        Objects of a type that a kind adopts (:class:`subprocess.Popen`,
        :class:`asyncio.Task`, :class:`tempfile.TemporaryDirectory`, and the
        objects of installed backends such as docker-py's containers) become
        resources of that kind, cleaned by identity rather than through the
        Python object; pass *cleanup* or *kind* to clean them your way instead.

        Args:
            obj: Any object.
            cleanup: Called with *obj* to clean it, sync or async; a bound
                method of *obj* itself (``obj.stop``) is called with no
                argument. By default the object's ``aclose()``, ``close()``,
                ``__aexit__()`` or ``__exit__()``, whichever it has first.
            kind: The default ``"object"`` is cleaned strictly last-in,
                first-out; adjacent objects of a kind you name (``"websocket"``)
                are cleaned together, concurrently.
            name: How reports name it; by default its type's name.
            weak: Hold *obj* weakly, for long-lived scopes that must not keep
                objects alive. By default the scope holds *obj* until it is
                cleaned, as ``enter_context()`` does. A weakly held object
                collected before the scope cleans it is not cleaned: that
                raises a :class:`ResourceWarning` naming its type and where it
                was added.

        Returns:
            *obj*, so that ``conn = scope.add(connect())`` works.

        Raises:
            TypeError: When *obj* has no known cleanup and none is given, or
                *weak* is true and *obj* does not support weak references.

        .. versionchanged:: 0.2.0
           Objects are held strongly unless ``weak=True``; objects of adopted
           types become their kind.
        """
        if cleanup is None and kind == "object":
            adopting = adopter(obj)
            if adopting is not None:
                if self._policy is None:
                    self._resolve_policy_early()
                cast("Adopts", adopting).adopt(self, obj, name=name)
                return obj
        kind_obj = object_kind(kind)
        method, call, is_async = _cleanup_of(obj, cleanup)
        ref: Callable[[], Any] = Strong(obj)
        origin = None
        if weak:
            ref = _weak(obj)
            caller = sys._getframe(1)
            origin = f"{caller.f_code.co_filename}:{caller.f_lineno}"
            name = name or type(obj).__qualname__
        entry = Entry(
            kind_obj, ref=ref, method=method, cleanup=call, is_async=is_async, name=name
        )
        entry.origin = origin
        if self._policy is None:
            self._resolve_policy_early()
        entry.key = id(obj)
        self._handles[entry.key] = entry
        if is_async:
            self._has_async = True
        self._exit_callbacks.append((not is_async, entry))
        return obj

    def track(self, kind: str | Kind, name: str, **identity: Any) -> Resource:
        """
        Track a resource known by *kind* and *name*, cleaned by the kind's backend.

        Args:
            kind: A registered kind's name or alias (``"jobs"``, ``"process"``) or
                a :class:`~cleanroom.Kind`.
            name: The resource's name within its kind.
            identity: What else the backend needs (``namespace=...``).

        Returns:
            The resource, a handle for :meth:`keep`, :meth:`release` and
            :meth:`forget`.

        Raises:
            UnknownKindError: When no kind has that name.
        """
        kind_obj = get_kind(kind)
        resource = self._new_resource(kind_obj, name, identity)
        return self._register(kind_obj, resource)

    def reserve(self, kind: str | Kind, name: str, **identity: Any) -> Resource:
        """
        Record a resource's name *before* creating it.

        A create that times out may still produce the resource later: at
        cleanup the scope deletes it if it exists or appears within the kind's
        grace period, and counts "never appeared" as success.

        Returns:
            The resource, a handle like :meth:`track`'s.
        """
        kind_obj = get_kind(kind)
        resource = self._new_resource(kind_obj, name, identity)
        self.registry._intent(self, resource)
        entry = Entry(kind_obj, resource=resource, reserved=True)
        entry.key = resource
        self._handles[resource] = entry
        self._exit_callbacks.append((True, entry))
        return resource

    def _resolve_policy_early(self) -> None:
        # A bad setting in the environment or pyproject.toml fails here, where
        # the first resource is tracked, rather than halfway through close().
        _ = self.policy

    def keep(self, handle: object = None, reason: str = "kept on request") -> None:
        """
        Keep a tracked resource (or, with no handle, every one tracked so far)
        instead of cleaning it; it is reported, with how to delete it, when the
        scope closes.

        Args:
            handle: What :meth:`add`, :meth:`track` or a helper returned.
            reason: Why, for the report.
        """
        if handle is None:
            for _, cb in self._exit_callbacks:
                if type(cb) is Entry:
                    self._kept[id(cb)] = reason
            return
        self._kept[id(self._find(handle))] = reason

    def forget(self, handle: object) -> None:
        """Stop tracking a resource without cleaning it."""
        entry = self._find(handle)
        self._remove(entry)
        self._settle(entry, State.FORGOTTEN, reason="forgotten on request")

    def release(self, handle: object) -> None:
        """
        Clean a tracked resource now, whatever the policy, and stop tracking it.

        Raises:
            CleanupError: When the cleanup fails (or a warning, with
                ``on_error="warn"``).
            ScopeStateError: When the cleanup is async and an event loop is
                running; the resource stays tracked.
        """
        entry = self._find(handle)
        if entry.is_async:
            library = _context.running_async_library()
            if library is not None:
                raise ScopeStateError(
                    f"{handle!r} has an async cleanup and is released with a "
                    f"sync release() inside a running {library} event loop; use "
                    "'await scope.arelease(handle)' instead"
                )
        self._remove(entry)
        failures: list[tuple[Resource, BaseException]] = []
        self._kept.pop(id(entry), None)
        self._settle_sync([entry], Outcome.PASSED, failures)
        if failures:
            error = self._report_failures(failures)
            if error is not None:
                raise error

    async def arelease(self, handle: object) -> None:
        """Clean a tracked resource now from async code; see :meth:`release`."""
        entry = self._find(handle)
        self._remove(entry)
        failures: list[tuple[Resource, BaseException]] = []
        self._kept.pop(id(entry), None)
        with anyio.CancelScope(shield=True):
            await shielded(self._settle_async([entry], Outcome.PASSED, failures))
        if failures:
            error = self._report_failures(failures)
            if error is not None:
                raise error

    def child(
        self,
        name: str,
        *,
        level: str | Level | None = None,
        on_failure: OnFailure | None = None,
        force: bool | None = None,
        wait_after: float | None = None,
        wait: bool | None = None,
        timeout: float | EllipsisType | None = ...,
        concurrency: int | None = None,
        on_error: OnError | None = None,
    ) -> Scope:
        """
        Return a nested scope that inherits this one's policy (with the given
        settings changed) and closes, at the latest, when this one does.

        Use it with ``with`` or ``async with`` to close it earlier.
        """
        settings = given_settings(locals())
        child = type(self)(f"{self.name}/{name}", parent=self, **settings)
        child._registry = self._registry
        self._exit_callbacks.append((True, ChildExit(child)))
        return child

    # -- families of kinds: scope.docker, scope.k8s, ... ---------------------------

    # -- helpers of the built-in kinds --------------------------------------------

    def __del__(self) -> None:
        try:
            pending = [cb for _, cb in self._exit_callbacks if type(cb) is Entry]
        except AttributeError:
            return
        if pending:
            shown = pending[:_LISTED]
            names = ", ".join(cb.kind.describe(cb.resource) for cb in shown)
            more = f" and {len(pending) - len(shown)} more" if pending[_LISTED:] else ""
            warnings.warn(
                f"{self!r} was never closed; its tracked resources were not "
                f"cleaned: {names}{more}",
                ResourceWarning,
                stacklevel=1,
                source=self,
            )


set_scope_class(Scope)


def _leak_check(setting: object) -> _context.LeakCheck | None:
    factory: Callable[[object], _context.LeakCheck | None] | None = _core.leak_checks
    if factory is None:
        raise ScopeStateError(
            "check_leaks needs cleanroom.leaks, which is not imported"
        )
    return factory(setting)


def _cleanup_of(
    obj: object, cleanup: Callable[..., Any] | None
) -> tuple[str | None, Callable[..., Any] | None, bool]:
    """Return how to clean *obj*: a method name or a call, and whether it is async."""
    if cleanup is None:
        method, is_async = default_cleanup(obj)
        return method, None, is_async
    if not callable(cleanup):
        raise TypeError(f"cleanup must be callable, not {cleanup!r}")
    bound_self = getattr(cleanup, "__self__", None)
    if bound_self is obj and hasattr(cleanup, "__func__"):
        return None, cleanup.__func__, is_async_callable(cleanup)
    return None, cleanup, is_async_callable(cleanup)


def _weak(obj: object) -> Callable[[], Any]:
    try:
        return weakref.ref(obj)
    except TypeError:
        raise TypeError(
            f"{type(obj).__qualname__} objects do not support weak references; "
            "pass weak=False"
        ) from None


# The package imports this module on first use, and other modules may reach
# it first: show the public path in reprs and tracebacks from the start.
Scope.__module__ = "cleanroom"
