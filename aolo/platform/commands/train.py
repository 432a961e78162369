"""``aolo train``: train one algorithm on the preset's scenario to its env-step budget, then evaluate it.

The training is :func:`aolo.platform.train.train_one`; this module adds ``--algorithm`` and prints the
evaluation table (:func:`aolo.platform.console.format_metrics_table`), the checkpoint and the MLflow run.
"""

from __future__ import annotations

import argparse

from aolo.platform.commands import training_options
from aolo.platform.console import format_metrics_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``aolo train`` flags on top of the shared ones."""
    # no `choices`: listing them would import RLlib (seconds) just to print --help; train_one validates
    parser.add_argument(
        "--algorithm",
        metavar="{sdrl,sac,td3,ppo}",
        help="algorithm to train: sdrl (SAC with a spiking PopSAN actor), sac, td3 or ppo "
        "(default: the preset's `algorithm`, else sdrl)",
    )


def run(args: argparse.Namespace) -> int:
    """``aolo train``: 0 once the checkpoint is saved, evaluated and logged."""
    from aolo.platform.presets import load_experiment
    from aolo.platform.tracking import Tracker, resolve_tracking_uri
    from aolo.platform.train import reference_results, train_one

    experiment = load_experiment(args.preset)
    algorithm = args.algorithm or experiment.algorithm
    seed = experiment.seeds[0] if args.seed is None else args.seed
    tracking_uri = resolve_tracking_uri(args.tracking_uri, args.output)
    result = train_one(
        experiment,
        algorithm,
        seed,
        args.output,
        num_learners=args.num_learners,
        num_gpus_per_learner=args.num_gpus_per_learner,
        tracking_uri=tracking_uri,
        **training_options(args),
    )
    bound = reference_results(experiment.scenario, experiment.days_per_cell)["hindsight"]  # cached by train_one
    print()
    print(format_metrics_table({algorithm: result.evaluation.metrics, "hindsight": bound.metrics}))
    print(f"\ncheckpoint: {result.checkpoint}")
    if tracking_uri is not None:
        print(f"MLflow: {Tracker(tracking_uri, experiment.scenario.name).run_url(result.run_id)}")
    return 0
