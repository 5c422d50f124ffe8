"""
Sync cost: ``Scope.callback`` against ``contextlib.ExitStack.callback``, and the
cost of tracking an object with ``Scope.add`` and cleaning it.
"""

from __future__ import annotations

import contextlib

from _measure import Result, interleaved, timed

from cleanroom import Scope

CALLBACKS = 100_000
OBJECTS = 100_000


def _noop() -> None:
    pass


def _callbacks(stack_type: type[contextlib.ExitStack]) -> float:
    def run() -> None:
        stack = stack_type()
        callback = stack.callback
        for _ in range(CALLBACKS):
            callback(_noop)
        stack.close()

    return timed(run)


class _Closable:
    __slots__ = ("__weakref__",)

    def close(self) -> None:
        pass


def _tracked() -> float:
    objects = [_Closable() for _ in range(OBJECTS)]

    def run() -> None:
        scope = Scope()
        add = scope.add
        for obj in objects:
            add(obj)
        scope.close()

    return timed(run)


def run(repetitions: int) -> list[Result]:
    """Measure both; return their results."""
    medians = interleaved(
        repetitions,
        {
            "exitstack": lambda: _callbacks(contextlib.ExitStack),
            "scope": lambda: _callbacks(Scope),
        },
    )
    ratio = medians["scope"] / medians["exitstack"]
    tracked = interleaved(repetitions, {"tracked": _tracked})["tracked"]
    return [
        Result(
            f"Scope.callback + close vs ExitStack, {CALLBACKS:,} callbacks",
            ratio,
            1.0,
            "x",
            detail=(
                f"Scope {medians['scope'] * 1e3:.1f} ms, "
                f"ExitStack {medians['exitstack'] * 1e3:.1f} ms"
            ),
        ),
        Result(
            f"Scope.add + clean, {OBJECTS:,} objects",
            tracked / OBJECTS * 1e6,
            8.0,
            "us each",
        ),
    ]
