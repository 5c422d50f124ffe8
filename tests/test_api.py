"""
Tests for the entry points: with_cleanup, managed_resources, current_scope,
register and the Registry.
"""

from __future__ import annotations

import contextvars
import inspect
import subprocess
import sys
import threading
import unittest

import pytest

import cleanroom
from cleanroom import (
    PODS,
    PolicyError,
    Registry,
    Scope,
    current_scope,
    managed_resources,
    register,
    with_cleanup,
)


class Closable:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class TestWithCleanup:
    def test_bare(self) -> None:
        """A bare decorator opens a scope for the call and closes it after."""
        thing = Closable()

        @with_cleanup
        def work() -> Scope:
            current_scope().add(thing)
            assert not thing.closed
            return current_scope()

        scope = work()
        assert thing.closed
        assert scope.name.endswith("test_bare.<locals>.work")

    def test_with_arguments(self) -> None:
        """Policy arguments configure the function's scope."""

        @with_cleanup(cleanup_level="pods", wait_after=0, name="named")
        def work() -> Scope:
            return current_scope()

        scope = work()
        assert scope.policy.level is PODS
        assert scope.name == "named"

    def test_scope_parameter_is_filled(self) -> None:
        """A parameter named scope receives the function's scope."""

        @with_cleanup
        def work(value: int, scope: Scope) -> tuple[int, Scope]:
            return value, scope

        value, scope = work(3)
        assert value == 3
        assert isinstance(scope, Scope)

    def test_cleanroom_parameter_is_filled(self) -> None:
        """A parameter named cleanroom receives the function's scope too."""

        @with_cleanup
        def work(cleanroom: Scope) -> Scope:
            return cleanroom

        assert isinstance(work(), Scope)

    def test_injected_parameter_is_hidden(self) -> None:
        """The filled parameter does not appear in the wrapper's signature."""

        @with_cleanup
        def work(value: int, scope: Scope) -> None:
            """Do the work."""

        assert list(inspect.signature(work).parameters) == ["value"]
        assert work.__doc__ == "Do the work."
        assert work.__name__ == "work"

    def test_method(self) -> None:
        """Methods are decorated like functions."""

        class Service:
            @with_cleanup
            def run(self, scope: Scope) -> Scope:
                return scope

        assert isinstance(Service().run(), Scope)

    def test_exception_propagates_and_cleans(self) -> None:
        """The function's exception propagates after its objects are cleaned."""
        thing = Closable()

        @with_cleanup
        def work(scope: Scope) -> None:
            scope.add(thing)
            raise ValueError("inside")

        with pytest.raises(ValueError, match="inside"):
            work()
        assert thing.closed

    @pytest.mark.anyio
    async def test_async_function(self) -> None:
        """Async functions get an async scope."""
        log: list[str] = []

        class Async:
            async def aclose(self) -> None:
                log.append("closed")

        thing = Async()

        @with_cleanup(level="all")
        async def work(scope: Scope) -> str:
            scope.add(thing)
            return "done"

        assert await work() == "done"
        assert log == ["closed"]

    def test_unittest_method(self) -> None:
        """A decorated unittest test method runs inside its own scope."""
        seen: list[Scope] = []

        class Case(unittest.TestCase):
            @with_cleanup(level="pods")
            def test_it(self) -> None:
                seen.append(current_scope())

        result = unittest.TestResult()
        Case("test_it").run(result)
        assert result.wasSuccessful()
        assert seen[0].policy.level is PODS

    def test_bad_setting_fails_at_decoration(self) -> None:
        """A bad policy value fails when the decorator is applied."""
        with pytest.raises(PolicyError, match="'none', 'pods', 'all'"):
            with_cleanup(level="some")

    def test_conflicting_level_names(self) -> None:
        """level and cleanup_level must agree when both are given."""
        with pytest.raises(PolicyError, match="disagree"):
            with_cleanup(level="all", cleanup_level="pods")

    def test_not_a_function(self) -> None:
        """Decorating something that is not callable is an error."""
        with pytest.raises(TypeError, match="decorates functions"):
            with_cleanup()(3)  # type: ignore[call-overload]

    def test_inherits_the_current_scope_policy(self) -> None:
        """The function's scope inherits the policy of the scope around the call."""

        @with_cleanup
        def work() -> Scope:
            return current_scope()

        with Scope(level="none"):
            inner = work()
        assert inner.policy.level is cleanroom.NONE


class TestManagedResources:
    def test_with(self) -> None:
        """managed_resources() is a scope for with."""
        thing = Closable()
        with managed_resources("my_test", cleanup_level="all") as scope:
            scope.add(thing)
            assert current_scope() is scope
        assert thing.closed
        assert scope.name == "my_test"

    @pytest.mark.anyio
    async def test_async_with(self) -> None:
        """managed_resources() is a scope for async with."""
        thing = Closable()
        async with managed_resources(level="pods") as scope:
            scope.add(thing)
        assert thing.closed

    def test_bad_level(self) -> None:
        """A bad level fails at once."""
        with pytest.raises(PolicyError, match="unknown level 'every'"):
            managed_resources(level="every")


