"""
The ``cleanroom`` command: ``check``, ``list``, ``sweep`` and ``run``.
"""

from ._main import main

__all__ = ["main"]
