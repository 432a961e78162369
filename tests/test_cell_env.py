"""CellEnv: RLlib multi-agent API conformance, determinism, action validation, info contents."""

import numpy as np
import pytest

from aolo.envs import channel
from aolo.envs.cell_env import ENV_NAME, OBS_FEATURES, CellEnv
from aolo.envs.config import CellSpec, ConfigError, ScenarioConfig

SMALL = {
    "name": "small",
    "epochs_per_episode": 8,
    "cells": [
        {"name": "a", "grid_region": "synthetic:coal_heavy", "datacenter_region": "synthetic:hydro", "num_users": 3},
        {"name": "b", "grid_region": "synthetic:hydro", "datacenter_region": "synthetic:coal_heavy", "num_users": 2},
    ],
}


def make_env(**extra) -> CellEnv:
    return CellEnv({"scenario": SMALL, **extra})


def test_rllib_multi_agent_env_checker_passes():
    from ray.rllib.utils.pre_checks.env import check_multiagent_environments

    check_multiagent_environments(make_env())


def test_spaces_agents_and_observation_layout():
    env = make_env()
    assert env.agents == ["user_0", "user_1", "user_2"]
    obs, infos = env.reset(seed=3)
    assert set(obs) == set(env.agents) and set(infos) == set(env.agents)
    for a in env.agents:
        assert env.observation_spaces[a].contains(obs[a])
        assert obs[a].shape == (len(OBS_FEATURES),)
    o = obs["user_0"]
    assert o[OBS_FEATURES.index("tod_sin")] == pytest.approx(0.0, abs=1e-6)  # midnight
    assert o[OBS_FEATURES.index("tod_cos")] == pytest.approx(1.0, abs=1e-6)
    ci = env.episode.ci_cell_g_per_kwh[0]
    assert o[OBS_FEATURES.index("ci_cell_now")] == pytest.approx(np.log(ci / 100.0), rel=1e-5)


def _play(env, seed, actions_seed=0):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(actions_seed)
    trajectory = []
    done = False
    while not done:
        act = {a: rng.uniform(-1, 1, 2).astype(np.float32) for a in env.agents}
        obs, rew, term, trunc, info = env.step(act)
        trajectory.append(
            (
                np.stack([obs[a] for a in env.agents]),
                [rew[a] for a in env.agents],
                [info[a]["carbon_total_g"] for a in env.agents],
            )
        )
        done = trunc["__all__"]
    return trajectory


def test_same_seed_same_episode_and_different_seed_differs():
    t1, t2, t3 = _play(make_env(), 7), _play(make_env(), 7), _play(make_env(), 8)
    assert len(t1) == 8
    for (o1, r1, c1), (o2, r2, c2) in zip(t1, t2, strict=False):
        assert np.array_equal(o1, o2) and r1 == r2 and c1 == c2
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(t1, t3, strict=False))


@pytest.mark.parametrize("bad", [np.array([1.5, 0.0]), np.array([0.0, -1.01]), np.array([np.nan, 0.0])])
def test_out_of_range_or_nan_actions_are_rejected(bad):
    env = make_env()
    env.reset(seed=0)
    acts = {a: np.zeros(2, np.float32) for a in env.agents}
    acts["user_1"] = bad
    with pytest.raises(ValueError, match=r"outside \[-1, 1\] or not finite, first user_1="):
        env.step(acts)


def test_missing_agent_action_is_rejected():
    env = make_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="no action for agent"):
        env.step({"user_0": np.zeros(2)})


def test_info_holds_carbon_breakdown_and_power_budget_flag():
    env = make_env()
    env.reset(seed=0)
    full_power = {a: np.array([0.0, 1.0], np.float32) for a in env.agents}  # 3 users × 20 W > 20 W budget
    _, _, _, _, info = env.step(full_power)
    i0 = info["user_0"]
    for key in (
        "carbon_inference_g",
        "carbon_embodied_g",
        "carbon_comm_g",
        "qoe",
        "latency_s",
        "airtime_s",
        "power_clipped",
    ):
        assert key in i0
    assert i0["carbon_total_g"] == pytest.approx(
        i0["carbon_inference_g"] + i0["carbon_embodied_g"] + i0["carbon_comm_g"]
    )
    assert i0["power_clipped"] is True
    assert sum(info[a]["power_w"] for a in env.agents) == pytest.approx(20.0)
    low_power = {a: np.array([0.0, -1.0], np.float32) for a in env.agents}  # 0 dBm each
    _, _, _, _, info = env.step(low_power)
    assert info["user_0"]["power_clipped"] is False
    assert info["user_0"]["power_w"] == pytest.approx(1e-3)


