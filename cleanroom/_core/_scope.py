"""
Scope: a LIFO stack of cleanups that is also a registry of tracked resources.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
import warnings
import weakref
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeVar, cast, overload

import anyio
import anyio.to_thread
import attrs

from . import _context, _discovery, _signals
from ._creation import Creation
from ._entries import (
    Callback,
    ChildExit,
    Entry,
    Strong,
    check_name,
    default_cleanup,
    is_async_callable,
)
from ._exceptions import CleanupError, CleanupWarning, ScopeStateError
from ._policy import Decision, Level, OnError, OnFailure, Outcome, Policy
from ._registry import Registry, set_scope_class
from ._resource import (
    OBJECT,
    Disposition,
    Kind,
    Resource,
    State,
    adopter,
    describe,
    get_kind,
    object_kind,
)
from ._running import (
    async_call,
    bounded,
    call_sync,
    declarative_call,
    run_threads,
    shielded,
)

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path
    from types import TracebackType

    from ._capabilities import Adopts

T = TypeVar("T")
P = ParamSpec("P")

ExcDetails = tuple[
    type[BaseException] | None, BaseException | None, "TracebackType | None"
]
_NO_EXC: ExcDetails = (None, None, None)
# How many pending resources the warning of an unclosed scope names.
_LISTED = 5


class Scope(contextlib.ExitStack, contextlib.AsyncExitStack):
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
        timeout: See :class:`~cleanroom.Policy`.
        concurrency: See :class:`~cleanroom.Policy`.
        on_error: See :class:`~cleanroom.Policy`.

    .. versionadded:: 0.1.0
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
        timeout: float | None = None,
        concurrency: int | None = None,
        on_error: OnError | None = None,
    ) -> None:
        self._exit_callbacks: deque[tuple[bool, Any]] = deque()
        self._name = name
        self._parent = parent
        overrides = {
            key: value
            for key, value in (
                ("level", level),
                ("on_failure", on_failure),
                ("force", force),
                ("wait_after", wait_after),
                ("wait", wait),
                ("timeout", timeout),
                ("concurrency", concurrency),
                ("on_error", on_error),
            )
            if value is not None
        }
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
        return self

    async def __aenter__(self) -> Self:
        self._tokens.append(_context.current.set(self))
        return self

    def _reset_current(self) -> None:
        if self._tokens:
            token = self._tokens.pop()
            try:
                _context.current.reset(token)
            except ValueError:
                # Entered in another context (an async fixture's setup task).
                _context.current.set(self._parent)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
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
        self._reset_current()
        with _signals.cleaning:
            return await self._unwind_async((exc_type, exc, tb))

    def close(self) -> None:
        """Run every cleanup now, as if the ``with`` block ended without error."""
        self.__exit__(None, None, None)

    async def aclose(self) -> None:
        """Run every cleanup now, as if the ``async with`` block ended without error."""
        await self.__aexit__(None, None, None)

    # -- unwinding ---------------------------------------------------------------

    def _unwind_sync(self, exc_details: ExcDetails) -> bool:
        received = exc_details[0] is not None
        frame_exc = sys.exc_info()[1]
        outcome = self._outcome or Outcome.from_exception(exc_details[1])
        callbacks = self._exit_callbacks
        pop = callbacks.pop
        suppressed = False
        pending = False
        failures: list[tuple[Resource, BaseException]] = []
        cleaned = 0
        held: tuple[bool, Any] | None = None
        while True:
            # Sync unwinding only ever meets sync entries (see __exit__).
            if held is not None:
                _, cb = held
                held = None
            else:
                try:
                    _, cb = pop()
                except IndexError:
                    break
            kind_of_cb = type(cb)
            if kind_of_cb is Entry:
                group, held = self._take_group(cb)
                cleaned += self._settle_sync(group, outcome, failures)
                continue
            if kind_of_cb is ChildExit:
                cb.outcome = outcome
            try:
                if cb(*exc_details):
                    suppressed = True
                    pending = False
                    exc_details = _NO_EXC
            except BaseException:
                new_details = sys.exc_info()
                _chain(new_details[1], exc_details[1], frame_exc)
                pending = True
                exc_details = new_details
        if cleaned and self._policy is not None and self._policy.wait_after:
            time.sleep(self._policy.wait_after)
        return self._finish(received, suppressed, pending, exc_details, failures)

    async def _unwind_async(self, exc_details: ExcDetails) -> bool:
        received = exc_details[0] is not None
        frame_exc = sys.exc_info()[1]
        outcome = self._outcome or Outcome.from_exception(exc_details[1])
        callbacks = self._exit_callbacks
        suppressed = False
        pending = False
        failures: list[tuple[Resource, BaseException]] = []
        cleaned = 0
        held: tuple[bool, Any] | None = None
        with anyio.CancelScope(shield=True):
            while True:
                if held is not None:
                    is_sync, cb = held
                    held = None
                else:
                    try:
                        is_sync, cb = callbacks.pop()
                    except IndexError:
                        break
                kind_of_cb = type(cb)
                if kind_of_cb is Entry:
                    group, held = self._take_group(cb)
                    try:
                        cleaned += await shielded(
                            self._settle_async(group, outcome, failures)
                        )
                    except BaseException:
                        # A native asyncio cancellation, held back until the
                        # group was cleaned; raise it once every cleanup ran.
                        new_details = sys.exc_info()
                        _chain(new_details[1], exc_details[1], frame_exc)
                        pending = True
                        exc_details = new_details
                    continue
                try:
                    if await _exit_async(cb, is_sync, outcome, exc_details):
                        suppressed = True
                        pending = False
                        exc_details = _NO_EXC
                except BaseException:
                    new_details = sys.exc_info()
                    _chain(new_details[1], exc_details[1], frame_exc)
                    pending = True
                    exc_details = new_details
            if cleaned and self._policy is not None and self._policy.wait_after:
                await anyio.sleep(self._policy.wait_after)
        return self._finish(received, suppressed, pending, exc_details, failures)

    def _take_group(self, first: Entry) -> tuple[list[Entry], tuple[bool, Any] | None]:
        """Pop the entries of *first*'s kind that lie directly below it."""
        group = [first]
        kind = first.kind
        if not kind.concurrent:
            return group, None
        callbacks = self._exit_callbacks
        while callbacks:
            try:
                item = callbacks.pop()
            except IndexError:
                break
            cb = item[1]
            if type(cb) is Entry and cb.kind is kind:
                group.append(cb)
            else:
                return group, item
        return group, None

    def _finish(
        self,
        received: bool,
        suppressed: bool,
        pending: bool,
        exc_details: Any,
        failures: list[tuple[Resource, BaseException]],
    ) -> bool:
        error: BaseException | None = None
        if failures:
            error = self._report_failures(failures)
        if error is not None:
            context = exc_details[1]
            # Raising sets __context__ to whatever is being handled; put back
            # the exception this error really follows.
            try:
                raise error  # noqa: TRY301
            except BaseException:
                error.__context__ = context
                raise
        if pending:
            fixed = exc_details[1].__context__
            try:
                raise exc_details[1]  # noqa: TRY301
            except BaseException:
                exc_details[1].__context__ = fixed
                raise
        return received and suppressed

    def _report_failures(
        self, failures: list[tuple[Resource, BaseException]]
    ) -> BaseException | None:
        interrupts = [exc for _, exc in failures if not isinstance(exc, Exception)]
        errors = [(res, exc) for res, exc in failures if isinstance(exc, Exception)]
        group: CleanupError | None = None
        if errors:
            names = ", ".join(describe(res) for res, _ in errors)
            message = (
                f"{len(errors)} cleanup{'s' if len(errors) > 1 else ''} failed "
                f"in scope {self.name!r}: {names}"
            )
            if self.policy.on_error == "warn":
                for resource, exc in errors:
                    warnings.warn(
                        CleanupWarning(
                            f"cleaning {describe(resource)} failed: "
                            f"{type(exc).__name__}: {exc}"
                        ),
                        stacklevel=4,
                    )
            else:
                group = CleanupError(
                    message,
                    [exc for _, exc in errors],
                    [res for res, _ in errors],
                )
        if interrupts:
            interrupt = interrupts[0]
            if group is not None:
                interrupt.__context__ = group
            return interrupt
        return group

    # -- settling groups of tracked resources -------------------------------------

    def _decide(
        self, group: list[Entry], outcome: Outcome
    ) -> list[tuple[Entry, Callable[[], Any]]]:
        """
        Settle the entries of *group* that are kept or were collected, and
        return (entry, call) pairs for the ones to clean.
        """
        policy = self.policy
        clean: list[tuple[Entry, Callable[[], Any]]] = []
        for entry in group:
            self._handles.pop(entry.key, None)
            reason = self._kept.pop(id(entry), None)
            if reason is None:
                decision = policy.decide(entry.kind, outcome)
                if decision is Decision.KEEP_FAILED:
                    reason = (
                        f"the {outcome.value} body's resources are kept "
                        "(on_failure='keep'; use force=True to clean them)"
                    )
                elif decision is Decision.KEEP_LEVEL:
                    reason = f"level {policy.level.name!r} keeps {entry.kind.name}"
            if reason is not None:
                self._settle(entry, State.KEPT, reason=reason)
                continue
            alive, call = entry.target()
            if not alive:
                self._lost(entry)
                continue
            if call is None:
                call = declarative_call(entry, policy.wait)
            clean.append((entry, call))
        return clean

    def _lost(self, entry: Entry) -> None:
        """Count and report a weakly held object collected before its cleanup."""
        self._collected += 1
        self.registry._collected(self, entry)
        warnings.warn(
            f"a {entry.resource.name} object added to {self!r} at {entry.origin} "
            "with weak=True was garbage-collected before the scope cleaned it; "
            "its cleanup did not run",
            ResourceWarning,
            stacklevel=2,
        )

    def _settle_sync(
        self,
        group: list[Entry],
        outcome: Outcome,
        failures: list[tuple[Resource, BaseException]],
    ) -> int:
        entry = group[0]
        if (
            len(group) == 1
            and entry.kind is OBJECT
            and entry.ref is not None
            and not self._kept
        ):
            # The common case, kept lean: one plain object, which every policy
            # cleans (it is in-process) and none asked to keep.
            self._handles.pop(entry.key, None)
            alive, call = entry.target()
            if not alive or call is None:
                self._lost(entry)
                return 0
            error = call_sync(entry, call)
            if error is None:
                self._settle(entry, State.CLEANED)
                return 1
            return self._record([(entry, call)], [error], failures)
        clean = self._decide(group, outcome)
        if not clean:
            return 0
        policy = self.policy
        kind = clean[0][0].kind
        results: Sequence[BaseException | None]
        if kind is OBJECT:
            results = [call_sync(entry, call) for entry, call in clean]
        elif kind.bulk and len(clean) > 1 and all(e.ref is None for e, _ in clean):
            resources = [entry.resource for entry, _ in clean]
            box: list[Sequence[BaseException | None]] = []
            error = run_threads(
                [lambda: box.append(kind.delete_many(resources, wait=policy.wait))],
                1,
                policy.timeout,
                [f"{len(resources)} {kind.name}"],
            )[0]
            results = list(box[0]) if error is None and box else [error] * len(clean)
        else:
            results = run_threads(
                [functools.partial(call_sync, entry, call) for entry, call in clean],
                policy.concurrency,
                policy.timeout,
                [entry.kind.describe(entry.resource) for entry, _ in clean],
            )
        return self._record(clean, results, failures)

    async def _settle_async(
        self,
        group: list[Entry],
        outcome: Outcome,
        failures: list[tuple[Resource, BaseException]],
    ) -> int:
        clean = self._decide(group, outcome)
        if not clean:
            return 0
        policy = self.policy
        kind = clean[0][0].kind
        timeout = policy.timeout
        if (
            kind.bulk
            and len(clean) > 1
            and all(entry.ref is None for entry, _ in clean)
        ):
            entries = [entry for entry, _ in clean]
            box: list[Sequence[BaseException | None]] = []

            async def bulk() -> None:
                resources = [entry.resource for entry in entries]
                box.append(await kind.adelete_many(resources, wait=policy.wait))

            error = await bounded(bulk, timeout, f"{len(entries)} {kind.name}")
            results: Sequence[BaseException | None]
            results = list(box[0]) if error is None and box else [error] * len(entries)
        elif len(clean) == 1 or not kind.concurrent:
            results = [
                await bounded(
                    async_call(entry, call, policy.wait),
                    timeout,
                    entry.kind.describe(entry.resource),
                )
                for entry, call in clean
            ]
        else:
            slots: list[BaseException | None] = [None] * len(clean)
            limiter = anyio.CapacityLimiter(policy.concurrency)

            async def one(index: int, entry: Entry, call: Callable[[], Any]) -> None:
                async with limiter:
                    slots[index] = await bounded(
                        async_call(entry, call, policy.wait),
                        timeout,
                        entry.kind.describe(entry.resource),
                    )

            async with anyio.create_task_group() as tasks:
                for index, (entry, call) in enumerate(clean):
                    tasks.start_soon(one, index, entry, call)
            results = slots
        return self._record(clean, results, failures)

    def _record(
        self,
        clean: list[tuple[Entry, Callable[[], Any]]],
        results: Sequence[BaseException | None],
        failures: list[tuple[Resource, BaseException]],
    ) -> int:
        cleaned = 0
        for (entry, _), error in zip(clean, results, strict=True):
            if error is None:
                cleaned += 1
                self._settle(entry, State.CLEANED)
            else:
                resource = entry.resource
                if isinstance(error, Exception):
                    error.add_note(
                        f"while cleaning {entry.kind.describe(resource)} "
                        f"in scope {self.name!r}"
                    )
                failures.append((resource, error))
                self._settle(entry, State.FAILED, error=error)
        return cleaned

    def _settle(
        self,
        entry: Entry,
        state: State,
        *,
        reason: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        registry = self.registry
        if state is State.CLEANED:
            registry._cleaned(self, entry._resource)
            return
        resource = entry.resource
        hint = entry.kind.delete_hint(resource)
        if state is State.FAILED and error is not None:
            reason = f"{type(error).__name__}: {error}"
        disposition = Disposition(
            resource, state, reason=reason, hint=hint, error=error
        )
        self._dispositions.append(disposition)
        if state is State.KEPT:
            # Imported here: logging is only needed once something is kept.
            import logging

            logging.getLogger("cleanroom").warning(
                "kept %s: %s; delete it with: %s",
                entry.kind.describe(resource),
                reason,
                hint,
            )
        registry._settled(self, disposition)

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
                cleaned, as :meth:`enter_context` does. A weakly held object
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

    def _new_resource(
        self, kind: Kind, name: str, identity: dict[str, Any]
    ) -> Resource:
        check_name(name)
        if self._policy is None:
            self._resolve_policy_early()
        return Resource(kind.name, name, identity, scope=self.name, declarative=True)

    def _register(
        self, kind: Kind, resource: Resource, *, keys: Iterable[object] = ()
    ) -> Resource:
        """Push a declarative *resource* that exists now, and tell the journal."""
        entry = Entry(kind, resource=resource)
        entry.key = resource
        self._handles[resource] = entry
        for key in keys:
            self._handles[_alias_key(key)] = entry
        self.registry._created(self, resource)
        self._exit_callbacks.append((True, entry))
        return resource

    def _begin(self, kind: str | Kind, name: str, identity: dict[str, Any]) -> Creation:
        kind_obj = get_kind(kind)
        resource = self._new_resource(kind_obj, name, identity)
        self.registry._intent(self, resource)
        return Creation(kind_obj, resource)

    def _abandon(self, creation: Creation, reason: str) -> None:
        self.registry._settled(
            self,
            Disposition(
                creation.resource, State.FORGOTTEN, reason=f"not created: {reason}"
            ),
        )

    def _failed(
        self, creation: Creation, exc: BaseException, error: Exception | None
    ) -> None:
        if error is None:
            self._abandon(creation, f"creating it failed: {exc!r}")
            return
        # The intent stays journaled: a sweep deletes the thing once this
        # session has ended.
        exc.add_note(
            "cleanroom could not delete the partly created "
            f"{creation.kind.describe(creation.resource)}: {error!r}"
        )

    @contextlib.contextmanager
    def creating(
        self, kind: str | Kind, name: str, **identity: Any
    ) -> Iterator[Creation]:
        """
        Create a resource of *kind* safely: the intent is journaled before the
        body runs, the body creates the thing, and the resource is tracked when
        the body ends — or, if the body raises or is interrupted, whatever it
        may have made is deleted through the kind and the intent dropped.

        ``SIGINT`` and ``SIGTERM`` that arrive inside the body are delivered when
        it has ended, so a thing is always either tracked or gone. Kinds create
        what they track this way (see :doc:`writing-a-kind`).

        Args:
            kind: The kind (or its name) of the thing.
            name: Its name within the kind.
            identity: What else identifies it, as known before it exists.

        Yields:
            A :class:`~cleanroom.Creation`, to add identity learned while
            creating, to make objects handles of the resource, or to say that
            nothing was created after all.

        Raises:
            UnknownKindError: When no kind has that name.

        .. versionadded:: 0.2.0
        """
        creation = self._begin(kind, name, identity)
        with _signals.Cleaning(quiet=True):
            try:
                yield creation
                if creation.abandoned is None:
                    self._register(
                        creation.kind, creation.resource, keys=creation.aliases
                    )
            except BaseException as exc:
                if creation.abandoned is not None:
                    self._abandon(creation, creation.abandoned)
                    raise
                error = None
                try:
                    creation.kind.delete(creation.resource, wait=False)
                except Exception as delete_error:
                    error = delete_error
                self._failed(creation, exc, error)
                raise
            if creation.abandoned is not None:
                self._abandon(creation, creation.abandoned)

    @contextlib.asynccontextmanager
    async def acreating(
        self, kind: str | Kind, name: str, **identity: Any
    ) -> AsyncIterator[Creation]:
        """
        Create a resource of *kind* safely from async code; see :meth:`creating`.
        On failure, the kind's :meth:`~cleanroom.Kind.adelete` runs shielded
        from cancellation.

        .. versionadded:: 0.2.0
        """
        creation = self._begin(kind, name, identity)
        with _signals.Cleaning(quiet=True):
            try:
                yield creation
                if creation.abandoned is None:
                    self._register(
                        creation.kind, creation.resource, keys=creation.aliases
                    )
            except BaseException as exc:
                if creation.abandoned is not None:
                    self._abandon(creation, creation.abandoned)
                    raise
                error = None
                with anyio.CancelScope(shield=True):
                    try:
                        await creation.kind.adelete(creation.resource, wait=False)
                    except Exception as delete_error:
                        error = delete_error
                self._failed(creation, exc, error)
                raise
            if creation.abandoned is not None:
                self._abandon(creation, creation.abandoned)

    def alias(self, handle: object, *aliases: object) -> None:
        """
        Make *aliases* find the resource that *handle* finds, in :meth:`keep`,
        :meth:`release`, :meth:`forget` and :meth:`resource_of`; a path is an
        alias by its absolute text. Kinds use it for the Python objects and
        paths that stand for what they track.

        Raises:
            ScopeStateError: When *handle* is not tracked by this scope.

        .. versionadded:: 0.2.0
        """
        entry = self._find(handle)
        for key in aliases:
            self._handles[_alias_key(key)] = entry

    def resource_of(self, handle: object) -> Resource:
        """
        Return the resource that tracks *handle*: an object given to
        :meth:`add`, a resource, or an alias a kind made (a path, a
        :class:`subprocess.Popen`); the resource is a handle too from then on.

        Raises:
            ScopeStateError: When *handle* is not tracked by this scope.

        .. versionadded:: 0.2.0
        """
        entry = self._find(handle)
        resource = entry.resource
        if not resource.scope:
            resource = entry._resource = attrs.evolve(resource, scope=self.name)
        self._handles[resource] = entry
        return resource

    def _find(self, handle: object) -> Entry:
        if isinstance(handle, Resource):
            entry = self._handles.get(handle)
        else:
            entry = self._handles.get(id(handle))
            if (
                entry is not None
                and entry.ref is not None
                and entry.ref() is not handle
            ):
                # An id reused after the object it stood for was collected.
                entry = None
            if entry is None:
                # An alias a kind made (a Popen, an adopted asyncio.Task).
                with contextlib.suppress(TypeError):
                    entry = self._handles.get(handle)
            if entry is None and isinstance(handle, (str, os.PathLike)):
                # A path is found by its absolute text, so that an equal path
                # or string finds what a kind aliased. abspath, not resolve():
                # links must not be followed.
                entry = self._handles.get(os.path.abspath(handle))  # noqa: PTH100
        if entry is None or entry not in (cb for _, cb in self._exit_callbacks):
            raise ScopeStateError(f"{handle!r} is not tracked by {self!r}")
        return entry

    def resources(self) -> list[Resource]:
        """
        Return the tracked resources not yet cleaned, most recent first.
        """
        return [
            cb.resource for _, cb in reversed(self._exit_callbacks) if type(cb) is Entry
        ]

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
        handles = self._remove(entry)
        failures: list[tuple[Resource, BaseException]] = []
        self._kept.pop(id(entry), None)
        self._settle_sync([entry], Outcome.PASSED, failures)
        del handles
        if failures:
            error = self._report_failures(failures)
            if error is not None:
                raise error

    async def arelease(self, handle: object) -> None:
        """Clean a tracked resource now from async code; see :meth:`release`."""
        entry = self._find(handle)
        handles = self._remove(entry)
        failures: list[tuple[Resource, BaseException]] = []
        self._kept.pop(id(entry), None)
        with anyio.CancelScope(shield=True):
            await shielded(self._settle_async([entry], Outcome.PASSED, failures))
        del handles
        if failures:
            error = self._report_failures(failures)
            if error is not None:
                raise error

    def _remove(self, entry: Entry) -> list[object]:
        """
        Stop tracking *entry*; return its handles, which a caller that cleans
        it holds until it is clean (a Popen must not be collected before).
        """
        for item in self._exit_callbacks:
            if item[1] is entry:
                self._exit_callbacks.remove(item)
                break
        self._handles.pop(entry.key, None)
        stale = [key for key, value in self._handles.items() if value is entry]
        for key in stale:
            del self._handles[key]
        return stale

    def child(
        self,
        name: str,
        *,
        level: str | Level | None = None,
        on_failure: OnFailure | None = None,
        force: bool | None = None,
        wait_after: float | None = None,
        wait: bool | None = None,
        timeout: float | None = None,
        concurrency: int | None = None,
        on_error: OnError | None = None,
    ) -> Scope:
        """
        Return a nested scope that inherits this one's policy (with the given
        settings changed) and closes, at the latest, when this one does.

        Use it with ``with`` or ``async with`` to close it earlier.
        """
        child = type(self)(
            f"{self.name}/{name}",
            parent=self,
            level=level,
            on_failure=on_failure,
            force=force,
            wait_after=wait_after,
            wait=wait,
            timeout=timeout,
            concurrency=concurrency,
            on_error=on_error,
        )
        child._registry = self._registry
        self._exit_callbacks.append((True, ChildExit(child)))
        return child

    # -- families of kinds: scope.docker, scope.k8s, ... ---------------------------

    def __getattr__(self, name: str) -> Any:
        # Only called for names the class lacks: the installed backends'
        # family accessors, found by entry-point name.
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._families[name]
        except KeyError:
            pass
        module = _discovery.load(name)
        factory = getattr(module, "family", None)
        if factory is None:
            installed = ", ".join(
                family
                for family in _discovery.families()
                if hasattr(_backend(family), "family")
            )
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}; the "
                f"installed backends' families are: {installed or 'none'}"
            )
        family = self._families[name] = factory(self)
        return family

    # -- helpers of the built-in kinds --------------------------------------------

    def tempdir(
        self,
        suffix: str | None = None,
        prefix: str | None = None,
        dir: str | os.PathLike[str] | None = None,  # noqa: A002
    ) -> Path:
        """
        Create a temporary directory that the scope deletes; return its path.

        Arguments are those of :func:`tempfile.mkdtemp`.
        """
        return cast(
            "Path",
            _backend("files").tempdir(self, suffix=suffix, prefix=prefix, dir=dir),
        )

    def tempfile(
        self,
        suffix: str | None = None,
        prefix: str | None = None,
        dir: str | os.PathLike[str] | None = None,  # noqa: A002
    ) -> Path:
        """
        Create an empty temporary file that the scope deletes; return its path.

        Arguments are those of :func:`tempfile.mkstemp`.
        """
        return cast(
            "Path",
            _backend("files").tempfile(self, suffix=suffix, prefix=prefix, dir=dir),
        )

    def track_path(
        self,
        path: str | os.PathLike[str],
        *,
        root: str | os.PathLike[str] | None = None,
    ) -> Path:
        """
        Delete *path* (a file, link or directory tree) when the scope closes.

        Raises:
            UnsafePathError: When the path is not inside an allowed root (*root*,
                the temporary directory or the current directory), or is ``/``,
                a home directory or a root itself.
        """
        return cast("Path", _backend("files").track_path(self, path, root=root))

    def track_glob(self, pattern: str, root: str | os.PathLike[str]) -> Resource:
        """
        Delete, when the scope closes, what matches *pattern* under *root* and
        did not exist when this was called.
        """
        return cast("Resource", _backend("files").track_glob(self, pattern, root))

    def watch(
        self, root: str | os.PathLike[str], patterns: Sequence[str] | None = None
    ) -> Resource:
        """
        Delete, when the scope closes, what appeared under *root* (matching any
        of *patterns*, if given) while the scope was open.
        """
        return cast("Resource", _backend("files").watch(self, root, patterns))

    def popen(
        self, args: Sequence[str | os.PathLike[str]], **kwargs: Any
    ) -> subprocess.Popen[Any]:
        """
        Start a process in a new process group, like :class:`subprocess.Popen`;
        the scope terminates the group, waits, kills and reaps it.

        The keyword ``grace`` sets the seconds between ``SIGTERM`` and
        ``SIGKILL``; the others go to :class:`subprocess.Popen`.
        """
        return cast(
            "subprocess.Popen[Any]", _backend("processes").popen(self, args, **kwargs)
        )

    def track_pid(self, pid: int, *, grace: float | None = None) -> Resource:
        """
        Track a running process by pid (its start time guards against pid reuse).

        *grace* is the seconds between ``SIGTERM`` and ``SIGKILL``.
        """
        return cast("Resource", _backend("processes").track_pid(self, pid, grace=grace))

    def start_soon(
        self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None
    ) -> Resource:
        """
        Start ``fn(*args)`` as a background task of the running event loop; the
        scope cancels and awaits it when it closes.

        Raises:
            ScopeStateError: When no event loop is running in this thread.
        """
        return cast(
            "Resource", _backend("tasks").start_soon(self, fn, *args, name=name)
        )

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


