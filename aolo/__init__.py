"""aolo: a Ray-distributed multi-cell RL platform for low-carbon wireless LLM services.

``aolo.make_env(preset_or_scenario, cell=..., split=..., seed=..., api="rllib" | "pettingzoo" | "gymnasium")``
is the public constructor of the environment (:mod:`aolo.api`).

Subpackages:
    aolo.envs      carbon model, channel, traces, workload, ``CellEnv``, reference policies
    aolo.policies  PopSAN actor (snntorch), SDRL RLModule, TD3 on RLlib's new API stack, energy accounting
    aolo.platform  CLI, AlgorithmConfig builders, training, Tune sweeps, MLflow tracking, evaluation
"""

__version__ = "0.1.0"
__all__ = ["make_env"]


def __getattr__(name: str):
    """``aolo.make_env`` (:mod:`aolo.api`), imported on first use: ``import aolo`` itself loads nothing heavy (the
    CLI reports errors without numpy, Ray or torch)."""
    if name == "make_env":
        import importlib

        return importlib.import_module("aolo.api").make_env
    raise AttributeError(f"module 'aolo' has no attribute {name!r}")