def test_action_mapping_and_reward_formula():
    env = make_env()
    env.reset(seed=1)
    ep, sv, w = env.episode, env.scenario.service, env.scenario.reward
    act = {a: np.array([0.2, -0.5], np.float32) for a in env.agents}
    ref = ep.ref_tokens[:, 0].copy()
    p_star_dbm = 10 * np.log10(env.efficient_power_w(ep.large_scale_gain) * 1e3)  # ergodic rate: no fading term
    _, rew, _, _, info = env.step(act)
    # QoE-space length action: a = 0.2 → target Q = q_min + 0.2 (q_max - q_min), q_max = 1 - exp(-alpha f_max)
    q_target = sv.q_min + np.float32(0.2) * (1 - np.exp(-sv.qoe_alpha * sv.f_max) - sv.q_min)
    # efficient power action: a = -0.5 → halfway (in dBm) between p_min = 0 dBm and P*
    p_dbm = p_star_dbm + np.float32(-0.5) * (p_star_dbm - 0.0)
    for i, a in enumerate(env.agents):
        k = info[a]["kappa"]  # the least length reaching the target
        assert 1 - np.exp(-sv.qoe_alpha * k / ref[i]) >= q_target > 1 - np.exp(-sv.qoe_alpha * (k - 1) / ref[i])
        assert info[a]["power_w"] == pytest.approx(10 ** ((p_dbm[i] - 30) / 10), rel=1e-5)
        q = 1 - np.exp(-sv.qoe_alpha * info[a]["kappa"] / ref[i])
        expected = (
            -w.carbon * info[a]["carbon_total_g"] / w.carbon_scale_g
            + w.qoe * (q - sv.q_min)
            - w.latency * (info[a]["latency_s"] > sv.t_max_s)
            - w.floor * (q < sv.q_floor)
        )
        assert rew[a] == pytest.approx(expected, rel=1e-9)


def test_deficit_penalty_at_last_epoch():
    no_guard = ScenarioConfig.from_dict(SMALL).replace(**{"service.mean_qoe_guard": False})
    env = CellEnv({"scenario": no_guard})  # a day that ends short
    env.reset(seed=2)
    shortest = {a: np.array([-1.0, 0.0], np.float32) for a in env.agents}  # f = 0.05 -> QoE ≈ 0.14
    for _ in range(7):
        env.step(shortest)
    qoe_sum = env._qoe_sum.copy()
    _, rew, _, trunc, info = env.step(shortest)
    assert trunc["__all__"]
    w, sv = env.scenario.reward, env.scenario.service
    for i, a in enumerate(env.agents):
        q = info[a]["qoe"]
        mean_q = (qoe_sum[i] + q) / 8
        step_r = (
            -w.carbon * info[a]["carbon_total_g"] / w.carbon_scale_g
            + w.qoe * (q - sv.q_min)
            - w.latency * (info[a]["latency_s"] > sv.t_max_s)
            - w.floor * (q < sv.q_floor)
        )
        assert rew[a] == pytest.approx(step_r - w.deficit * (sv.q_min - mean_q), rel=1e-9)


