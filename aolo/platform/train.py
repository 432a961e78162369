"""Train one algorithm on one scenario under the experiment's env-step budget, then evaluate it.

:func:`train_one` is what ``aolo train`` runs and what ``compare`` calls per algorithm and seed; its training loop,
:func:`train_to_budget`, is also what each ``sweep`` trial runs (with :func:`build_algo` and
:func:`iteration_metrics`).

Everything a run produces lives in its run directory ``<output>/<scenario>/<algorithm>_seed<seed>/``
(:func:`aolo.platform.results.run_directory`)::

    checkpoint/          Algorithm.save_to_path (final; also saved on Ctrl-C so --resume can continue)
    history.csv          one row per training iteration (the learning curve, across resumes)
    evaluation.csv       held-out evaluation, one row per (cell, day) episode plus an ``all`` row
    results.json         the same evaluation, self-describing (docs/results.schema.json)
    learning_curve.png   return per user-epoch against env steps (:func:`aolo.platform.plots.plot_learning_curves`)

and in the MLflow run (when tracking is on): params (:func:`~aolo.platform.tracking.experiment_params`),
per-iteration ``train/*`` metrics at ``step = env steps``, the ``eval/*`` metrics (docs/design.md §6), the files
above as artifacts and the checkpoint path as the ``aolo.checkpoint`` tag and ``checkpoint.txt``.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aolo.envs.config import ConfigError, ScenarioConfig
from aolo.platform.algorithms import ALGORITHMS, MODULE_ID, build_algorithm_config, stop_algorithm
from aolo.platform.evaluation import (
    CheckpointError,
    EvaluationResult,
    eval_metrics_for_mlflow,
    evaluate_checkpoint,
    evaluate_references,
    gap_to_bound,
)
from aolo.platform.presets import Experiment
from aolo.platform.results import (
    BOUND_METRIC,
    CARBON_METRIC,
    CHECKPOINT_DIR,
    EVALUATION_CSV,
    HISTORY_CSV,
    LEARNING_CURVE_PNG,
    RESULTS_JSON,
    evaluation_rows,
    read_history,
    read_rows,
    results_document,
    run_directory,
    write_results_json,
    write_rows,
)
from aolo.platform.tracking import TrackedRun, Tracker, experiment_params, log_experiment_config
from aolo.policies.networks import architecture_params

#: File RLlib writes last into a checkpoint directory; its presence marks a complete checkpoint.
CHECKPOINT_MARKER = "rllib_checkpoint.json"
#: Learner statistics logged per iteration as ``train/<name>`` when RLlib reports them.
LEARNER_STATS = (
    "policy_loss",
    "qf_loss",
    "qf_twin_loss",
    "alpha_loss",
    "alpha_value",
    "vf_loss",
    "vf_explained_var",
    "mean_kl_loss",
    "entropy",
    "total_loss",
)


@dataclass
class TrainResult:
    algorithm: str
    seed: int
    run_id: str | None  #: MLflow run id (None when tracking is off)
    checkpoint: Path  #: Algorithm.save_to_path directory (final)
    history: list[dict[str, float]]  #: per iteration: iteration, env_steps, episode_return_mean, time_s, losses
    evaluation: EvaluationResult  #: held-out evaluation (incl. gap_to_bound)


def init_ray() -> None:
    """Connect to the cluster in ``RAY_ADDRESS`` (``ray job submit`` sets it) or start a local in-process Ray.

    A local Ray gets no dashboard, no worker-log forwarding and token auth off (``RAY_AUTH_MODE=disabled``
    unless set), so nothing is written to ``~/.ray``. Already connected (e.g. by a test fixture): nothing to do.
    """
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)


def has_checkpoint(path: Path) -> bool:
    return (path / CHECKPOINT_MARKER).is_file()


def preflight(scenario: ScenarioConfig) -> None:
    """Build every cell's environment once, so bad traces, workloads or day splits fail before any run starts."""
    from aolo.envs.cell_env import CellEnv
    from aolo.envs.site_env import SiteEnv, check_every_cell_on_a_site

    if scenario.sites:  # shared serving sites: every site's env (its cells, traces, background)
        check_every_cell_on_a_site(scenario)
        for index in range(len(scenario.sites)):
            try:
                SiteEnv({"scenario": scenario, "site_index": index})
            except ValueError as e:
                raise ConfigError(f"scenario {scenario.name!r}: {e}") from None
        return
    for index in range(len(scenario.cells)):
        try:
            CellEnv({"scenario": scenario, "cell_index": index})
        except ValueError as e:  # TraceError, WorkloadError and day-split errors are ValueErrors
            raise ConfigError(f"scenario {scenario.name!r}: {e}") from None


