"""``aolo`` / ``python -m aolo``: train, sweep, evaluate and compare carbon-aware LLM-serving policies.

Subcommands: ``train`` and ``evaluate`` live here; ``sweep`` and ``compare`` live in
:mod:`aolo.platform.sweep` and :mod:`aolo.platform.compare` (each exposes ``add_arguments(parser)`` and
``run(args) -> int``), imported only when their subcommand runs. This module adds the flags they share:
``--preset --output --tracking-uri`` (all subcommands) and ``--seed --num-env-runners --resume``.

Errors a user can fix (:class:`aolo.errors.AoloError`: bad preset or YAML key, missing trace or checkpoint,
unreachable tracking server, ...) print one line ``aolo: error: <what to fix>`` and exit with 2, before anything
is written; Ctrl-C exits with 130 and marks the MLflow run KILLED.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Callable, Sequence

from aolo.errors import AoloError

DEFAULT_PRESET = "quick"
DEFAULT_OUTPUT = "./aolo_runs"
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
#: Subcommands implemented in their own module: name -> (module, one-line help).
EXTERNAL_COMMANDS = {
    "sweep": ("aolo.platform.sweep", "Ray Tune sweep over a YAML search space (reward weights, settings)"),
    "compare": ("aolo.platform.compare", "all algorithms x seeds + the reference policies -> one table"),
    "report": ("aolo.platform.report", "REPORT.md's tables and figures from a finished compare (and sweep)"),
}
#: (metric, meaning) rows of the printed evaluation table, metric names of docs/design.md §6.
TABLE_METRICS = (
    ("carbon_g_per_request", "gCO2e per request, all parts"),
    ("carbon_inference_g", "  datacenter GPU energy"),
    ("carbon_embodied_g", "  embodied GPU share"),
    ("carbon_comm_g", "  radio downlink"),
    ("qoe_mean", "mean QoE of the answers"),
    ("qoe_violation_rate", "user-days missing Q_min / Q_floor"),
    ("latency_violation_rate", "answers over T_max"),
    ("gap_to_bound", "carbon above the strict lower bound"),
    ("actor_nj_per_decision", "policy's own energy, nJ/decision"),
)

EPILOG = """\
examples:
  python -m aolo train --preset smoke                      # seconds: try the whole pipeline
  python -m aolo train --preset quick --algorithm sac      # one algorithm, one seed
  python -m aolo train --preset quick --resume             # continue the last checkpoint to the budget
  python -m aolo compare --preset quick                    # 4 algorithms + 3 references, ~10 min on 2 cores
  python -m aolo sweep --preset reward_weights             # Ray Tune over the YAML's search_space
  python -m aolo evaluate --policy hindsight               # a reference policy on the held-out days
  python -m aolo evaluate --checkpoint aolo_runs/quick/sdrl_seed0/checkpoint
  mlflow ui --backend-store-uri sqlite:///$PWD/aolo_runs/mlruns.db   # browse the runs

presets: a name shipped in aolo/tune_configs/ (smoke, quick, paper, ...) or a path to your own YAML
  (keys: scenario, training, evaluation, compare, algorithm; `base: quick` inherits a preset).

