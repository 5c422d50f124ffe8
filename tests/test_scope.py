"""
Tests for Scope: tracking, outcomes, policies, errors and nesting.
"""

from __future__ import annotations

import contextlib
import gc
import unittest
import warnings
import weakref
from collections.abc import Sequence
from typing import Any

import attrs
import pytest

import cleanroom
from cleanroom import (
    BaseKind,
    CleanupError,
    CleanupWarning,
    Outcome,
    Resource,
    Scope,
    ScopeStateError,
    State,
    UnknownKindError,
)


@attrs.define
class LedgerKind(BaseKind):
    """A real kind whose resources are names in an in-memory set."""

    existing: set[str] = attrs.Factory(set)
    deleted: list[str] = attrs.Factory(list)
    fail: set[str] = attrs.Factory(set)
    bulk_calls: int = 0

    def delete(self, resource: Resource, *, wait: bool) -> None:
        if resource.name in self.fail:
            raise OSError(f"cannot delete {resource.name}")
        self.deleted.append(resource.name)
        self.existing.discard(resource.name)

    def exists(self, resource: Resource) -> bool:
        return resource.name in self.existing

    def delete_many(
        self, resources: Sequence[Resource], *, wait: bool
    ) -> Sequence[BaseException | None]:
        self.bulk_calls += 1
        return super().delete_many(resources, wait=wait)

    def delete_hint(self, resource: Resource) -> str:
        return f"ledger rm {resource.name}"


@pytest.fixture
def pods() -> Any:
    kind = cleanroom.register_kind(LedgerKind("testpods", aliases=("testpod",)))
    yield kind
    cleanroom.unregister_kind(kind)


@pytest.fixture
def jobs() -> Any:
    kind = cleanroom.register_kind(
        LedgerKind("testjobs", aliases=("testjob",), category="record")
    )
    yield kind
    cleanroom.unregister_kind(kind)


class Closable:
    def __init__(self, log: list[str] | None = None, name: str = "c") -> None:
        self.log = log if log is not None else []
        self.name = name
        self.closed = 0

    def close(self) -> None:
        self.closed += 1
        self.log.append(self.name)


class AsyncClosable:
    def __init__(self, log: list[str], name: str) -> None:
        self.log = log
        self.name = name

    async def aclose(self) -> None:
        self.log.append(self.name)


