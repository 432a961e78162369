"""``forecast`` and ``myopic`` act only on what the agent observes (docs/design.md §3.5): changing the episode's
future after epoch t (carbon, forecasts, channels, requests) leaves their action at t unchanged."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from aolo.envs.cell_env import CellEnv
from aolo.envs.config import ScenarioConfig
from aolo.envs.reference import make_reference_policy


def _perturb_future(env: CellEnv, t: int) -> None:
    ep, rng = env.episode, np.random.default_rng(7)
    for name in ("ci_cell_g_per_kwh", "ci_dc_g_per_kwh"):
        getattr(ep, name)[t + 1 :] *= rng.uniform(0.2, 5.0, len(getattr(ep, name)) - t - 1)
    for name in ("forecast_cell_g_per_kwh", "forecast_dc_g_per_kwh", "ci_features"):
        getattr(ep, name)[t + 1 :] *= rng.uniform(0.2, 5.0, getattr(ep, name)[t + 1 :].shape)
    for name in ("fading_gain", "fading_gain_estimate", "channel_gain"):
        getattr(ep, name)[:, t + 1 :] *= rng.uniform(0.01, 10.0, getattr(ep, name)[:, t + 1 :].shape)
    for name in ("prompt_tokens", "ref_tokens"):
        getattr(ep, name)[:, t + 1 :] = rng.integers(1, 2000, getattr(ep, name)[:, t + 1 :].shape)


@pytest.mark.parametrize("name", ["forecast", "myopic"])
@pytest.mark.parametrize("kind", ["perfect", "noisy"])
def test_causal_policies_ignore_the_future(name: str, kind: str) -> None:
    scenario = ScenarioConfig().replace(**{"forecast.kind": kind, "epochs_per_episode": 24})
    env = CellEnv({"scenario": scenario, "cell_index": 0})
    policy = make_reference_policy(name)
    obs, _ = env.reset(options={"day": 3})
    policy.begin_episode(env)
    for t in range(24):
        if t in (0, 7, 16):
            twin = copy.deepcopy(env)
            twin_policy = copy.deepcopy(policy)
            _perturb_future(twin, t)
            a, b = policy.act(env, obs), twin_policy.act(twin, obs)
            for agent in env.agents:
                np.testing.assert_array_equal(a[agent], b[agent])
        obs, *_ = env.step(policy.act(env, obs))


def test_forecast_policy_between_myopic_and_hindsight() -> None:
    """On the same held-out episodes (quick, one day per cell, deterministic), every policy meeting the mean-QoE
    rule: strict bound <= hindsight <= forecast <= myopic in carbon per request. Measured: 4.868, 5.051, 5.379 mg
    (forecast ≈ 4 % above hindsight and 6 % below myopic), so the order is not a tie."""
    from aolo.platform.evaluation import evaluate
    from aolo.platform.presets import load_experiment

    scenario = load_experiment("quick").scenario
    metrics = {name: evaluate(name, scenario, 1).metrics for name in ("hindsight", "forecast", "myopic")}
    carbon = {name: m["carbon_g_per_request"] for name, m in metrics.items()}
    assert metrics["hindsight"]["bound_g_per_request"] <= carbon["hindsight"] < carbon["forecast"] < carbon["myopic"]
    assert carbon["forecast"] < 0.98 * carbon["myopic"]  # forecast's use of the forecasts is worth something
    assert all(m["qoe_mean_violation_rate"] == 0.0 for m in metrics.values())


@pytest.mark.parametrize("name", ["forecast", "myopic"])
def test_acts_on_the_csi_estimate_not_the_true_channel(name: str) -> None:
    env = CellEnv({"scenario": ScenarioConfig().replace(**{"radio.fading_average": "instantaneous"}), "cell_index": 0})
    obs, _ = env.reset(options={"day": 3})
    policy = make_reference_policy(name)
    policy.begin_episode(env)
    twin = copy.deepcopy(env)
    twin.episode.fading_gain[:, 0] *= 0.05  # the true channel at t, which no base station knows exactly
    twin.episode.channel_gain[:, 0] *= 0.05
    a, b = policy.act(env, obs), copy.deepcopy(policy).act(twin, obs)
    for agent in env.agents:
        np.testing.assert_array_equal(a[agent], b[agent])
    true_a = make_reference_policy("myopic_true_csi").act(env, obs)
    true_b = make_reference_policy("myopic_true_csi").act(twin, obs)
    assert any(not np.array_equal(true_a[k], true_b[k]) for k in env.agents)
