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
def test_batched_loop_makes_the_same_updates(algo_name: str, ray_session) -> None:
    batched_state, batched_results = _train(algo_name, batched=True)
    state, results = _train(algo_name, batched=False)
    # smoke: 48 env steps per iteration x 0.25 updates per env step = 12 gradient steps per learning iteration
    trained = [r["learners"][MODULE_ID]["num_module_steps_trained"] for r in results[1:]]
    batched_trained = [r["learners"][MODULE_ID]["num_module_steps_trained"] for r in batched_results[1:]]
    assert trained == batched_trained == [12 * 32, 12 * 32]
    targets = [k for k in state if k.startswith("target_")]
    assert targets, "the comparison must cover the target networks"
    for key, value in state.items():
        torch.testing.assert_close(batched_state[key], value, rtol=1e-5, atol=1e-6, msg=key)
    lambdas = [r["constraints"]["lambda_qoe"] for r in results]
    assert [r["constraints"]["lambda_qoe"] for r in batched_results] == pytest.approx(lambdas, rel=1e-5)
