"""Cell environments and their physics (DESIGN.md §2–§3).

Importing :mod:`aolo.envs.cell_env` registers ``CellEnv`` with Ray Tune as ``"aolo-cell-v0"``
(:data:`~aolo.envs.cell_env.ENV_NAME`). The physics modules (``channel``, ``physics``, ``serving``,
``traces``, ``workload``) are pure numpy and import without Ray.
"""

_LAZY = {
    "CellEnv": "aolo.envs.cell_env", "ENV_NAME": "aolo.envs.cell_env", "OBS_FEATURES": "aolo.envs.cell_env",
    "Episode": "aolo.envs.cell_env",
    "CellSpec": "aolo.envs.config", "ConfigError": "aolo.envs.config", "RadioConfig": "aolo.envs.config",
    "RewardWeights": "aolo.envs.config", "ScenarioConfig": "aolo.envs.config", "ServiceConfig": "aolo.envs.config",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aolo.envs' has no attribute {name!r}")


__all__ = sorted(_LAZY)
