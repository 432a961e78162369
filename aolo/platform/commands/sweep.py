"""``aolo sweep``: Ray Tune over a YAML search space, then the trial table and the selected trial.

The sweep itself (search space, trainable, selection) is :mod:`aolo.platform.sweep`. Exit codes: 0 when a trial
was selected, 1 when none qualifies (the table says why), 130 when interrupted (``--resume`` continues).
"""

from __future__ import annotations

import argparse

from aolo.platform.commands import training_options
from aolo.platform.console import EXIT_INTERRUPTED, fmt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``aolo sweep`` flags on top of the shared ones (``--output``, ``--tracking-uri``, ``--seed``, ...)."""
    parser.add_argument(
        "--preset",
        default=None,
        metavar="NAME|PATH.yaml",
        help="experiment (scenario, training budget, algorithm) to sweep on; the sweep file's search_space, "
        "selection and sweep sections apply on top (default: the sweep file itself, with its `base`)",
    )
    parser.add_argument(
        "--sweep-config",
        default="reward_weights",
        metavar="NAME|PATH.yaml",
        help="sweep file in aolo/tune_configs/ or a YAML path with search_space / selection / sweep sections "
        "(default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    """``aolo sweep``: 0 if a trial was selected, 1 if none qualifies (the table says why)."""
    from aolo.platform.presets import experiment_from_raw
    from aolo.platform.results import CARBON_METRIC, MG_PER_G
    from aolo.platform.sweep import format_table, parse_sweep, run_sweep, sweep_raw
    from aolo.platform.tracking import resolve_tracking_uri
    from aolo.platform.train import preflight

    raw = sweep_raw(args.preset, args.sweep_config)
    experiment = experiment_from_raw(raw)
    spec = parse_sweep(raw, experiment)
    preflight(experiment.scenario)
    tracking_uri = resolve_tracking_uri(args.tracking_uri, args.output)
    seed = args.seed if args.seed is not None else experiment.seeds[0]
    result = run_sweep(
        experiment,
        spec,
        args.output,
        seed=seed,
        num_learners=args.num_learners,
        num_gpus_per_learner=args.num_gpus_per_learner,
        tracking_uri=tracking_uri,
        **training_options(args),
    )
    print()
    print(format_table(result.rows, spec.selection, result.selected))
    if result.interrupted:
        done = sum(r.status != "UNFINISHED" for r in result.rows)
        print(
            f"[sweep] interrupted after {done} of {spec.num_trials} trial(s); continue it with the same "
            f"command plus --resume"
        )
        return EXIT_INTERRUPTED
    for row in result.rows:
        if row.status == "ERROR":
            print(f"[sweep] trial {row.name} failed: {row.error}")
    print(f"\n[sweep] rule: {spec.selection.describe()}")
    if result.selected is None:
        print(
            f"[sweep] NO TRIAL QUALIFIES: none of the {len(result.rows)} trial(s) meets the thresholds; "
            f"relax `selection`, widen the search space or raise the budget. Written: {result.selection_path}"
        )
        return 1
    chosen = ", ".join(f"{k}={fmt(result.selected.params[k])}" for k in spec.keys)
    run_id = f" (MLflow run {result.selected.run_id})" if result.selected.run_id else ""
    print(
        f"[sweep] selected {result.selected.name}{run_id}: {chosen} -> "
        f"{MG_PER_G * result.selected.metrics[CARBON_METRIC]:.3f} mgCO2e/request on held-out days"
    )
    print(f"[sweep] written: {result.selection_path}, {result.plot_path}")
    return 0
