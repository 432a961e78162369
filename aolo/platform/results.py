"""Where runs live and the files they write: the one home of aolo's run layout and result files.

Every command writes under ``<output>/<scenario name>/``::

    <algorithm>_seed<seed>/      one training (train, a compare trial): run_directory()
        checkpoint/                  Algorithm.save_to_path
        history.csv                  one row per training iteration (HISTORY_CSV)
        evaluation.csv               held-out evaluation: one row per (cell, day) episode plus the ``all`` row
        learning_curve.png
    compare/                     compare_dir(): table.csv, the figures, references/<policy>.csv, attempts/, tune/
    sweep/                       sweep_dir(): selection.json, tradeoff.png, tune/
    evaluate/<name>.csv          evaluate_dir(): ``aolo evaluate``'s per-episode rows

Result files are CSV with a header; rows may have different keys (the columns are their union, in first-seen
order). :func:`load_study` reads a finished comparison back (what ``aolo report`` and the compare figures use),
with the per-cell aggregates of it (:func:`cell_means`, :func:`cell_carbon`, :func:`bound_by_cell`).
Metric names are those of docs/design.md §6; :data:`CARBON_METRIC` is the headline one.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aolo.errors import ConfigError

if TYPE_CHECKING:
    from aolo.envs.config import ScenarioConfig
    from aolo.platform.evaluation import EvaluationResult
    from aolo.platform.presets import Experiment

#: The headline metric: held-out carbon per request [gCO2e], all parts (docs/design.md §6).
CARBON_METRIC = "carbon_g_per_request"
#: The strict lower bound per request [gCO2e] (the hindsight policy's Lagrangian dual), on hindsight's rows.
BOUND_METRIC = "bound_g_per_request"
#: Its parts: operational inference, embodied GPU/server share, radio.
CARBON_PARTS = ("carbon_inference_g", "carbon_embodied_g", "carbon_comm_g")
MG_PER_G = 1000.0  #: per-request carbon is printed and plotted in mg (a request emits a few mg)

CHECKPOINT_DIR = "checkpoint"
HISTORY_CSV = "history.csv"
EVALUATION_CSV = "evaluation.csv"
LEARNING_CURVE_PNG = "learning_curve.png"
TABLE_CSV = "table.csv"  #: ``compare/table.csv``: the comparison table
REFERENCES_DIR = "references"  #: ``compare/references/<policy>.csv``: the reference policies' evaluation rows
ATTEMPTS_DIR = "attempts"  #: ``compare/attempts/<run name>``: the compare session a trial started in
TUNE_DIR = "tune"  #: ``compare/tune``, ``sweep/tune``: Ray Tune's own bookkeeping

Rows = list[dict[str, str]]  #: rows of a result CSV, values as read


# --- layout ---------------------------------------------------------------------------------------------


def scenario_dir(output_dir: str | Path, scenario: ScenarioConfig | str) -> Path:
    """``<output>/<scenario name>`` (absolute); ``scenario`` is a :class:`ScenarioConfig` or its name."""
    name = scenario if isinstance(scenario, str) else scenario.name
    return Path(output_dir).expanduser().resolve() / name


def run_name(algorithm: str, seed: int) -> str:
    """``<algorithm>_seed<seed>``: the run directory's, the Tune trial's and the attempt marker's name."""
    return f"{algorithm}_seed{seed}"


def run_directory(output_dir: str | Path, scenario: ScenarioConfig | str, algorithm: str, seed: int) -> Path:
    """``<output>/<scenario>/<algorithm>_seed<seed>``: one training's checkpoint, history and evaluation."""
    return scenario_dir(output_dir, scenario) / run_name(algorithm, seed)


def compare_dir(output_dir: str | Path, scenario: ScenarioConfig | str) -> Path:
    """``<output>/<scenario>/compare``: table.csv, figures, reference rows, Tune bookkeeping of ``aolo compare``."""
    return scenario_dir(output_dir, scenario) / "compare"


def sweep_dir(output_dir: str | Path, scenario: ScenarioConfig | str) -> Path:
    """``<output>/<scenario>/sweep``: selection.json, tradeoff.png and Tune bookkeeping of ``aolo sweep``."""
    return scenario_dir(output_dir, scenario) / "sweep"


def evaluate_dir(output_dir: str | Path, scenario: ScenarioConfig | str) -> Path:
    """``<output>/<scenario>/evaluate``: ``aolo evaluate``'s ``<policy or checkpoint name>.csv``."""
    return scenario_dir(output_dir, scenario) / "evaluate"


# --- writing and reading rows ---------------------------------------------------------------------------


