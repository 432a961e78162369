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
    evaluate/<name>.results.json the same evaluation as a results.json (below)

Every evaluation also writes a ``results.json`` (:func:`results_document`, docs/results.schema.json): in a run
directory beside evaluation.csv, as ``compare/references/<policy>.results.json`` and as
``evaluate/<name>.results.json``. ``aolo report --results`` reads them from anywhere (:func:`find_results`).

Result files are CSV with a header; rows may have different keys (the columns are their union, in first-seen
order). :func:`load_study` reads a finished comparison back (what ``aolo report`` and the compare figures use),
with the per-cell aggregates of it (:func:`cell_means`, :func:`cell_carbon`, :func:`bound_by_cell`).
Metric names are those of docs/design.md §6; :data:`CARBON_METRIC` is the headline one.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
import math
import re
import subprocess
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


def file_safe(name: str) -> str:
    """``name`` with every character but letters, digits, ``_ . -`` replaced by ``_``: a policy's name as the stem
    of its result files (a user's policy may call itself anything)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "policy"


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
    from aolo.envs.site_rollout import summarize_sites

    sv = scenario.service
    per_episode = summarize_sites if scenario.sites else summarize  # sites: carbon per request of the traffic
    rows: list[dict[str, Any]] = []
    for record in result.records:
        row = {"policy": result.policy, "cell": record.cell, "day": record.day}
        row.update(per_episode([record], sv.q_min, sv.q_floor, sv.t_max_s))
        if "bound_g" in record.extra:
            row[BOUND_METRIC] = record.extra["bound_g"] / record.fields["carbon_total_g"].size
        if sv.model_action:  # which model answered, by hour (what the compare's model_share.png draws)
            best, name = best_model(sv)
            hourly = model_share_by_hour([record], best, scenario.epoch_s)[record.cell]
            row.update({f"{MODEL_SHARE_PREFIX}{name}_h{h:02d}": float(v) for h, v in enumerate(hourly)})
        rows.append(row)
    rows.append({"policy": result.policy, "cell": "all", "day": "", **result.metrics})
    return rows


MODEL_SHARE_PREFIX = "model_share_"  #: ``model_share_<profile>_h<HH>``: per-episode share of answers by UTC hour
_MODEL_SHARE_HOUR = re.compile(rf"^{MODEL_SHARE_PREFIX}(.+)_h(\d\d)$")


def best_model(service) -> tuple[int, str]:
    """Index and name of the pool's best-rated model (highest quality ceiling): the share of answers that costs
    carbon, the one the model-share figures draw."""
    from aolo.envs.models import pool_ceilings

    ceilings = pool_ceilings(service)
    name = max(ceilings, key=ceilings.__getitem__)
    return list(ceilings).index(name), name


def model_share_by_hour(records: Sequence[Any], model: int, epoch_s: float) -> dict[str, np.ndarray]:
    """Per cell, the (24,) share of answers served by model index ``model`` in each hour of the day (UTC), over
    the cell's episodes (:class:`~aolo.envs.rollout.EpisodeRecord` with a ``model`` field); nan for an hour in
    which no epoch starts."""
    served: dict[str, np.ndarray] = {}
    answers: dict[str, np.ndarray] = {}
    for r in records:
        chosen = np.asarray(r.fields["model"]) == model  # (U, T)
        hour = (np.arange(chosen.shape[1]) * epoch_s / 3600.0).astype(int) % 24
        served[r.cell] = served.get(r.cell, np.zeros(24)) + np.bincount(hour, chosen.sum(axis=0), minlength=24)
        answers[r.cell] = answers.get(r.cell, np.zeros(24)) + np.bincount(hour, minlength=24) * chosen.shape[0]
    return {cell: np.where(answers[cell] > 0, served[cell] / np.maximum(answers[cell], 1), np.nan) for cell in served}


def write_reference_rows(
    evaluations: Mapping[str, EvaluationResult], scenario: ScenarioConfig, output_dir: str | Path
) -> list[Path]:
    """``compare/references/<policy>.csv`` for every reference evaluation (what :func:`load_study` reads)."""
    folder = compare_dir(output_dir, scenario) / REFERENCES_DIR
    return [
        write_rows(evaluation_rows(result, scenario), folder / f"{name}.csv") for name, result in evaluations.items()
    ]


def write_reference_results(
    evaluations: Mapping[str, EvaluationResult],
    experiment: Experiment,
    output_dir: str | Path,
    kinds: Mapping[str, str] | None = None,
    specs: Mapping[str, str] | None = None,
) -> list[Path]:
    """``compare/references/<policy>.results.json`` for every evaluation of a comparison that is not a training
    (kind ``reference``, or as ``kinds`` says: ``external`` for ``--extra-policy``, with its ``specs``)."""
    scenario, kinds, specs = experiment.scenario, kinds or {}, specs or {}
    folder = compare_dir(output_dir, scenario) / REFERENCES_DIR
    bound = evaluations.get("hindsight")
    return [
        write_results_json(
            results_document(
                result,
                scenario,
                preset=experiment.name,
                days_per_cell=experiment.days_per_cell,
                kind=kinds.get(name, "reference"),
                spec=specs.get(name),
                bound=bound,
            ),
            folder / f"{name}.{RESULTS_JSON}",
        )
        for name, result in evaluations.items()
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
    sites: list[str] = field(default_factory=list)  #: shared serving sites (docs/design.md §10), if any

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
        sites=[s.name for s in scenario.sites],
    )


def _float(value: Any) -> float:
    """A result file's cell as a number: NaN when missing or empty."""
    return float(value) if value not in ("", None) else math.nan


