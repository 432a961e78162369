"""PettingZoo and Gymnasium views of a :class:`~aolo.envs.cell_env.CellEnv` (build them with ``aolo.make_env``).

- :class:`ParallelCellEnv`: the PettingZoo ``ParallelEnv`` API (one agent per user, as in RLlib), for
  BenchMARL, TorchRL, MARLlib and other PettingZoo consumers. Same spaces, observations, rewards and infos.
- :class:`CellGymEnv`: the Gymnasium single-agent API, registered as ``aolo/Cell-v0``: one controller decides
  for every user of the cell at once (the base station's view). Why this and not "one user, the others played by
  a reference policy": it is the cell's whole control problem with nothing chosen for the user (no other
  users' policy to fix), the users share the base station's power budget (a joint decision), and it is how the
  peers' single-agent modes work (CityLearn's ``central_agent``, SustainGym's EV charging network), so
  Stable-Baselines3 or CleanRL train on it unchanged. Observation: the users' observations concatenated
  (user-major, ``U × F``); action: their actions concatenated (``U × A``); reward: the sum of the users'
  rewards (the cell's objective); ``info``: each numeric per-user info field as a ``(U,)`` array.

Both take their spaces from the env (a wider action space of a later scenario plugs in unchanged) and leave the
env's episode, day and seed handling as they are: ``reset(seed=s)`` replays, ``options={"day": d}`` picks a day.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo import ParallelEnv

from aolo.envs.cell_env import CellEnv


class ParallelCellEnv(ParallelEnv):
    """PettingZoo ``ParallelEnv`` view of a :class:`CellEnv`: every user acts every epoch, all are truncated
    together when the day ends (no agent terminates early)."""

    metadata = {"name": "aolo_cell_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, env: CellEnv):
        self.env = env
        self.possible_agents = list(env.possible_agents)
        self.agents: list[str] = []
        self.observation_spaces = dict(env.observation_spaces)
        self.action_spaces = dict(env.action_spaces)
        self.render_mode = None

    def observation_space(self, agent: str) -> gym.spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> gym.spaces.Space:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None):
        obs, infos = self.env.reset(seed=seed, options=options)
        self.agents = list(self.possible_agents)
        return obs, infos

    def step(self, actions: dict[str, Any]):
        obs, rewards, terminateds, truncateds, infos = self.env.step(actions)
        terminations = {a: terminateds[a] for a in self.agents}
        truncations = {a: truncateds[a] for a in self.agents}
        if truncateds["__all__"] or terminateds["__all__"]:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self) -> None:
        return None

    def close(self) -> None:
        return None


class CellGymEnv(gym.Env):
    """Gymnasium view of a :class:`CellEnv`: one controller for all ``U`` users (module docstring says why)."""

    metadata = {"render_modes": []}

    def __init__(self, env: CellEnv):
        self.env = env
        self.agents = list(env.agents)
        self.observation_space = _concatenated([env.observation_spaces[a] for a in self.agents])
        self.action_space = _concatenated([env.action_spaces[a] for a in self.agents])
        self._action_shape = (len(self.agents), *env.action_spaces[self.agents[0]].shape)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, infos = self.env.reset(seed=seed, options=options)
        return self._observation(obs), dict(infos[self.agents[0]])

    def step(self, action):
        rows = np.asarray(action, dtype=np.float64).reshape(self._action_shape)
        obs, rewards, terminateds, truncateds, infos = self.env.step(dict(zip(self.agents, rows, strict=True)))
        reward = float(sum(rewards[a] for a in self.agents))
        return self._observation(obs), reward, terminateds["__all__"], truncateds["__all__"], self._info(infos)

    def _observation(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([obs[a] for a in self.agents]).astype(self.observation_space.dtype, copy=False)

    def _info(self, infos: dict[str, dict]) -> dict[str, Any]:
        """Each per-user info field as a (U,) array; the cell-wide ones (:data:`CELL_WIDE_INFO`) as one value."""
        first = infos[self.agents[0]]
        return {k: v if k in CELL_WIDE_INFO else np.array([infos[a][k] for a in self.agents]) for k, v in first.items()}


#: info fields that are the same for every user (one value in the Gymnasium view's info)
CELL_WIDE_INFO = ("epoch", "power_clipped", "ci_cell_g_per_kwh", "ci_dc_g_per_kwh", "day", "cell")


def _concatenated(spaces: list[gym.spaces.Space]) -> gym.spaces.Box:
    """One Box of the per-user Boxes laid end to end (user-major)."""
    if not all(isinstance(s, gym.spaces.Box) and len(s.shape) == 1 for s in spaces):
        raise TypeError(f"the Gymnasium view concatenates 1-D Box spaces, got {spaces[0]!r}")
    return gym.spaces.Box(
        np.concatenate([s.low for s in spaces]), np.concatenate([s.high for s in spaces]), dtype=spaces[0].dtype
    )
