"""``python -m aolo``: the command-line interface (:mod:`aolo.platform.cli`)."""

from aolo.platform.cli import main

raise SystemExit(main())
