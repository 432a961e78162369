"""Learning on shared sites: ``aolo train`` on a tiny site scenario trains on SiteEnv copies and evaluates them."""

from __future__ import annotations

import contextlib
import csv
import io

import pytest
import yaml

from aolo.platform import cli
from aolo.platform.algorithms import build_algorithm_config
from aolo.platform.presets import load_experiment

TINY_SITE = {
    "base": "sites_quick",
    "description": "tiny site smoke run",
    "scenario": {
        "name": "sites_smoke",
        "epoch_s": 3600.0,
        "epochs_per_episode": 24,
        "cells": [
            {"name": "coal-bs", "site": "wind-coal-site", "grid_region": "synthetic:coal_heavy", "num_users": 2},
            {"name": "hydro-bs", "site": "wind-coal-site", "grid_region": "synthetic:hydro", "num_users": 2},
        ],
        "sites": [{"name": "wind-coal-site", "requests_per_agent": 24000, "max_replicas": 2}],
    },
    "training": {
        "env_steps": 48,
        "rollout_fragment_length": 24,
        "learning_starts": 24,
        "updates_per_env_step": 0.25,
        "train_batch_size": 32,
        "hidden": [32, 32],
        "ppo_minibatch_size": 24,
    },
    "evaluation": {"days_per_cell": 1},
}


def test_site_presets_load_and_train_on_one_site_env_per_site() -> None:
    from aolo.envs.site_env import SiteEnv

    for preset, sites in (("sites_quick", 1), ("sites_paper", 3)):
        experiment = load_experiment(preset)
        assert len(experiment.scenario.sites) == sites
        assert all(c.site is not None for c in experiment.scenario.cells)
        config = build_algorithm_config("ppo", experiment.scenario, seed=0, settings=experiment.training)
        assert config.env is SiteEnv and config.num_envs_per_env_runner == sites


@pytest.mark.slow
def test_train_on_a_site_logs_site_metrics(ray_session, tmp_path) -> None:
    path = tmp_path / "sites_smoke.yaml"
    path.write_text(yaml.safe_dump(TINY_SITE), encoding="utf-8")
    out = tmp_path / "out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli.main(["train", "--preset", str(path), "--algorithm", "sac", "--output", str(out)])
    assert code == 0, stdout.getvalue()
    rows = list(csv.DictReader(next(out.rglob("evaluation.csv")).open()))
    overall = rows[-1]
    assert overall["cell"] == "all"
    assert 0.0 < float(overall["site/wind-coal-site/utilisation_mean"]) <= 1.0
    assert float(overall["carbon_g_per_request"]) > 0.0 and float(overall["requests"]) > 0.0
    assert {r["cell"] for r in rows[:-1]} == {"coal-bs", "hydro-bs"}


@pytest.mark.slow
def test_one_runner_trains_on_sites_of_different_shapes(ray_session) -> None:
    """Two sites with different agent sets (5 and 2 agents) as sub-envs of one EnvRunner's vector env."""
    from aolo.envs.config import ScenarioConfig
    from aolo.platform.algorithms import TrainingSettings, stop_algorithm

    scenario = ScenarioConfig.from_dict(
        {
            "epoch_s": 3600.0,
            "epochs_per_episode": 24,
            "sites": [{"name": "a"}, {"name": "b", "datacenter_region": "synthetic:coal_heavy"}],
            "cells": [
                {"name": "c0", "site": "a", "num_users": 2},
                {"name": "c1", "site": "a", "num_users": 3},
                {"name": "c2", "site": "b", "num_users": 2},
            ],
        }
    )
    settings = TrainingSettings.from_dict(
        {"rollout_fragment_length": 24, "hidden": [16, 16], "ppo_minibatch_size": 24, "ppo_epochs": 1}
    )
    algo = build_algorithm_config("ppo", scenario, seed=0, settings=settings).build_algo()
    try:
        result = algo.train()
    finally:
        stop_algorithm(algo)
    assert result["env_runners"]["num_env_steps_sampled_lifetime"] == 48  # one day on each of the two sites
