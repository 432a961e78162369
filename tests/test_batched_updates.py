"""``training.batched_updates``: one replay sample and one learner call per iteration make DQN's loop's updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aolo.platform.algorithms import MODULE_ID, TrainingSettings, build_algorithm_config, stop_algorithm
from aolo.platform.constraints import ConstraintSettings
from aolo.platform.presets import load_experiment


def _train(algo_name: str, batched: bool, iterations: int = 3) -> tuple[dict[str, torch.Tensor], list[dict]]:
    experiment = load_experiment("smoke")
    settings = TrainingSettings.from_dict({**experiment.training.to_dict(), "batched_updates": batched})
    config = build_algorithm_config(
        algo_name,
        experiment.scenario,
        seed=0,
        settings=settings,
        constraints=ConstraintSettings(method="lagrangian"),
    )
    algo = config.build_algo()
    algo.local_replay_buffer.rng = np.random.default_rng(0)  # RLlib leaves the buffer's generator unseeded
    try:
        torch.manual_seed(0)
        results = [algo.train() for _ in range(iterations)]
        learner = algo.learner_group._learner
        state = {k: v.detach().clone() for k, v in learner.module[MODULE_ID].state_dict().items()}
    finally:
        stop_algorithm(algo)
    return state, results


@pytest.mark.slow
@pytest.mark.parametrize("algo_name", ["sac", "td3"])
def test_batched_loop_makes_as_many_updates_and_target_updates(algo_name: str, ray_session) -> None:
    results = {batched: _train(algo_name, batched)[1] for batched in (True, False)}
    # smoke: 48 env steps per iteration x 0.25 updates per env step = 12 gradient steps of 32 per learning iteration
    learners = {batched: [r["learners"][MODULE_ID] for r in rows] for batched, rows in results.items()}
    for rows in learners.values():
        assert [row["num_module_steps_trained"] for row in rows[1:]] == [12 * 32, 12 * 32]
    # targets move after every gradient step (TD3: after every policy-delay-th), not once per learner call: as
    # many target updates as in RLlib's loop (the count is RLlib's lifetime metric, compared as reported)
    target_updates = {batched: rows[-1]["num_target_updates"] for batched, rows in learners.items()}
    assert target_updates[True] == target_updates[False] > 12
    for rows in results.values():
        assert np.isfinite(rows[-1]["constraints"]["lambda_qoe"])


def test_batched_learner_shuffles_the_train_batch() -> None:
    import gymnasium as gym
    from ray.rllib.algorithms.sac import SACConfig
    from ray.rllib.core.learner.training_data import TrainingData
    from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch

    from aolo.policies.learners import LeanSACTorchLearner
    from aolo.policies.replay_updates import BATCHED_UPDATES

    n = 256
    ordered = np.arange(n, dtype=np.float32)
    data = {
        "obs": np.stack([ordered, ordered, ordered], axis=1),
        "new_obs": np.zeros((n, 3), np.float32),
        "actions": np.zeros((n, 1), np.float32),
        "rewards": ordered,
        "terminateds": np.zeros(n, bool),
    }
    for batched in (False, True):
        learner = (
            SACConfig()
            .learners(learner_class=LeanSACTorchLearner, learner_config_dict={BATCHED_UPDATES: batched})
            .build_learner(env=gym.make("Pendulum-v1"))
        )
        batch = MultiAgentBatch({"default_policy": SampleBatch(dict(data))}, env_steps=n)
        rewards = learner._make_batch_if_necessary(TrainingData(batch=batch)).policy_batches["default_policy"]
        rewards = np.asarray(rewards["rewards"])
        assert sorted(rewards.tolist()) == ordered.tolist()  # the same transitions ...
        assert (rewards == ordered).all() != batched  # ... in a new order only when batched
