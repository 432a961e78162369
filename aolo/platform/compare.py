"""The comparison behind ``aolo compare``: every algorithm × seed of a preset plus the reference policies → one
table. The command (flags, printed lines, exit codes) is :mod:`aolo.platform.commands.compare`.

Each (algorithm, seed) is trained by :func:`~aolo.platform.train.train_one` as a child MLflow run of one parent
run; the reference policies (``fixed``, ``myopic``, ``hindsight``) are evaluated on the same held-out days and
logged as child runs too. A training that fails is recorded (its child run ends FAILED), the others go on, and
the table reports it; the parent run ends FAILED only if no training succeeded.

The table (printed, and written as ``table.csv``): per policy the mean held-out carbon per request with a 95 %
t-interval over seeds (``n=1`` when there is one), the reduction ``1 - carbon / carbon_baseline`` versus SAC,
PPO and TD3 with its 95 % interval (:func:`reduction_interval`), the gap to the hindsight bound, mean QoE, QoE
and latency violation rates and the actor's own energy (nJ/decision). The parent run gets
``compare/reduction_vs_<baseline>`` for SDRL, the table and the plots of :mod:`aolo.platform.plots`; all files
also go to ``<output>/<scenario>/compare/``.
"""

from __future__ import annotations

import csv
import functools
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ray import tune
from scipy import stats

from aolo.envs.config import ConfigError
from aolo.platform.algorithms import build_algorithm_config
from aolo.platform.console import fmt, format_columns, pct
from aolo.platform.evaluation import EvaluationResult, eval_metrics_for_mlflow
from aolo.platform.plots import plot_carbon, plot_carbon_vs_qoe, plot_cell_carbon, plot_learning_curves
from aolo.platform.presets import Experiment
from aolo.platform.tracking import TrackedRun, Tracker, policy_params, scenario_params
from aolo.platform.train import (
    check_gpus,
    configure_learners,
    has_checkpoint,
    init_ray,
    learner_params,
    read_history,
    reference_results,
    run_directory,
    train_one,
    trial_resources,
)

#: Learned baselines the reductions are measured against, when the preset trains them.
BASELINES = ("sac", "ppo", "td3")
#: With a model pool (docs/design.md §3.7): the carbon-agnostic large-model service, a reference baseline.
MODEL_BASELINES = ("fixed_large",)
#: The proposed method whose reductions go to the parent run as ``compare/reduction_vs_<baseline>``.
PROPOSED = "sdrl"
#: Metrics averaged over seeds in the table (besides carbon per request).
MEAN_METRICS = (
    "gap_to_bound",
    "qoe_mean",
    "qoe_violation_rate",
    "qoe_mean_violation_rate",
    "qoe_floor_violation_rate",
    "qoe_shortfall",
    "qoe_guard_rate",
    "latency_violation_rate",
    "action_at_bound_rate",
    "actor_nj_per_decision",
)
CARBON = "carbon_g_per_request"
CONFIDENCE = 0.95


@dataclass
class RunOutcome:
    """One evaluated policy run: a training (algorithm, seed) or a reference policy."""

    policy: str
    kind: str  #: ``learned`` or ``reference``
    seed: int | None
    metrics: dict[str, float] | None  #: held-out metrics (no ``eval/`` prefix); None if the run failed
    history: list[dict[str, float]] = field(default_factory=list)
    run_id: str | None = None
    error: str | None = None
    node_id: str | None = None  #: the Ray node the training (its last attempt) ran on
    node_ids: tuple[str, ...] = ()  #: the Ray node of every attempt, in order
    attempts: int = 1  #: Tune trial starts (> 1: restarted after a lost node or worker)


@dataclass
class PolicyRow:
    """One row of the comparison table: a policy's statistics over its successful seeds."""

    policy: str
    kind: str
    n: int  #: successful runs
    n_failed: int
    carbon_mean: float | None
    carbon_ci: float | None  #: 95 % t-interval half-width; None with fewer than 2 runs
    reductions: dict[str, float | None]  #: baseline -> 1 - carbon / carbon_baseline
    reduction_cis: dict[str, float | None]  #: baseline -> 95 % half-width of the reduction (None if n < 2)
    means: dict[str, float]  #: :data:`MEAN_METRICS` averaged over the successful runs
    errors: list[str] = field(default_factory=list)


