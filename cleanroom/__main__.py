"""``python -m cleanroom``: the ``cleanroom`` command."""

from cleanroom._cli import main

raise SystemExit(main())
