"""The answer-length action (docs/design.md §3.3): QoE-space mapping, unbreakable floor, exact inverse."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aolo.envs.cell_env import CellEnv, least_length_for_qoe
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
    hyp = pytest.importorskip("hypothesis")
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