async def _exit_async(
    cb: Any, is_sync: bool, outcome: Outcome, exc_details: ExcDetails
) -> bool:
    """Call one plain exit callback (or close a child scope) from async code."""
    if type(cb) is ChildExit:
        cb.outcome = outcome
        return await cb.acall(*exc_details)
    if is_sync:
        return bool(cb(*exc_details))
    return bool(await cb(*exc_details))


def _chain(
    new: BaseException | None,
    old: BaseException | None,
    frame_exc: BaseException | None,
) -> None:
    """Make *new*'s context chain end at *old*, as nested ``with`` blocks would."""
    if new is None:
        return
    while True:
        context = new.__context__
        if context is None or context is old:
            return
        if context is frame_exc:
            break
        new = context
    new.__context__ = old


set_scope_class(Scope)


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


def _alias_key(handle: object) -> object:
    if isinstance(handle, (str, os.PathLike)):
        return os.path.abspath(handle)  # noqa: PTH100
    return handle


def _backend(name: str) -> Any:
    """Return the module of the installed backend *name* (an entry point's name)."""
    module = _discovery.load(name)
    if module is None:
        raise ScopeStateError(
            f"the cleanroom backend {name!r} is not installed: no entry point "
            f"of group {_discovery.GROUP!r} has that name; reinstall cleanroom"
        )
    return module
