"""The answer-length action (docs/design.md §3.3): QoE-space mapping, unbreakable floor, exact inverse."""

from __future__ import annotations

import math

import hypothesis as hyp
import numpy as np
import pytest

from aolo.envs.cell_env import CellEnv, greatest_length_within_qoe, least_length_for_qoe
from aolo.envs.config import ConfigError, ScenarioConfig
from aolo.envs.physics import qoe
from aolo.envs.reference import length_bounds


def _env(**service) -> CellEnv:
    scenario = ScenarioConfig().replace(**{f"service.{k}": v for k, v in service.items()})
    env = CellEnv({"scenario": scenario, "cell_index": 0})
    env.reset(options={"day": 0})
    return env


def _ref_sweep(env: CellEnv, refs: np.ndarray) -> None:
    """Overwrite epoch 0's reference lengths with ``refs`` (one per user)."""
    env.episode.ref_tokens[:, 0] = refs


def test_least_length_is_exact() -> None:
    ref = np.array([35.0, 100.0, 1000.0, 7.0])
    k = least_length_for_qoe(0.3, ref, 3.0)
    # hand values: kappa* = -ln(0.7) L_ref / 3 = 0.11889 L_ref → 4.16, 11.89, 118.9, 0.83
    np.testing.assert_array_equal(k, [5.0, 12.0, 119.0, 1.0])
    assert (qoe(k, ref, 3.0) >= 0.3).all() and (qoe(np.maximum(k - 1, 0), ref, 3.0)[:3] < 0.3).all()


def test_greatest_length_is_exact() -> None:
    ref = np.array([7.0, 100.0, 1.0])
    k = greatest_length_within_qoe(1.0 - math.exp(-4.5), ref, 3.0)
    # hand values: q_max = 1 - e^-4.5 is reached at kappa* = 1.5 L_ref → 10.5, 150 (exactly: QoE(150) = q_max), 1.5
    np.testing.assert_array_equal(k, [10.0, 150.0, 1.0])
    assert (qoe(k + 1, ref, 3.0)[[0, 2]] > 1.0 - math.exp(-4.5)).all()


def test_floor_unbreakable_under_random_actions() -> None:
    env = _env()
    sv, rng = env.scenario.service, np.random.default_rng(0)
    for _ in range(300):
        _ref_sweep(env, rng.integers(1, 3000, env.num_users).astype(float))
        actions = rng.uniform(-1, 1, (env.num_users, 2))
        actions[rng.random(env.num_users) < 0.2, 0] = -1.0
        kappa, _ = env.decode_actions(actions)
        ref = env.episode.ref_tokens[:, 0]
        assert (qoe(kappa, ref, sv.qoe_alpha) >= sv.q_floor).all()
        assert (kappa == np.rint(kappa)).all() and (kappa >= 1).all()


def test_floor_unbreakable_hypothesis() -> None:
    st = hyp.strategies
    env = _env()
    sv = env.scenario.service

    @hyp.settings(max_examples=300, deadline=None)
    @hyp.given(a=st.floats(-1.0, 1.0), ref=st.integers(1, 20_000))
    def check(a: float, ref: int) -> None:
        env.episode.ref_tokens[:, 0] = float(ref)
        kappa, _ = env.decode_actions(np.full((env.num_users, 2), a))
        assert (qoe(kappa, env.episode.ref_tokens[:, 0], sv.qoe_alpha) >= sv.q_floor).all()

    check()


def test_centre_is_q_min_and_round_trip() -> None:
    env = _env()
    sv, rng = env.scenario.service, np.random.default_rng(1)
    for _ in range(50):
        _ref_sweep(env, rng.integers(1, 3000, env.num_users).astype(float))
        ref = env.episode.ref_tokens[:, 0]
        kappa, _ = env.decode_actions(np.zeros((env.num_users, 2)))
        lo, hi = length_bounds(env, ref)  # kappa_max = 1500 caps the longest references
        np.testing.assert_array_equal(kappa, np.clip(least_length_for_qoe(sv.q_min, ref, sv.qoe_alpha), lo, hi))
        for k in (lo, hi, np.floor(0.5 * (lo + hi)), np.minimum(lo + 1, hi), kappa):
            acts = env.action_for(k, np.full(env.num_users, 1.0))
            back, _ = env.decode_actions(np.stack([acts[a] for a in env.agents]).astype(np.float64))
            np.testing.assert_array_equal(back, k)
    # hand value: L_ref = 100, alpha = 3, q_min = 0.8 → -ln(0.2) · 100 / 3 = 53.65 → 54 tokens (QoE 0.8021)
    env.episode.ref_tokens[:, 0] = 100.0
    kappa, _ = env.decode_actions(np.zeros((env.num_users, 2)))
    assert (kappa == 54.0).all()


def test_length_bounds_are_the_action_extremes() -> None:
    env = _env()
    sv, rng = env.scenario.service, np.random.default_rng(2)
    for _ in range(50):
        _ref_sweep(env, rng.integers(1, 3000, env.num_users).astype(float))
        ref = env.episode.ref_tokens[:, 0]
        lo, hi = length_bounds(env, ref)
        k_lo, _ = env.decode_actions(np.full((env.num_users, 2), -1.0))
        k_hi, _ = env.decode_actions(np.full((env.num_users, 2), 1.0))
        np.testing.assert_array_equal(lo, k_lo)
        np.testing.assert_array_equal(hi, k_hi)
        assert (qoe(lo, ref, sv.qoe_alpha) >= sv.q_floor).all()
    # hand value: L_ref = 100 → a = +1 is the least length with QoE ≥ 1 - exp(-3 · 1.5), i.e. 150 tokens
    env.episode.ref_tokens[:, 0] = 100.0
    assert (length_bounds(env, env.episode.ref_tokens[:, 0])[1] == 150.0).all()


