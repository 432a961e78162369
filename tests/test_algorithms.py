"""Each of sdrl, sac, td3, ppo builds on the cell env, trains 2 iterations, checkpoints, restores and acts the same."""

import numpy as np
import pytest
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.core.columns import Columns

from aolo.envs.cell_env import CellEnv
from aolo.envs.config import ConfigError
from aolo.platform.algorithms import MODULE_ID, TrainingSettings, build_algorithm_config
from aolo.platform.evaluation import ModulePolicy, evaluate, load_module
from tests.tiny import SETTINGS, TINY


def _obs_batch(n: int = 6) -> torch.Tensor:
    env = CellEnv({"scenario": TINY})
    obs, _ = env.reset(seed=3)
    rows = [obs[a] for a in env.agents]
    env.step({a: np.zeros(2, np.float32) for a in env.agents})
    return torch.from_numpy(np.stack((rows * n)[:n]))


def _deterministic_actions(module, obs: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        out = module.forward_inference({Columns.OBS: obs})
    if Columns.ACTIONS in out:
        return out[Columns.ACTIONS].numpy()
    dist = module.get_inference_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
    return dist.to_deterministic().sample().numpy()


@pytest.mark.parametrize("algo", ["sdrl", "sac", "td3", "ppo"])
def test_build_train_checkpoint_restore(algo, tmp_path, ray_session):
    config = build_algorithm_config(algo, TINY, seed=1, settings=SETTINGS)
    algorithm = config.build_algo()
    try:
        for _ in range(2):
            result = algorithm.train()
        steps = result["env_runners"]["num_env_steps_sampled_lifetime"]
        assert steps == 2 * SETTINGS.rollout_fragment_length * len(TINY.cells)
        obs = _obs_batch()
        before = _deterministic_actions(algorithm.get_module(MODULE_ID), obs)
        assert before.shape == (6, 2)
        path = algorithm.save_to_path(str(tmp_path / "ckpt"))
    finally:
        algorithm.stop()

    restored = Algorithm.from_checkpoint(path)
    try:
        after = _deterministic_actions(restored.get_module(MODULE_ID), obs)
    finally:
        restored.stop()
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-6)
    module = load_module(path)
    np.testing.assert_allclose(_deterministic_actions(module, obs), before, rtol=0, atol=1e-6)

    # the restored module drives the env through the evaluation protocol, actions within bounds
    result = evaluate(ModulePolicy(module, algo), TINY, days_per_cell=1)
    assert result.metrics["num_episodes"] == 2
    assert result.metrics["actor_nj_per_decision"] > 0
    if algo == "sdrl":
        assert result.metrics["actor_synops_per_decision"] > 0  # spikes really counted


@pytest.mark.parametrize("algo", ["sac", "sdrl"])
def test_entropy_temperature_settings_reach_sac(algo):
    settings = TrainingSettings(initial_alpha=0.02, alpha_lr=1e-3)
    config = build_algorithm_config(algo, TINY, settings=settings)
    assert (config.initial_alpha, config.alpha_lr) == (0.02, 1e-3)
    assert (TrainingSettings().initial_alpha, TrainingSettings().alpha_lr) == (1.0, 3e-4)  # RLlib's defaults


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("initial_alpha", 0.0, r"training.initial_alpha: must be in \(0, 100\]"),
        ("alpha_lr", 1.5, r"training.alpha_lr: must be in \(0, 1\)"),
    ],
)
def test_bad_entropy_settings_name_the_field(field, value, match):
    with pytest.raises(ConfigError, match=match):
        TrainingSettings(**{field: value})


def test_an_algorithm_built_after_other_env_copies_samples_the_same_slots(ray_session):
    """``build_algo`` restarts the count of RLlib-built env copies: in a process that already built copies (a Tune
    worker running its second trial, ``compare``'s ``reuse_actors``) the algorithm's copies take the same cells in
    the same vector-env slots, with the same copy indices (hence episodes), as in a fresh process."""
    from aolo.platform.presets import load_experiment
    from aolo.platform.train import build_algo

    def slots(algo) -> list[tuple[int, int]]:
        return [(env.unwrapped.cell_index, env.unwrapped.copy_index) for env in algo.env_runner.env.unwrapped.envs]

    experiment = load_experiment("smoke")
    first = build_algo(experiment, "sac", seed=0)
    try:
        expected = slots(first)
    finally:
        first.stop()
    assert sorted(cell for cell, _ in expected) == [0, 1]
    # a stray copy built from an RLlib context (a dict with a worker index) moves the process's count by one

    class Context(dict):
        worker_index = 0

    CellEnv(Context(scenario=TINY))
    again = build_algo(experiment, "sac", seed=0)
    try:
        assert slots(again) == expected
    finally:
        again.stop()
