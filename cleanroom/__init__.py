"""
cleanroom: make test suites leave nothing behind.

One registry of resources and cleanups for pytest, unittest and plain scripts:
whatever a test created is cleaned, or deliberately kept and reported with how
to delete it.
"""

from __future__ import annotations

from types import FunctionType
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from .leaks import no_leaks


def __getattr__(name: str) -> Any:
    # cleanroom.leaks is imported on first use, so that ``import cleanroom``
    # stays cheap.
    if name == "no_leaks":
        from .leaks import no_leaks

        no_leaks.__module__ = __name__
        globals()[name] = no_leaks
        return no_leaks
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


for _name in __all__:
    if _name == "no_leaks":
        continue
    _value = globals()[_name]
    if isinstance(_value, type | FunctionType) and _value.__module__.startswith(
        "cleanroom."
    ):
        _value.__module__ = __name__
del _name, _value, FunctionType, _attach_journal, _install_leak_checks