class TestAdd:
    def test_returns_the_object_and_closes_it(self) -> None:
        """add() returns its argument and calls its close() when the scope closes."""
        with Scope() as scope:
            thing = scope.add(Closable())
            assert thing.closed == 0
        assert thing.closed == 1

    def test_cleanup_receives_the_object(self) -> None:
        """A given cleanup is called with the object."""
        seen: list[object] = []
        obj = Closable()
        with Scope() as scope:
            scope.add(obj, seen.append)
        assert seen == [obj]
        assert obj.closed == 0

    def test_bound_method_of_the_object(self) -> None:
        """A bound method of the object itself is called with no argument."""
        obj = Closable()
        with Scope() as scope:
            scope.add(obj, obj.close)
        assert obj.closed == 1

    def test_no_known_cleanup(self) -> None:
        """An object without close/aclose/__exit__ needs an explicit cleanup."""
        with Scope() as scope, pytest.raises(TypeError, match="pass cleanup="):
            scope.add(object())

    def test_cleanup_must_be_callable(self) -> None:
        """A non-callable cleanup is refused at once."""
        with Scope() as scope, pytest.raises(TypeError, match="callable"):
            scope.add(Closable(), "close")  # type: ignore[arg-type]

    def test_exit_method_is_a_default(self) -> None:
        """A context manager's __exit__ serves as its cleanup."""
        events: list[str] = []

        class Manager:
            def __exit__(self, *exc: object) -> None:
                events.append("exit")

        with Scope() as scope:
            manager = scope.add(Manager())
        assert events == ["exit"]
        del manager

    def test_weak_tracking_keeps_nothing_alive(self) -> None:
        """Tracking 10,000 objects with weak=True keeps none of them alive."""
        scope = Scope()
        refs = []
        for _ in range(10_000):
            obj = Closable()
            scope.add(obj, weak=True)
            refs.append(weakref.ref(obj))
        del obj
        gc.collect()
        assert not any(ref() is not None for ref in refs)
        with pytest.warns(ResourceWarning, match="garbage-collected"):
            scope.close()
        assert scope.collected == 10_000

    def test_add_holds_the_object_by_default(self) -> None:
        """An object nobody else holds is still cleaned: add() holds it."""
        log: list[str] = []
        with Scope() as scope:
            scope.add(Closable(log, "only the scope holds it"))
            gc.collect()
        assert log == ["only the scope holds it"]
        assert scope.collected == 0

    def test_collected_objects_are_reported_not_cleaned(self) -> None:
        """A weakly held object collected before close warns, naming its origin."""
        log: list[str] = []
        with (
            pytest.warns(
                ResourceWarning, match=r"Closable.*test_scope\.py:\d+"
            ) as seen,
            Scope() as scope,
        ):
            scope.add(Closable(log, "gone"), weak=True)
            kept = scope.add(Closable(log, "alive"), weak=True)
            gc.collect()
        assert len(seen) == 1
        assert log == ["alive"]
        assert scope.collected == 1
        assert kept.closed == 1

    def test_weak_false_holds_the_object(self) -> None:
        """weak=False keeps the object alive until the scope closes."""
        log: list[str] = []
        scope = Scope()
        obj = Closable(log, "held")
        ref = weakref.ref(obj)
        scope.add(obj, weak=False)
        del obj
        gc.collect()
        assert ref() is not None
        scope.close()
        assert log == ["held"]

    def test_weak_true_needs_weak_references(self) -> None:
        """weak=True on an object without weak references is an error."""
        with Scope() as scope, pytest.raises(TypeError, match="weak references"):
            scope.add([1, 2], lambda obj: None, weak=True)

    def test_unweakrefable_objects_are_held_strongly(self) -> None:
        """Objects without weak references are tracked strongly by default."""
        seen: list[object] = []
        with Scope() as scope:
            scope.add([1, 2], seen.append)
        assert seen == [[1, 2]]

    @pytest.mark.anyio
    async def test_async_cleanup(self) -> None:
        """An object with aclose() is closed by the async close."""
        log: list[str] = []
        async with Scope() as scope:
            obj = scope.add(AsyncClosable(log, "a"))
        assert log == ["a"]
        del obj

    def test_async_cleanup_without_a_loop(self) -> None:
        """A sync close with async cleanups runs them in a fresh event loop."""
        log: list[str] = []
        with Scope() as scope:
            obj = scope.add(AsyncClosable(log, "a"))
            scope.callback(log.append, "cb")
        assert log == ["cb", "a"]
        del obj

    @pytest.mark.anyio
    async def test_sync_close_inside_a_loop_is_refused(self) -> None:
        """A sync close with async cleanups inside a running loop points to aclose."""
        log: list[str] = []
        scope = Scope()
        obj = scope.add(AsyncClosable(log, "a"))
        with pytest.raises(ScopeStateError, match="aclose"):
            scope.close()
        await scope.aclose()
        assert log == ["a"]
        del obj


class TestOrder:
    def test_plain_entries_are_lifo(self) -> None:
        """Callbacks and default-kind objects run strictly last-in, first-out."""
        log: list[str] = []
        objects = [Closable(log, "2"), Closable(log, "3")]
        with Scope() as scope:
            scope.callback(log.append, "1")
            scope.add(objects[0])
            scope.add(objects[1])
            scope.callback(log.append, "4")
        assert log == ["4", "3", "2", "1"]

    def test_groups_keep_lifo_between_them(self) -> None:
        """Adjacent entries of one kind form a group; groups stay in LIFO order."""
        log: list[str] = []
        sockets = [Closable(log, "ws1"), Closable(log, "ws2")]
        with Scope() as scope:
            scope.callback(log.append, "first")
            scope.add(sockets[0], kind="websocket")
            scope.add(sockets[1], kind="websocket")
            scope.callback(log.append, "last")
        assert log[0] == "last"
        assert sorted(log[1:3]) == ["ws1", "ws2"]
        assert log[3] == "first"

    def test_kinds_track_in_lifo(self, pods: LedgerKind, jobs: LedgerKind) -> None:
        """Tracked resources of different kinds are cleaned newest first."""
        with Scope() as scope:
            scope.track("testjobs", "job-1")
            scope.track("testpods", "pod-1")
            scope.track("testpods", "pod-2")
        assert sorted(pods.deleted) == ["pod-1", "pod-2"]
        assert jobs.deleted == ["job-1"]


