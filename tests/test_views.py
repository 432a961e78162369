"""``aolo.make_env`` and the PettingZoo / Gymnasium views pass their libraries' API tests and play the same
episodes as the RLlib env."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test

import aolo
from aolo.envs.cell_env import OBS_FEATURES, CellEnv
from aolo.envs.config import ConfigError
from aolo.envs.views import CellGymEnv, ParallelCellEnv


def test_pettingzoo_parallel_api_test_passes():
    env = aolo.make_env("smoke", api="pettingzoo", cell=1)
    assert isinstance(env, ParallelCellEnv)
    parallel_api_test(env, num_cycles=60)  # 24-epoch days: more than two episodes


def test_gymnasium_env_checker_passes_on_the_registered_env():
    env = gym.make("aolo/Cell-v0", preset_or_scenario="smoke", cell="hydro-bs/coal-dc")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker's warnings count as failures
        check_env(env.unwrapped, skip_render_check=True)
    assert isinstance(env.unwrapped, CellGymEnv)
    assert env.observation_space.shape == (2 * len(OBS_FEATURES),) and env.action_space.shape == (4,)


def test_the_views_play_the_rllib_env_episode():
    rllib = aolo.make_env("smoke", cell=0, split="heldout", seed=3)
    gym_env = aolo.make_env("smoke", cell=0, split="heldout", seed=3, api="gymnasium")
    pz = aolo.make_env("smoke", cell=0, split="heldout", seed=3, api="pettingzoo")
    assert isinstance(rllib, CellEnv)
    obs, _ = rllib.reset(seed=7)
    flat, info = gym_env.reset(seed=7)
    pz_obs, _ = pz.reset(seed=7)
    np.testing.assert_array_equal(flat, np.concatenate([obs["user_0"], obs["user_1"]]))
    np.testing.assert_array_equal(pz_obs["user_1"], obs["user_1"])
    assert info["day"] == rllib.episode.day
    action = np.array([0.3, -0.2, -0.5, 0.9], dtype=np.float32)
    per_user = {"user_0": action[:2], "user_1": action[2:]}
    _, rewards, _, _, infos = rllib.step(per_user)
    _, reward, terminated, truncated, info = gym_env.step(action)
    _, pz_rewards, _, pz_trunc, _ = pz.step(per_user)
    assert reward == pytest.approx(rewards["user_0"] + rewards["user_1"], rel=1e-15) and pz_rewards == rewards
    np.testing.assert_array_equal(info["carbon_total_g"], [infos[a]["carbon_total_g"] for a in ("user_0", "user_1")])
    assert info["epoch"] == 0 and not terminated and not truncated and pz_trunc == {"user_0": False, "user_1": False}
    for _ in range(23):
        *_, terminated, truncated, _ = gym_env.step(action)
        *_, pz_trunc, _ = pz.step(per_user)
    assert truncated and not terminated and pz.agents == [] and all(pz_trunc.values())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cell": 2}, "cell: must be an index in [0, 1]"),
        ({"cell": "berlin"}, "cell: must be one of ['coal-bs/hydro-dc', 'hydro-bs/coal-dc']"),
        ({"split": "test"}, "split: must be one of ['train', 'heldout']"),
        ({"seed": -1}, "seed: must be an integer >= 0"),
        ({"api": "gym"}, "api: must be one of ['rllib', 'pettingzoo', 'gymnasium']"),
    ],
)
def test_make_env_names_the_bad_argument(kwargs, message):
    with pytest.raises(ConfigError) as error:
        aolo.make_env("smoke", **kwargs)
    assert message in str(error.value)


def test_make_env_takes_a_scenario_mapping():
    env = aolo.make_env({"name": "one", "cells": [{"name": "x", "grid_region": "synthetic:nuclear", "num_users": 3}]})
    assert env.scenario.name == "one" and env.num_users == 3