def test_accrued_deficit_charges_each_increment_and_keeps_the_episode_return():
    """Short answers for 4 epochs (deficit builds), long answers for 4 (paid back): the accrued timing charges
    w_deficit · ΔD_t each epoch, D_t = max(0, (t·Q_min − ΣQ)/T), and sums to the terminal timing's return."""
    short, long_ = np.array([-1.0, 0.0], np.float32), np.array([1.0, 0.0], np.float32)
    returns, rewards = {}, {}
    for timing in ("terminal", "accrued"):
        env = CellEnv({"scenario": {**SMALL, "reward": {"deficit_timing": timing}}})
        env.reset(seed=4)
        sv, w, T = env.scenario.service, env.scenario.reward, env.scenario.epochs_per_episode
        qoe_sum, rewards[timing] = np.zeros(env.num_users), []
        for t in range(T):
            act = short if t < 4 else long_
            _, rew, _, _, info = env.step({a: act for a in env.agents})
            q = np.array([info[a]["qoe"] for a in env.agents])
            step_r = (
                np.array([-w.carbon * info[a]["carbon_total_g"] / w.carbon_scale_g for a in env.agents])
                + w.qoe * (q - sv.q_min)
                - w.latency * np.array([info[a]["latency_s"] > sv.t_max_s for a in env.agents])
                - w.floor * (q < sv.q_floor)
            )
            d_before = np.maximum(0.0, (t * sv.q_min - qoe_sum) / T)
            qoe_sum = qoe_sum + q
            d_after = np.maximum(0.0, ((t + 1) * sv.q_min - qoe_sum) / T)
            got = np.array([rew[a] for a in env.agents])
            if timing == "accrued":
                np.testing.assert_allclose(got, step_r - w.deficit * (d_after - d_before), rtol=1e-9)
            elif t < T - 1:
                np.testing.assert_allclose(got, step_r, rtol=1e-9)
            rewards[timing].append(got)
        returns[timing] = np.sum(rewards[timing], axis=0)
    assert np.all(rewards["accrued"][1] < rewards["terminal"][1] - 1.0)  # the shortfall is charged early...
    assert np.any(rewards["accrued"][5] > rewards["terminal"][5])  # ...and refunded while it is paid back
    np.testing.assert_allclose(returns["accrued"], returns["terminal"], rtol=1e-9)


def test_per_copy_cell_choice_and_split():
    from ray.rllib.env.env_context import EnvContext

    base = {"scenario": SMALL, "num_envs_per_env_runner": 2}
    # RLlib 2.60 gives every sub-env of a runner the same context (vector_index 0): consecutive copies still
    # cover every cell, from whichever position the process's count is at
    local = [CellEnv(EnvContext(base, worker_index=0)) for _ in range(2)]
    assert sorted(e.cell.name for e in local) == ["a", "b"] and sorted(e.copy_index for e in local) == [0, 1]
    remote = [CellEnv(EnvContext(base, worker_index=2)) for _ in range(2)]  # runner 2 = slot 1: copies 2, 3
    assert sorted(e.copy_index for e in remote) == [2, 3] and sorted(e.cell.name for e in remote) == ["a", "b"]
    assert CellEnv({"scenario": SMALL}).copy_index == 0
    assert CellEnv({"scenario": SMALL, "cell_index": 1}).num_users == 2
    env = make_env(split="heldout")
    env.reset(seed=0)
    assert env.episode.day % 7 == 6
    env.reset(seed=0, options={"split": "train"})
    assert env.episode.day % 7 != 6
    env.reset(options={"day": 13})
    assert env.episode.day == 13


def test_env_is_registered_with_tune():
    from ray.tune.registry import ENV_CREATOR, _global_registry

    creator = _global_registry.get(ENV_CREATOR, ENV_NAME)
    assert isinstance(creator({"scenario": SMALL}), CellEnv)


@pytest.mark.parametrize(
    "change,match",
    [
        ({"service": {"f_min": 0.9, "f_max": 0.5}}, r"service.f_min: must not exceed f_max"),
        ({"radio": {"earth_p0_w": -1.0}}, r"radio.earth_p0_w: must be a number in \[0"),
        ({"cells": [{"num_users": 0}]}, r"scenario.cells.0.num_users: must be an integer in \[1, 1024\]"),
        ({"cells": [{"serving_profile": "gpt-5"}]}, r"scenario.cells.0.serving_profile: must be one of"),
        ({"cells": [{"pathloss": "rma"}]}, r"scenario.cells.0.pathloss: must be one of \['uma', 'umi'\]"),
        (
            {"cells": [{"radius_m": 30.0, "min_distance_m": 35.0}]},
            r"scenario.cells.0.radius_m: must exceed min_distance_m",
        ),
        ({"radio": {"p_min_dbm": 40.0, "p_max_dbm": 30.0}}, r"radio.p_min_dbm: must be below p_max_dbm"),
        ({"service": {"q_min": 0.999}}, r"service.q_min: is unreachable"),
        ({"epochs": 3}, r"scenario: unknown key\(s\) \['epochs'\]"),
        ({"accounting": "marginal"}, r"accounting: must be one of"),
        ({"reward": {"deficit_timing": "daily"}}, r"reward.deficit_timing: must be one of \['terminal', 'accrued'\]"),
    ],
)
def test_bad_scenarios_name_the_field(change, match):
    with pytest.raises(ConfigError, match=match):
        ScenarioConfig.from_dict(change)


