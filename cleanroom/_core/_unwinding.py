"""
Unwinding the stack: plain exit callbacks and groups of tracked resources, in order.
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from ._entries import (
    ChildExit,
    Entry,
)
from ._exceptions import CleanupError, CleanupWarning
from ._policy import Outcome
from ._resource import (
    Resource,
    describe,
)
from ._running import (
    shielded,
)
from ._state import ScopeState

if TYPE_CHECKING:
    from types import TracebackType


ExcDetails = tuple[
    type[BaseException] | None, BaseException | None, "TracebackType | None"
]
_NO_EXC: ExcDetails = (None, None, None)


class Unwinding(ScopeState):
    """The part of :class:`~cleanroom.Scope` that does this."""

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
