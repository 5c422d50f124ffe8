"""
The built-in kinds, one module per family.

Each module registers its kinds when it is imported; the core imports them on
first use (``scope.tempdir()``, ``scope.track("process", ...)``), never at
``import cleanroom``.
"""
