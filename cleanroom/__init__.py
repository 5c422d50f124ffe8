"""
cleanroom: make test suites leave nothing behind.

One registry of resources and cleanups for pytest, unittest and plain scripts:
whatever a test created is cleaned, or deliberately kept and reported with how
to delete it.
"""

from __future__ import annotations

from types import FunctionType
from typing import TYPE_CHECKING, Any

from ._core._capabilities import (
    Adopts,
    FreesRuntime,
    KnowsSessions,
    ListsNames,
    ListsOwned,
    Owned,
    Probes,
)
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
from ._core._registry import set_scope_loader as _set_scope_loader
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
from ._crash import attach_journal as _attach_journal
from ._leaks import install as _install_leak_checks
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

if TYPE_CHECKING:
    from ._core._api import current_scope, managed_resources, register, with_cleanup
    from ._core._creation import Creation
    from ._core._ownership import Ownership, ownership_labels
    from ._core._scope import Scope
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

# Crash safety, one layer up, journals what the core tracks.
Registry.on_first_resource(_attach_journal)
# Scopes given check_leaks= get their check from cleanroom.leaks, imported then.
_install_leak_checks()

# Imported on first use, so that import cleanroom stays quick, and so that the
# pytest plugin, whose modules pytest compiles afresh on every run where
# bytecode is not written, loads only what a run that never uses it needs.
_LAZY = {
    "Creation": "._core._creation",
    "Ownership": "._core._ownership",
    "Scope": "._core._scope",
    "current_scope": "._core._api",
    "managed_resources": "._core._api",
    "no_leaks": ".leaks",
    "ownership_labels": "._core._ownership",
    "register": "._core._api",
    "with_cleanup": "._core._api",
}


def _show_public(value: object) -> None:
    """Show *value* as ``cleanroom.X`` in reprs and tracebacks."""
    if isinstance(value, type | FunctionType) and value.__module__.startswith(
        "cleanroom."
    ):
        value.__module__ = __name__


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    # The core's modules show their names as cleanroom.X themselves, however
    # they are reached.
    _show_public(value)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def _load_scope() -> object:
    return __getattr__("Scope")


# The registry's session scope needs the Scope class, maybe before anyone
# asked for it.
_set_scope_loader(_load_scope)

for _name in __all__:
    if _name not in _LAZY:
        _show_public(globals()[_name])
del _name, _attach_journal, _install_leak_checks, _set_scope_loader
