"""Reference policies: ordering of carbon, constraint satisfaction, hindsight vs brute force."""

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from aolo.envs import channel
from aolo.envs.cell_env import CellEnv
from aolo.envs.physics import qoe
from aolo.envs.reference import FixedPolicy, HindsightPolicy, MyopicPolicy, make_reference_policy, solve_hindsight
from aolo.envs.rollout import run_episode, summarize

SCENARIO = {
    "name": "ref",
    "epochs_per_episode": 24,
    "epoch_s": 3600.0,
    "cells": [
        {
            "name": "coal-dc",
            "grid_region": "synthetic:hydro",
            "datacenter_region": "synthetic:wind_coal",
            "num_users": 4,
        },
        {
            "name": "coal-bs",
            "grid_region": "synthetic:coal_heavy",
            "datacenter_region": "synthetic:solar_duck",
            "num_users": 4,
        },
    ],
}


@pytest.mark.parametrize("cell_index", [0, 1])
def test_hindsight_le_myopic_le_fixed_all_feasible(cell_index):
    env = CellEnv({"scenario": SCENARIO, "cell_index": cell_index})
    sv = env.scenario.service
    results = {}
    for policy in (FixedPolicy(), MyopicPolicy(), HindsightPolicy()):
        rec = run_episode(env, policy, day=20, seed=5)
        m = summarize([rec], sv.q_min, sv.q_floor, sv.t_max_s)
        assert m["latency_violation_rate"] == 0.0, policy.name
        assert m["qoe_violation_rate"] == 0.0, policy.name
        assert m["qoe_guard_rate"] == 0.0, policy.name  # feasible on their own: the guard never acted
        results[policy.name] = m["carbon_g_per_request"]
    assert results["hindsight"] <= results["myopic"] <= results["fixed"]
    assert results["hindsight"] < 0.99 * results["myopic"]  # temporal shifting pays on a varying grid


def test_hindsight_plan_is_what_the_env_realises():
    env = CellEnv({"scenario": SCENARIO, "cell_index": 0})
    policy = HindsightPolicy()
    rec = run_episode(env, policy, day=27, seed=1)
    assert np.allclose(rec.fields["kappa"], policy.plan.kappa)
    assert (rec.fields["qoe_guard_added"] == 0.0).all()  # the mean-QoE guard never binds on a plan meeting the rule
    assert np.allclose(rec.fields["carbon_total_g"], policy.plan.carbon_g, rtol=1e-9)
    assert np.all(rec.fields["qoe"].mean(axis=1) >= env.scenario.service.q_min - 1e-12)
    assert policy.plan.dual_bound_g <= rec.fields["carbon_total_g"].sum() * (1 + 1e-9)


def _tiny_env(seed: int) -> CellEnv:
    sc = {
        "name": "tiny",
        "epochs_per_episode": 4,
        "epoch_s": 3600.0,
        "cells": [
            {
                "name": "c",
                "grid_region": "synthetic:wind_coal",
                "datacenter_region": "synthetic:solar_duck",
                "num_users": 2,
                "radius_m": 400.0,
            }
        ],
    }
    env = CellEnv({"scenario": sc})
    env.reset(seed=seed, options={"day": 3})
    rng = np.random.default_rng(seed)
    env.episode.ref_tokens[:] = rng.integers(8, 16, size=env.episode.ref_tokens.shape)
    env.episode.prompt_tokens[:] = rng.integers(100, 2000, size=env.episode.prompt_tokens.shape)
    return env


