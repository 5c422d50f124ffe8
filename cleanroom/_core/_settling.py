"""
Settling groups of tracked resources: deciding by policy, cleaning, recording.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import (
    Callable,
    Sequence,
)
from typing import Any

import anyio
import anyio.to_thread

from . import _context
from ._capabilities import FreesRuntime
from ._entries import (
    Entry,
)
from ._policy import Decision, Outcome
from ._resource import (
    OBJECT,
    Disposition,
    Resource,
    State,
)
from ._running import (
    async_call,
    bounded,
    call_sync,
    declarative_call,
    run_threads,
)
from ._state import ScopeState


class Settling(ScopeState):
    """The part of :class:`~cleanroom.Scope` that does this."""

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
                    kind = entry.kind
                    if (
                        isinstance(kind, FreesRuntime)
                        and entry.ref is None
                        and "runtime" in policy.level.categories
                    ):
                        entry.freeing = f"{reason}; its runtime was freed"
                        free = functools.partial(
                            kind.free_runtime, entry.resource, wait=policy.wait
                        )
                        clean.append((entry, free))
                        continue
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
        self.registry._collected(self._whole(), entry)
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
        elif (
            kind.bulk
            and len(clean) > 1
            and all(e.ref is None and e.freeing is None for e, _ in clean)
        ):
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
            and all(entry.ref is None and entry.freeing is None for entry, _ in clean)
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
            if error is None and entry.freeing is not None:
                self._settle(entry, State.KEPT, reason=entry.freeing)
            elif error is None:
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
            registry._cleaned(self._whole(), entry._resource)
            if _context.cleaned_hooks and entry.ref is not None:
                obj = entry.ref()
                if obj is not None:
                    name = self._whole().name
                    for hook in list(_context.cleaned_hooks):
                        hook(obj, name)
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
        registry._settled(self._whole(), disposition)