@dataclass
class CompareResult:
    rows: list[PolicyRow]
    outcomes: list[RunOutcome]
    files: list[Path]  #: table.csv and the PNGs in ``<output>/<scenario>/compare/``
    parent_run_id: str | None
    succeeded: bool  #: at least one training succeeded


class NothingSucceeded(RuntimeError):
    """Every training of a comparison failed (ends the parent run FAILED)."""


# --- statistics -----------------------------------------------------------------------------------------


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float | None]:
    """Mean and the half-width of the Student-t confidence interval (None for a single value)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("t_interval needs at least one value")
    mean = float(x.mean())
    if x.size < 2:
        return mean, None
    sem = float(stats.sem(x))
    if sem == 0.0:  # identical values: scipy's t.interval needs scale > 0
        return mean, 0.0
    _, high = stats.t.interval(confidence, df=x.size - 1, loc=mean, scale=sem)
    return mean, float(high) - mean


def reduction(carbon: float, baseline: float) -> float:
    """Relative carbon reduction versus a baseline: ``1 - carbon / baseline`` (positive = less carbon)."""
    return 1.0 - carbon / baseline


def reduction_interval(
    values: Sequence[float],
    baseline_values: Sequence[float],
    confidence: float = CONFIDENCE,
    baseline_exact: bool = False,
) -> tuple[float, float | None]:
    """The reduction ``1 - mean(values) / mean(baseline_values)`` and its confidence half-width.

    The two samples are independent trainings (seed ``k`` of one algorithm has nothing in common with seed
    ``k`` of another), so the interval is the delta-method one for a ratio of independent means,
    ``se(R) = R sqrt(s_a²/(n_a ā²) + s_b²/(n_b b̄²))``, with Student-t quantile at the Welch–Satterthwaite
    degrees of freedom. None when either sample has a single value.

    ``baseline_exact``: the baseline is a deterministic reference policy (one value, no sampling error, e.g.
    ``fixed_large``): the interval is that of ``mean(values)`` alone, Student-t with ``n_a − 1`` degrees of freedom.
    """
    a, b = np.asarray(values, dtype=float), np.asarray(baseline_values, dtype=float)
    ratio = a.mean() / b.mean()
    if baseline_exact:
        if a.size < 2:
            return 1.0 - ratio, None
        half = stats.t.ppf(0.5 + confidence / 2, df=a.size - 1) * a.std(ddof=1) / math.sqrt(a.size) / b.mean()
        return 1.0 - ratio, float(half)
    if a.size < 2 or b.size < 2:
        return 1.0 - ratio, None
    va = a.var(ddof=1) / (a.size * a.mean() ** 2)  # squared relative standard errors of the two means
    vb = b.var(ddof=1) / (b.size * b.mean() ** 2)
    if va + vb == 0.0:
        return 1.0 - ratio, 0.0
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = stats.t.ppf(0.5 + confidence / 2, df=df) * ratio * math.sqrt(va + vb)
    return 1.0 - ratio, float(half)


def summarize(outcomes: Sequence[RunOutcome], baselines: Sequence[str] = BASELINES) -> list[PolicyRow]:
    """Table rows, in the order policies first appear in ``outcomes``; reductions against ``baselines``
    that have at least one successful run."""
    policies = list(dict.fromkeys(o.policy for o in outcomes))
    kinds = {o.policy: o.kind for o in outcomes}
    carbon: dict[str, list[float]] = {}  # per policy, the carbon of each successful run
    rows = []
    for policy in policies:
        mine = [o for o in outcomes if o.policy == policy]
        ok = [o.metrics for o in mine if o.metrics is not None]
        mean, ci = t_interval([m[CARBON] for m in ok]) if ok else (None, None)
        if ok:
            carbon[policy] = [m[CARBON] for m in ok]
        rows.append(
            PolicyRow(
                policy=policy,
                kind=mine[0].kind,
                n=len(ok),
                n_failed=len(mine) - len(ok),
                carbon_mean=mean,
                carbon_ci=ci,
                reductions={},
                reduction_cis={},
                means={k: float(np.mean([m[k] for m in ok])) for k in MEAN_METRICS if ok and all(k in m for m in ok)},
                errors=[f"seed {o.seed}: {o.error}" for o in mine if o.metrics is None],
            )
        )
    for row in rows:
        for b in (b for b in baselines if b in policies):
            both = row.policy in carbon and b in carbon and b != row.policy  # a policy vs itself: no entry
            row.reductions[b], row.reduction_cis[b] = (
                reduction_interval(carbon[row.policy], carbon[b], baseline_exact=kinds[b] == "reference")
                if both
                else (None, None)
            )
    return rows


# --- presentation ---------------------------------------------------------------------------------------


def format_table(rows: Sequence[PolicyRow]) -> str:
    """The comparison as an aligned terminal table."""
    baselines = list(rows[0].reductions) if rows else []
    header = [
        "policy",
        "carbon g/request (95% CI)",
        *(f"vs {b}" for b in baselines),
        "gap to bound",
        "QoE",
        "QoE viol",
        "lat viol",
        "actor nJ/dec",
        "status",
    ]
    lines = [header]
    for r in rows:
        if r.carbon_mean is None:
            carbon = "-"
        elif r.carbon_ci is None:
            carbon = f"{r.carbon_mean:.5f} (n={r.n})"
        else:
            carbon = f"{r.carbon_mean:.5f} ± {r.carbon_ci:.5f} (n={r.n})"
        lines.append(
            [
                r.policy,
                carbon,
                *(_reduction_cell(r, b) for b in baselines),
                pct(r.means.get("gap_to_bound")),
                fmt(r.means.get("qoe_mean"), ".3f"),
                fmt(r.means.get("qoe_violation_rate"), ".3f"),
                fmt(r.means.get("latency_violation_rate"), ".3f"),
                fmt(r.means.get("actor_nj_per_decision"), ".1f"),
                _status(r),
            ]
        )
    out = format_columns(lines, rule=True)
    out.append(
        "vs <baseline>: carbon reduction 1 - carbon / carbon_baseline (+ = less carbon) ± 95 % interval; "
        "gap to bound: carbon / strict lower bound (hindsight dual) - 1; CI: 95 % Student-t interval over seeds"
    )
    return "\n".join(out)


def _reduction_cell(row: PolicyRow, baseline: str) -> str:
    value, half = row.reductions[baseline], row.reduction_cis[baseline]
    if baseline == row.policy or value is None:
        return "-"
    return pct(value) + ("" if half is None else f" ± {100 * half:.1f}")


def _status(row: PolicyRow) -> str:
    if row.n_failed == 0:
        return "ok" if row.kind == "learned" else "reference"
    return "FAILED" if row.n == 0 else f"{row.n_failed} of {row.n + row.n_failed} seeds FAILED"


def table_records(rows: Sequence[PolicyRow]) -> list[dict[str, Any]]:
    """The table as CSV rows (full precision; empty cells where a value does not exist)."""
    records = []
    for r in rows:
        records.append(
            {
                "policy": r.policy,
                "kind": r.kind,
                "n": r.n,
                "n_failed": r.n_failed,
                CARBON: r.carbon_mean,
                f"{CARBON}_ci95": r.carbon_ci,
                **{f"reduction_vs_{b}": v for b, v in r.reductions.items()},
                **{f"reduction_vs_{b}_ci95": v for b, v in r.reduction_cis.items()},
                **{k: r.means.get(k) for k in MEAN_METRICS},
                "errors": " | ".join(r.errors),
            }
        )
    return records


def write_table_csv(rows: Sequence[PolicyRow], path: Path) -> Path:
    records = table_records(rows)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in rec.items()} for rec in records)
    return path


def write_plots(
    rows: Sequence[PolicyRow], outcomes: Sequence[RunOutcome], out_dir: Path, study: Any = None
) -> list[Path]:
    """carbon.png, carbon_vs_qoe.png and learning_curves.png in ``out_dir``; with ``study`` (the comparison read
    back by :func:`aolo.platform.report.load_study`) also cell_carbon.png, and learning curves per user-epoch."""
    from aolo.platform.report import bound_by_cell, cell_carbon

    learned = [r for r in rows if r.kind == "learned" and r.carbon_mean is not None]
    references = {r.policy: r.carbon_mean for r in rows if r.kind == "reference" and r.carbon_mean is not None}
    done = [o for o in outcomes if o.metrics is not None]
    histories: dict[str, list[list[dict[str, float]]]] = {}
    for o in done:
        if o.kind == "learned":
            histories.setdefault(o.policy, []).append(o.history)
    return [
        plot_carbon([(r.policy, r.carbon_mean, r.carbon_ci) for r in learned], references, out_dir / "carbon.png"),
        plot_carbon_vs_qoe(
            [(o.policy, o.metrics["qoe_mean"], o.metrics[CARBON]) for o in done],
            out_dir / "carbon_vs_qoe.png",
            references=list(references),
        ),
        plot_learning_curves(
            histories,
            out_dir / "learning_curves.png",
            *((study.users_per_episode, study.epochs_per_episode) if study is not None else ()),
        ),
        *(
            [plot_cell_carbon(cell_carbon(study), out_dir / "cell_carbon.png", bound_by_cell(study) or None)]
            if study is not None
            else []
        ),
    ]


# --- running a comparison -------------------------------------------------------------------------------


def compare_dir(output_dir: str | Path, experiment: Experiment) -> Path:
    """``<output>/<scenario>/compare``."""
    return Path(output_dir).expanduser().resolve() / experiment.scenario.name / "compare"


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
) -> CompareResult:
    """Train ``experiment.algorithms × experiment.seeds``, evaluate the reference policies, build the table.

    Every (algorithm, seed) is one Ray Tune trial (:func:`compare_trial`, which runs
    :func:`~aolo.platform.train.train_one`), as many at a time as ``cluster`` allows; the reference policies
    are evaluated by a Ray task meanwhile. ``resume`` continues each (algorithm, seed) from its run
    directory's checkpoint if it has one (a run that reached the budget is only evaluated again) and trains
    the others from scratch.
    """
    cluster = cluster or ClusterSettings()
    scenario = experiment.scenario
    out_dir = compare_dir(output_dir, experiment)
    out_dir.mkdir(parents=True, exist_ok=True)
    tracker = Tracker(tracking_uri, scenario.name)
    params = {
        "preset": experiment.name,
        **scenario_params(scenario),
        "algorithms": ",".join(experiment.algorithms),
        "seeds": ",".join(map(str, experiment.seeds)),
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
            result.parent_run_id = parent.run_id
            import ray

            progress(
                f"[compare] evaluating the reference policies on the held-out days of {scenario.name!r} "
                f"while the trainings run"
            )
            evaluations_ref = ray.remote(num_cpus=0, max_retries=3)(_reference_task).remote(
                scenario, experiment.days_per_cell
            )
            outcomes += _trainings(
                experiment,
                output_dir,
                tracking_uri,
                parent.run_id,
                num_env_runners,
                resume,
                evaluations_ref,
                progress,
                cluster,
            )
            evaluations = ray.get(evaluations_ref)
            outcomes += _log_references(experiment, evaluations, tracker, parent.run_id)  # learned rows first
            result.rows = summarize(outcomes, BASELINES + MODEL_BASELINES)  # fixed_large: only with a model pool
            from aolo.platform.report import load_study, write_reference_rows

            write_reference_rows(evaluations, scenario, out_dir)  # compare/references/*.csv: what `aolo report` reads
            result.files = [
                write_table_csv(result.rows, out_dir / "table.csv"),
                *write_plots(result.rows, outcomes, out_dir, load_study(experiment, output_dir)),
            ]
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


def _log_references(
    experiment: Experiment, evaluations: dict[str, EvaluationResult], tracker: Tracker, parent_run_id: str | None
) -> list[RunOutcome]:
    """Log each reference policy's evaluation as a child run."""
    scenario = experiment.scenario
    outcomes = []
    for name, evaluation in evaluations.items():
        params = {
            **policy_params(name, "reference"),
            "preset": experiment.name,
            **scenario_params(scenario),
            "evaluation.days_per_cell": experiment.days_per_cell or "all",
        }
        with tracker.mlflow_run(
            f"reference-{name}", params, {"aolo.command": "compare", "aolo.policy": name}, parent_run_id=parent_run_id
        ) as run:
            run.log_metrics(eval_metrics_for_mlflow(evaluation.metrics))
        outcomes.append(RunOutcome(name, "reference", None, dict(evaluation.metrics), run_id=run.run_id))
    return outcomes


