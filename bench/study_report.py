"""Moved: REPORT.md's tables and figures now come from the installed ``aolo report`` subcommand
(:mod:`aolo.platform.commands.report`). This wrapper keeps the old command line working:

    python bench/study_report.py --preset paper --runs aolo_runs [--sweep aolo_runs_sweep]
    # = python -m aolo report --preset paper --output aolo_runs [--sweep aolo_runs_sweep]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aolo.platform.cli import main  # noqa: E402

if __name__ == "__main__":
    argv = ["--output" if a == "--runs" else a.replace("--runs=", "--output=") for a in sys.argv[1:]]
    sys.exit(main(["report", *argv]))