def test_unknown_region_is_a_clear_error():
    scenario = ScenarioConfig(cells=(CellSpec(grid_region="synthetic:tidal"),))
    with pytest.raises(ValueError, match="tidal"):
        CellEnv({"scenario": scenario})


def test_scenario_yaml_roundtrip(tmp_path):
    import yaml

    sc = ScenarioConfig.from_dict(SMALL)
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"scenario": sc.to_dict()}))
    assert ScenarioConfig.from_yaml(p) == sc
    assert sc.replace(**{"reward.carbon": 3.0}).reward.carbon == 3.0
    p.write_text("scenario: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        ScenarioConfig.from_yaml(p)


def test_power_action_centres_on_the_most_efficient_power():
    """``efficient`` mode: -1 ↦ p_min, 0 ↦ P* (least radio energy per bit, checked against ±0.1 dB), +1 ↦ p_max,
    monotone, and action_for inverts it; ``dbm`` mode keeps the linear mapping (a = 0 ↦ 21.5 dBm)."""
    from aolo.envs.physics import comm_energy_j

    env = make_env()
    env.reset(seed=3)
    radio, n = env.scenario.radio, env.num_users
    p_star_w = env.efficient_power_w(env.episode.large_scale_gain)

    def joules_per_bit(p_w):
        rate = channel.delivery_rate_bps(
            env.bandwidth_per_user_hz, p_w, env.episode.large_scale_gain, env.noise_w, env.interference_w, radio
        )
        return comm_energy_j(p_w, 1.0 / rate, n, radio)

    for step_db in (-0.1, 0.1):
        assert (joules_per_bit(p_star_w) <= joules_per_bit(p_star_w * 10 ** (step_db / 10))).all()
    assert ((p_star_w > 1e-3) & (p_star_w < 20.0)).all()  # an interior optimum in these cells
    grid = np.linspace(-1.0, 1.0, 21)
    powers = np.stack([env.decode_actions(np.stack([np.zeros(n), np.full(n, a)], axis=1))[1] for a in grid])
    np.testing.assert_allclose(powers[0], 1e-3)
    np.testing.assert_allclose(powers[10], p_star_w, rtol=1e-12)
    np.testing.assert_allclose(powers[-1], 10 ** ((43.0 - 30) / 10))
    assert (np.diff(powers, axis=0) > 0).all()
    for p_w in (np.full(n, 2e-3), p_star_w, np.full(n, 15.0)):
        acts = env.action_for(np.full(n, 50.0), p_w)
        back = env.decode_actions(np.stack([acts[a] for a in env.agents]).astype(np.float64))[1]
        np.testing.assert_allclose(back, p_w, rtol=1e-5)  # float32 actions
    dbm = CellEnv({"scenario": ScenarioConfig.from_dict(SMALL).replace(**{"radio.power_action": "dbm"})})
    dbm.reset(seed=3)
    _, p_w = dbm.decode_actions(np.zeros((n, 2)))
    np.testing.assert_allclose(p_w, 10 ** ((21.5 - 30) / 10))


def test_reset_power_table_equals_the_per_epoch_search():
    """The reset's P* table is exact: searched once per user under the ergodic rate it equals the search over
    every (user, epoch) of the known gain."""

    for env in (
        make_env(),
        make_env(scenario=ScenarioConfig.from_dict(SMALL).replace(**{"radio.fading_average": "instantaneous"})),
    ):
        env.reset(seed=4)
        full_grid = np.array(env.known_gain)  # (U, T), every epoch searched on its own
        searched = channel.w_to_dbm(env.efficient_power_w(full_grid))
        np.testing.assert_array_equal(env._efficient_dbm, searched)
    ergodic = make_env()
    ergodic.reset(seed=4)
    assert (ergodic._efficient_dbm == ergodic._efficient_dbm[:, :1]).all()  # one P* per user for the whole day