@functools.lru_cache(maxsize=16)
def reference_results(scenario: ScenarioConfig, days_per_cell: int | None) -> dict[str, EvaluationResult]:
    """:func:`evaluate_references` on the held-out days, computed once per scenario and process.

    Cached by value: a :class:`ScenarioConfig` is a frozen dataclass of tuples, so equal scenarios hash equal.
    """
    return evaluate_references(scenario, days_per_cell)


def learner_params(num_learners: int, num_gpus_per_learner: float) -> dict[str, Any]:
    """Validate the learner flags; the MLflow params they are recorded as."""
    if not (isinstance(num_learners, int) and num_learners >= 0):
        raise ConfigError(f"num_learners: must be an integer >= 0, got {num_learners!r}")
    if not (isinstance(num_gpus_per_learner, (int, float)) and num_gpus_per_learner >= 0):
        raise ConfigError(f"num_gpus_per_learner: must be a number >= 0, got {num_gpus_per_learner!r}")
    return {"num_learners": num_learners, "num_gpus_per_learner": num_gpus_per_learner}


def check_gpus(num_gpus_per_learner: float) -> None:
    """A GPU learner needs a GPU in the Ray cluster: without one this is a clear error (no silent CPU fallback,
    which would make a run labelled GPU train on CPU). Call with Ray connected."""
    import ray

    if num_gpus_per_learner > 0 and ray.cluster_resources().get("GPU", 0) <= 0:
        raise ConfigError(
            f"num_gpus_per_learner: {num_gpus_per_learner:g} GPU(s) per learner requested but the "
            f"Ray cluster has no GPU; GPU learner path skipped. Use --num-gpus-per-learner 0 "
            f"(CPU learners) or connect to a cluster with GPU nodes"
        )


def configure_learners(config: Any, num_learners: int = 0, num_gpus_per_learner: float = 0.0) -> Any:
    """``config.learners(num_learners=..., num_gpus_per_learner=...)``; 0 learners = the learner runs in the
    algorithm's own process (best on small machines)."""
    learner_params(num_learners, num_gpus_per_learner)
    return config.learners(num_learners=num_learners, num_gpus_per_learner=num_gpus_per_learner)


def trial_resources(config: Any) -> Any:
    """The Tune placement group one training needs: the algorithm process, its EnvRunners and its learners
    (``Algorithm.default_resource_request``). Settings RLlib rejects are not checked here: the training itself
    fails with RLlib's message, and is recorded like any failed training."""
    unchecked = config.copy(copy_frozen=False).experimental(_validate_config=False)
    return config.algo_class.default_resource_request(unchecked)


