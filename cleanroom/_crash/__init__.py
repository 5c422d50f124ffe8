"""
Crash safety: the journal, the recorder that fills it, the reaper and the sweep.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cleanroom._core._registry import Registry


def attach_journal(registry: Registry) -> None:
    """
    Journal *registry*'s declarative resources from now on; the registry
    calls this at its first one (see :meth:`Registry.on_first_resource
    <cleanroom.Registry.on_first_resource>`). Never raises.
    """
    from ._recorder import attach

    attach(registry)
