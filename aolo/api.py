"""``aolo.make_env``: the one public constructor of aolo's environment, in the API a user's library expects.

    import aolo
    env = aolo.make_env("quick", cell=0, split="train", seed=0)                   # RLlib MultiAgentEnv (CellEnv)
    env = aolo.make_env("quick", api="pettingzoo")                              # PettingZoo ParallelEnv
    env = aolo.make_env("quick", api="gymnasium")                               # Gymnasium Env, all users
    env = gymnasium.make("aolo/Cell-v0", preset_or_scenario="quick", cell=1)    # the same, registered

``aolo/Cell-v0`` is registered when :mod:`aolo.envs` is imported (``import aolo.envs``, or ``aolo.make_env``);
``gymnasium.make("aolo.envs:aolo/Cell-v0", ...)`` imports it on the way. Held-out scoring of a policy is
``aolo evaluate --policy package.module:Name`` (docs/benchmark.md), not a loop over this env: it fixes the
(cell, day) episodes and random streams every entry of the leaderboard is scored on.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aolo.envs.config import ConfigError, ScenarioConfig

#: the APIs :func:`make_env` builds
APIS = ("rllib", "pettingzoo", "gymnasium")


def make_env(
    preset_or_scenario: str | Path | ScenarioConfig | Mapping[str, Any] = "quick",
    *,
    cell: int | str = 0,
    split: str = "train",
    seed: int = 0,
    api: str = "rllib",
) -> Any:
    """One cell of a scenario as an environment.

    Args:
        preset_or_scenario: a preset name (``quick``, ``paper``, ``smoke``, ...), a preset YAML path, a
            :class:`ScenarioConfig` or its dict form.
        cell: the cell, by index or by name.
        split: ``"train"`` draws episodes from the training days, ``"heldout"`` from the held-out days.
        seed: seed of the episode stream (``reset(seed=...)`` re-seeds it).
        api: ``"rllib"`` (:class:`~aolo.envs.cell_env.CellEnv`, an RLlib ``MultiAgentEnv``), ``"pettingzoo"``
            (:class:`~aolo.envs.views.ParallelCellEnv`) or ``"gymnasium"`` (:class:`~aolo.envs.views.CellGymEnv`).
    """
    from aolo.envs.cell_env import SPLITS, CellEnv

    scenario = resolve_scenario(preset_or_scenario)
    names = [c.name for c in scenario.cells]
    if isinstance(cell, str):
        if cell not in names:
            raise ConfigError(f"cell: must be one of {names} or an index in [0, {len(names) - 1}], got {cell!r}")
        cell = names.index(cell)
    if not (isinstance(cell, int) and not isinstance(cell, bool) and 0 <= cell < len(names)):
        raise ConfigError(f"cell: must be an index in [0, {len(names) - 1}] or one of {names}, got {cell!r}")
    if split not in SPLITS:
        raise ConfigError(f"split: must be one of {list(SPLITS)}, got {split!r}")
    if not (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0):
        raise ConfigError(f"seed: must be an integer >= 0, got {seed!r}")
    if api not in APIS:
        raise ConfigError(f"api: must be one of {list(APIS)}, got {api!r}")
    env = CellEnv({"scenario": scenario, "cell_index": cell, "split": split, "seed": seed})
    if api == "rllib":
        return env
    from aolo.envs.views import CellGymEnv, ParallelCellEnv

    return ParallelCellEnv(env) if api == "pettingzoo" else CellGymEnv(env)


def resolve_scenario(preset_or_scenario: str | Path | ScenarioConfig | Mapping[str, Any]) -> ScenarioConfig:
    """The scenario of a preset name or YAML path, a :class:`ScenarioConfig`, or a scenario mapping."""
    if isinstance(preset_or_scenario, ScenarioConfig):
        return preset_or_scenario
    if isinstance(preset_or_scenario, Mapping):
        return ScenarioConfig.from_dict(preset_or_scenario)
    if isinstance(preset_or_scenario, (str, Path)):
        from aolo.platform.presets import load_experiment

        return load_experiment(str(preset_or_scenario)).scenario
    raise ConfigError(
        "preset_or_scenario: must be a preset name, a preset .yaml path, a ScenarioConfig or a scenario mapping, "
        f"got {type(preset_or_scenario).__name__}"
    )