class TestTrack:
    def test_track_uses_the_kind(self, pods: LedgerKind) -> None:
        """track() cleans by the kind's backend, by any alias."""
        with Scope() as scope:
            resource = scope.track("TestPod", "pod-a", namespace="ns")
        assert pods.deleted == ["pod-a"]
        assert resource.kind == "testpods"
        assert resource.identity == {"namespace": "ns"}
        assert resource.declarative

    def test_unknown_kind(self) -> None:
        """An unknown kind name is refused, listing the registered ones."""
        with (
            Scope() as scope,
            pytest.raises(UnknownKindError, match=r"unknown kind 'nope'.*'object'"),
        ):
            scope.track("nope", "x")

    def test_empty_name(self, pods: LedgerKind) -> None:
        """A resource needs a non-empty str name."""
        with Scope() as scope, pytest.raises(TypeError, match="non-empty"):
            scope.track("testpods", "")

    def test_bulk_kind(self) -> None:
        """A bulk kind cleans adjacent resources in one call."""
        kind = cleanroom.register_kind(LedgerKind("bulkers", bulk=True))
        try:
            with Scope() as scope:
                for index in range(5):
                    scope.track("bulkers", f"b{index}")
            assert sorted(kind.deleted) == [f"b{i}" for i in range(5)]
            assert kind.bulk_calls == 1
        finally:
            cleanroom.unregister_kind(kind)


class TestReserve:
    def test_never_appeared_is_success(self, pods: LedgerKind) -> None:
        """A reserved name that never appears is not an error."""
        with Scope() as scope:
            scope.reserve("testpods", "late")
        assert pods.deleted == []

    def test_existing_is_deleted(self, pods: LedgerKind) -> None:
        """A reserved name that exists at close is deleted."""
        with Scope() as scope:
            scope.reserve("testpods", "made")
            pods.existing.add("made")
        assert pods.deleted == ["made"]

    @pytest.mark.anyio
    async def test_async_close(self, pods: LedgerKind) -> None:
        """An async close deletes an existing reservation and skips a missing one."""
        async with Scope() as scope:
            scope.reserve("testpods", "made")
            scope.reserve("testpods", "never")
            pods.existing.add("made")
        assert pods.deleted == ["made"]

    def test_appearing_within_grace_is_deleted(self) -> None:
        """A reserved name that appears within the grace period is deleted."""
        import threading

        kind = cleanroom.register_kind(LedgerKind("slowpods", grace=5.0))
        try:
            timer = threading.Timer(0.1, kind.existing.add, ("slow",))
            with Scope() as scope:
                scope.reserve("slowpods", "slow")
                timer.start()
            timer.join()
            assert kind.deleted == ["slow"]
        finally:
            cleanroom.unregister_kind(kind)


