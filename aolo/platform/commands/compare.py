"""``aolo compare``: every algorithm × seed of a preset plus the reference policies → one printed table.

The comparison itself (Tune trials, plots, MLflow runs) is :mod:`aolo.platform.compare`, its statistics and
table :mod:`aolo.platform.compare_stats`.
Exit codes: 0 when every training succeeded, 1 when some (or all) failed.
"""

from __future__ import annotations

import argparse
import dataclasses

from aolo.envs.config import ConfigError
from aolo.platform.algorithms import ALGORITHMS
from aolo.platform.commands import training_options
from aolo.platform.console import print_flush
from aolo.platform.presets import Experiment, load_experiment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``aolo compare`` flags on top of the shared ones; ``--seed N`` is short for ``--seeds N``."""
    parser.add_argument(
        "--algorithms",
        type=_names,
        metavar="A,B,...",
        help=f"comma-separated subset of {', '.join(ALGORITHMS)} (default: the preset's compare.algorithms)",
    )
    parser.add_argument(
        "--seeds", type=_seeds, metavar="N,M,...", help="comma-separated seeds (default: the preset's compare.seeds)"
    )
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        metavar="N",
        help="trainings (Tune trials) at a time; 1 trains one after another (default: as many as "
        "the cluster's CPUs/GPUs fit)",
    )
    parser.add_argument(
        "--extra-policy",
        action="append",
        default=[],
        metavar="package.module:Name",
        help="also score this policy object (protocol: docs/benchmark.md) on the same held-out episodes and add it "
        "to the table, figures and MLflow runs as kind external; repeatable; scored before the trainings start",
    )
    parser.add_argument(
        "--max-failures",
        type=int,
        default=2,
        metavar="N",
        help="restarts of a training lost with its node or worker (default: %(default)s)",
    )


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in ALGORITHMS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"must be a comma-separated subset of {list(ALGORITHMS)}, got {text!r}")
    return names


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(n) for n in text.split(",") if n.strip())
    except ValueError:
        seeds = ()
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers >= 0, got {text!r}")
    return seeds


def experiment_for_args(args: argparse.Namespace) -> Experiment:
    """The preset with ``--algorithms`` / ``--seeds`` (or ``--seed``) applied."""
    experiment = load_experiment(args.preset)
    if args.seed is not None and args.seeds is not None:
        raise ConfigError("give either --seed or --seeds, not both")
    seeds = args.seeds or ((args.seed,) if args.seed is not None else experiment.seeds)
    return dataclasses.replace(experiment, algorithms=args.algorithms or experiment.algorithms, seeds=seeds)


def run(args: argparse.Namespace) -> int:
    """``aolo compare``: 0 if every training succeeded, 1 if some (or all) failed."""
    from aolo.platform.compare import ClusterSettings, run_compare
    from aolo.platform.compare_stats import format_table
    from aolo.platform.results import compare_dir
    from aolo.platform.tracking import Tracker, resolve_tracking_uri
    from aolo.platform.train import preflight

    experiment = experiment_for_args(args)
    preflight(experiment.scenario)
    tracking_uri = resolve_tracking_uri(args.tracking_uri, args.output)
    jobs = len(experiment.algorithms) * len(experiment.seeds)
    print_flush(
        f"[compare] {experiment.name}: {', '.join(experiment.algorithms)} x seeds "
        f"{list(experiment.seeds)} ({jobs} trainings of {experiment.training.env_steps} env steps) "
        f"+ the reference policies"
    )
    cluster = ClusterSettings(
        max_concurrent=args.max_concurrent,
        num_learners=args.num_learners,
        num_gpus_per_learner=args.num_gpus_per_learner,
        max_failures=args.max_failures,
    )
    result = run_compare(
        experiment,
        args.output,
        tracking_uri=tracking_uri,
        cluster=cluster,
        **training_options(args),
        extra_policies=args.extra_policy,
    )
    print()
    print(format_table(result.rows))
    for row in result.rows:
        for error in row.errors:
            print(f"[compare] {row.policy} {error}")
    print(f"\n[compare] table and plots: {compare_dir(args.output, experiment.scenario)}")
    if tracking_uri is not None:
        print(f"MLflow: {Tracker(tracking_uri, experiment.scenario.name).run_url(result.parent_run_id)}")
    if not result.succeeded:
        print("[compare] every training FAILED; the MLflow parent run is marked FAILED")
    return 0 if all(r.n_failed == 0 for r in result.rows) else 1