def train_one(
    experiment: Experiment,
    algorithm: str,
    seed: int,
    output_dir: Path,
    *,
    tracking_uri: str | None,
    parent_run_id: str | None = None,
    num_env_runners: int = 0,
    bound: EvaluationResult | None = None,
    gap_later: bool = False,
    progress: Callable[[str], None] = print,
    resume: bool = False,
    num_learners: int = 0,
    num_gpus_per_learner: float = 0.0,
    checkpoint_every_s: float | None = None,
    tags: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``algorithm`` with ``seed`` until ``experiment.training.env_steps`` env steps, save, evaluate, log.

    ``bound`` is the hindsight evaluation the gap is measured against (computed when None). ``gap_later``
    evaluates without the gap; the caller adds it with :func:`record_gap_to_bound` (``aolo compare`` does once its
    reference task is done, so no trial holds its cores waiting for the site references).
    ``resume`` continues from the run directory's checkpoint up to the budget (nothing left: evaluate only).
    ``tracking_uri`` None turns MLflow off; ``parent_run_id`` nests the MLflow run under a parent run.
    ``num_learners`` / ``num_gpus_per_learner`` go to ``config.learners`` and the MLflow params.
    ``checkpoint_every_s`` also saves the checkpoint (and history.csv) during training, at most this often, so
    a lost process (a dead node) continues from there; None saves at the end (and on Ctrl-C) only.
    If the run fails before its first checkpoint, a run directory it created is removed again.
    """
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"algorithm: must be one of {list(ALGORITHMS)}, got {algorithm!r}")
    if not (isinstance(num_env_runners, int) and num_env_runners >= 0):
        raise ConfigError(f"num_env_runners: must be an integer >= 0, got {num_env_runners!r}")
    learners = learner_params(num_learners, num_gpus_per_learner)
    scenario = experiment.scenario
    run_dir = run_directory(output_dir, scenario, algorithm, seed)
    checkpoint = run_dir / CHECKPOINT_DIR
    if resume and not has_checkpoint(checkpoint):
        raise CheckpointError(f"nothing to resume: no checkpoint in {checkpoint}; train once without --resume")
    preflight(scenario)
    history = read_history(run_dir / HISTORY_CSV) if resume else []

    tracker = Tracker(tracking_uri, scenario.name)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    tags = {"aolo.command": "train", "aolo.algorithm": algorithm, "aolo.run_dir": run_dir, **(tags or {})}
    if resume:
        tags["aolo.resumed_at_env_steps"] = int(history[-1]["env_steps"]) if history else 0
    try:
        with tracker.mlflow_run(
            f"{algorithm}-seed{seed}",
            {**experiment_params(experiment, algorithm, seed), **learners},
            tags,
            parent_run_id=parent_run_id,
        ) as run:
            log_experiment_config(run, experiment)
            label = f"{algorithm} seed {seed}"
            progress(
                f"[{label}] training on {scenario.name!r} ({len(scenario.cells)} cells) to "
                f"{experiment.training.env_steps} env steps{' (resuming)' if resume else ''} -> {run_dir}"
            )
            if not resume and has_checkpoint(checkpoint):
                progress(
                    f"[{label}] note: this run will replace the checkpoint of an earlier run in {run_dir} "
                    f"(--resume continues that one instead)"
                )
            _train(
                experiment,
                algorithm,
                seed,
                checkpoint,
                num_env_runners,
                resume,
                history,
                run,
                progress,
                label,
                learners,
                checkpoint_every_s,
            )
            if bound is None and not gap_later:
                progress(f"[{label}] computing the hindsight bound on the held-out days")
                bound = reference_results(scenario, experiment.days_per_cell)["hindsight"]
            progress(f"[{label}] evaluating the checkpoint on the held-out days")
            evaluation = evaluate_checkpoint(checkpoint, scenario, algorithm, experiment.days_per_cell, bound)
            write_results_json(
                results_document(
                    evaluation,
                    scenario,
                    preset=experiment.name,
                    days_per_cell=experiment.days_per_cell,
                    kind="learned",
                    seed=seed,
                    checkpoint=checkpoint,
                    bound=bound,
                ),
                run_dir / RESULTS_JSON,
            )
            _log_outputs(run, run_dir, checkpoint, history, evaluation, scenario, f"{label} on {scenario.name}")
            return TrainResult(algorithm, seed, run.run_id, checkpoint, history, evaluation)
    except BaseException:
        if created and not has_checkpoint(checkpoint):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def record_gap_to_bound(
    run_dir: Path, bound: EvaluationResult, tracker: Tracker | None = None, run_id: str | None = None
) -> float:
    """Add the gap to the strict bound of ``bound`` (the hindsight evaluation of the same held-out days) to a run
    evaluated with ``train_one(gap_later=True)``: into its results.json, the ``all`` row of its evaluation.csv and,
    with ``tracker`` and ``run_id``, the MLflow run's ``eval/gap_to_bound`` and artifacts. Returns the gap."""
    document = json.loads((run_dir / RESULTS_JSON).read_text())
    summary = document["summary"]
    gap = gap_to_bound(summary[CARBON_METRIC], bound)
    summary["gap_to_bound"] = gap
    document["bound"] = {"bound_g_per_request": bound.metrics.get(BOUND_METRIC), "gap_to_bound": gap}
    write_results_json(document, run_dir / RESULTS_JSON)
    rows = read_rows(run_dir / EVALUATION_CSV)
    rows[-1]["gap_to_bound"] = gap  # the ``all`` row
    write_rows(rows, run_dir / EVALUATION_CSV)
    if tracker is not None and tracker.client is not None and run_id:
        run = TrackedRun(tracker.client, run_id)
        history = read_history(run_dir / HISTORY_CSV)
        run.log_metrics({"eval/gap_to_bound": gap}, step=int(history[-1]["env_steps"]) if history else 0)
        for name in (RESULTS_JSON, EVALUATION_CSV):
            run.log_artifact(run_dir / name)
    return gap


def _train(
    experiment: Experiment,
    algorithm: str,
    seed: int,
    checkpoint: Path,
    num_env_runners: int,
    resume: bool,
    history: list[dict[str, float]],
    run: TrackedRun,
    progress: Callable[[str], None],
    label: str,
    learners: dict[str, Any] | None = None,
    checkpoint_every_s: float | None = None,
) -> None:
    """Build the algorithm, (restore,) train to the budget appending to ``history``, save the checkpoint."""
    budget = experiment.training.env_steps
    init_ray()
    learners = learners or {}
    check_gpus(learners.get("num_gpus_per_learner", 0))
    algo = build_algo(experiment, algorithm, seed, num_env_runners, **learners)
    run.log_params(architecture_params(algo, MODULE_ID))
    saved_at = len(history)
    try:
        if resume:
            algo.restore_from_path(checkpoint)
        env_steps = int(history[-1]["env_steps"]) if history else 0
        time_before = history[-1]["time_s"] if history else 0.0
        start = saved_time = time.monotonic()
        if env_steps >= budget:
            progress(f"[{label}] checkpoint already has {env_steps} >= {budget} env steps; nothing to train")

        def on_iteration(metrics: dict[str, float]) -> None:
            nonlocal saved_at, saved_time
            row = {
                "iteration": float(len(history) + 1),
                "env_steps": metrics["env_steps"],  # history.csv order
                "episode_return_mean": metrics["episode_return_mean"],
                "time_s": time_before + time.monotonic() - start,
                **metrics,
            }
            history.append(row)
            steps = int(row["env_steps"])
            run.log_metrics({f"train/{k}": v for k, v in row.items() if k != "iteration"}, step=steps)
            progress(_progress_line(label, row, budget))
            due = checkpoint_every_s is not None and time.monotonic() - saved_time >= checkpoint_every_s
            if due and steps < budget:
                _save_checkpoint(algo, checkpoint, history)
                saved_at, saved_time = len(history), time.monotonic()

        train_to_budget(algo, budget, env_steps, on_iteration)
        _save_checkpoint(algo, checkpoint, history)
        saved_at = len(history)
    except KeyboardInterrupt:
        if len(history) > saved_at:  # keep the finished iterations: `--resume` continues from here
            _save_checkpoint(algo, checkpoint, history)
            progress(
                f"[{label}] interrupted: checkpoint saved at {int(history[-1]['env_steps'])} env steps "
                f"in {checkpoint}; continue with --resume"
            )
        raise
    finally:
        stop_algorithm(algo)


def training_config(
    experiment: Experiment,
    algorithm: str,
    seed: int = 0,
    num_env_runners: int = 0,
    num_learners: int = 0,
    num_gpus_per_learner: float = 0.0,
) -> Any:
    """The ``AlgorithmConfig`` one training (``train``, a ``compare`` job or a ``sweep`` trial) trains with: the
    experiment's scenario, training settings and constraints, plus the learner flags. Trial resources are computed
    from this same config (:func:`trial_resources`)."""
    return configure_learners(
        build_algorithm_config(
            algorithm,
            experiment.scenario,
            seed=seed,
            settings=experiment.training,
            num_env_runners=num_env_runners,
            constraints=experiment.constraints,
        ),
        num_learners,
        num_gpus_per_learner,
    )


def build_algo(
    experiment: Experiment,
    algorithm: str,
    seed: int,
    num_env_runners: int = 0,
    num_learners: int = 0,
    num_gpus_per_learner: float = 0.0,
) -> Any:
    """The RLlib algorithm of :func:`training_config`, built; settings RLlib rejects are a :class:`ConfigError`
    saying so."""
    from aolo.envs.cell_env import CellEnv
    from aolo.envs.site_env import SiteEnv

    config = training_config(experiment, algorithm, seed, num_env_runners, num_learners, num_gpus_per_learner)
    for env_class in (CellEnv, SiteEnv):  # this algorithm's env copies count from 0, in a reused process too
        env_class._rllib_copies_built = itertools.count()
    try:
        return config.build_algo()
    except ValueError as e:  # RLlib's config validation, e.g. a PPO minibatch larger than the train batch
        raise ConfigError(f"RLlib rejected the training settings for {algorithm}: {str(e).splitlines()[0]}") from e


def train_to_budget(algo: Any, budget: int, env_steps: int, on_iteration: Callable[[dict[str, float]], None]) -> int:
    """The one training loop of train, compare and sweep: ``algo.train()`` from ``env_steps`` until ``budget``
    env steps are sampled, calling ``on_iteration`` with each iteration's :func:`iteration_metrics` (MLflow
    logging and checkpoints in ``train``, ``tune.report`` in a sweep trial). Returns the env steps reached."""
    while env_steps < budget:
        t = time.monotonic()
        result = algo.train()
        metrics = iteration_metrics(result, time.monotonic() - t)
        env_steps = int(metrics["env_steps"])
        on_iteration(metrics)
    return env_steps


def iteration_metrics(result: dict[str, Any], iteration_time_s: float) -> dict[str, float]:
    """The per-iteration training metrics (logged as ``train/<name>``) of one ``algo.train()`` result: the one
    place train, sweep and compare take them from."""
    return {
        "env_steps": float(_env_steps_sampled(result)),
        "episode_return_mean": _episode_return(result),
        "iteration_time_s": iteration_time_s,
        **_learner_stats(result),
        **_constraint_stats(result),
    }


def _env_steps_sampled(result: dict[str, Any]) -> int:
    value = result.get("env_runners", {}).get(
        "num_env_steps_sampled_lifetime", result.get("num_env_steps_sampled_lifetime")
    )
    if value is None:
        raise RuntimeError("RLlib's result has no num_env_steps_sampled_lifetime; cannot track the env-step budget")
    return int(value)


def _episode_return(result: dict[str, Any]) -> float:
    value = result.get("env_runners", {}).get("episode_return_mean")
    return float(value) if value is not None else math.nan  # no episode finished yet


def _constraint_stats(result: dict[str, Any]) -> dict[str, float]:
    """``lambda_qoe``, ``lambda_latency`` and the iteration's day-mean costs under ``constraints.method:
    lagrangian`` (aolo.platform.constraints puts them in the result); nothing under ``penalty``."""
    stats = result.get("constraints", {})
    return {k: float(v) for k, v in stats.items() if k != "user_days" and isinstance(v, (int, float))}


def _learner_stats(result: dict[str, Any]) -> dict[str, float]:
    stats = result.get("learners", {}).get(MODULE_ID, {})
    return {k: float(stats[k]) for k in LEARNER_STATS if isinstance(stats.get(k), (int, float))}


def _progress_line(label: str, row: dict[str, float], budget: int) -> str:
    ret = row["episode_return_mean"]
    ret_s = f"{ret:10.2f}" if math.isfinite(ret) else f"{'n/a':>10}"
    steps = int(row["env_steps"])
    return (
        f"[{label}] iter {int(row['iteration']):4d}  env steps {steps:7d}/{budget} ({100 * steps / budget:3.0f}%)"
        f"  episode return {ret_s}  elapsed {row['time_s']:7.1f} s"
        + (f"  λ_qoe {row['lambda_qoe']:.3g} λ_latency {row['lambda_latency']:.3g}" if "lambda_qoe" in row else "")
    )


def _save_checkpoint(algo, checkpoint: Path, history: list[dict[str, float]]) -> None:
    """Save next to the old checkpoint, then swap, so a crash never leaves a half-written ``checkpoint/``."""
    fresh, old = checkpoint.with_name("checkpoint.tmp"), checkpoint.with_name("checkpoint.old")
    shutil.rmtree(fresh, ignore_errors=True)
    algo.save_to_path(fresh)
    if checkpoint.exists():
        checkpoint.rename(old)
    fresh.rename(checkpoint)
    shutil.rmtree(old, ignore_errors=True)
    write_rows(history, checkpoint.parent / HISTORY_CSV)


def _log_outputs(
    run: TrackedRun,
    run_dir: Path,
    checkpoint: Path,
    history: list[dict[str, float]],
    evaluation: EvaluationResult,
    scenario: ScenarioConfig,
    title: str,
) -> None:
    """Write evaluation.csv and learning_curve.png into the run directory and log them with the eval metrics."""
    from aolo.platform.plots import plot_learning_curves

    write_rows(evaluation_rows(evaluation, scenario), run_dir / EVALUATION_CSV)
    plot_learning_curves(
        {evaluation.policy: [history]},
        run_dir / LEARNING_CURVE_PNG,
        users_per_episode=sum(c.num_users for c in scenario.cells) / len(scenario.cells),
        epochs_per_episode=scenario.epochs_per_episode,
        title=title,
    )
    steps = int(history[-1]["env_steps"]) if history else 0
    run.log_metrics(eval_metrics_for_mlflow(evaluation.metrics), step=steps)
    run.set_tags({"aolo.checkpoint": checkpoint})
    run.log_text(f"{checkpoint}\n", "checkpoint.txt")
    for name in (EVALUATION_CSV, RESULTS_JSON, LEARNING_CURVE_PNG, HISTORY_CSV):
        if (run_dir / name).exists():
            run.log_artifact(run_dir / name)
