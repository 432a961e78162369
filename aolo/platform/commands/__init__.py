"""The ``aolo`` subcommands, one module each: ``train``, ``evaluate``, ``sweep``, ``compare``, ``report``.

Every command module exposes the same pair, and nothing else is asked of it:

- ``add_arguments(parser: argparse.ArgumentParser) -> None`` adds the command's own flags to its subparser,
  which already has the shared ones of :mod:`aolo.platform.cli` (``--preset --output --tracking-uri`` and,
  except for ``evaluate``, ``--seed --num-env-runners --num-learners --num-gpus-per-learner --resume``); a
  command may redefine a shared flag (e.g. ``sweep``'s ``--preset`` default);
- ``run(args: argparse.Namespace) -> int`` runs it and returns the exit code.

:mod:`aolo.platform.cli` imports a command module only when its subcommand runs (``--help`` of one command
loads nothing of the others). Command modules import the library (:mod:`aolo.platform.train`,
:mod:`~aolo.platform.sweep`, :mod:`~aolo.platform.compare`, ...) and the shared terminal helpers of
:mod:`aolo.platform.console`, never :mod:`aolo.platform.cli`; the library never imports a command module.
"""

from __future__ import annotations

import argparse
from typing import Any


def training_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments every training command passes on from the shared flags (and the progress printer)."""
    from aolo.platform.console import print_flush

    return {
        "num_env_runners": args.num_env_runners,
        "resume": args.resume,
        "progress": print_flush,
    }
