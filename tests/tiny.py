"""The tiny two-cell scenario and training settings the RLlib tests train on (seconds per run)."""

from aolo.envs.config import ScenarioConfig
from aolo.platform.algorithms import TrainingSettings

TINY = ScenarioConfig.from_dict(
    {
        "name": "tiny",
        "epochs_per_episode": 12,
        "epoch_s": 7200.0,
        "cells": [
            {
                "name": "a",
                "grid_region": "synthetic:coal_heavy",
                "datacenter_region": "synthetic:hydro",
                "num_users": 2,
            },
            {"name": "b", "grid_region": "synthetic:hydro", "datacenter_region": "synthetic:wind_coal", "num_users": 2},
        ],
    }
)
SETTINGS = TrainingSettings(
    env_steps=48,
    rollout_fragment_length=12,
    updates_per_env_step=0.25,
    train_batch_size=32,
    learning_starts=12,
    hidden=(16, 16),
    ppo_minibatch_size=16,
    ppo_epochs=1,
    popsan={"pop_in": 3, "pop_out": 3, "timesteps": 3},
)

#: The held-out metrics `aolo train` and `aolo evaluate` print and log (as ``eval/<name>``).
EVAL_METRICS = (
    "carbon_g_per_request",
    "carbon_inference_g",
    "carbon_comm_g",
    "qoe_mean",
    "qoe_violation_rate",
    "latency_violation_rate",
    "gap_to_bound",
    "actor_nj_per_decision",
)
