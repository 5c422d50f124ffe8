"""
Registry: the process-wide root that owns the session scope and hears of every
tracked resource.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import attrs

from cleanroom import _core

from ._policy import Policy
from ._resource import Disposition, Resource, State
from ._settings import env_settings, is_given

if TYPE_CHECKING:
    from ._scope import Scope


# The class of session scopes, set by the scope module as it is imported, so
# that this module, which it imports, need not import it back. The package
# imports the scope module on first use; _core.scope_loader imports it when a
# session scope is needed first.
_scope_class: type[Scope] | None = None


def set_scope_class(cls: type[Scope]) -> None:
    """Make *cls* the class of the registries' session scopes."""
    global _scope_class  # noqa: PLW0603
    _scope_class = cls


class Listener(Protocol):
    """
    Hears of declarative resources as they are created and settled (the
    journal is one), and of every kept, failed or collected resource.

    .. versionadded:: 0.1.0
    """

    def intent(self, scope: Scope, resource: Resource) -> None:
        """*resource* is about to be created (it may appear even if creation fails)."""

    def created(self, scope: Scope, resource: Resource) -> None:
        """*resource* exists now (its identity may be fuller than at intent)."""

    def settled(self, scope: Scope, disposition: Disposition) -> None:
        """*disposition* says what became of a resource."""


@attrs.define
class Report:
    """
    Counts of what the process's scopes did with their tracked resources, and
    the kept and failed ones themselves.

    Attributes:
        cleaned: How many tracked resources were cleaned.
        kept: The kept resources, each with why and how to delete it.
        failed: The resources whose cleanup failed.
        collected: How many weakly tracked objects were garbage-collected
            before their scope closed.
        forgotten: How many resources were forgotten on request.

    .. versionadded:: 0.1.0
    """

    cleaned: int = 0
    kept: list[Disposition] = attrs.Factory(list)
    failed: list[Disposition] = attrs.Factory(list)
    collected: int = 0
    forgotten: int = 0

    def __bool__(self) -> bool:
        return bool(
            self.cleaned or self.kept or self.failed or self.collected or self.forgotten
        )