class TestOutcome:
    def test_failed_body_keeps_external_resources(self, pods: LedgerKind) -> None:
        """A failed body keeps external resources and reports how to delete them."""
        obj = Closable()
        with pytest.raises(ZeroDivisionError), Scope() as scope:
            scope.track("testpods", "pod-x")
            scope.add(obj)
            1 / 0
        assert pods.deleted == []
        assert obj.closed == 1, "in-process objects are always cleaned"
        (kept,) = scope.dispositions
        assert kept.state is State.KEPT
        assert kept.hint == "ledger rm pod-x"
        assert "on_failure='keep'" in (kept.reason or "")

    def test_force_cleans_a_failed_body(self, pods: LedgerKind) -> None:
        """force=True cleans even when the body failed."""
        with pytest.raises(ZeroDivisionError), Scope(force=True) as scope:
            scope.track("testpods", "pod-x")
            1 / 0
        assert pods.deleted == ["pod-x"]

    def test_on_failure_clean(self, pods: LedgerKind) -> None:
        """on_failure='clean' cleans a failed body's resources."""
        with pytest.raises(ValueError, match="boom"), Scope(on_failure="clean") as s:
            s.track("testpods", "pod-x")
            raise ValueError("boom")
        assert pods.deleted == ["pod-x"]

    def test_interrupted_cleans(self, pods: LedgerKind) -> None:
        """KeyboardInterrupt counts as interrupted, which cleans."""
        with pytest.raises(KeyboardInterrupt), Scope() as scope:
            scope.track("testpods", "pod-x")
            raise KeyboardInterrupt
        assert pods.deleted == ["pod-x"]

    def test_skipped_cleans(self, pods: LedgerKind) -> None:
        """A skipped test's resources are cleaned."""
        with pytest.raises(unittest.SkipTest), Scope() as scope:
            scope.track("testpods", "pod-x")
            raise unittest.SkipTest("later")
        assert pods.deleted == ["pod-x"]

    def test_set_outcome_overrides(self, pods: LedgerKind) -> None:
        """An outcome set by an integration wins over the absent exception."""
        with Scope() as scope:
            scope.track("testpods", "pod-x")
            scope.set_outcome(Outcome.FAILED)
        assert pods.deleted == []
        assert scope.outcome is Outcome.FAILED

    def test_level_none_keeps(self, pods: LedgerKind) -> None:
        """Level none keeps everything external."""
        with Scope(level="none") as scope:
            scope.track("testpods", "pod-x")
        assert pods.deleted == []
        assert "level 'none'" in (scope.dispositions[0].reason or "")

    def test_level_pods_keeps_records(self, pods: LedgerKind, jobs: LedgerKind) -> None:
        """Level pods cleans runtime kinds and keeps record kinds."""
        with Scope(level="pods") as scope:
            scope.track("testjobs", "job-1")
            scope.track("testpods", "pod-1")
        assert pods.deleted == ["pod-1"]
        assert jobs.deleted == []
        assert [d.resource.name for d in scope.dispositions] == ["job-1"]

    def test_level_all_cleans_records(self, pods: LedgerKind, jobs: LedgerKind) -> None:
        """Level all cleans runtime and record kinds."""
        with Scope(level="all") as scope:
            scope.track("testjobs", "job-1")
            scope.track("testpods", "pod-1")
        assert jobs.deleted == ["job-1"]
        assert pods.deleted == ["pod-1"]

    def test_bad_policy_value(self) -> None:
        """A bad policy value fails where it is written."""
        with pytest.raises(cleanroom.PolicyError, match="'keep', 'clean'"):
            Scope(on_failure="maybe")  # type: ignore[arg-type]


