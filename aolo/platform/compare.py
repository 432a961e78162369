"""Running ``aolo compare``: every algorithm × seed of a preset as a Ray Tune trial, plus the reference policies,
into one table. The command (flags, printed lines, exit codes) is :mod:`aolo.platform.commands.compare`; the
statistics and the table are :mod:`aolo.platform.compare_stats`; the files it writes follow
:mod:`aolo.platform.results`.

Each (algorithm, seed) is trained by :func:`~aolo.platform.train.train_one` as a child MLflow run of one parent
run; the reference policies (``fixed``, ``myopic``, ``myopic_true_csi``, ``forecast``, ``hindsight``) are evaluated
on the same held-out days and logged as child runs too. A training that fails is recorded (its child run ends
FAILED), the others go on, and the table reports it; the parent run ends FAILED only if no training succeeded.
The parent run gets ``compare/reduction_vs_<baseline>`` for SDRL, table.csv and the figures of
:func:`aolo.platform.plots.write_study_figures`; all files also go to ``<output>/<scenario>/compare/``.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ray import tune

from aolo.envs.config import ConfigError
from aolo.platform.compare_stats import (
    BASELINES,
    MODEL_BASELINES,
    PROPOSED,
    PolicyRow,
    RunOutcome,
    summarize,
    table_records,
)
from aolo.platform.evaluation import EvaluationResult, eval_metrics_for_mlflow, evaluate, gap_to_bound
from aolo.platform.plots import write_study_figures
from aolo.platform.presets import Experiment
from aolo.platform.results import (
    ATTEMPTS_DIR,
    CARBON_METRIC,
    CHECKPOINT_DIR,
    HISTORY_CSV,
    TABLE_CSV,
    TUNE_DIR,
    compare_dir,
    file_safe,
    load_study,
    read_history,
    run_directory,
    run_name,
    write_reference_results,
    write_reference_rows,
    write_rows,
)
from aolo.platform.tracking import (
    TrackedRun,
    Tracker,
    constraint_params,
    log_experiment_config,
    policy_params,
    scenario_params,
)
from aolo.platform.train import (
    check_gpus,
    has_checkpoint,
    init_ray,
    learner_params,
    record_gap_to_bound,
    reference_results,
    train_one,
    training_config,
    trial_resources,
)


@dataclass
class CompareResult:
    rows: list[PolicyRow]
    outcomes: list[RunOutcome]
    files: list[Path]  #: table.csv and the PNGs in ``<output>/<scenario>/compare/``
    parent_run_id: str | None
    succeeded: bool  #: at least one training succeeded


class NothingSucceeded(RuntimeError):
    """Every training of a comparison failed (ends the parent run FAILED)."""


@dataclass(frozen=True)
class ClusterSettings:
    """How ``compare`` spreads its trainings over the Ray cluster (docs/design.md, the cluster section)."""

    max_concurrent: int | None = None  #: trials at a time; None = as many as the cluster's resources fit
    num_learners: int = 0
    num_gpus_per_learner: float = 0.0
    max_failures: int = 2  #: restarts of a trial lost with its node or worker (Tune ``FailureConfig``)
    checkpoint_every_s: float | None = 60.0  #: checkpoint during training, so a restart loses at most this
    summary_every_s: float = 30.0  #: period of the ``3/20 done, 2 running, ETA ...`` line

    def __post_init__(self) -> None:
        if self.max_concurrent is not None and not (isinstance(self.max_concurrent, int) and self.max_concurrent >= 1):
            raise ConfigError(
                f"max_concurrent: must be an integer >= 1 (or None: as many as fit), got {self.max_concurrent!r}"
            )
        learner_params(self.num_learners, self.num_gpus_per_learner)
        if not (isinstance(self.max_failures, int) and self.max_failures >= 0):
            raise ConfigError(f"max_failures: must be an integer >= 0, got {self.max_failures!r}")


def run_compare(
    experiment: Experiment,
    output_dir: str | Path,
    *,
    tracking_uri: str | None,
    num_env_runners: int = 0,
    resume: bool = False,
    progress: Callable[[str], None] = print,
    cluster: ClusterSettings | None = None,
    extra_policies: Sequence[str] = (),
) -> CompareResult:
    """Train ``experiment.algorithms × experiment.seeds``, evaluate the reference policies, build the table.

    Every (algorithm, seed) is one Ray Tune trial (:func:`compare_trial`, which runs
    :func:`~aolo.platform.train.train_one`), as many at a time as ``cluster`` allows; the reference policies
    are evaluated by a Ray task meanwhile. ``resume`` continues each (algorithm, seed) from its run
    directory's checkpoint if it has one (a run that reached the budget is only evaluated again) and trains
    the others from scratch. ``extra_policies`` (``package.module:Name`` specs, :mod:`aolo.envs.protocol`) are
    scored on the same held-out episodes before anything starts (a broken one stops the comparison before
    anything is written) and enter the table, the figures and the MLflow runs as ``kind: external``.
    """
    cluster = cluster or ClusterSettings()
    scenario = experiment.scenario
    extras = evaluate_extra_policies(experiment, extra_policies, progress)
    out_dir = compare_dir(output_dir, scenario)
    out_dir.mkdir(parents=True, exist_ok=True)
    tracker = Tracker(tracking_uri, scenario.name)
    params = {
        "preset": experiment.name,
        **scenario_params(scenario),
        "algorithms": ",".join(experiment.algorithms),
        "seeds": ",".join(map(str, experiment.seeds)),
        **constraint_params(experiment.constraints),
        "env_steps": experiment.training.env_steps,
        "evaluation.days_per_cell": experiment.days_per_cell if experiment.days_per_cell is not None else "all",
        "num_env_runners": num_env_runners,
        "max_concurrent": cluster.max_concurrent or "auto",
        **learner_params(cluster.num_learners, cluster.num_gpus_per_learner),
    }
    init_ray()
    check_gpus(cluster.num_gpus_per_learner)
    outcomes: list[RunOutcome] = []
    result = CompareResult([], outcomes, [], None, False)
    try:
        with tracker.mlflow_run(f"compare-{experiment.name}", params, {"aolo.command": "compare"}) as parent:
            log_experiment_config(parent, experiment)
            result.parent_run_id = parent.run_id
            import ray

            progress(
                f"[compare] evaluating the reference policies on the held-out days of {scenario.name!r} "
                f"while the trainings run"
            )
            references = ray.remote(num_cpus=0, max_retries=3)(_reference_task).remote(
                scenario, experiment.days_per_cell
            )
            outcomes += _trainings(
                experiment, output_dir, tracking_uri, parent.run_id, num_env_runners, resume, progress, cluster
            )
            if any(o.metrics is not None for o in outcomes):
                progress("[compare] trainings done; waiting for the reference policies' evaluation")
            evaluations = ray.get(references)
            for o in outcomes:  # the trials evaluated without the gap to the bound, which needs the references
                if o.metrics is not None:
                    run_dir = run_directory(output_dir, scenario, o.policy, o.seed)
                    o.metrics["gap_to_bound"] = record_gap_to_bound(
                        run_dir, evaluations["hindsight"], tracker, o.run_id
                    )
            outcomes += _log_references(experiment, evaluations, tracker, parent.run_id)  # learned rows first
            for extra in extras.values():
                extra.result.metrics["gap_to_bound"] = gap_to_bound(
                    extra.result.metrics[CARBON_METRIC], evaluations["hindsight"]
                )
            external = {name: extra.result for name, extra in extras.items()}
            outcomes += _log_references(experiment, external, tracker, parent.run_id, kind="external")
            result.rows = summarize(outcomes, BASELINES + MODEL_BASELINES)  # fixed_large: only with a model pool
            write_reference_rows({**evaluations, **external}, scenario, output_dir)  # what `aolo report` reads
            write_reference_results(
                {**evaluations, **external},
                experiment,
                output_dir,
                kinds=dict.fromkeys(external, "external"),
                specs={name: extra.spec for name, extra in extras.items()},
            )
            table = write_rows(table_records(result.rows), out_dir / TABLE_CSV)
            result.files = [table, *write_study_figures(load_study(experiment, output_dir), out_dir)]
            _log_parent(parent, result.rows, result.files)
            result.succeeded = any(o.kind == "learned" and o.metrics is not None for o in outcomes)
            if not result.succeeded:
                raise NothingSucceeded("no training succeeded")
    except NothingSucceeded:
        pass  # the parent run is FAILED; the caller reports it from the table
    return result


def _reference_task(scenario: Any, days_per_cell: int | None) -> dict[str, EvaluationResult]:
    """:func:`reference_results` as a Ray task (0 CPUs: it runs beside the trainings, not instead of one)."""
    return reference_results(scenario, days_per_cell)


@dataclass
class ExtraPolicy:
    """A policy of ``--extra-policy``: its spec and its held-out evaluation."""

    spec: str
    result: EvaluationResult


def evaluate_extra_policies(
    experiment: Experiment, specs: Sequence[str], progress: Callable[[str], None] = print
) -> dict[str, ExtraPolicy]:
    """Load and score every ``package.module:Name`` of ``specs`` on the held-out days (gap to the bound added once
    the hindsight evaluation is in); any :class:`~aolo.errors.PolicyError` comes before a comparison starts."""
    from aolo.envs.protocol import ProtocolRunner, load_policy, policy_name
    from aolo.envs.reference import REFERENCE_POLICIES
    from aolo.errors import PolicyError
    from aolo.platform.algorithms import ALGORITHMS

    extras: dict[str, ExtraPolicy] = {}
    for spec in specs:
        policy = load_policy(spec)
        name = file_safe(policy_name(policy))
        if name in (*REFERENCE_POLICIES, *ALGORITHMS, *extras):
            raise PolicyError(
                f"--extra-policy {spec}: its name {name!r} is already a row of the table; give the policy "
                "another name attribute"
            )
        progress(f"[compare] scoring the extra policy {name} ({spec}) on the held-out days")
        extras[name] = ExtraPolicy(
            spec, evaluate(ProtocolRunner(policy, name), experiment.scenario, experiment.days_per_cell)
        )
    return extras


def _log_references(
    experiment: Experiment,
    evaluations: dict[str, EvaluationResult],
    tracker: Tracker,
    parent_run_id: str | None,
    kind: str = "reference",
) -> list[RunOutcome]:
    """Log each reference policy's (or, ``kind="external"``, each extra policy's) evaluation as a child run."""
    scenario = experiment.scenario
    outcomes = []
    for name, evaluation in evaluations.items():
        params = {
            **policy_params(name, kind),
            "preset": experiment.name,
            **scenario_params(scenario),
            "evaluation.days_per_cell": experiment.days_per_cell or "all",
        }
        with tracker.mlflow_run(
            f"{kind}-{name}", params, {"aolo.command": "compare", "aolo.policy": name}, parent_run_id=parent_run_id
        ) as run:
            run.log_metrics(eval_metrics_for_mlflow(evaluation.metrics))
        outcomes.append(RunOutcome(name, kind, None, dict(evaluation.metrics), run_id=run.run_id))
    return outcomes


def _trainings(
    experiment: Experiment,
    output_dir: str | Path,
    tracking_uri: str | None,
    parent_run_id: str | None,
    num_env_runners: int,
    resume: bool,
    progress: Callable[[str], None],
    cluster: ClusterSettings,
) -> list[RunOutcome]:
    """Train every (algorithm, seed) as a Tune trial; a failure is recorded and the others go on.

    Each trial evaluates its checkpoint without the gap to the bound (the caller adds it), so it never waits for
    the reference task. A trial lost with its node is restarted by Tune (``cluster.max_failures``) and
    continues from the checkpoint its run directory holds.
    """
    import uuid

    jobs = [(a, s) for a in experiment.algorithms for s in experiment.seeds]
    root = compare_dir(output_dir, experiment.scenario)
    shutil.rmtree(root / TUNE_DIR, ignore_errors=True)  # Tune's bookkeeping only; results live in run dirs
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # relative trace paths keep working in trials
    bundles = {
        a: trial_resources(
            training_config(
                experiment,
                a,
                num_env_runners=num_env_runners,
                num_learners=cluster.num_learners,
                num_gpus_per_learner=cluster.num_gpus_per_learner,
            )
        ).bundles
        for a in experiment.algorithms
    }
    trainable = tune.with_resources(
        tune.with_parameters(
            compare_trial,
            experiment=experiment,
            output_dir=str(Path(output_dir).resolve()),
            tracking_uri=tracking_uri,
            parent_run_id=parent_run_id,
            num_env_runners=num_env_runners,
            resume=resume,
            session=uuid.uuid4().hex,
            cluster=cluster,
            jobs=jobs,
        ),
        lambda config: tune.PlacementGroupFactory(bundles[jobs[config["job"]][0]]),
    )
    order = {job: i for i, job in enumerate(jobs)}
    tuner = tune.Tuner(
        trainable,
        param_space={"job": tune.grid_search(list(range(len(jobs))))},  # job i = jobs[i] = (algorithm, seed)
        tune_config=tune.TuneConfig(
            max_concurrent_trials=cluster.max_concurrent,
            # a finished trial's worker process runs the next one: no process start, imports or RLlib's first
            # build per trial (≈ 6 s each on 2 cores; build_algo restarts the env copy count)
            reuse_actors=True,
            trial_name_creator=functools.partial(_trial_name, jobs),
            trial_dirname_creator=functools.partial(_trial_name, jobs),
        ),
        run_config=tune.RunConfig(
            name=TUNE_DIR,
            storage_path=str(root),
            verbose=0,
            callbacks=[CompareProgress(jobs, progress, cluster.summary_every_s)],
            failure_config=tune.FailureConfig(max_failures=cluster.max_failures),
        ),
    )
    concurrency = cluster.max_concurrent or "as many as fit"
    progress(
        f"[compare] {len(jobs)} trainings as Tune trials ({concurrency} at a time; per trial {_bundles_text(bundles)})"
    )
    outcomes: dict[tuple[str, int], RunOutcome] = {}
    grid = tuner.fit()  # Ctrl-C: Tune stops the trials and returns; they keep their last periodic checkpoint
    if any(r.error is None and "attempt" not in (r.metrics or {}) for r in grid):
        progress("[compare] interrupted: unfinished trainings continue from their last checkpoint with --resume")
        raise KeyboardInterrupt
    for result in grid:
        algorithm, seed = jobs[result.config["job"]]
        m = result.metrics or {}
        history = read_history(run_directory(output_dir, experiment.scenario, algorithm, seed) / HISTORY_CSV)
        if result.error is not None or m.get("error") or f"eval/{CARBON_METRIC}" not in m:
            error = m.get("error") or (" ".join(str(result.error).split()[:40]) if result.error else "no result")
            outcomes[algorithm, seed] = RunOutcome(
                algorithm,
                "learned",
                seed,
                None,
                history,
                m.get("run_id") or None,
                error=error,
                node_id=m.get("node_id"),
                node_ids=tuple(filter(None, str(m.get("node_ids", "")).split(","))),
                attempts=int(m.get("attempt", 1)),
            )
        else:
            metrics = {k.removeprefix("eval/"): float(v) for k, v in m.items() if k.startswith("eval/")}
            outcomes[algorithm, seed] = RunOutcome(
                algorithm,
                "learned",
                seed,
                metrics,
                history,
                m.get("run_id"),
                node_id=m.get("node_id"),
                attempts=int(m.get("attempt", 1)),
                node_ids=tuple(str(m.get("node_ids", "")).split(",")),
            )
    return [outcomes[job] for job in sorted(outcomes, key=order.__getitem__)]


def compare_trial(
    config: dict[str, Any],
    *,
    experiment: Experiment,
    output_dir: str,
    tracking_uri: str | None,
    parent_run_id: str | None,
    num_env_runners: int,
    resume: bool,
    session: str,
    cluster: ClusterSettings,
    jobs: Sequence[tuple[str, int]],
) -> None:
    """Tune function trainable: one (algorithm, seed) of a comparison through :func:`train_one`.

    Reports once, at the end: ``eval/*`` metrics, ``run_id``, ``node_id``, ``attempt``, or ``error`` (a failed
    training is a result, not a Tune error, so it is not retried). A restart of this trial in the same compare
    session (Tune retrying after its node died) continues from the run directory's checkpoint.
    """
    import ray
    import torch

    torch.set_num_threads(1)  # 2-core machines: torch's default threads oversubscribe with Ray (13x slower)
    algorithm, seed = jobs[config["job"]]
    checkpoint = run_directory(output_dir, experiment.scenario, algorithm, seed) / CHECKPOINT_DIR
    marker = compare_dir(output_dir, experiment.scenario) / ATTEMPTS_DIR / run_name(algorithm, seed)
    marker.parent.mkdir(parents=True, exist_ok=True)
    node_id = ray.get_runtime_context().get_node_id()
    previous = marker.read_text().split() if marker.is_file() else []
    if previous[:1] == [session]:  # a restart in this compare session: continue from the checkpoint
        attempt, nodes = int(previous[1]) + 1, f"{previous[2]},{node_id}"
    else:
        attempt, nodes = 1, node_id
    marker.write_text(f"{session} {attempt} {nodes}\n")
    report: dict[str, Any] = {"node_id": node_id, "node_ids": nodes, "attempt": attempt, "run_id": "", "error": ""}

    try:
        trained = train_one(
            experiment,
            algorithm,
            seed,
            Path(output_dir),
            tracking_uri=tracking_uri,
            parent_run_id=parent_run_id,
            num_env_runners=num_env_runners,
            gap_later=True,  # added by the driver once the references are in (compare)
            progress=lambda line: None,
            resume=(resume or attempt > 1) and has_checkpoint(checkpoint),
            num_learners=cluster.num_learners,
            num_gpus_per_learner=cluster.num_gpus_per_learner,
            checkpoint_every_s=cluster.checkpoint_every_s,
            tags={"aolo.node_id": node_id, "aolo.attempt": attempt},
        )
    except Exception as e:  # recorded in the table; its MLflow child run ended FAILED
        report["error"] = " ".join(str(e).split()) or type(e).__name__
    else:
        report["run_id"] = trained.run_id or ""
        report.update(eval_metrics_for_mlflow(trained.evaluation.metrics))
    tune.report(report)


def _trial_name(jobs: Sequence[tuple[str, int]], trial: Any) -> str:
    return run_name(*jobs[trial.config["job"]])


def _bundles_text(bundles: dict[str, list[dict[str, float]]]) -> str:
    def total(bs: list[dict[str, float]]) -> str:
        cpus, gpus = sum(b.get("CPU", 0) for b in bs), sum(b.get("GPU", 0) for b in bs)
        return f"{cpus:g} CPU" + (f" + {gpus:g} GPU" if gpus else "")

    return ", ".join(f"{a}: {total(b)}" for a, b in bundles.items())


class CompareProgress(tune.Callback):
    """Tune callback printing one line per trial state change and, every ``every_s``, a summary line
    ``3/20 done, 2 running, 15 pending, ETA 4m10s`` (Tune's own per-iteration reporter is off)."""

    def __init__(self, jobs: Sequence[tuple[str, int]], progress: Callable[[str], None], every_s: float = 30.0) -> None:
        self.jobs, self.total, self.progress, self.every_s = jobs, len(jobs), progress, every_s
        self.started: dict[str, float] = {}
        self.durations: list[float] = []
        self.done = 0
        self.last_summary = time.monotonic()

    def _label(self, trial: Any) -> str:
        algorithm, seed = self.jobs[trial.config["job"]]
        return f"{algorithm} seed {seed}"

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.started[trial.trial_id] = time.monotonic()
        self.progress(f"[compare] started {self._label(trial)} ({self.done}/{self.total} done)")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.progress(f"[compare] {self._label(trial)} lost its worker or node: restarting it from its last checkpoint")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        elapsed = time.monotonic() - self.started.get(trial.trial_id, time.monotonic())
        self.durations.append(elapsed)
        self.done += 1
        error = (trial.last_result or {}).get("error")
        state = f"FAILED: {error}" if error else "finished"
        self.progress(f"[compare] {self._label(trial)} {state} in {_duration(elapsed)} ({self.done}/{self.total} done)")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.done += 1
        self.progress(f"[compare] {self._label(trial)} FAILED (out of restarts) ({self.done}/{self.total} done)")

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.monotonic() - self.last_summary >= self.every_s:
            self.last_summary = time.monotonic()
            self.progress(f"[compare] {summary_line(self.done, self.total, trials, self.durations)}")


def summary_line(done: int, total: int, trials: list, durations: Sequence[float]) -> str:
    """``3/20 done, 2 running, 15 pending, ETA 4m10s``: the ETA assumes the remaining trainings take the mean
    duration of the finished ones, ``running`` at a time."""
    running = sum(getattr(t, "status", "") == "RUNNING" for t in trials)
    pending = total - done - running
    eta = ""
    if durations and done < total:
        eta = f", ETA {_duration(float(np.mean(durations)) * (total - done) / max(running, 1))}"
    return f"{done}/{total} done, {running} running, {pending} pending{eta}"


def _log_parent(parent: TrackedRun, rows: Sequence[PolicyRow], files: Sequence[Path]) -> None:
    proposed = next((r for r in rows if r.policy == PROPOSED), None)
    if proposed is not None:
        parent.log_metrics({f"compare/reduction_vs_{b}": v for b, v in proposed.reductions.items() if v is not None})
        parent.log_metrics(
            {f"compare/reduction_vs_{b}_ci95": v for b, v in proposed.reduction_cis.items() if v is not None}
        )
    for path in files:
        parent.log_artifact(path)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
