"""``aolo`` / ``python -m aolo``: train, sweep, evaluate and compare carbon-aware LLM-serving policies.

This module only builds the parser and dispatches. Each subcommand lives in its own module of
:mod:`aolo.platform.commands` (``train``, ``evaluate``, ``sweep``, ``compare``, ``report``), each exposing
``add_arguments(parser)`` and ``run(args) -> int``, imported only when its subcommand runs (so ``--help`` of
one command loads nothing of the others). This module adds the flags they share: ``--preset --output
--tracking-uri`` (all subcommands) and ``--seed --num-env-runners --num-learners --num-gpus-per-learner
--resume`` (all but ``evaluate``). Nothing imports this module but the entry points: what commands share is in
:mod:`aolo.platform.console` (exit codes, printing, tables) and :mod:`aolo.platform.tracking`
(:func:`~aolo.platform.tracking.resolve_tracking_uri`).

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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from aolo.errors import AoloError
from aolo.platform.console import (
    EXIT_INTERRUPTED,
    EXIT_USER_ERROR,
    _non_negative_float,
    _non_negative_int,
)

DEFAULT_PRESET = "quick"
DEFAULT_OUTPUT = "./aolo_runs"


@dataclass(frozen=True)
class Command:
    """A subcommand: the module that implements it and how ``--help`` presents it."""

    module: str  #: exposes ``add_arguments(parser)`` and ``run(args) -> int``
    help: str  #: its line in ``aolo --help`` (and its description, unless ``description`` is given)
    description: str | None = None
    training_flags: bool = True  #: gets ``--seed --num-env-runners --num-learners --num-gpus-per-learner --resume``


#: Subcommands: name -> command module (imported when that subcommand runs), in ``aolo --help`` order.
COMMANDS = {
    "train": Command(
        "aolo.platform.commands.train",
        "train one algorithm on the preset's scenario, then evaluate it",
        "Train one algorithm until the preset's env-step budget, save a checkpoint, evaluate it on held-out "
        "days and log everything to MLflow (one line per iteration).",
    ),
    "evaluate": Command(
        "aolo.platform.commands.evaluate",
        "evaluate a checkpoint or a reference policy on the held-out days",
        "Run a trained checkpoint or a reference policy on the preset's held-out days; print carbon, QoE, "
        "violations, gap to the hindsight bound and actor energy; log an MLflow run.",
        training_flags=False,
    ),
    "sweep": Command(
        "aolo.platform.commands.sweep", "Ray Tune sweep over a YAML search space (reward weights, settings)"
    ),
    "compare": Command(
        "aolo.platform.commands.compare", "all algorithms x seeds + the reference policies -> one table"
    ),
    "report": Command(
        "aolo.platform.commands.report",
        "REPORT.md's tables and figures from a finished compare (and sweep)",
        training_flags=False,
    ),
}

EPILOG = """\
examples:
  python -m aolo train --preset smoke                      # seconds: try the whole pipeline
  python -m aolo train --preset quick --algorithm sac      # one algorithm, one seed
  python -m aolo train --preset quick --resume             # continue the last checkpoint to the budget
  python -m aolo compare --preset quick                    # 4 algorithms + 5 references, minutes on 2 cores
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
    """The argument parser; a subcommand gets its own flags (its module is imported) only when ``command`` is it."""
    parser = argparse.ArgumentParser(
        prog="aolo",
        description="Carbon-aware wireless LLM serving: train, sweep, evaluate and compare "
        "RL policies (SDRL, SAC, TD3, PPO) against the fixed, myopic and hindsight reference policies.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from aolo import __version__

    parser.add_argument("--version", action="version", version=f"aolo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    store = argparse.ArgumentParser(add_help=False)
    group = store.add_argument_group("experiment and outputs")
    group.add_argument(
        "--preset",
        default=DEFAULT_PRESET,
        metavar="NAME|PATH.yaml",
        help=f"experiment preset shipped in aolo/tune_configs/ or a YAML file (default: {DEFAULT_PRESET})",
    )
    group.add_argument(
        "--output",
        default=DEFAULT_OUTPUT,
        type=Path,
        metavar="DIR",
        help=f"where runs, checkpoints and the local MLflow store go (default: {DEFAULT_OUTPUT})",
    )
    group.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking URI: http://host:port or sqlite:////abs/path.db; 'none' turns "
        "MLflow off (default: sqlite:///<abs DIR>/mlruns.db)",
    )
    training = argparse.ArgumentParser(add_help=False)
    group = training.add_argument_group("training")
    group.add_argument(
        "--seed", type=_non_negative_int, metavar="N", help="random seed (default: the preset's first seed)"
    )
    group.add_argument(
        "--num-env-runners",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="remote EnvRunner actors sampling in parallel; 0 samples in this process, the "
        "fastest on a laptop (default: 0)",
    )
    group.add_argument(
        "--num-learners",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="remote Learner actors (RLlib config.learners); 0 updates in the algorithm's own process (default: 0)",
    )
    group.add_argument(
        "--num-gpus-per-learner",
        type=_non_negative_float,
        default=0.0,
        metavar="G",
        help="GPUs per learner; with none in the Ray cluster this is an error, not a silent CPU fallback (default: 0)",
    )
    group.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint in the run directory up to the budget"
    )

    for name, spec in COMMANDS.items():
        # "resolve": the command may redefine a shared flag (e.g. a different --preset default)
        p = sub.add_parser(
            name,
            parents=[store, training] if spec.training_flags else [store],
            help=spec.help,
            description=spec.description or spec.help,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            conflict_handler="resolve",
        )
        if command == name:
            _import_command(name).add_arguments(p)
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
        return _import_command(args.command).run(args)
    except KeyboardInterrupt:
        print("aolo: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except AoloError as e:
        errors = getattr(e, "errors", ())
        if len(errors) > 1:  # a configuration with several mistakes: one line each, all at once
            print(f"aolo: error: {len(errors)} configuration errors:", file=sys.stderr)
            for line in errors:
                print(f"  {line}", file=sys.stderr)
        else:
            print(f"aolo: error: {' '.join(str(e).split()) or type(e).__name__}", file=sys.stderr)
        return EXIT_USER_ERROR


def _import_command(name: str) -> ModuleType:
    """The module of subcommand ``name``; a missing one is a one-line error, not a traceback."""
    from aolo.errors import ConfigError

    module = COMMANDS[name].module
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        raise ConfigError(f"`aolo {name}` is not available in this installation ({module} is missing)") from None


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
