"""
The core: scopes, the registry, policies, resources and kinds, signals.

It imports nothing from the layers above it (kinds, crash safety, the command).
They plug in here instead: ``cleanroom/__init__``, which Python runs before any
module of the core, sets what follows without importing the core's modules.
The ids of sessions and owners are made here too (:func:`new_id`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

#: Run with each registry at its first declarative resource: crash safety
#: attaches the journal so (see ``Registry.on_first_resource``).
first_resource_hooks: list[Callable[[Any], None]] = []

#: Imports the scope module, whose import makes the registries' session
#: scopes possible, when a registry needs its session scope first.
scope_loader: Callable[[], object] | None = None

#: Turns a scope's ``check_leaks`` setting into a leak check, or ``None`` for no
#: check: :mod:`cleanroom.leaks` makes it.
leak_checks: Callable[[object], Any] | None = None


def new_id() -> str:
    """
    Return a new random id for a session or an owner (here rather than in
    ``_session``, so that the pytest plugin names a run's session without
    loading that module in a run that may never use cleanroom).
    """
    import uuid

    return uuid.uuid4().hex