def overall(rows: Sequence[Mapping[str, Any]], metric: str) -> float:
    """The ``all`` row's value of ``metric`` (NaN when missing or empty)."""
    return _float(next((r.get(metric, "") for r in rows if r["cell"] == "all"), ""))


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


def site_load(data: StudyData) -> tuple[dict[str, dict[str, list[float]]], dict[str, list[float]]]:
    """Shared sites (docs/design.md §10): per policy and site, the hourly utilisation (mean over runs), and per
    site the hourly datacenter carbon intensity, from the ``all`` rows' ``site/<name>/..._hHH`` columns; empty
    for a scenario without sites."""
    utilisation: dict[str, dict[str, list[float]]] = {}
    carbon: dict[str, list[float]] = {}
    for name, runs in data.policies().items():
        for site in data.sites:
            per_run = [[overall(run, f"site/{site}/utilisation_h{h:02d}") for h in range(24)] for run in runs]
            if per_run and not np.isnan(per_run[0]).all():
                utilisation.setdefault(name, {})[site] = list(np.nanmean(per_run, axis=0))
                carbon.setdefault(site, [overall(runs[0], f"site/{site}/ci_dc_g_per_kwh_h{h:02d}") for h in range(24)])
    return utilisation, carbon


def _nanmean(rows: Sequence[Sequence[float]]) -> np.ndarray:
    """Column means over the rows, ignoring NaN; NaN (silently) where a column has no number."""
    values = np.asarray(rows, dtype=float)
    counts = np.isfinite(values).sum(axis=0)
    return np.where(counts > 0, np.nansum(values, axis=0) / np.maximum(counts, 1), np.nan)


def model_share(data: StudyData) -> tuple[str, dict[str, dict[str, np.ndarray]]]:
    """A model pool (docs/design.md §3.7): the model the per-episode rows' ``model_share_<profile>_hHH`` columns
    count and, per policy and cell, its (24,) share of answers by UTC hour — the mean over the cell's episodes,
    then over the policy's runs; ``("", {})`` without such columns. ``myopic_true_csi`` is left out: it plays
    ``myopic``'s answers with the true channel, so its line would hide ``myopic``'s."""
    shares: dict[str, dict[str, np.ndarray]] = {}
    model = ""
    for name, runs in data.policies().items():
        if name == "myopic_true_csi":
            continue
        per_cell: dict[str, list[np.ndarray]] = {}
        for rows in runs:
            episodes = [r for r in rows if r.get("cell") != "all"]
            columns = {m.group(1): k for k in (episodes[0] if episodes else {}) if (m := _MODEL_SHARE_HOUR.match(k))}
            if not columns:
                continue
            model = next(iter(columns))
            keys = [f"{MODEL_SHARE_PREFIX}{model}_h{h:02d}" for h in range(24)]
            for cell in dict.fromkeys(r["cell"] for r in episodes):
                hourly = [[_float(r.get(k)) for k in keys] for r in episodes if r["cell"] == cell]
                per_cell.setdefault(cell, []).append(_nanmean(hourly))
        if per_cell:
            shares[name] = {cell: _nanmean(runs_of_cell) for cell, runs_of_cell in per_cell.items()}
    return model, shares


def cell_carbon(data: StudyData) -> dict[str, dict[str, float]]:
    """Per policy, per cell: carbon per request [g], mean over the policy's runs."""
    out = {}
    for name, runs in data.policies().items():
        per_run = [cell_means(run, CARBON_METRIC) for run in runs]
        out[name] = {
            c: float(np.mean([p[c] for p in per_run if c in p])) for c in data.cells if any(c in p for p in per_run)
        }
    return out


# --- results.json: one evaluation, self-describing (docs/results.schema.json) ---------------------------------