def test_tokens_mode_unchanged() -> None:
    env = _env(length_action="tokens")
    sv = env.scenario.service
    env.episode.ref_tokens[:, 0] = 200.0
    actions = np.stack([np.linspace(-1, 1, env.num_users), np.zeros(env.num_users)], axis=1)
    kappa, _ = env.decode_actions(actions)
    f = sv.f_min + (actions[:, 0] + 1.0) * 0.5 * (sv.f_max - sv.f_min)
    np.testing.assert_array_equal(kappa, np.minimum(np.maximum(np.rint(f * 200.0), 1.0), sv.kappa_max))
    assert kappa[0] == 10.0 and kappa[-1] == 300.0  # f_min · 200, f_max · 200: below the floor is reachable here


def test_q_max_validated() -> None:
    with pytest.raises(ConfigError, match="service.q_max"):
        ScenarioConfig().replace(**{"service.q_max": 0.7})
    with pytest.raises(ConfigError, match="service.length_action"):
        ScenarioConfig().replace(**{"service.length_action": "bits"})
    assert math.isclose(ScenarioConfig().service.q_max_effective, 1 - math.exp(-4.5))


# --- the mean-QoE guard (service.mean_qoe_guard) -------------------------------------------------------------


def _play_day(env: CellEnv, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Play one whole day of ``actions`` (T, U, 2); returns each user's day-mean QoE, the guard's added QoE
    (U, T) and each user's summed QoE cost."""
    T = env.scenario.epochs_per_episode
    qoes, added, cost = np.zeros((env.num_users, T)), np.zeros((env.num_users, T)), np.zeros(env.num_users)
    for t in range(T):
        _, _, _, _, infos = env.step({a: act for a, act in zip(env.agents, actions[t].astype(np.float32), strict=True)})
        for i, a in enumerate(env.agents):
            qoes[i, t], added[i, t], cost[i] = (
                infos[a]["qoe"],
                infos[a]["qoe_guard_added"],
                cost[i] + infos[a]["cost_qoe"],
            )
    last = infos[env.agents[0]]
    assert last["qoe_own_day_mean"] == pytest.approx(last["qoe_day_mean"] - added[0].sum() / T, abs=1e-12)
    return qoes.mean(axis=1), added, cost


@pytest.mark.parametrize("low_share", [0.3, 0.7, 1.0])
def test_guard_keeps_every_user_day_at_q_min(low_share: float) -> None:
    """Random actions, a share of them at the shortest answer: with the guard every user-day meets Q_min (up to
    float rounding); the same actions without it miss. The QoE cost of a day is what the guard added."""
    T, U = ScenarioConfig().epochs_per_episode, _env().num_users
    for day, seed in ((0, 0), (3, 1)):
        rng = np.random.default_rng(seed)
        acts = rng.uniform(-1, 1, (T, U, 2))
        acts[rng.random((T, U)) < low_share, 0] = -1.0
        means = {}
        for guard in (True, False):
            env = _env(mean_qoe_guard=guard)
            env.reset(options={"day": day}, seed=seed)
            means[guard], added, cost = _play_day(env, acts)
            if guard:
                assert (means[guard] >= env.scenario.service.q_min - 1e-12).all()
                assert added.sum() > 0.0 and (added >= 0.0).all()
                np.testing.assert_allclose(cost, added.sum(axis=1), atol=1e-9)  # no shortfall left: only the rescue
            else:
                assert (added == 0.0).all()
                np.testing.assert_allclose(cost, T * np.maximum(0.0, env.scenario.service.q_min - means[guard]))
        assert (means[False] < 0.8).any()


def test_guard_asks_for_exactly_what_the_day_still_needs() -> None:
    """Hand values, L_ref = 100, alpha = 3, T = 96, q_max = 1 - e^-4.5 = 0.98889."""
    env = _env()
    sv, T = env.scenario.service, env.scenario.epochs_per_episode
    env.episode.ref_tokens[:, :] = 100.0
    shortest = np.full(env.num_users, 12.0)  # the floor's length: ceil(-ln 0.7 · 100/3) = ceil(11.89)
    env.t, env._qoe_sum = T - 1, np.full(env.num_users, T * sv.q_min - 0.9)
    # last epoch, 0.9 still missing: least length with QoE >= 0.9 = ceil(-ln 0.1 · 100/3) = ceil(76.75) = 77
    np.testing.assert_array_equal(env.mean_qoe_guard(shortest), 77.0)
    np.testing.assert_array_equal(env.mean_qoe_guard(np.full(env.num_users, 90.0)), 90.0)  # longer: kept
    # two epochs left after this one: need = 0.5 + 2 q_max - 2 q_max → ceil(-ln 0.5 · 100/3) = ceil(23.10) = 24
    env.t, env._qoe_sum = T - 3, np.full(env.num_users, T * sv.q_min - 0.5 - 2 * sv.q_max_effective)
    np.testing.assert_array_equal(env.mean_qoe_guard(shortest), 24.0)
    env._qoe_sum += 0.5  # the day can still make it with q_max later: untouched
    np.testing.assert_array_equal(env.mean_qoe_guard(shortest), 12.0)