class TestKeepReleaseForget:
    def test_keep_one(self, pods: LedgerKind) -> None:
        """keep(handle) keeps that resource with the reason given."""
        with Scope() as scope:
            keep = scope.track("testpods", "keep-me")
            scope.track("testpods", "drop-me")
            scope.keep(keep, "inspect later")
        assert pods.deleted == ["drop-me"]
        (kept,) = scope.dispositions
        assert kept.reason == "inspect later"
        assert kept.resource is keep

    def test_keep_all(self, pods: LedgerKind) -> None:
        """keep() with no handle keeps everything tracked so far."""
        with Scope() as scope:
            scope.track("testpods", "a")
            scope.track("testpods", "b")
            scope.keep()
            scope.track("testpods", "c")
        assert pods.deleted == ["c"]

    def test_keep_objects_by_handle(self) -> None:
        """keep() accepts the object add() returned."""
        obj = Closable()
        with Scope() as scope:
            scope.add(obj)
            scope.keep(obj, "debug")
        assert obj.closed == 0

    def test_release_cleans_now(self, pods: LedgerKind) -> None:
        """release() cleans at once and the scope does not clean it again."""
        with Scope() as scope:
            pod = scope.track("testpods", "now")
            scope.release(pod)
            assert pods.deleted == ["now"]
        assert pods.deleted == ["now"]

    def test_release_failure_raises(self, pods: LedgerKind) -> None:
        """A failing release raises a CleanupError naming the resource."""
        pods.fail.add("bad")
        with Scope() as scope:
            pod = scope.track("testpods", "bad")
            with pytest.raises(CleanupError) as info:
                scope.release(pod)
        assert info.value.resources == (pod,)

    def test_forget(self, pods: LedgerKind) -> None:
        """forget() stops tracking without cleaning."""
        with Scope() as scope:
            pod = scope.track("testpods", "left")
            scope.forget(pod)
        assert pods.deleted == []
        assert scope.dispositions[0].state is State.FORGOTTEN

    def test_unknown_handle(self) -> None:
        """A handle the scope does not track is refused."""
        with Scope() as scope, pytest.raises(ScopeStateError, match="not tracked"):
            scope.release(Closable())

    def test_handle_of_another_scope(self, pods: LedgerKind) -> None:
        """A handle from another scope is refused and left alone."""
        with Scope() as one, Scope() as two:
            pod = one.track("testpods", "mine")
            with pytest.raises(ScopeStateError):
                two.forget(pod)
        assert pods.deleted == ["mine"]

    @pytest.mark.anyio
    async def test_arelease(self, pods: LedgerKind) -> None:
        """arelease() cleans at once from async code."""
        async with Scope() as scope:
            pod = scope.track("testpods", "now")
            await scope.arelease(pod)
            assert pods.deleted == ["now"]
        assert pods.deleted == ["now"]

    def test_resources_lists_pending(self, pods: LedgerKind) -> None:
        """resources() lists what is tracked and not yet cleaned, newest first."""
        with Scope() as scope:
            first = scope.track("testpods", "a")
            second = scope.track("testpods", "b")
            assert scope.resources() == [second, first]


class TestErrors:
    def test_every_cleanup_runs(self, pods: LedgerKind) -> None:
        """Failures are grouped in one CleanupError after every cleanup ran."""
        pods.fail.update({"bad1", "bad2"})
        log: list[str] = []
        with pytest.raises(CleanupError) as info, Scope() as scope:
            scope.callback(log.append, "callback")
            scope.track("testpods", "bad1")
            scope.track("testpods", "good")
            scope.track("testpods", "bad2")
        assert log == ["callback"]
        assert pods.deleted == ["good"]
        error = info.value
        assert sorted(r.name for r in error.resources) == ["bad1", "bad2"]
        assert all(isinstance(e, OSError) for e in error.exceptions)
        notes = [note for e in error.exceptions for note in e.__notes__]
        assert any("testpods 'bad1'" in note for note in notes)
        assert "2 cleanups failed" in str(error)

    def test_body_exception_is_the_context(self, pods: LedgerKind) -> None:
        """The body's exception is the context of the CleanupError."""
        pods.fail.add("bad")
        with pytest.raises(CleanupError) as info, Scope(force=True) as scope:
            scope.track("testpods", "bad")
            raise KeyError("body")
        assert isinstance(info.value.__context__, KeyError)

    def test_callback_exception_is_kept(self, pods: LedgerKind) -> None:
        """A plain callback's exception is chained under the CleanupError."""
        pods.fail.add("bad")

        def broken() -> None:
            raise RuntimeError("callback")

        with pytest.raises(CleanupError) as info, Scope() as scope:
            scope.callback(broken)
            scope.track("testpods", "bad")
        assert isinstance(info.value.__context__, RuntimeError)

    def test_warn_instead_of_raise(self, pods: LedgerKind) -> None:
        """on_error='warn' turns failures into CleanupWarnings."""
        pods.fail.add("bad")
        with (
            pytest.warns(CleanupWarning, match="testpods 'bad'"),
            Scope(on_error="warn") as scope,
        ):
            scope.track("testpods", "bad")
        assert scope.dispositions[0].state is State.FAILED

    def test_split_keeps_the_type(self) -> None:
        """Splitting a CleanupError keeps its type and matching resources."""
        one, two = Resource("x", "1"), Resource("x", "2")
        error = CleanupError("failed", [OSError("a"), ValueError("b")], [one, two])
        matched, rest = error.split(OSError)
        assert isinstance(matched, CleanupError)
        assert matched.resources == (one,)
        assert isinstance(rest, CleanupError)
        assert rest.resources == (two,)

    def test_interrupt_in_cleanup_is_raised_after_the_rest(self) -> None:
        """A KeyboardInterrupt in one cleanup lets the others run, then propagates."""
        log: list[str] = []

        def interrupt(_: object) -> None:
            raise KeyboardInterrupt

        objects = [Closable(log, name) for name in "abc"]
        with pytest.raises(KeyboardInterrupt), Scope() as scope:
            scope.add(objects[0])
            scope.add(objects[1], interrupt)
            scope.add(objects[2])
        assert log == ["c", "a"]

    def test_unclosed_scope_warns(self, pods: LedgerKind) -> None:
        """A scope collected with pending tracked resources emits ResourceWarning."""
        scope = Scope("forgotten")
        scope.track("testpods", "left-behind")
        with pytest.warns(ResourceWarning, match="left-behind"):
            del scope
            gc.collect()
        pods.deleted.clear()

    def test_unclosed_plain_stack_is_silent(self) -> None:
        """An unclosed scope with only plain callbacks behaves like ExitStack."""
        scope = Scope()
        scope.callback(print)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            del scope
            gc.collect()


