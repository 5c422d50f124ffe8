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

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