ATTEMPTS_DIR = "attempts"  #: ``compare/attempts/<algorithm>_seed<seed>``: the compare session a trial started in


def _trainings(
    experiment: Experiment,
    output_dir: str | Path,
    tracking_uri: str | None,
    parent_run_id: str | None,
    num_env_runners: int,
    resume: bool,
    bound: Any,
    progress: Callable[[str], None],
    cluster: ClusterSettings,
) -> list[RunOutcome]:
    """Train every (algorithm, seed) as a Tune trial; a failure is recorded and the others go on.

    ``bound`` is the hindsight evaluation, or a Ray ObjectRef to :func:`reference_results` (trials wait for it
    only when they evaluate). A trial lost with its node is restarted by Tune (``cluster.max_failures``) and
    continues from the checkpoint its run directory holds.
    """
    import uuid

    jobs = [(a, s) for a in experiment.algorithms for s in experiment.seeds]
    root = compare_dir(output_dir, experiment)
    shutil.rmtree(root / TUNE_DIR_NAME, ignore_errors=True)  # Tune's bookkeeping only; results live in run dirs
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # relative trace paths keep working in trials
    bundles = {
        a: trial_resources(
            configure_learners(
                build_algorithm_config(
                    a, experiment.scenario, settings=experiment.training, num_env_runners=num_env_runners
                ),
                cluster.num_learners,
                cluster.num_gpus_per_learner,
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
            bound=bound,
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
            trial_name_creator=functools.partial(_trial_name, jobs),
            trial_dirname_creator=functools.partial(_trial_name, jobs),
        ),
        run_config=tune.RunConfig(
            name=TUNE_DIR_NAME,
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
        history = read_history(run_directory(output_dir, experiment.scenario, algorithm, seed) / "history.csv")
        if result.error is not None or m.get("error") or "eval/carbon_g_per_request" not in m:
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


TUNE_DIR_NAME = "tune"


def compare_trial(
    config: dict[str, Any],
    *,
    experiment: Experiment,
    output_dir: str,
    tracking_uri: str | None,
    parent_run_id: str | None,
    num_env_runners: int,
    resume: bool,
    bound: Any,
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
    checkpoint = run_directory(output_dir, experiment.scenario, algorithm, seed) / "checkpoint"
    marker = compare_dir(output_dir, experiment) / ATTEMPTS_DIR / f"{algorithm}_seed{seed}"
    marker.parent.mkdir(parents=True, exist_ok=True)
    node_id = ray.get_runtime_context().get_node_id()
    previous = marker.read_text().split() if marker.is_file() else []
    if previous[:1] == [session]:  # a restart in this compare session: continue from the checkpoint
        attempt, nodes = int(previous[1]) + 1, f"{previous[2]},{node_id}"
    else:
        attempt, nodes = 1, node_id
    marker.write_text(f"{session} {attempt} {nodes}\n")
    report: dict[str, Any] = {"node_id": node_id, "node_ids": nodes, "attempt": attempt, "run_id": "", "error": ""}

    def hindsight() -> EvaluationResult:
        return (ray.get(bound) if isinstance(bound, ray.ObjectRef) else bound)["hindsight"]

    try:
        trained = train_one(
            experiment,
            algorithm,
            seed,
            Path(output_dir),
            tracking_uri=tracking_uri,
            parent_run_id=parent_run_id,
            num_env_runners=num_env_runners,
            bound=hindsight,
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
    algorithm, seed = jobs[trial.config["job"]]
    return f"{algorithm}_seed{seed}"


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
