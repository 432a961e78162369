"""``aolo evaluate``: a trained checkpoint or a reference policy on the preset's held-out days.

Prints the evaluation table (:func:`aolo.platform.console.format_metrics_table`) beside the hindsight bound,
writes the per-episode CSV to ``<output>/<scenario>/evaluate/<name>.csv`` and logs one MLflow run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aolo.platform.console import _positive_int, format_metrics_table, print_flush

#: aolo.envs.reference.REFERENCE_POLICIES, written out so that `--help` does not import Ray (a test keeps them equal)
REFERENCE_POLICY_NAMES = ("fixed", "myopic", "myopic_true_csi", "forecast", "hindsight")
#: aolo.envs.model_reference.MODEL_REFERENCE_POLICIES: only with a model pool (service.model_action)
MODEL_REFERENCE_POLICY_NAMES = ("fixed_large",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``aolo evaluate`` flags on top of the shared ``--preset --output --tracking-uri``."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="checkpoint directory written by `aolo train` (…/<algorithm>_seed<N>/checkpoint)",
    )
    which.add_argument(
        "--policy",
        choices=REFERENCE_POLICY_NAMES + MODEL_REFERENCE_POLICY_NAMES,
        help=(
            "reference policy: carbon-agnostic (fixed), per-request greedy on the CSI estimate or the true channel "
            "(myopic, myopic_true_csi), online primal-dual on the forecasts (forecast), the offline bound (hindsight); "
            "with a model pool (service.model_action) also always the best-rated model (fixed_large)"
        ),
    )
    parser.add_argument(
        "--days-per-cell",
        type=_positive_int,
        metavar="N",
        help="held-out days per cell (default: the preset's evaluation.days_per_cell)",
    )


def run(args: argparse.Namespace) -> int:
    """``aolo evaluate``: 0 once the table is printed and the run logged."""
    from aolo.platform.evaluation import eval_metrics_for_mlflow, evaluate_checkpoint, module_path
    from aolo.platform.presets import load_experiment
    from aolo.platform.tracking import Tracker, resolve_tracking_uri, scenario_params
    from aolo.platform.train import evaluation_rows, preflight, reference_results, write_csv

    experiment = load_experiment(args.preset)
    scenario = experiment.scenario
    if args.policy in MODEL_REFERENCE_POLICY_NAMES and not scenario.service.model_action:
        from aolo.errors import ConfigError

        raise ConfigError(
            f"--policy {args.policy} needs a model pool: preset {args.preset!r} has service.model_action: false"
        )
    days = args.days_per_cell or experiment.days_per_cell
    checkpoint = None
    if args.checkpoint is not None:
        module_path(args.checkpoint)  # raises CheckpointError saying what is missing
        checkpoint = args.checkpoint.expanduser().resolve()
    name = args.policy or (checkpoint.parent.name if checkpoint.name == "checkpoint" else checkpoint.name)
    tracking_uri = resolve_tracking_uri(args.tracking_uri, args.output)
    preflight(scenario)

    print_flush(
        f"evaluating {name} on {scenario.name!r}: {len(scenario.cells)} cells x "
        f"{days if days is not None else 'all'} held-out day(s) per cell"
    )
    references = reference_results(scenario, days)
    bound = references["hindsight"]
    if checkpoint is not None:
        result = evaluate_checkpoint(checkpoint, scenario, name, days, bound)
    else:
        result = references[name]
    columns = {name: result.metrics} if name == "hindsight" else {name: result.metrics, "hindsight": bound.metrics}
    print(format_metrics_table(columns))

    out_dir = args.output.expanduser().resolve() / scenario.name / "evaluate"
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"{name}.csv"
    write_csv(evaluation_rows(result, scenario), csv_path)
    print(f"\nper-episode results: {csv_path}")
    if scenario.service.model_action:  # which model answered, by hour and grid (docs/design.md §3.7)
        from aolo.envs.models import pool_ceilings
        from aolo.platform.plots import model_share_by_hour, plot_model_share

        ceilings = list(pool_ceilings(scenario.service).values())
        best = ceilings.index(max(ceilings))  # the best-rated model: the share that costs carbon
        shown = {k: r for k, r in {**references, name: result}.items() if k != "myopic_true_csi"}  # = myopic
        share_path = plot_model_share(
            {k: model_share_by_hour(r.records, best, scenario.epoch_s) for k, r in shown.items()},
            scenario.service.model_pool[best],
            out_dir / "model_share.png",
        )
        print(f"share of answers per model by hour: {share_path}")
    params = {
        "policy": name,
        "preset": experiment.name,
        **scenario_params(scenario),
        "evaluation.days_per_cell": days if days is not None else "all",
    }
    if checkpoint is not None:
        params["checkpoint"] = checkpoint
    tracker = Tracker(tracking_uri, scenario.name)
    with tracker.mlflow_run(f"evaluate-{name}", params, {"aolo.command": "evaluate"}) as tracked:
        tracked.log_metrics(eval_metrics_for_mlflow(result.metrics))
        tracked.log_artifact(csv_path)
    if tracking_uri is not None:
        print(f"MLflow: {tracker.run_url(tracked.run_id)}")
    return 0