class TestChild:
    def test_inherits_policy(self) -> None:
        """A child inherits its parent's policy with its own changes."""
        parent = Scope(level="pods", timeout=5)
        child = parent.child("inner", timeout=1)
        assert child.policy.level is cleanroom.PODS
        assert child.policy.timeout == 1
        assert child.name.endswith("/inner")
        parent.close()

    def test_closes_with_parent(self, pods: LedgerKind) -> None:
        """An open child closes when its parent does, inheriting the outcome."""
        with Scope() as parent:
            child = parent.child("c")
            child.track("testpods", "in-child")
            parent.set_outcome(Outcome.FAILED)
        assert pods.deleted == []
        assert child.dispositions[0].state is State.KEPT

    def test_closes_early(self, pods: LedgerKind) -> None:
        """A child used as a context manager closes at its block's end."""
        with Scope() as parent:
            with parent.child("c") as child:
                child.track("testpods", "early")
            assert pods.deleted == ["early"]
        assert pods.deleted == ["early"]

    @pytest.mark.anyio
    async def test_async_parent(self) -> None:
        """An async parent closes a child's async cleanups."""
        log: list[str] = []
        obj = AsyncClosable(log, "child")
        async with Scope() as parent:
            child = parent.child("c")
            child.add(obj)
        assert log == ["child"]


class TestExitStackInterplay:
    def test_scope_inside_exitstack(self) -> None:
        """A Scope can be entered into a plain ExitStack."""
        obj = Closable()
        with contextlib.ExitStack() as stack:
            scope = stack.enter_context(Scope())
            scope.add(obj)
        assert obj.closed == 1

    def test_exitstack_inside_scope(self) -> None:
        """Any ExitStack or context manager can be entered into a Scope."""
        log: list[str] = []
        with Scope() as scope:
            inner = scope.enter_context(contextlib.ExitStack())
            inner.callback(log.append, "inner")
        assert log == ["inner"]

    def test_pop_all_moves_tracked_resources(self, pods: LedgerKind) -> None:
        """pop_all() moves tracked resources and the policy to a new scope."""
        with Scope("mover", level="pods") as scope:
            scope.track("testpods", "moved")
            moved = scope.pop_all()
        assert pods.deleted == []
        assert moved.name == "mover"
        assert moved.policy.level is cleanroom.PODS
        moved.close()
        assert pods.deleted == ["moved"]

    def test_isinstance_of_both_stacks(self) -> None:
        """A Scope is an ExitStack and an AsyncExitStack."""
        scope = Scope()
        assert isinstance(scope, contextlib.ExitStack)
        assert isinstance(scope, contextlib.AsyncExitStack)

    def test_current_scope_follows_with(self) -> None:
        """Entering a scope makes it current; leaving restores the previous one."""
        with Scope("outer") as outer:
            assert cleanroom.current_scope() is outer
            with Scope("inner") as inner:
                assert cleanroom.current_scope() is inner
            assert cleanroom.current_scope() is outer
