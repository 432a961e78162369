"""aolo: a Ray-distributed multi-cell RL platform for low-carbon wireless LLM services.

Subpackages:
    aolo.envs      carbon model, channel, traces, workload, ``CellEnv``, reference policies
    aolo.policies  PopSAN actor (snntorch), SDRL RLModule, TD3 on RLlib's new API stack, energy accounting
    aolo.platform  CLI, AlgorithmConfig builders, training, Tune sweeps, MLflow tracking, evaluation
"""

__version__ = "0.1.0"