on a Ray cluster:
  ray job submit --address http://HEAD:8265 --working-dir . -- \\
      python -m aolo compare --preset paper --tracking-uri http://MLFLOW:5000 --output /shared/aolo_runs
  (RAY_ADDRESS, set by `ray job submit`, makes aolo join the cluster instead of starting a local Ray;
  give --output on shared storage: a job's working directory is temporary)
"""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; ``sweep``/``compare`` get their own flags only when ``command`` is theirs."""
    parser = argparse.ArgumentParser(
        prog="aolo", description="Carbon-aware wireless LLM serving: train, sweep, evaluate and compare "
        "RL policies (SDRL, SAC, TD3, PPO) against the fixed, myopic and hindsight reference policies.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    from aolo import __version__

    parser.add_argument("--version", action="version", version=f"aolo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    store = argparse.ArgumentParser(add_help=False)
    group = store.add_argument_group("experiment and outputs")
    group.add_argument("--preset", default=DEFAULT_PRESET, metavar="NAME|PATH.yaml",
                       help=f"experiment preset shipped in aolo/tune_configs/ or a YAML file (default: {DEFAULT_PRESET})")
    group.add_argument("--output", default=DEFAULT_OUTPUT, type=Path, metavar="DIR",
                       help=f"where runs, checkpoints and the local MLflow store go (default: {DEFAULT_OUTPUT})")
    group.add_argument("--tracking-uri", metavar="URI",
                       help="MLflow tracking URI: http://host:port or sqlite:////abs/path.db; 'none' turns "
                            "MLflow off (default: sqlite:///<abs DIR>/mlruns.db)")
    training = argparse.ArgumentParser(add_help=False)
    group = training.add_argument_group("training")
    group.add_argument("--seed", type=_non_negative_int, metavar="N", help="random seed (default: the preset's first seed)")
    group.add_argument("--num-env-runners", type=_non_negative_int, default=0, metavar="N",
                       help="remote EnvRunner actors sampling in parallel; 0 samples in this process, the "
                            "fastest on a laptop (default: 0)")
    group.add_argument("--num-learners", type=_non_negative_int, default=0, metavar="N",
                       help="remote Learner actors (RLlib config.learners); 0 updates in the algorithm's own "
                            "process (default: 0)")
    group.add_argument("--num-gpus-per-learner", type=_non_negative_float, default=0.0, metavar="G",
                       help="GPUs per learner; with none in the Ray cluster this is an error, not a silent CPU "
                            "fallback (default: 0)")
    group.add_argument("--resume", action="store_true",
                       help="continue from the checkpoint in the run directory up to the budget")

    train = sub.add_parser("train", parents=[store, training], epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           help="train one algorithm on the preset's scenario, then evaluate it",
                           description="Train one algorithm until the preset's env-step budget, save a checkpoint, "
                           "evaluate it on held-out days and log everything to MLflow (one line per iteration).")
    # no `choices`: listing them would import RLlib (seconds) just to print --help; train_one validates
    train.add_argument("--algorithm", metavar="{sdrl,sac,td3,ppo}",
                       help="algorithm to train: sdrl (SAC with a spiking PopSAN actor), sac, td3 or ppo "
                            "(default: the preset's `algorithm`, else sdrl)")
    train.set_defaults(handler=cmd_train)

    evaluate = sub.add_parser("evaluate", parents=[store], epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              help="evaluate a checkpoint or a reference policy on the held-out days",
                              description="Run a trained checkpoint or a reference policy on the preset's held-out "
                              "days; print carbon, QoE, violations, gap to the hindsight bound and actor energy; "
                              "log an MLflow run.")
    which = evaluate.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", type=Path, metavar="PATH",
                       help="checkpoint directory written by `aolo train` (…/<algorithm>_seed<N>/checkpoint)")
    which.add_argument("--policy", choices=("fixed", "myopic", "hindsight"),
                       help="reference policy: carbon-agnostic, per-request greedy, or the offline lower bound")
    evaluate.add_argument("--days-per-cell", type=_positive_int, metavar="N",
                          help="held-out days per cell (default: the preset's evaluation.days_per_cell)")
    evaluate.set_defaults(handler=cmd_evaluate)

    for name, (module, help_text) in EXTERNAL_COMMANDS.items():
        # "resolve": the module may redefine a shared flag (e.g. a different --preset default)
        p = sub.add_parser(name, parents=[store, training], help=help_text, description=help_text, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter, conflict_handler="resolve")
        p.set_defaults(handler=_external_handler(name, module))
        if command == name:
            _import_command(name, module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``aolo`` and ``python -m aolo``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USER_ERROR
        _setup_runtime()
        return args.handler(args)
    except KeyboardInterrupt:
        print("aolo: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except AoloError as e:
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"aolo: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR


# --- subcommands ------------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from aolo.platform.presets import load_experiment
    from aolo.platform.train import reference_results, train_one

    experiment = load_experiment(args.preset)
    algorithm = args.algorithm or experiment.algorithm
    seed = experiment.seeds[0] if args.seed is None else args.seed
    tracking_uri = resolve_tracking_uri(args)
    result = train_one(experiment, algorithm, seed, args.output, tracking_uri=tracking_uri,
                       num_env_runners=args.num_env_runners, resume=args.resume, progress=_print_flush,
                       num_learners=args.num_learners, num_gpus_per_learner=args.num_gpus_per_learner)
    bound = reference_results(experiment.scenario, experiment.days_per_cell)["hindsight"]  # cached by train_one
    print()
    print(format_metrics_table({algorithm: result.evaluation.metrics, "hindsight": bound.metrics}))
    print(f"\ncheckpoint: {result.checkpoint}")
    if tracking_uri is not None:
        from aolo.platform.tracking import Tracker

        print(f"MLflow: {Tracker(tracking_uri, experiment.scenario.name).run_url(result.run_id)}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from aolo.platform.evaluation import eval_metrics_for_mlflow, evaluate_checkpoint, module_path
    from aolo.platform.presets import load_experiment
    from aolo.platform.tracking import Tracker, scenario_params
    from aolo.platform.train import evaluation_rows, preflight, reference_results, write_csv

    experiment = load_experiment(args.preset)
    scenario = experiment.scenario
    days = args.days_per_cell or experiment.days_per_cell
    checkpoint = None
    if args.checkpoint is not None:
        module_path(args.checkpoint)  # raises CheckpointError saying what is missing
        checkpoint = args.checkpoint.expanduser().resolve()
    name = args.policy or (checkpoint.parent.name if checkpoint.name == "checkpoint" else checkpoint.name)
    tracking_uri = resolve_tracking_uri(args)
    preflight(scenario)

    _print_flush(f"evaluating {name} on {scenario.name!r}: {len(scenario.cells)} cells x "
                 f"{days if days is not None else 'all'} held-out day(s) per cell")
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
    params = {"policy": name, "preset": experiment.name, **scenario_params(scenario),
              "evaluation.days_per_cell": days if days is not None else "all"}
    if checkpoint is not None:
        params["checkpoint"] = checkpoint
    tracker = Tracker(tracking_uri, scenario.name)
    with tracker.mlflow_run(f"evaluate-{name}", params, {"aolo.command": "evaluate"}) as run:
        run.log_metrics(eval_metrics_for_mlflow(result.metrics))
        run.log_artifact(csv_path)
    if tracking_uri is not None:
        print(f"MLflow: {tracker.run_url(run.run_id)}")
    return 0


def _external_handler(name: str, module: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        return _import_command(name, module).run(args)

    return handler


def _import_command(name: str, module: str):
    from aolo.errors import ConfigError

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        raise ConfigError(f"`aolo {name}` is not available in this installation ({module} is missing)") from None


# --- helpers ----------------------------------------------------------------------------------------------


def resolve_tracking_uri(args: argparse.Namespace) -> str | None:
    """``--tracking-uri`` (``none``: None) or the local store in ``--output``; checked before anything is written."""
    from aolo.platform.tracking import check_tracking_uri, default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri(args.output)
    if uri.lower() == "none":
        return None
    check_tracking_uri(uri)
    return uri


def format_metrics_table(columns: dict[str, dict[str, float]]) -> str:
    """``eval/<metric>`` rows × one column per policy, with what each metric means."""
    names = list(columns)
    width = max(12, *(len(n) for n in names))
    lines = [f"{'metric':<28}" + "".join(f"{n:>{width + 2}}" for n in names) + "   meaning"]
    for key, meaning in TABLE_METRICS:
        if not any(key in m for m in columns.values()):
            continue
        cells = "".join(f"{_fmt(columns[n].get(key)):>{width + 2}}" for n in names)
        lines.append(f"{'eval/' + key:<28}{cells}   {meaning}")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _print_flush(line: str) -> None:
    print(line, flush=True)


def _setup_runtime() -> None:
    """One torch thread (2-core machines: 13x faster with Ray), Ray env defaults, terse warnings."""
    if not os.environ.get("RAY_ADDRESS"):
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local in-process Ray needs no token
    import ray.rllib  # noqa: F401 — every command needs it; importing it (re)configures its logger, so quieten it after
    import torch

    torch.set_num_threads(1)
    # RLlib talk that is not for aolo's users: "You are running SAC on the new API stack!", RLlib's own
    # deprecation notices ("RLModule(config=...) has been deprecated": harmless)
    for noisy in ("ray.rllib", "ray._common.deprecation"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*Overriding environment")
    warnings.showwarning = _show_warning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"aolo: warning: {message}", file=sys.stderr)


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value
