"""
Leak detection's parts: one module per thing a block of code can leave behind,
the records they report, and the check that brackets a block. The public face
is :mod:`cleanroom.leaks`.
"""

from __future__ import annotations

from typing import Any, Final

#: The name of a teardown report's user property that carries a test's leaks
#: (the pytest plugin collects them, from xdist's workers too).
LEAKS_PROPERTY: Final = "cleanroom_leaks"


def _from_setting(setting: object) -> Any:
    """:func:`._check.from_setting`, importing the checks only for a check."""
    if setting is None or setting is False or setting == "off":
        return None
    from ._check import from_setting

    return from_setting(setting)


def install() -> None:
    """
    Let scopes given ``check_leaks=`` make their check; the modules that do
    it are imported on the first such scope.
    """
    from cleanroom import _core

    if _core.leak_checks is None:
        _core.leak_checks = _from_setting