class TestRegister:
    def test_into_current_scope(self) -> None:
        """register() adds to the innermost open scope."""
        thing = Closable()
        with Scope():
            assert register(thing) is thing
            assert not thing.closed
        assert thing.closed

    def test_session_fallback(self) -> None:
        """With no open scope, current_scope() is the registry's session scope."""
        assert current_scope() is Registry.default().session

    def test_session_closes_at_exit(self, tmp_path: object) -> None:
        """The session scope is closed at interpreter exit."""
        code = (
            "import cleanroom\n"
            "class T:\n"
            "    def close(self): print('closed at exit')\n"
            "t = T()\n"
            "cleanroom.register(t)\n"
            "print('main done')\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert out.splitlines() == ["main done", "closed at exit"]


class TestCurrentScope:
    def test_left_in_each_context_it_was_entered_in(self) -> None:
        """A scope entered here and in a task's context is not current here after."""
        before = cleanroom.current_scope()
        scope = Scope("two contexts")
        scope.__enter__()
        task_context = contextvars.copy_context()
        task_context.run(scope.__enter__)
        # Closed first from a third context, as a test body's aclose() is.
        contextvars.copy_context().run(scope.close)
        task_context.run(scope.close)
        scope.close()
        assert cleanroom.current_scope() is before


class TestRegistry:
    def test_default_is_one_per_process(self) -> None:
        """Registry.default() returns one registry, even across threads."""
        seen: list[Registry] = []
        threads = [
            threading.Thread(target=lambda: seen.append(Registry.default()))
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(registry is Registry.default() for registry in seen)

    def test_close_keeps_the_session_usable(self) -> None:
        """close() cleans the session scope, which keeps taking registrations."""
        registry = Registry()
        session = registry.session
        first, second = Closable(), Closable()
        session.add(first)
        registry.close()
        assert first.closed
        assert registry.session is session
        session.add(second)
        registry.close()
        assert second.closed

    def test_concurrent_registrations_and_closes(self) -> None:
        """Registrations racing with closes of the session are all cleaned."""
        registry = Registry()
        objects = [[Closable() for _ in range(2_000)] for _ in range(4)]

        def register_all(batch: list[Closable]) -> None:
            for obj in batch:
                registry.session.add(obj)

        def close_often() -> None:
            for _ in range(50):
                registry.close()

        threads = [threading.Thread(target=register_all, args=(b,)) for b in objects]
        threads.append(threading.Thread(target=close_often))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        registry.close()
        assert all(obj.closed for batch in objects for obj in batch)

    def test_report_counts(self) -> None:
        """The report counts cleaned and lists kept resources."""
        registry = Registry()
        scope = Scope(level="none")
        scope._registry = registry
        kind = cleanroom.register_kind(cleanroom.BaseKind("reported"))
        try:
            thing = Closable()
            scope.add(thing)
            scope.track("reported", "kept-one")
            scope.close()
        finally:
            cleanroom.unregister_kind(kind)
        report = registry.take_report()
        assert report.cleaned == 1
        assert [d.resource.name for d in report.kept] == ["kept-one"]
        assert not registry.report

    def test_listeners_hear_declarative_resources(self) -> None:
        """Subscribed listeners hear of intent, creation and settling."""
        events: list[tuple[str, str]] = []

        class Listener:
            def intent(self, scope: Scope, resource: cleanroom.Resource) -> None:
                events.append(("intent", resource.name))

            def created(self, scope: Scope, resource: cleanroom.Resource) -> None:
                events.append(("created", resource.name))

            def settled(self, scope: Scope, disposition: cleanroom.Disposition) -> None:
                events.append((disposition.state.value, disposition.resource.name))

        registry = Registry()
        listener = Listener()
        registry.subscribe(listener)

        class Noop(cleanroom.BaseKind):
            def delete(self, resource: cleanroom.Resource, *, wait: bool) -> None:
                pass

        with pytest.raises(TypeError, match="instance"):
            cleanroom.register_kind(Noop)  # type: ignore[arg-type]
        kind = cleanroom.register_kind(Noop("noops"))
        try:
            scope = Scope()
            scope._registry = registry
            scope.track("noops", "a")
            scope.reserve("noops", "b")
            scope.close()
        finally:
            cleanroom.unregister_kind(kind)
        registry.unsubscribe(listener)
        assert events == [
            ("created", "a"),
            ("intent", "b"),
            ("cleaned", "b"),
            ("cleaned", "a"),
        ]