def _brute_force_carbon(env: CellEnv, user: int) -> float:
    """Enumerate every answer-length combination; optimise each power with scipy (bounded Brent)."""
    ep, sv, radio = env.episode, env.scenario.service, env.scenario.radio
    T = env.scenario.epochs_per_episode
    options = []
    for t in range(T):
        ref = ep.ref_tokens[user, t]
        lo = max(np.ceil(-np.log(1 - sv.q_floor) * ref / sv.qoe_alpha - 1e-9), np.ceil(sv.f_min * ref - 1e-9), 1)
        hi = np.floor(sv.f_max * ref + 1e-9)
        row = []
        for k in np.arange(lo, hi + 1):

            def carbon(p_dbm, k=k, t=t):
                out = env.outcomes(np.array([k]), np.array([channel.dbm_to_w(p_dbm)]), t, users=[user])
                return out.carbon_total_g[0] + (1e3 if out.latency_s[0] > sv.t_max_s else 0.0)

            res = minimize_scalar(
                carbon, bounds=(radio.p_min_dbm, radio.p_max_dbm), method="bounded", options={"xatol": 1e-6}
            )
            row.append((res.fun, qoe(k, ref, sv.qoe_alpha)))
        options.append(row)
    best = np.inf
    for combo in itertools.product(*options):
        if np.mean([q for _, q in combo]) >= sv.q_min:
            best = min(best, sum(c for c, _ in combo))
    return best


@pytest.mark.parametrize("seed", [0, 1])
def test_hindsight_matches_brute_force_on_a_small_instance(seed):
    env = _tiny_env(seed)
    plan = solve_hindsight(env)
    assert plan.feasible.all()
    assert not np.any(plan.power_w.sum(axis=0) > env.cell.bs_power_budget_w)  # budget not binding here
    for user in range(env.num_users):
        brute = _brute_force_carbon(env, user)
        planned = plan.carbon_g[user].sum()
        assert planned >= brute * (1 - 1e-6)  # the plan is feasible, so it cannot beat the optimum
        assert planned <= brute * (1 + 5e-3)  # and the Lagrangian integer solution is within 0.5 %
    assert plan.dual_bound_g <= plan.carbon_g.sum() * (1 + 1e-9)


def test_power_budget_is_enforced_by_the_oracle():
    sc = dict(
        SCENARIO,
        cells=[
            {
                "name": "far",
                "grid_region": "synthetic:coal_heavy",
                "datacenter_region": "synthetic:hydro",
                "num_users": 8,
                "radius_m": 1500.0,
                "bs_power_budget_w": 2.0,
            }
        ],
    )
    env = CellEnv({"scenario": sc})
    env.reset(seed=0, options={"day": 0})
    plan = solve_hindsight(env)
    assert np.all(plan.power_w.sum(axis=0) <= 2.0 * (1 + 1e-9))


def test_make_reference_policy_names():
    assert make_reference_policy("myopic").name == "myopic"
    with pytest.raises(
        ValueError,
        match=r"allowed: \['fixed', 'myopic', 'myopic_true_csi', 'forecast', 'hindsight', 'forecast_site', "
        r"'fixed_large'\]",
    ):
        make_reference_policy("oracle")


def test_qoe_violation_rates_by_hand():
    """4 user-days: fine; mean below Q_min only; one answer below the floor only; both."""
    from aolo.envs.rollout import RECORDED_FIELDS, EpisodeRecord

    qoe_by_user = np.array([[0.9, 0.8, 0.7, 0.8], [0.7, 0.8, 0.8, 0.8], [0.2, 1.0, 1.0, 1.0], [0.2, 0.5, 0.6, 0.6]])
    fields = {f: np.zeros((4, 4)) for f in RECORDED_FIELDS}
    fields["qoe"] = qoe_by_user
    m = summarize([EpisodeRecord("c", 0, fields, np.zeros((4, 4)), np.zeros(4, bool))], 0.8, 0.3, 30.0)
    assert m["qoe_mean_violation_rate"] == 0.5  # users 1 (0.775) and 3 (0.475)
    assert m["qoe_floor_violation_rate"] == 0.5  # users 2 and 3 (an answer at 0.2)
    assert m["qoe_violation_rate"] == 0.75
    assert m["qoe_shortfall"] == pytest.approx((0.025 + 0.325) / 4)