class Registry:
    """
    The process-wide root of cleanroom: it owns the *session* scope, closed at
    interpreter exit, and tells its listeners (the journal, the pytest plugin's
    summary) about tracked resources. It is safe to use from many threads.

    Most code never touches it: :func:`~cleanroom.current_scope` falls back
    to the session scope, and :func:`~cleanroom.register` adds to the current
    scope.

    .. versionadded:: 0.1.0
    """

    _default: ClassVar[Registry | None] = None
    _default_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._options: dict[str, Any] = {}
        self._config: dict[str, Any] = {}
        self._base_cache: tuple[tuple[Any, ...], Policy] | None = None
        self._session: Scope | None = None
        self._listeners: list[Listener] = []
        self._report = Report()
        self._atexit = False
        self._journal_attached = False

    @classmethod
    def default(cls) -> Registry:
        """Return the process's registry, creating it on first use."""
        registry = cls._default
        if registry is None:
            with cls._default_lock:
                registry = cls._default
                if registry is None:
                    registry = cls._default = cls()
        return registry

    def base_policy(self) -> Policy:
        """
        Return the policy root scopes start from: command-line options over
        the environment, over configuration-file settings, over
        ``[tool.cleanroom]`` in ``pyproject.toml``, over the defaults.

        The result is reused while the ``CLEANROOM_*`` variables and the
        current directory stay the same.
        """
        # os.getcwd() rather than Path.cwd(): pathlib is imported lazily.
        key = (tuple(env_settings().items()), os.getcwd())  # noqa: PTH109
        cached = self._base_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        policy = Policy.resolve(self._options, config=self._config)
        self._base_cache = (key, policy)
        return policy

    def configure(
        self,
        *,
        options: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        """
        Set the policy settings that root scopes start from.

        Args:
            options: Settings given on a command line; they win over the
                environment. ``None`` values are ignored.
            config: Settings from a configuration file (pytest's ini keys);
                the environment wins over them.

        Raises:
            PolicyError: On an unknown setting or bad value; nothing changes.
        """
        new_options = dict(self._options if options is None else options)
        new_config = dict(self._config if config is None else config)
        Policy.resolve(new_options, config=new_config)
        self._options = {k: v for k, v in new_options.items() if is_given(k, v)}
        self._config = {k: v for k, v in new_config.items() if is_given(k, v)}
        self._base_cache = None

    @property
    def session(self) -> Scope:
        """The session scope: closed at interpreter exit, or by :meth:`close`."""
        session = self._session
        if session is None:
            with self._lock:
                session = self._session
                if session is None:
                    if _scope_class is None and _core.scope_loader is not None:
                        _core.scope_loader()
                    assert _scope_class is not None  # noqa: S101 - set on import
                    session = _scope_class("session")
                    session._registry = self
                    self._session = session
                    if not self._atexit:
                        atexit.register(self.close_quietly)
                        self._atexit = True
        return session

    def close(self) -> None:
        """
        Close the session scope now.

        The scope stays the session scope: what is registered into it later,
        even by a thread that fetched it before this call, is cleaned by the
        next close or at interpreter exit.
        """
        session = self._session
        if session is not None:
            session.close()

    def close_quietly(self) -> None:
        """Close the session scope, logging instead of raising what it raises."""
        try:
            self.close()
        except Exception:
            import logging

            logging.getLogger("cleanroom").exception("closing the session scope failed")

    # -- listeners and the report ----------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Tell *listener* about tracked resources from now on."""
        with self._lock:
            self._listeners = [*self._listeners, listener]

    def unsubscribe(self, listener: Listener) -> None:
        """Stop telling *listener* about tracked resources."""
        with self._lock:
            self._listeners = [x for x in self._listeners if x is not listener]

    @property
    def report(self) -> Report:
        """What has been cleaned, kept, failed and collected so far."""
        return self._report

    def take_report(self) -> Report:
        """Return the report so far and start a new one."""
        with self._lock:
            report, self._report = self._report, Report()
        return report

    @classmethod
    def on_first_resource(cls, hook: Callable[[Registry], None]) -> None:
        """
        Run *hook* with each registry at its first declarative resource (the
        first ``track``, ``reserve`` or kind helper). Crash safety attaches the
        journal this way, so that processes which never create such a resource
        neither open it nor start a reaper.

        .. versionadded:: 0.2.0
        """
        hooks = _core.first_resource_hooks
        if hook not in hooks:
            hooks.append(hook)

    def rearm(self) -> None:
        """
        Run the :meth:`on_first_resource` hooks again at the next declarative
        resource (after the journal was reset).

        .. versionadded:: 0.2.0
        """
        with self._lock:
            self._journal_attached = False

    def settings(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """
        Return copies of the settings last given to :meth:`configure`: the
        command-line options and the configuration-file settings.

        .. versionadded:: 0.2.0
        """
        return dict(self._options), dict(self._config)

    def _attach_journal(self) -> None:
        with self._lock:
            if self._journal_attached:
                return
            self._journal_attached = True
        for hook in list(_core.first_resource_hooks):
            hook(self)

    def _intent(self, scope: Scope, resource: Resource) -> None:
        if not self._journal_attached:
            self._attach_journal()
        for listener in self._listeners:
            listener.intent(scope, resource)

    def _created(self, scope: Scope, resource: Resource) -> None:
        if not self._journal_attached:
            self._attach_journal()
        for listener in self._listeners:
            listener.created(scope, resource)

    def _cleaned(self, scope: Scope, resource: Resource | None) -> None:
        with self._lock:
            self._report.cleaned += 1
        if resource is not None and resource.declarative and self._listeners:
            disposition = Disposition(resource, State.CLEANED)
            for listener in self._listeners:
                listener.settled(scope, disposition)

    def _collected(self, scope: Scope, entry: object) -> None:  # noqa: ARG002
        with self._lock:
            self._report.collected += 1

    def _settled(self, scope: Scope, disposition: Disposition) -> None:
        with self._lock:
            report = self._report
            if disposition.state is State.KEPT:
                report.kept.append(disposition)
            elif disposition.state is State.FAILED:
                report.failed.append(disposition)
            elif disposition.state is State.FORGOTTEN:
                report.forgotten += 1
        for listener in self._listeners:
            listener.settled(scope, disposition)


# The package imports this module on first use, and other modules may reach
# it first: show the public path in reprs and tracebacks from the start.
for _public in (Listener, Registry, Report):
    _public.__module__ = "cleanroom"
del _public
