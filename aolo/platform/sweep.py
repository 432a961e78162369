"""The sweep behind ``aolo sweep``: Ray Tune over a YAML search space, selection by held-out carbon under the
constraints. The command (flags, printed table, exit codes) is :mod:`aolo.platform.commands.sweep`.

A sweep file (``aolo/tune_configs/reward_weights.yaml``) is a preset with three more sections::

    search_space:                        # dotted keys into the experiment -> one sampling form each
      scenario.reward.carbon: {grid: [0.5, 1.0, 2.0]}
      scenario.reward.qoe: {choice: [0.5, 1.0]}
      scenario.reward.deficit: {uniform: [5.0, 40.0]}
      training.actor_lr: {loguniform: [1.0e-4, 1.0e-3]}
    selection: {max_qoe_violation_rate: 0.05, max_latency_violation_rate: 0.01}
    sweep: {num_samples: 1, max_concurrent_trials: 1, max_failures: 1}

Keys are ``scenario.<field path>`` (any :class:`~aolo.envs.config.ScenarioConfig` field reachable through
``ScenarioConfig.replace``), ``training.<field>`` (any :class:`~aolo.platform.algorithms.TrainingSettings`
field), ``algorithm`` or ``seed``. Every trial trains one algorithm with RLlib on the sampled experiment up to
the env-step budget, in ``aolo train``'s loop (:func:`~aolo.platform.train.train_to_budget`), checkpoints after
every iteration (so ``--resume`` continues an interrupted sweep), then evaluates on the held-out days.
``MLflowLoggerCallback`` logs one MLflow run per trial with the params every training run logs (the sampled
experiment's, under the same names as ``aolo train``'s), its ``config.yaml``, the per-iteration training metrics
and the ``eval/...`` metrics.
The selected trial has the lowest held-out carbon per request among the trials whose QoE and latency violation
rates stay within the ``selection`` thresholds.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient
from ray import tune
from ray.air.integrations.mlflow import MLflowLoggerCallback

from aolo.envs.config import ConfigError
from aolo.platform.algorithms import ALGORITHMS, TrainingSettings, stop_algorithm
from aolo.platform.console import fmt, format_columns
from aolo.platform.evaluation import eval_metrics_for_mlflow, evaluate, evaluate_checkpoint
from aolo.platform.plots import plot_sweep_tradeoff
from aolo.platform.presets import Experiment, load_raw
from aolo.platform.results import CARBON_METRIC, MG_PER_G, TUNE_DIR, sweep_dir
from aolo.platform.tracking import TrackedRun, Tracker, experiment_params, log_experiment_config
from aolo.platform.train import (
    build_algo,
    check_gpus,
    init_ray,
    learner_params,
    reference_results,
    train_to_budget,
    training_config,
    trial_resources,
)

SEARCH_FORMS = ("grid", "choice", "uniform", "loguniform")
FORMS_HELP = "{grid: [v1, v2, ...]}, {choice: [v1, v2, ...]}, {uniform: [lo, hi]} or {loguniform: [lo, hi]}"
KEY_HELP = "'scenario.<field path>', 'training.<field>', 'algorithm' or 'seed'"
SWEEP_SETTINGS = {"num_samples": 1, "max_concurrent_trials": 1, "max_failures": 1}
#: what a sweep file sets over ``--preset`` (``constraints``: a reward-weight sweep needs ``method: penalty``)
SWEEP_SECTIONS = ("search_space", "selection", "sweep", "constraints")
BUDGET_PARAM = "training.env_steps"  #: in every trial's config; logged as ``env_steps`` like every run's budget
_STATE_FILE = "aolo_trial_state.json"
LEARNER_PARAMS = ("num_learners", "num_gpus_per_learner")  #: in every trial's config (MLflow params), not swept


# --- search space -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchDimension:
    """One swept key and how Tune samples it."""

    key: str
    form: str  #: one of :data:`SEARCH_FORMS`
    values: tuple[Any, ...]  #: the listed values (grid, choice) or ``(lo, hi)`` (uniform, loguniform)

    def to_tune(self) -> Any:
        if self.form == "grid":
            return tune.grid_search(list(self.values))
        if self.form == "choice":
            return tune.choice(list(self.values))
        if self.form == "uniform":
            return tune.uniform(*self.values)
        return tune.loguniform(*self.values)


@dataclass(frozen=True)
class SelectionRule:
    """Lowest held-out carbon per request among trials within both violation-rate thresholds (inclusive)."""

    max_qoe_violation_rate: float = 0.05
    max_latency_violation_rate: float = 0.01

    def qualifies(self, metrics: Mapping[str, float]) -> bool:
        """Both rates within their thresholds and a finite carbon (missing or NaN values never qualify)."""
        return (
            math.isfinite(metrics.get(CARBON_METRIC, math.nan))
            and metrics.get("qoe_violation_rate", math.nan) <= self.max_qoe_violation_rate
            and metrics.get("latency_violation_rate", math.nan) <= self.max_latency_violation_rate
        )

    def thresholds(self) -> str:
        return (
            f"qoe_violation_rate <= {self.max_qoe_violation_rate:g} and "
            f"latency_violation_rate <= {self.max_latency_violation_rate:g}"
        )

    def describe(self) -> str:
        return f"lowest held-out {CARBON_METRIC} with {self.thresholds()}"


@dataclass(frozen=True)
class SweepSpec:
    """The validated ``search_space``, ``selection`` and ``sweep`` sections of a sweep file."""

    dimensions: tuple[SearchDimension, ...]
    selection: SelectionRule
    num_samples: int = 1
    max_concurrent_trials: int = 1
    max_failures: int = 1

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(d.key for d in self.dimensions)

    @property
    def num_trials(self) -> int:
        """Trials Tune runs: ``num_samples`` times the product of the grid sizes."""
        return self.num_samples * math.prod(len(d.values) for d in self.dimensions if d.form == "grid")


def parse_dimension(key: Any, entry: Any) -> SearchDimension:
    """Validate one ``search_space`` entry (the form only; :func:`parse_sweep` checks the key)."""
    where = f"search_space.{key}"
    if not isinstance(key, str) or not key:
        raise ConfigError(f"search_space: keys must be non-empty strings like {KEY_HELP}, got {key!r}")
    if not (isinstance(entry, dict) and len(entry) == 1 and next(iter(entry)) in SEARCH_FORMS):
        raise ConfigError(f"{where}: must be exactly one of {FORMS_HELP}; got {entry!r}")
    form, values = next(iter(entry.items()))
    if form in ("grid", "choice"):
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: {{{form}: [...]}} needs a non-empty list of values, got {values!r}")
        return SearchDimension(key, form, tuple(values))
    numbers = (
        isinstance(values, list)
        and len(values) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    )
    if not numbers or not values[0] < values[1]:
        raise ConfigError(f"{where}: {{{form}: [lo, hi]}} needs two finite numbers with lo < hi, got {values!r}")
    if form == "loguniform" and values[0] <= 0:
        raise ConfigError(f"{where}: {{loguniform: [lo, hi]}} needs 0 < lo, got {values!r}")
    return SearchDimension(key, form, (float(values[0]), float(values[1])))


def parse_sweep(raw: Mapping[str, Any], experiment: Experiment) -> SweepSpec:
    """Validate the sweep sections of a merged preset; every swept key is tried on ``experiment``."""
    space = raw.get("search_space")
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"search_space: must be a non-empty mapping of {KEY_HELP} to {FORMS_HELP}; got {space!r}")
    dimensions = tuple(parse_dimension(key, entry) for key, entry in space.items())
    for dim in dimensions:  # every listed value, or both ends of a range, must make a valid experiment
        for value in dim.values:
            apply_params(experiment, {dim.key: value})

    selection = raw.get("selection") or {}
    allowed = {f.name for f in dataclasses.fields(SelectionRule)}
    if not isinstance(selection, dict) or set(selection) - allowed:
        raise ConfigError(f"selection: must be a mapping with keys among {sorted(allowed)}, got {selection!r}")
    for name, value in selection.items():
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1):
            raise ConfigError(f"selection.{name}: must be a rate in [0, 1], got {value!r}")

    settings = raw.get("sweep") or {}
    if not isinstance(settings, dict) or set(settings) - set(SWEEP_SETTINGS):
        raise ConfigError(f"sweep: must be a mapping with keys among {sorted(SWEEP_SETTINGS)}, got {settings!r}")
    settings = {**SWEEP_SETTINGS, **settings}
    for name, value in settings.items():
        lowest = 0 if name == "max_failures" else 1
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= lowest):
            raise ConfigError(f"sweep.{name}: must be an integer >= {lowest}, got {value!r}")
    return SweepSpec(dimensions, SelectionRule(**selection), **settings)


def apply_params(experiment: Experiment, params: Mapping[str, Any]) -> Experiment:
    """``experiment`` with swept values applied (``seed`` is not part of an experiment and is ignored here)."""
    scenario_changes: dict[str, Any] = {}
    training_changes: dict[str, Any] = {}
    algorithm = experiment.algorithm
    for key, value in params.items():
        section, _, rest = key.partition(".")
        if section == "scenario" and rest:
            scenario_changes[rest] = value
        elif section == "training" and rest:
            training_changes[rest] = value
        elif key == "algorithm":
            if value not in ALGORITHMS:
                raise ConfigError(f"search_space.algorithm: values must be among {list(ALGORITHMS)}, got {value!r}")
            algorithm = value
        elif key == "seed":
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise ConfigError(f"search_space.seed: values must be integers >= 0, got {value!r}")
        else:
            raise ConfigError(f"search_space.{key}: unknown key; use {KEY_HELP}")
    scenario, training = experiment.scenario, experiment.training
    for key, value in scenario_changes.items():
        try:
            scenario = scenario.replace(**{key: value})
        except (ConfigError, TypeError) as e:
            raise ConfigError(f"search_space.scenario.{key}: {e}") from None
    for key, value in training_changes.items():
        try:
            training = TrainingSettings.from_dict({**training.to_dict(), key: value})
        except (ConfigError, TypeError) as e:
            raise ConfigError(f"search_space.training.{key}: {e}") from None
    return dataclasses.replace(experiment, scenario=scenario, training=training, algorithm=algorithm)


def sweep_raw(preset: str | None, sweep_config: str) -> dict[str, Any]:
    """The merged experiment of a sweep: ``preset`` with the sweep file's sweep sections on top.

    Without ``preset`` the sweep file is the whole experiment (scenario and training from its ``base`` chain).
    """
    sweep = load_raw(sweep_config)
    if preset is None:
        return sweep
    raw = load_raw(preset)
    for section in SWEEP_SECTIONS:
        if section in sweep:
            raw[section] = sweep[section]
    return raw


# --- selection ----------------------------------------------------------------------------------------


@dataclass
class TrialRow:
    """One trial: its swept values and its held-out (``eval``) metrics once it finished."""

    name: str
    status: str  #: ``FINISHED`` (trained and evaluated), ``ERROR`` (out of retries) or ``UNFINISHED``
    params: dict[str, Any]
    metrics: dict[str, float]  #: held-out metrics without the ``eval/`` prefix (empty if the trial failed)
    checkpoint: str | None = None
    error: str | None = None
    run_id: str | None = None  #: the trial's MLflow run


def select_trial(rows: Sequence[TrialRow], rule: SelectionRule) -> TrialRow | None:
    """The qualifying trial with the lowest held-out carbon per request, or None if none qualifies."""
    qualified = [r for r in rows if r.status == "FINISHED" and rule.qualifies(r.metrics)]
    return min(qualified, key=lambda r: r.metrics[CARBON_METRIC], default=None)


def format_table(rows: Sequence[TrialRow], rule: SelectionRule, selected: TrialRow | None) -> str:
    """A terminal table of trials; ``*`` marks the selected trial, ``ok`` the ones meeting the thresholds."""
    keys = sorted({k for r in rows for k in r.params})
    header = ["", "trial", *keys, "carbon mg/req", "QoE", "QoE viol", "lat viol", "ok", "status"]
    lines = [header]
    for r in rows:
        m = r.metrics
        lines.append(
            [
                "*" if r is selected else "",
                r.name,
                *(fmt(r.params.get(k)) for k in keys),
                fmt(MG_PER_G * m[CARBON_METRIC] if CARBON_METRIC in m else None, ".3f"),
                fmt(m.get("qoe_mean"), ".3f"),
                fmt(m.get("qoe_violation_rate"), ".3f"),
                fmt(m.get("latency_violation_rate"), ".3f"),
                "yes" if r.status == "FINISHED" and rule.qualifies(m) else "no",
                r.status,
            ]
        )
    return "\n".join(format_columns(lines))


# --- the trial ------------------------------------------------------------------------------------------


def train_trial(
    config: dict[str, Any],
    *,
    base: Experiment,
    num_env_runners: int,
    num_learners: int = 0,
    num_gpus_per_learner: float = 0.0,
) -> None:
    """Tune function trainable: train one sampled experiment to its budget, then evaluate on held-out days.

    The training loop is ``aolo train``'s (:func:`~aolo.platform.train.train_to_budget`), reporting
    ``train/env_steps``, ``train/episode_return_mean``, ``train/iteration_time_s``, ... (the names
    ``aolo train`` logs) with a checkpoint after every iteration, then the ``eval/...`` metrics with the final
    checkpoint. ``timesteps_total`` (= env steps) is the MLflow step. When Tune retries or resumes the trial,
    it continues from the trial's last checkpoint.
    """
    import torch

    torch.set_num_threads(1)  # 2-core machines: torch's default threads oversubscribe with Ray (13x slower)
    experiment = apply_params(base, {k: v for k, v in config.items() if k not in LEARNER_PARAMS})
    budget = experiment.training.env_steps
    algo = build_algo(
        experiment, experiment.algorithm, int(config["seed"]), num_env_runners, num_learners, num_gpus_per_learner
    )
    try:
        env_steps = 0
        start = tune.get_checkpoint()
        if start is not None:
            with start.as_directory() as path:
                algo.restore_from_path(path)
                env_steps = json.loads((Path(path) / _STATE_FILE).read_text())["env_steps"]
        metrics: dict[str, float] = {"train/env_steps": env_steps, "timesteps_total": env_steps}

        def on_iteration(row: dict[str, float]) -> None:
            nonlocal metrics
            steps = int(row["env_steps"])
            metrics = {**{f"train/{k}": v for k, v in row.items()}, "timesteps_total": steps}
            if steps < budget:  # the last iteration is reported below, with the evaluation
                with tempfile.TemporaryDirectory() as tmp:
                    _save(algo, tmp, steps)
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

        env_steps = train_to_budget(algo, budget, env_steps, on_iteration)
        with tempfile.TemporaryDirectory() as tmp:
            _save(algo, tmp, env_steps)
            bound = evaluate("hindsight", experiment.scenario, experiment.days_per_cell)
            evaluation = evaluate_checkpoint(
                tmp, experiment.scenario, experiment.algorithm, experiment.days_per_cell, bound
            )
            tune.report(
                {**metrics, **eval_metrics_for_mlflow(evaluation.metrics)},
                checkpoint=tune.Checkpoint.from_directory(tmp),
            )
    finally:
        stop_algorithm(algo)


def _save(algo: Any, path: str, env_steps: int) -> None:
    algo.save_to_path(path)
    (Path(path) / _STATE_FILE).write_text(json.dumps({"env_steps": env_steps}))


def _trial_name(prefix: str, trial: Any) -> str:
    """Trial (and trial folder, and MLflow run) name: ``<preset>_<trial id>``."""
    return f"{prefix}_{trial.trial_id}"


# --- running a sweep ------------------------------------------------------------------------------------


class TrialMetricsLogger(MLflowLoggerCallback):
    """``MLflowLoggerCallback`` with one MLflow run per trial even across ``--resume``, whose params are those every
    training run logs (:func:`~aolo.platform.tracking.experiment_params` of the trial's sampled experiment, plus
    any swept key they do not cover, ``scenario.`` dropped as in :func:`~aolo.platform.tracking.scenario_params`)
    with ``config.yaml``, and which logs aolo's ``train/*`` and ``eval/*`` metrics (plus Tune's iteration and step
    counters), not Tune's bookkeeping (``pid``, ``timestamp``, ``config/*``, ...)."""

    KEEP = ("timesteps_total", "training_iteration")

    def __init__(self, *, base: Experiment, learners: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base, self.learners = base, dict(learners)

    def log_trial_start(self, trial: Any) -> None:
        client = MlflowClient(self.tracking_uri)
        if trial not in self._trial_runs:  # a resumed trial continues the run its first start opened
            experiment = client.get_experiment_by_name(self.experiment_name)
            runs = client.search_runs(
                [experiment.experiment_id], filter_string=f"tags.trial_name = '{trial}'", max_results=1
            )
            if runs:
                client.update_run(runs[0].info.run_id, status="RUNNING")
                self._trial_runs[trial] = runs[0].info.run_id
            else:
                run = self.mlflow_util.start_run(tags={**self.tags, "trial_name": str(trial)}, run_name=str(trial))
                self._trial_runs[trial] = run.info.run_id
        swept = {k: v for k, v in trial.config.items() if k not in LEARNER_PARAMS}
        experiment = apply_params(self.base, swept)
        params = {
            **{k.removeprefix("scenario."): v for k, v in swept.items() if k != BUDGET_PARAM},
            **experiment_params(experiment, experiment.algorithm, int(trial.config["seed"])),
            **self.learners,
        }
        run = TrackedRun(client, self._trial_runs[trial])
        run.log_params(params)
        log_experiment_config(run, experiment)

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        kept = {k: v for k, v in result.items() if k.startswith(("train/", "eval/")) or k in self.KEEP}
        super().log_trial_result(iteration, trial, kept)


@dataclass
class SweepResult:
    rows: list[TrialRow]
    selected: TrialRow | None
    selection_path: Path | None  #: None when the sweep was interrupted (nothing selected yet)
    plot_path: Path | None = None  #: carbon vs QoE of every finished trial (``tradeoff.png``)
    interrupted: bool = False  #: Ctrl-C stopped Tune before every trial finished; ``--resume`` continues


def run_sweep(
    experiment: Experiment,
    spec: SweepSpec,
    output_dir: str | Path,
    *,
    tracking_uri: str | None,
    seed: int = 0,
    num_env_runners: int = 0,
    resume: bool = False,
    progress: Callable[[str], None] = print,
    num_learners: int = 0,
    num_gpus_per_learner: float = 0.0,
) -> SweepResult:
    """Run (or, with ``resume``, continue) the sweep; write and return the selection.

    ``tracking_uri`` None turns MLflow off. Without ``resume`` an existing sweep in the same folder is an
    error (it would mix two sweeps); with ``resume`` Tune restores it, keeps every finished trial, continues
    unfinished ones from their last checkpoint and retries errored ones. A restored sweep logs to the
    tracking URI it started with.
    """
    root = sweep_dir(output_dir, experiment.scenario)
    path = root / TUNE_DIR
    tracker = Tracker(tracking_uri, experiment.scenario.name)  # creates the scenario's MLflow experiment
    # trials keep the caller's working directory, so relative paths in scenarios (traces, workloads) still work
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    learners = learner_params(num_learners, num_gpus_per_learner)
    init_ray()
    check_gpus(num_gpus_per_learner)
    # driver + EnvRunners + learners, as the algorithm asks (Algorithm.default_resource_request)
    resources = trial_resources(
        training_config(experiment, experiment.algorithm, seed, num_env_runners, num_learners, num_gpus_per_learner)
    )
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, base=experiment, num_env_runners=num_env_runners, **learners), resources
    )
    exists = tune.Tuner.can_restore(str(path))
    if resume and exists:
        progress(f"[sweep] resuming {path}")
        tuner = tune.Tuner.restore(str(path), trainable, resume_errored=True)
    else:
        if exists:
            raise ConfigError(
                f"a sweep already exists in {path}: pass --resume to continue it, or choose another --output"
            )
        callbacks = (
            []
            if tracking_uri is None
            else [
                TrialMetricsLogger(
                    base=experiment,
                    learners=learners,
                    tracking_uri=tracking_uri,
                    experiment_name=experiment.scenario.name,
                    tags={"aolo.command": "sweep", "aolo.preset": experiment.name},
                    save_artifact=False,
                )
            ]
        )
        fixed = {
            "algorithm": experiment.algorithm,
            "seed": seed,
            BUDGET_PARAM: experiment.training.env_steps,
            **learners,
        }  # the learner flags: recorded as MLflow params of every trial
        tuner = tune.Tuner(
            trainable,
            param_space={**fixed, **{d.key: d.to_tune() for d in spec.dimensions}},
            tune_config=tune.TuneConfig(
                num_samples=spec.num_samples,
                max_concurrent_trials=spec.max_concurrent_trials,
                trial_name_creator=functools.partial(_trial_name, experiment.name),
                trial_dirname_creator=functools.partial(_trial_name, experiment.name),
            ),
            run_config=tune.RunConfig(
                name=TUNE_DIR,
                storage_path=str(root),
                callbacks=callbacks,
                failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            ),
        )
        progress(f"[sweep] {experiment.name}: {sweep_line(experiment, spec)} -> {path}")
    grid = tuner.fit()  # Ctrl-C: Tune saves the experiment state and returns the trials it has
    rows = sorted((_row(result) for result in grid), key=lambda r: r.name)
    if tracker.client is not None:
        _attach_run_ids(rows, tracker)
    if len(rows) < spec.num_trials or any(r.status == "UNFINISHED" for r in rows):
        for row in rows:
            if row.status == "UNFINISHED" and row.run_id is not None:
                tracker.client.set_terminated(row.run_id, status="KILLED")
        return SweepResult(rows, None, None, interrupted=True)
    selected = select_trial(rows, spec.selection)
    selection_path = root / "selection.json"
    selection_path.write_text(json.dumps(_selection_record(rows, spec, selected), indent=2, default=str))
    references = {
        name: (e.metrics["qoe_mean"], e.metrics[CARBON_METRIC])
        for name, e in reference_results(experiment.scenario, experiment.days_per_cell).items()
        if name != "fixed"
    }  # fixed sits far above and would squash the trials' scale
    plot_path = plot_sweep_tradeoff(
        [
            (
                trial_label(r, spec),
                r.metrics["qoe_mean"],
                r.metrics[CARBON_METRIC],
                spec.selection.qualifies(r.metrics),
            )
            for r in rows
            if r.status == "FINISHED"
        ],
        None if selected is None else trial_label(selected, spec),
        root / "tradeoff.png",
        q_min=experiment.scenario.service.q_min,
        references=references,
    )
    if selected is not None and selected.run_id is not None:
        TrackedRun(tracker.client, selected.run_id).set_tags({"aolo.sweep.selected": "true"})
    return SweepResult(rows, selected, selection_path, plot_path)


