"""The site references on a SiteEnv (docs/design.md, "Shared sites: the references and the strict lower bound"):
the played hindsight plan is scored exactly as the env scores it, ``forecast_site`` is causal and keeps a
saturating site out of its queue where the coupling-blind ``forecast`` does not, and it refuses cells."""

from __future__ import annotations

import copy
from argparse import Namespace

import numpy as np
import pytest
from test_causal_references import _perturb_future

from aolo.envs.cell_env import CellEnv
from aolo.envs.reference import SITE_REFERENCE_POLICIES, ForecastPolicy, make_reference_policy
from aolo.envs.site_env import SiteEnv
from aolo.envs.site_reference import ForecastSitePolicy, SiteHindsightPolicy
from aolo.envs.site_rollout import SITE_POLICIES, PerCellPolicy
from aolo.errors import ConfigError


def site_scenario(epochs: int, users: int, requests: float, kappa_max: int = 2000) -> dict:
    """One site (1–2 replicas of 8B on H100, autoscaled) serving two cells, hourly epochs, a diurnal
    background of 4000 tokens/s; ``requests`` per agent and epoch make the agents a large share of the load."""
    return {
        "epochs_per_episode": epochs,
        "epoch_s": 3600.0,
        "service": {"kappa_max": kappa_max},
        "sites": [
            {
                "name": "s",
                "scaling": "autoscale",
                "replicas": 1,
                "min_replicas": 1,
                "max_replicas": 2,
                "target_batch": 256,
                "requests_per_agent": requests,
                "background": {"kind": "diurnal", "mean_tok_s": 4000.0, "diurnal": {"peak_to_trough": 3.0}},
            }
        ],
        "cells": [
            {"name": "a", "site": "s", "num_users": users, "grid_region": "synthetic:hydro"},
            {"name": "b", "site": "s", "num_users": users, "grid_region": "synthetic:coal_heavy"},
        ],
    }


def play(env: SiteEnv, policy, day: int = 3) -> tuple[float, int, np.ndarray]:
    """Volume-weighted carbon [g], latency violations and each agent's mean QoE of one played day."""
    obs, _ = env.reset(options={"day": day})
    policy.begin_episode(env)
    volume = np.concatenate(env.site_day.volume)
    carbon, late, qoe_sum = 0.0, 0, np.zeros(len(env.agents))
    for t in range(env.T):
        obs, _, _, _, info = env.step(policy.act(env, obs))
        for i, agent in enumerate(env.agents):
            carbon += volume[i, t] * info[agent]["carbon_total_g"]
            late += int(info[agent]["latency_s"] > env.scenario.service.t_max_s)
            qoe_sum[i] += info[agent]["qoe"]
    return carbon, late, qoe_sum / env.T


def test_played_hindsight_plan_is_scored_as_the_env_scores_it() -> None:
    env = SiteEnv({"scenario": site_scenario(epochs=6, users=1, requests=20_000.0, kappa_max=300)})
    policy = SiteHindsightPolicy()
    carbon, late, mean_qoe = play(env, policy)
    plan = policy.plan
    assert carbon == pytest.approx(plan.outcome.total_carbon_g, rel=1e-9)
    assert late == 0 and (mean_qoe >= env.scenario.service.q_min - 1e-9).all() and plan.outcome.feasible.all()
    assert plan.bound.bound_g <= policy.state_bound.bound_g <= carbon
    assert policy.episode_bound_g() == policy.state_bound.bound_g
    assert SITE_POLICIES["hindsight"] is SiteHindsightPolicy and SITE_POLICIES["forecast_site"] is ForecastSitePolicy
    np.testing.assert_allclose(env.history["batch"], plan.outcome.trajectory.batch, rtol=1e-12)


def test_forecast_site_keeps_the_site_out_of_its_queue_where_forecast_does_not() -> None:
    """24 hourly epochs, 30 000 requests per agent and hour: answers at the forecast rule's lengths saturate the
    site in the afternoon peak and the queue breaks T_max; the site price keeps the load under capacity. (A
    saturated site runs at its cheapest energy per token, so the blind plan's carbon is no yardstick here.)"""
    env = SiteEnv({"scenario": site_scenario(epochs=24, users=2, requests=30_000.0)})
    _, blind_late, _ = play(env, PerCellPolicy(ForecastPolicy, "forecast"))
    assert blind_late > 0 and max(env.history["backlog_tok"]) > 0
    _, late, mean_qoe = play(env, ForecastSitePolicy())
    assert late == 0 and max(env.history["backlog_tok"]) == 0.0
    assert (mean_qoe >= env.scenario.service.q_min - 1e-9).all()


def _perturb_site_future(env: SiteEnv, t: int) -> None:
    """Everything the policy cannot know at epoch t: the background from t on (epoch t's is observed only after
    it), the request volumes after t, and every cell's future carbon, channels and requests."""
    rng = np.random.default_rng(11)
    env.site_day.background_tok_s[t:] *= rng.uniform(0.2, 5.0, env.T - t)
    for volume in env.site_day.volume:
        volume[:, t + 1 :] *= rng.uniform(0.2, 5.0, volume[:, t + 1 :].shape)
    for cell in env.cells:
        _perturb_future(cell, t)


def test_forecast_site_is_causal() -> None:
    env = SiteEnv({"scenario": site_scenario(epochs=12, users=2, requests=30_000.0)})
    policy = make_reference_policy("forecast_site")
    obs, _ = env.reset(options={"day": 5})
    policy.begin_episode(env)
    for t in range(env.T):
        if t in (0, 4, 9):
            twin, twin_policy = copy.deepcopy(env), copy.deepcopy(policy)
            _perturb_site_future(twin, t)
            a, b = policy.act(env, obs), twin_policy.act(twin, obs)
            for agent in env.agents:
                np.testing.assert_array_equal(a[agent], b[agent])
        if t == 9:  # the test can fail: what it observed (the last epoch's background) moves its answers
            seen = copy.deepcopy(env)
            seen.site_day.background_tok_s[t - 1] *= 3.0
            c = copy.deepcopy(policy).act(seen, obs)
            assert any(not np.array_equal(a[agent], c[agent]) for agent in env.agents)
        obs, *_ = env.step(policy.act(env, obs))


def test_forecast_site_refuses_a_cell_without_a_site() -> None:
    assert SITE_REFERENCE_POLICIES == ("forecast_site",)
    env = CellEnv({"scenario": {"epochs_per_episode": 4}, "cell_index": 0})
    env.reset(options={"day": 3})
    with pytest.raises(ValueError, match="use forecast"):
        make_reference_policy("forecast_site").begin_episode(env)


def test_evaluate_forecast_site_on_a_cell_only_preset_is_one_clear_error() -> None:
    from aolo.platform.commands.evaluate import SITE_POLICY_NAMES, run

    assert SITE_POLICY_NAMES == SITE_REFERENCE_POLICIES
    args = Namespace(preset="quick", policy="forecast_site", checkpoint=None, days_per_cell=1, output=None)
    with pytest.raises(ConfigError, match="scenario.sites"):
        run(args)