RESULTS_JSON = "results.json"  #: in a run directory; ``<name>.results.json`` beside an evaluate or reference CSV
RESULTS_FORMAT = "aolo-results/1"  #: the ``format`` of a results.json (bumped when a field changes meaning)
POLICY_KINDS = ("learned", "reference", "external")


def protocol_hash(scenario: ScenarioConfig, days_per_cell: int | None) -> str:
    """SHA-256 of the scenario and the held-out days per cell: results with equal hashes were scored on the same
    (cell, day) episodes and random streams, so their numbers compare (the leaderboard's rule)."""
    protocol = {"scenario": scenario.to_dict(), "days_per_cell": days_per_cell}
    canonical = json.dumps(protocol, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def code_version() -> dict[str, str | None]:
    """aolo's version and, when it runs from a git checkout, the commit (``+dirty`` with local changes)."""
    import aolo

    commit = None
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty=+dirty", "--abbrev=40"],
            cwd=Path(aolo.__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
        commit = (done.stdout.strip() or None) if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"aolo": aolo.__version__, "git": commit}


def results_document(
    result: EvaluationResult,
    scenario: ScenarioConfig,
    *,
    preset: str,
    days_per_cell: int | None,
    kind: str,
    seed: int | None = None,
    spec: str | None = None,
    checkpoint: str | Path | None = None,
    bound: EvaluationResult | None = None,
) -> dict[str, Any]:
    """The results.json of one evaluation: what was scored (scenario, protocol hash, code version, policy, seed),
    one entry per (cell, day) episode, the summary and the strict bound per request on the same episodes (from
    ``bound``, the hindsight evaluation, or the result itself when it is hindsight's) (docs/results.schema.json)."""
    if kind not in POLICY_KINDS:
        raise ValueError(f"kind: must be one of {POLICY_KINDS}, got {kind!r}")
    rows = evaluation_rows(result, scenario)
    episodes = [{k: _json_number(v) for k, v in row.items() if k != "policy"} for row in rows[:-1]]
    summary = {k: _json_number(v) for k, v in result.metrics.items()}
    bound_g = (bound.metrics if bound is not None else result.metrics).get(BOUND_METRIC)
    return {
        "format": RESULTS_FORMAT,
        "scenario": {"name": scenario.name, "preset": preset, "cells": [c.name for c in scenario.cells]},
        "protocol": {
            "split": "heldout",
            "days_per_cell": days_per_cell,
            "hash": protocol_hash(scenario, days_per_cell),
        },
        "code": code_version(),
        "policy": {
            "name": result.policy,
            "kind": kind,
            "spec": spec,
            "checkpoint": None if checkpoint is None else str(checkpoint),
        },
        "seed": seed,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "episodes": episodes,
        "summary": summary,
        "bound": {"bound_g_per_request": _json_number(bound_g), "gap_to_bound": summary.get("gap_to_bound")},
    }


def _json_number(value: Any) -> Any:
    """Numbers as JSON numbers (NaN and infinities, which JSON lacks, as null); other values as they are."""
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def write_results_json(document: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``document`` atomically (a reader sees the old file or the new one, never half of one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
    partial.replace(path)
    return path


def read_results_json(path: str | Path) -> dict[str, Any]:
    """A results.json, checked for what :func:`results_rows` reads; a :class:`ConfigError` names the file and
    what is wrong."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(document, dict) or document.get("format") != RESULTS_FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ConfigError(f"{path}: format must be {RESULTS_FORMAT!r} (docs/results.schema.json), got {found!r}")
    for key, kind in (("scenario", dict), ("policy", dict), ("episodes", list), ("summary", dict)):
        if not isinstance(document.get(key), kind):
            raise ConfigError(f"{path}: {key!r} must be a JSON {'object' if kind is dict else 'array'}")
    return document


def results_rows(document: Mapping[str, Any]) -> Rows:
    """A results.json as the evaluation rows of an ``evaluation.csv`` (values as strings, the ``all`` row last),
    so results from anywhere enter the same tables as the runs of a comparison."""
    name = document["policy"]["name"]
    as_text = lambda v: "" if v is None else str(v)  # noqa: E731
    rows = [{"policy": name, **{k: as_text(v) for k, v in e.items()}} for e in document["episodes"]]
    rows.append({"policy": name, "cell": "all", "day": "", **{k: as_text(v) for k, v in document["summary"].items()}})
    return rows


def find_results(paths: Sequence[str | Path]) -> list[Path]:
    """The results files among ``paths``: files as given, folders searched recursively for ``*results.json``."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(p.rglob(f"*{RESULTS_JSON}"))
        elif p.is_file():
            found.append(p)
        else:
            raise ConfigError(f"--results {p}: no such file or folder")
    return found