def write_rows(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Rows with possibly different keys as CSV (columns: their union, in first-seen order; None and missing
    values as empty cells); creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return path


def read_rows(path: str | Path) -> Rows:
    """A CSV written by :func:`write_rows`, values as strings."""
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


def read_history(path: str | Path) -> list[dict[str, float]]:
    """A run's ``history.csv`` as numbers, empty cells dropped (empty list when the file is absent)."""
    if not Path(path).is_file():
        return []
    return [{k: float(v) for k, v in row.items() if v != ""} for row in read_rows(path)]


def evaluation_rows(result: EvaluationResult, scenario: ScenarioConfig) -> list[dict[str, Any]]:
    """One row per evaluated (cell, day) episode, then the ``all`` row with the overall metrics; the hindsight
    policy's episodes also carry their strict lower bound per request (:data:`BOUND_METRIC`)."""
    from aolo.envs.rollout import summarize

    sv = scenario.service
    rows: list[dict[str, Any]] = []
    for record in result.records:
        row = {"policy": result.policy, "cell": record.cell, "day": record.day}
        row.update(summarize([record], sv.q_min, sv.q_floor, sv.t_max_s))
        if "bound_g" in record.extra:
            row[BOUND_METRIC] = record.extra["bound_g"] / record.fields["carbon_total_g"].size
        rows.append(row)
    rows.append({"policy": result.policy, "cell": "all", "day": "", **result.metrics})
    return rows


def write_reference_rows(
    evaluations: Mapping[str, EvaluationResult], scenario: ScenarioConfig, output_dir: str | Path
) -> list[Path]:
    """``compare/references/<policy>.csv`` for every reference evaluation (what :func:`load_study` reads)."""
    folder = compare_dir(output_dir, scenario) / REFERENCES_DIR
    return [
        write_rows(evaluation_rows(result, scenario), folder / f"{name}.csv") for name, result in evaluations.items()
    ]


# --- a finished comparison, read back ---------------------------------------------------------------------


@dataclass
class StudyData:
    """A finished comparison, read back from disk (:func:`load_study`)."""

    cells: list[str]
    q_min: float
    learned: dict[str, dict[int, Rows]]  #: algorithm -> seed -> evaluation rows
    references: dict[str, Rows]  #: reference policy -> evaluation rows (hindsight's carry the bound)
    histories: dict[str, list[list[dict[str, float]]]] = field(default_factory=dict)  #: algorithm -> per seed
    users_per_episode: float = 1.0  #: mean users per cell (a cell's episode return sums over its users)
    epochs_per_episode: int = 1
    table: Rows = field(default_factory=list)  #: compare/table.csv (empty when absent)

    def policies(self) -> dict[str, list[Rows]]:
        """Every policy with one evaluation table per run: learned algorithms first, then the references."""
        return {
            **{a: list(runs.values()) for a, runs in self.learned.items()},
            **{name: [rows] for name, rows in self.references.items()},
        }


def load_study(experiment: Experiment, output_dir: str | Path) -> StudyData:
    """The comparison of ``experiment`` that ``aolo compare --output output_dir`` wrote: every run directory of
    its algorithms × seeds that has an evaluation.csv, the reference rows (evaluated again, deterministic, when
    a comparison predates ``compare/references/``) and table.csv."""
    scenario = experiment.scenario
    root = scenario_dir(output_dir, scenario)
    if not root.is_dir():
        raise ConfigError(
            f"--output {output_dir}: no comparison of scenario {scenario.name!r} there ({root} is "
            f"missing); give the --output of `aolo compare --preset {experiment.name}`"
        )
    learned: dict[str, dict[int, Rows]] = {}
    histories: dict[str, list[list[dict[str, float]]]] = {}
    for algo in experiment.algorithms:
        for seed in experiment.seeds:
            run_dir = run_directory(output_dir, scenario, algo, seed)
            if (run_dir / EVALUATION_CSV).is_file():
                learned.setdefault(algo, {})[seed] = read_rows(run_dir / EVALUATION_CSV)
                histories.setdefault(algo, []).append(read_history(run_dir / HISTORY_CSV))
    folder = compare_dir(output_dir, scenario)
    if (folder / REFERENCES_DIR).is_dir():
        references = {p.stem: read_rows(p) for p in sorted((folder / REFERENCES_DIR).glob("*.csv"))}
        references = {n: references[n] for n in ("hindsight", "myopic", "fixed", *references) if n in references}
    else:
        from aolo.platform.evaluation import evaluate_references

        references = {
            name: [{k: str(v) for k, v in row.items()} for row in evaluation_rows(result, scenario)]
            for name, result in evaluate_references(scenario, experiment.days_per_cell).items()
        }
    return StudyData(
        cells=[c.name for c in scenario.cells],
        q_min=scenario.service.q_min,
        learned=learned,
        references=references,
        histories=histories,
        users_per_episode=float(np.mean([c.num_users for c in scenario.cells])),
        epochs_per_episode=scenario.epochs_per_episode,
        table=read_rows(folder / TABLE_CSV) if (folder / TABLE_CSV).is_file() else [],
    )


def overall(rows: Sequence[Mapping[str, Any]], metric: str) -> float:
    """The ``all`` row's value of ``metric`` (NaN when missing or empty)."""
    value = next((r.get(metric, "") for r in rows if r["cell"] == "all"), "")
    return float(value) if value not in ("", None) else math.nan


def cell_means(rows: Sequence[Mapping[str, Any]], metric: str = CARBON_METRIC) -> dict[str, float]:
    """Per cell, the mean of ``metric`` over its held-out episodes (rows of ``evaluation.csv``: one per
    (cell, day) episode; the ``all`` row and rows without the metric are skipped). Every episode of a cell
    has the same users and epochs, so this is the cell's per-request value."""
    cells: dict[str, list[float]] = {}
    for r in rows:
        value = r.get(metric, "")
        if r["cell"] != "all" and value not in ("", None):
            cells.setdefault(str(r["cell"]), []).append(float(value))
    return {c: float(np.mean(v)) for c, v in cells.items()}


def bound_by_cell(data: StudyData) -> dict[str, float]:
    """Per cell, the strict lower bound per request (the hindsight plan's own carbon where the bound was not
    recorded)."""
    hindsight = data.references.get("hindsight", [])
    return cell_means(hindsight, BOUND_METRIC) or cell_means(hindsight, CARBON_METRIC)


def cell_carbon(data: StudyData) -> dict[str, dict[str, float]]:
    """Per policy, per cell: carbon per request [g], mean over the policy's runs."""
    out = {}
    for name, runs in data.policies().items():
        per_run = [cell_means(run, CARBON_METRIC) for run in runs]
        out[name] = {
            c: float(np.mean([p[c] for p in per_run if c in p])) for c in data.cells if any(c in p for p in per_run)
        }
    return out
