"""``aolo evaluate``: a trained checkpoint, a reference policy or any policy object on the preset's held-out days.

``--policy package.module:Name`` loads a policy written against the protocol of :mod:`aolo.envs.protocol`
(docs/benchmark.md) and scores it exactly as the built-in references: same (cell, day) episodes and random
streams, same metrics, gap to the strict bound, constraint table, MLflow run (``kind: external``).
Prints the evaluation table (:func:`aolo.platform.console.format_metrics_table`) beside the hindsight bound,
writes the per-episode CSV to ``<output>/<scenario>/evaluate/<name>.csv`` and the same evaluation as
``<name>.results.json`` beside it (docs/results.schema.json), and logs one MLflow run. Nothing is
written before the whole evaluation succeeded, and files are replaced atomically, so a policy that fails leaves
every earlier result as it was.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aolo.platform.console import _positive_int, format_constraint_table, format_metrics_table, print_flush

#: aolo.envs.reference.REFERENCE_POLICIES, written out so that `--help` does not import Ray (a test keeps them equal)
REFERENCE_POLICY_NAMES = ("fixed", "myopic", "myopic_true_csi", "forecast", "hindsight")
#: aolo.envs.reference.SITE_REFERENCE_POLICIES: references for scenarios with shared serving sites only
SITE_POLICY_NAMES = ("forecast_site",)
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
        type=policy_argument,
        metavar="NAME|package.module:Name",
        help=(
            "a reference policy: carbon-agnostic (fixed), per-request greedy on the CSI estimate or the true channel "
            "(myopic, myopic_true_csi), online primal-dual on the forecasts (forecast), the offline bound (hindsight); "
            "with shared serving sites also forecast plus a site load price (forecast_site); "
            "with a model pool (service.model_action) also always the best-rated model (fixed_large); "
            "or your own policy object, imported from the current directory first "
            "(e.g. examples.external_policy:CleanHoursHeuristic; protocol: docs/benchmark.md)"
        ),
    )
    parser.add_argument(
        "--days-per-cell",
        type=_positive_int,
        metavar="N",
        help="held-out days per cell (default: the preset's evaluation.days_per_cell)",
    )


def policy_argument(text: str) -> str:
    """A reference-policy name or a ``package.module:Name`` spec (loaded, and checked, by :func:`run`)."""
    names = REFERENCE_POLICY_NAMES + SITE_POLICY_NAMES + MODEL_REFERENCE_POLICY_NAMES
    if text in names or ":" in text:
        return text
    raise argparse.ArgumentTypeError(f"must be one of {', '.join(names)} or package.module:Name, got {text!r}")


def run(args: argparse.Namespace) -> int:
    """``aolo evaluate``: 0 once the table is printed and the run logged."""
    from aolo.envs.protocol import ProtocolRunner, load_policy, policy_name
    from aolo.platform.evaluation import eval_metrics_for_mlflow, evaluate, evaluate_checkpoint, module_path
    from aolo.platform.presets import load_experiment
    from aolo.platform.results import (
        evaluate_dir,
        evaluation_rows,
        file_safe,
        results_document,
        write_results_json,
        write_rows,
    )
    from aolo.platform.tracking import Tracker, policy_params, resolve_tracking_uri, scenario_params
    from aolo.platform.train import preflight, reference_results

    experiment = load_experiment(args.preset)
    scenario = experiment.scenario
    if args.policy in SITE_POLICY_NAMES and not scenario.sites:
        from aolo.errors import ConfigError

        raise ConfigError(
            f"--policy {args.policy}: needs a scenario with shared serving sites (scenario.sites); preset "
            f"{args.preset!r} has none — on cells with private datacenters use --policy forecast"
        )
    if args.policy in MODEL_REFERENCE_POLICY_NAMES and not scenario.service.model_action:
        from aolo.errors import ConfigError

        raise ConfigError(
            f"--policy {args.policy} needs a model pool: preset {args.preset!r} has service.model_action: false"
        )
    days = args.days_per_cell or experiment.days_per_cell
    checkpoint = external = None
    if args.checkpoint is not None:
        module_path(args.checkpoint)  # raises CheckpointError saying what is missing
        checkpoint = args.checkpoint.expanduser().resolve()
        name, kind = (checkpoint.parent.name if checkpoint.name == "checkpoint" else checkpoint.name), "learned"
    elif ":" in args.policy:
        external = load_policy(args.policy)  # raises PolicyError naming what is wrong, before any work
        name, kind = file_safe(policy_name(external)), "external"
    else:
        name, kind = args.policy, "reference"
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
    elif external is not None:
        result = evaluate(ProtocolRunner(external, name), scenario, days, bound)
    else:
        result = references[name]
    columns = {name: result.metrics} if name == "hindsight" else {name: result.metrics, "hindsight": bound.metrics}
    print(format_metrics_table(columns))
    print()
    print(format_constraint_table(columns, scenario.service))

    csv_path = evaluate_dir(args.output, scenario) / f"{name}.csv"
    partial = write_rows(evaluation_rows(result, scenario), csv_path.with_name(f".{csv_path.name}.partial"))
    partial.replace(csv_path)  # atomic: a reader sees the old file or the new one, never half of one
    document = results_document(
        result,
        scenario,
        preset=experiment.name,
        days_per_cell=days,
        kind=kind,
        spec=args.policy if external is not None else None,
        checkpoint=checkpoint,
        bound=bound,
    )
    json_path = write_results_json(document, csv_path.with_name(f"{name}.results.json"))
    print(f"\nper-episode results: {csv_path}\nresults.json: {json_path}")
    if scenario.service.model_action:  # which model answered, by hour and grid (docs/design.md §3.7)
        from aolo.platform.plots import plot_model_share
        from aolo.platform.results import best_model, model_share_by_hour

        best, best_name = best_model(scenario.service)  # the best-rated model: the share that costs carbon
        shown = {k: r for k, r in {**references, name: result}.items() if k != "myopic_true_csi"}  # = myopic
        share_path = plot_model_share(
            {k: model_share_by_hour(r.records, best, scenario.epoch_s) for k, r in shown.items()},
            best_name,
            csv_path.with_name("model_share.png"),
        )
        print(f"share of answers per model by hour: {share_path}")
    params = {
        **policy_params(name, kind),
        "preset": experiment.name,
        **scenario_params(scenario),
        "evaluation.days_per_cell": days if days is not None else "all",
    }
    if checkpoint is not None:
        params["checkpoint"] = checkpoint
    if external is not None:
        params["policy_spec"] = args.policy
    tracker = Tracker(tracking_uri, scenario.name)
    with tracker.mlflow_run(f"evaluate-{name}", params, {"aolo.command": "evaluate"}) as tracked:
        tracked.log_metrics(eval_metrics_for_mlflow(result.metrics))
        tracked.log_artifact(csv_path)
        tracked.log_artifact(json_path)
    if tracking_uri is not None:
        print(f"MLflow: {tracker.run_url(tracked.run_id)}")
    return 0
