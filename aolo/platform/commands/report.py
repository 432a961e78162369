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
    parser.add_argument(
        "--results",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="results.json files (or folders searched for *results.json) to add to the tables, e.g. what "
        "`aolo evaluate --policy package.module:Name` wrote; they must be scored on this preset's protocol; "
        "repeatable. With --results, --output may hold no comparison",
    )


def run(args: argparse.Namespace) -> int:
    """``aolo report``: print (or write) the tables, write the figures; 0 on success."""
    from aolo.platform.plots import write_study_figures
    from aolo.platform.presets import load_experiment
    from aolo.platform.report import report_markdown
    from aolo.platform.results import sweep_dir

    experiment = load_experiment(args.preset)
    data = _study_with_results(experiment, args.output, args.results)
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


def _study_with_results(experiment, output: Path, results: list[Path]):
    """The comparison in ``output`` with the policies of the results files added as rows; with ``results`` and no
    comparison there, the reference policies (evaluated again: deterministic, seconds) and the results files. A
    file scored on another protocol (preset hash) is a :class:`ConfigError`."""
    from aolo.platform.results import (
        StudyData,
        evaluation_rows,
        find_results,
        load_study,
        protocol_hash,
        read_results_json,
        results_rows,
        scenario_dir,
    )

    scenario = experiment.scenario
    if results and not scenario_dir(output, scenario).is_dir():  # the references, evaluated again (deterministic)
        from aolo.platform.evaluation import evaluate_references

        references = {
            name: [{k: str(v) for k, v in row.items()} for row in evaluation_rows(result, scenario)]
            for name, result in evaluate_references(scenario, experiment.days_per_cell).items()
        }
        data = StudyData(
            [c.name for c in scenario.cells],
            scenario.service.q_min,
            learned={},
            references=references,
            users_per_episode=sum(c.num_users for c in scenario.cells) / len(scenario.cells),
            epochs_per_episode=scenario.epochs_per_episode,
        )
    else:
        data = load_study(experiment, output)
    expected = protocol_hash(scenario, experiment.days_per_cell)
    for path in find_results(results):
        document = read_results_json(path)
        found = document.get("protocol", {}).get("hash")
        if found != expected:
            raise ConfigError(
                f"{path}: scored on another protocol (preset {document['scenario'].get('preset')!r}, hash "
                f"{str(found)[:12]}…) than --preset {experiment.name} (hash {expected[:12]}…): its numbers do not "
                "compare; score the policy with `aolo evaluate --preset` of this report"
            )
        name = document["policy"]["name"]
        if name in data.learned or name in data.references:
            continue  # the comparison's own runs (a folder search meets compare/references/*.results.json)
        data.references[name] = results_rows(document)
    return data
