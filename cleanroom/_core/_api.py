"""
Entry points: ``managed_resources``, ``with_cleanup``, ``current_scope`` and
``register``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from types import EllipsisType
from typing import Any, ParamSpec, TypeVar, overload

from . import _context
from ._context import CheckLeaks
from ._exceptions import PolicyError
from ._policy import Level, OnError, OnFailure
from ._registry import Registry
from ._resource import Kind
from ._scope import Scope

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

#: Parameter names through which ``with_cleanup`` hands a function its scope.
SCOPE_PARAMETERS = ("scope", "cleanroom")


def current_scope() -> Scope:
    """
    Return the innermost open scope of this thread or task, or the registry's
    session scope (closed at interpreter exit) when none is open.

    .. versionadded:: 0.1.0
    """
    scope = _context.current.get()
    if scope is None:
        return Registry.default().session
    return scope


def register(
    obj: T,
    cleanup: Callable[[T], Any] | None = None,
    *,
    kind: str | Kind = "object",
    name: str | None = None,
    weak: bool = False,
) -> T:
    """
    Add *obj* to the current scope; see :meth:`Scope.add <cleanroom.Scope.add>`.

    .. versionadded:: 0.1.0
    """
    return current_scope().add(obj, cleanup, kind=kind, name=name, weak=weak)


def _level_setting(
    level: str | Level | None, cleanup_level: str | Level | None
) -> str | Level | None:
    if cleanup_level is not None:
        if level is not None and level != cleanup_level:
            raise PolicyError(
                f"level={level!r} and cleanup_level={cleanup_level!r} disagree; "
                "give one of them"
            )
        return cleanup_level
    return level


def managed_resources(
    name: str | None = None,
    *,
    level: str | Level | None = None,
    cleanup_level: str | Level | None = None,
    on_failure: OnFailure | None = None,
    force: bool | None = None,
    wait_after: float | None = None,
    wait: bool | None = None,
    timeout: float | EllipsisType | None = ...,
    concurrency: int | None = None,
    on_error: OnError | None = None,
    check_leaks: CheckLeaks = None,
) -> Scope:
    """
    Return a new scope for ``with`` or ``async with``.

    It inherits the policy of the scope that is current when it is created
    (the test's, under pytest), with the given settings changed. *cleanup_level*
    is another name for *level*. *check_leaks* runs a leak check around the
    scope (see :class:`Scope`).

    Example::

        with managed_resources("my_test", level="all") as scope:
            work = scope.tempdir()

    Raises:
        PolicyError: On a bad setting; the message lists the valid values.

    .. versionadded:: 0.1.0
    """
    return Scope(
        name,
        parent=_context.current.get(),
        level=_level_setting(level, cleanup_level),
        on_failure=on_failure,
        force=force,
        wait_after=wait_after,
        wait=wait,
        timeout=timeout,
        concurrency=concurrency,
        on_error=on_error,
        check_leaks=check_leaks,
    )


@overload
def with_cleanup(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def with_cleanup(
    func: None = None,
    /,
    *,
    name: str | None = None,
    level: str | Level | None = None,
    cleanup_level: str | Level | None = None,
    on_failure: OnFailure | None = None,
    force: bool | None = None,
    wait_after: float | None = None,
    wait: bool | None = None,
    timeout: float | EllipsisType | None = ...,
    concurrency: int | None = None,
    on_error: OnError | None = None,
    check_leaks: CheckLeaks = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def with_cleanup(
    func: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    level: str | Level | None = None,
    cleanup_level: str | Level | None = None,
    on_failure: OnFailure | None = None,
    force: bool | None = None,
    wait_after: float | None = None,
    wait: bool | None = None,
    timeout: float | EllipsisType | None = ...,
    concurrency: int | None = None,
    on_error: OnError | None = None,
    check_leaks: CheckLeaks = None,
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """
    Run the decorated function inside a new scope that closes when it returns
    or raises.

    Use it bare (``@with_cleanup``) or with policy settings
    (``@with_cleanup(level="pods", wait_after=5)``), on sync and async
    functions and methods, unittest test methods included. The function reaches
    its scope through :func:`current_scope`, or through a parameter named
    ``scope`` or ``cleanroom``, which the decorator fills (and hides from
    callers and from pytest's fixture lookup). ``check_leaks`` checks each
    call for leaks (see :class:`Scope`), after its scope closed.

    Raises:
        PolicyError: At decoration time, on a bad setting.

    .. versionadded:: 0.1.0
    """
    settings: dict[str, Any] = {
        "level": _level_setting(level, cleanup_level),
        "on_failure": on_failure,
        "force": force,
        "wait_after": wait_after,
        "wait": wait,
        "timeout": timeout,
        "concurrency": concurrency,
        "on_error": on_error,
        "check_leaks": check_leaks,
    }
    Scope(**settings)  # check the settings where they are written

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        return _wrap_in_scope(fn, name, settings)

    if func is not None:
        return decorate(func)
    return decorate


def _wrap_in_scope(
    fn: Callable[P, R], name: str | None, settings: dict[str, Any]
) -> Callable[P, R]:
    import inspect

    if not callable(fn):
        raise TypeError(f"with_cleanup decorates functions, not {fn!r}")
    scope_name = name or getattr(fn, "__qualname__", None) or repr(fn)
    signature = inspect.signature(fn)
    inject = next((p for p in SCOPE_PARAMETERS if p in signature.parameters), None)

    def new_scope() -> Scope:
        return Scope(scope_name, parent=_context.current.get(), **settings)

    wrapper: Callable[..., Any]
    if inspect.iscoroutinefunction(fn):
        async_fn: Callable[..., Awaitable[Any]] = fn

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            async with new_scope() as scope:
                if inject is not None:
                    kwargs.setdefault(inject, scope)
                return await async_fn(*args, **kwargs)

        wrapper = async_wrapper
    else:

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            with new_scope() as scope:
                if inject is not None:
                    kwargs.setdefault(inject, scope)
                return fn(*args, **kwargs)

        wrapper = sync_wrapper
    if inject is not None:
        # inspect.signature() (and so pytest's fixture lookup) reads this.
        wrapper.__dict__["__signature__"] = signature.replace(
            parameters=[p for n, p in signature.parameters.items() if n != inject]
        )
    return wrapper  # type: ignore[return-value]
