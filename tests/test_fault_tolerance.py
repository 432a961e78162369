"""Fault tolerance: a killed EnvRunner is restarted and training goes on."""

import ray

from aolo.platform.algorithms import build_algorithm_config
from tests.tiny import SETTINGS, TINY


def test_killed_env_runner_is_restarted_and_training_continues(ray_session):
    algo = build_algorithm_config("sac", TINY, seed=0, settings=SETTINGS, num_env_runners=1).build_algo()
    try:
        steps = algo.train()["env_runners"]["num_env_steps_sampled_lifetime"]
        group = algo.env_runner_group
        assert group.num_healthy_remote_workers() == 1
        (victim,) = group._worker_manager.actors().values()
        ray.kill(victim, no_restart=False)  # the EnvRunner process dies mid-training; Ray may restart it

        for _ in range(10):  # the iteration that hits the dead runner restarts it (later on a busy machine)
            result = algo.train()
            if (
                group.num_healthy_remote_workers() == 1
                and result["env_runners"].get("num_env_steps_sampled_lifetime", 0) > steps
            ):
                break
        assert group.num_healthy_remote_workers() == 1
        assert algo._counters["total_num_restored_workers"] >= 1  # RLlib re-synced the restarted runner
        assert result["env_runners"]["num_env_steps_sampled_lifetime"] > steps
    finally:
        algo.stop()
