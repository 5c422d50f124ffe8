"""
cleanroom: make test suites leave nothing behind.

One registry of resources and cleanups for pytest, unittest and plain scripts:
whatever a test created is cleaned, or deliberately kept and reported with how
to delete it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from . import _core
from ._crash import attach_journal as _attach_journal
from ._leaks import install as _install_leak_checks

if TYPE_CHECKING:
    from ._core._api import current_scope, managed_resources, register, with_cleanup
    from ._core._capabilities import (
        Adopts,
        FreesRuntime,
        KnowsSessions,
        ListsNames,
        ListsOwned,
        Owned,
        Probes,
    )
    from ._core._creation import Creation
    from ._core._ownership import Ownership, ownership_labels
    from ._core._policy import (
        ALL,
        NONE,
        PODS,
        Decision,
        Level,
        Outcome,
        Policy,
        get_level,
        register_level,
    )
    from ._core._registry import Listener, Registry, Report
    from ._core._resource import (
        BaseKind,
        Disposition,
        Kind,
        ObjectKind,
        Resource,
        State,
        get_kind,
        register_kind,
        unregister_kind,
    )
    from ._core._scope import Scope
    from ._version import __version__
    from .exceptions import (
        BackendUnavailableError,
        CleanroomError,
        CleanroomWarning,
        CleanupError,
        CleanupTimeoutError,
        CleanupWarning,
        CommandError,
        CommandTimeoutError,
        DeletionBlockedError,
        LeakError,
        PolicyError,
        ScopeStateError,
        Terminated,
        UnknownKindError,
        UnsafePathError,
    )
    from .leaks import no_leaks

__all__ = [
    "ALL",
    "NONE",
    "PODS",
    "Adopts",
    "BackendUnavailableError",
    "BaseKind",
    "CleanroomError",
    "CleanroomWarning",
    "CleanupError",
    "CleanupTimeoutError",
    "CleanupWarning",
    "CommandError",
    "CommandTimeoutError",
    "Creation",
    "Decision",
    "DeletionBlockedError",
    "Disposition",
    "FreesRuntime",
    "Kind",
    "KnowsSessions",
    "LeakError",
    "Level",
    "Listener",
    "ListsNames",
    "ListsOwned",
    "ObjectKind",
    "Outcome",
    "Owned",
    "Ownership",
    "Policy",
    "PolicyError",
    "Probes",
    "Registry",
    "Report",
    "Resource",
    "Scope",
    "ScopeStateError",
    "State",
    "Terminated",
    "UnknownKindError",
    "UnsafePathError",
    "__version__",
    "current_scope",
    "get_kind",
    "get_level",
    "managed_resources",
    "no_leaks",
    "ownership_labels",
    "register",
    "register_kind",
    "register_level",
    "unregister_kind",
    "with_cleanup",
]

# Every name is imported on first use: import cleanroom stays quick, and the
# pytest plugin, whose modules pytest compiles afresh on every run where
# bytecode is not written, loads only what a run that never uses it needs.
_HOMES = {
    "._core._api": ("current_scope", "managed_resources", "register", "with_cleanup"),
    "._core._capabilities": (
        "Adopts",
        "FreesRuntime",
        "KnowsSessions",
        "ListsNames",
        "ListsOwned",
        "Owned",
        "Probes",
    ),
    "._core._creation": ("Creation",),
    "._core._ownership": ("Ownership", "ownership_labels"),
    "._core._policy": (
        "ALL",
        "NONE",
        "PODS",
        "Decision",
        "Level",
        "Outcome",
        "Policy",
        "get_level",
        "register_level",
    ),
    "._core._registry": ("Listener", "Registry", "Report"),
    "._core._resource": (
        "BaseKind",
        "Disposition",
        "Kind",
        "ObjectKind",
        "Resource",
        "State",
        "get_kind",
        "register_kind",
        "unregister_kind",
    ),
    "._core._scope": ("Scope",),
    "._version": ("__version__",),
    ".exceptions": (
        "BackendUnavailableError",
        "CleanroomError",
        "CleanroomWarning",
        "CleanupError",
        "CleanupTimeoutError",
        "CleanupWarning",
        "CommandError",
        "CommandTimeoutError",
        "DeletionBlockedError",
        "LeakError",
        "PolicyError",
        "ScopeStateError",
        "Terminated",
        "UnknownKindError",
        "UnsafePathError",
    ),
    ".leaks": ("no_leaks",),
}
_LAZY = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    home = _LAZY.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # Looked up each time rather than kept here: pytester's inline runs take
    # the modules first imported during a run out of sys.modules again, and a
    # name kept here would belong to a copy of the core that the next import
    # of it no longer uses. (The core's modules show their names as
    # cleanroom.X themselves, however they are reached.)
    module = sys.modules.get(__name__ + home)
    if module is None:
        from importlib import import_module

        module = import_module(home, __name__)
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def _load_scope() -> object:
    return __getattr__("Scope")


# The core's plug-in points (it imports nothing above it): crash safety
# journals what the core tracks, the registry's session scope needs the Scope
# class maybe before anyone asked for it, and scopes given check_leaks= get
# their check from the leak checks.
if _attach_journal not in _core.first_resource_hooks:
    _core.first_resource_hooks.append(_attach_journal)
_core.scope_loader = _load_scope
_install_leak_checks()
