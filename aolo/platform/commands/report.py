"""``aolo report``: REPORT.md's tables and figures, regenerated from a finished ``aolo compare`` (and ``aolo sweep``).

    aolo report --preset paper --output aolo_runs [--sweep aolo_runs_sweep] [--figures docs/report] [--markdown F]

Reads what ``aolo compare --preset P --output RUNS`` wrote (the layout of :mod:`aolo.platform.results`): every
run's ``evaluation.csv`` and ``history.csv``, ``compare/table.csv`` and ``compare/references/<policy>.csv``
(when absent, the reference policies are evaluated again on the same held-out days — deterministic, seconds);
with ``--sweep``, ``SWEEP/<scenario>/sweep/selection.json`` and ``tradeoff.png`` of ``aolo sweep``. Prints (or
writes with ``--markdown``) the tables of :func:`aolo.platform.report.report_markdown` and writes the figures of
:func:`aolo.platform.plots.write_study_figures` (``--figures``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aolo.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``aolo report`` flags (``--output`` is read, not written: the comparison's folder)."""
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("./aolo_runs"),
        metavar="DIR",
        help="the --output of `aolo compare` on the same preset (default: ./aolo_runs)",
    )
    parser.add_argument("--sweep", type=Path, metavar="DIR", help="the --output of `aolo sweep` on the same preset")
    parser.add_argument(
        "--figures", type=Path, metavar="DIR", help="write the figures here (e.g. docs/report); default: none"
    )
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write the tables here instead of printing")


def run(args: argparse.Namespace) -> int:
    """``aolo report``: print (or write) the tables, write the figures; 0 on success."""
    from aolo.platform.plots import write_study_figures
    from aolo.platform.presets import load_experiment
    from aolo.platform.report import report_markdown
    from aolo.platform.results import load_study, sweep_dir

    experiment = load_experiment(args.preset)
    data = load_study(experiment, args.output)
    selection, sweep_plot = None, None
    if args.sweep is not None:
        folder = sweep_dir(args.sweep, experiment.scenario)
        if not (folder / "selection.json").is_file():
            raise ConfigError(
                f"--sweep {args.sweep}: no {folder / 'selection.json'}; give the --output of "
                f"a finished `aolo sweep` on the same preset"
            )
        selection = json.loads((folder / "selection.json").read_text())
        sweep_plot = folder / "tradeoff.png"
    text = report_markdown(data, selection)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
        print(f"[report] tables: {args.markdown}")
    else:
        print(text, end="")
    if args.figures is not None:
        files = write_study_figures(data, args.figures, sweep_plot)
        print(f"[report] figures: {', '.join(str(f) for f in files)}")
    return 0
