"""
Exceptions and warnings raised by cleanroom.
"""

from __future__ import annotations

from cleanroom._core._exceptions import (
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
    LeakWarning,
    NameConflictError,
    PolicyError,
    ScopeStateError,
    Terminated,
    UnknownKindError,
    UnsafePathError,
)

__all__ = [
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
    "LeakWarning",
    "NameConflictError",
    "PolicyError",
    "ScopeStateError",
    "Terminated",
    "UnknownKindError",
    "UnsafePathError",
]

# The package re-exports all but these, and its names show as cleanroom.X,
# however they are reached.
_ONLY_HERE = frozenset({"LeakWarning", "NameConflictError"})
for _name in __all__:
    globals()[_name].__module__ = __name__ if _name in _ONLY_HERE else "cleanroom"
del _name
