"""
Leak detection's parts: one module per thing a block of code can leave behind,
the records they report, and the check that brackets a block. The public face
is :mod:`cleanroom.leaks`.
"""

from __future__ import annotations

from typing import Any


def _from_setting(setting: object) -> Any:
    from ._check import from_setting

    return from_setting(setting)


def install() -> None:
    """
    Let scopes given ``check_leaks=`` make their check; the modules that do
    it are imported on the first such scope.
    """
    from cleanroom._core import _context

    if _context.leak_checks is None:
        _context.leak_checks = _from_setting
