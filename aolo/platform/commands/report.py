"""``aolo report``: REPORT.md's tables and figures from a finished compare (and sweep).

The command's flags and its run live with the report itself, in :mod:`aolo.platform.report`; this module only
gives ``report`` the same home as the other commands.
"""

from __future__ import annotations

from aolo.platform.report import add_arguments, run

__all__ = ["add_arguments", "run"]