def trial_label(row: TrialRow, spec: SweepSpec) -> str:
    """The trial's swept values, short: ``carbon=0.5 qoe=0.05 deficit=150``."""
    return " ".join(f"{key.rsplit('.', 1)[-1]}={fmt(row.params.get(key))}" for key in spec.keys)


def sweep_line(experiment: Experiment, spec: SweepSpec) -> str:
    """What the sweep runs, in one line."""
    return (
        f"{spec.num_trials} trial(s) over {list(spec.keys)}, each training {experiment.algorithm} for "
        f"{experiment.training.env_steps} env steps; {spec.max_concurrent_trials} at a time, "
        f"up to {spec.max_failures} retries each"
    )


def _row(result: Any) -> TrialRow:
    metrics = result.metrics or {}
    return TrialRow(
        name=Path(result.path).name,  # the trial folder is named like the trial
        status="ERROR"
        if result.error is not None
        else "FINISHED"
        if f"eval/{CARBON_METRIC}" in metrics
        else "UNFINISHED",
        params=dict(result.config or {}),
        metrics={
            k.removeprefix("eval/"): float(v)
            for k, v in metrics.items()
            if k.startswith("eval/") and isinstance(v, (int, float))
        },
        checkpoint=result.checkpoint.path if result.checkpoint is not None else None,
        error=None if result.error is None else str(result.error).splitlines()[0],
    )


def _attach_run_ids(rows: list[TrialRow], tracker: Tracker) -> None:
    """The MLflow run of each trial (``MLflowLoggerCallback`` tags runs with ``trial_name``)."""
    runs = tracker.client.search_runs(
        [tracker.experiment_id], filter_string="tags.`aolo.command` = 'sweep'", max_results=5000
    )
    by_name = {run.data.tags.get("trial_name"): run.info.run_id for run in runs}
    for row in rows:
        row.run_id = by_name.get(row.name)


def _selection_record(rows: Sequence[TrialRow], spec: SweepSpec, selected: TrialRow | None) -> dict[str, Any]:
    return {
        "rule": {"metric": CARBON_METRIC, **dataclasses.asdict(spec.selection)},
        "selected": None if selected is None else dataclasses.asdict(selected),
        "message": (
            f"selected {selected.name}"
            if selected is not None
            else f"no trial qualifies: none has {spec.selection.thresholds()}"
        ),
        "trials": [dataclasses.asdict(r) for r in rows],
    }
