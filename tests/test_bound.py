"""The hindsight plan and its strict lower bound against an exact MILP (scipy HiGHS) on small instances."""

import numpy as np
import pytest
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import lil_matrix

from aolo.envs import channel
from aolo.envs.cell_env import CellEnv
from aolo.envs.physics import request_outcomes
from aolo.envs.reference import (
    allocate_budget,
    length_bounds,
    most_efficient_power_w,
    power_for_length_w,
    solve_hindsight,
)

GRID_DB = 1.0


def tiny_env(
    budget_w: float,
    radius_m: float,
    t_max_s: float,
    day: int = 48,
    users: int = 2,
    model_action: bool = False,
    epochs: int = 4,
) -> CellEnv:
    scenario = {
        "name": "tiny",
        "epochs_per_episode": epochs,
        "service": {"t_max_s": t_max_s, "model_action": model_action},
        "cells": [
            {
                "name": "c",
                "grid_region": "synthetic:coal_heavy",
                "datacenter_region": "synthetic:hydro",
                "num_users": users,
                "radius_m": radius_m,
                "min_distance_m": 0.6 * radius_m,
                "bs_power_budget_w": budget_w,
            }
        ],
    }
    env = CellEnv({"scenario": scenario})
    env.reset(seed=day, options={"day": day})
    ep = env.episode
    ep.ref_tokens[:] = np.random.default_rng(day).integers(12, 24, ep.ref_tokens.shape)  # keeps the MILP small
    ep.prompt_tokens[:] = 200.0
    return env


def exact_optimum_g(env: CellEnv, plan=None) -> float:
    """Min Σ carbon over integer lengths × (power grid ∪ each length's exact best power ∪ the plan's powers), by
    HiGHS: a superset of the oracle's choices, so the oracle can never beat it."""
    ep, sv, radio = env.episode, env.scenario.service, env.scenario.radio
    U, T = ep.ref_tokens.shape
    k_lo, k_hi = length_bounds(env, ep.ref_tokens)
    grid_w = channel.dbm_to_w(np.arange(radio.p_min_dbm, radio.p_max_dbm + 1e-9, GRID_DB))
    options = []  # (u, t, kappa, power, carbon, qoe)
    for t in range(T):
        p_star = most_efficient_power_w(env, ep.channel_gain[:, t])
        for u in range(U):
            for k in np.arange(k_lo[u, t], k_hi[u, t] + 1):
                exact, _ = power_for_length_w(env, k, p_star[u], ep.prompt_tokens[u, t], ep.channel_gain[u, t])
                played = [] if plan is None else [plan.power_w[u, t]]
                for p in np.concatenate([grid_w, [exact], played]):
                    out = request_outcomes(
                        kappa=k,
                        prompt_tokens=ep.prompt_tokens[u, t],
                        ref_tokens=ep.ref_tokens[u, t],
                        power_w=p,
                        channel_gain=ep.channel_gain[u, t],
                        noise_w=env.noise_w,
                        interference_w=env.interference_w,
                        ci_datacenter_g_per_kwh=ep.ci_dc_g_per_kwh[t],
                        ci_cell_g_per_kwh=ep.ci_cell_g_per_kwh[t],
                        users_in_cell=U,
                        bandwidth_per_user_hz=env.bandwidth_per_user_hz,
                        inference=env.inference,
                        radio=radio,
                        service=sv,
                    )
                    if out.latency_s <= sv.t_max_s * (1 + 1e-6):  # as the oracle: P_lat is interpolated
                        options.append((u, t, k, p, float(out.carbon_total_g), float(out.qoe)))
    n = len(options)
    rows = U * T + U + T
    a = lil_matrix((rows, n))
    lo, hi = np.zeros(rows), np.zeros(rows)
    for j, (u, t, _, p, _, q) in enumerate(options):
        a[u * T + t, j] = 1.0  # one choice per request
        a[U * T + u, j] = q / T  # mean QoE
        a[U * T + U + t, j] = p  # BS budget
    lo[: U * T], hi[: U * T] = 1.0, 1.0
    lo[U * T : U * T + U], hi[U * T : U * T + U] = sv.q_min, np.inf
    lo[U * T + U :], hi[U * T + U :] = -np.inf, env.cell.bs_power_budget_w
    cost = np.array([o[4] for o in options]) * 1e6  # µg: HiGHS's absolute gap tolerance is 1e-6
    res = milp(
        cost,
        constraints=LinearConstraint(a.tocsr(), lo, hi),
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
        options={"mip_rel_gap": 1e-9},
    )
    assert res.success, res.message
    return float(res.fun) / 1e6


def old_repair_g(env: CellEnv, relaxed_kappa, relaxed_power) -> tuple[float, bool]:
    """The previous repair: lengths of the budget-relaxed plan kept, powers re-allocated under the budget."""
    ep, sv = env.episode, env.scenario.service
    power = relaxed_power.copy()
    for t in range(power.shape[1]):
        power[:, t] = allocate_budget(
            env, relaxed_kappa[:, t], power[:, t], t, ep.prompt_tokens[:, t], ep.channel_gain[:, t]
        )
    carbon, ok = 0.0, True
    for t in range(power.shape[1]):
        out = env.outcomes(relaxed_kappa[:, t], power[:, t], t)
        carbon += float(out.carbon_total_g.sum())
        ok &= bool((out.latency_s <= sv.t_max_s).all())
    return carbon, ok


@pytest.mark.parametrize(
    "budget_w, radius_m, t_max_s", [(20.0, 250.0, 30.0), (1.0, 1500.0, 8.0)], ids=["default-cell", "budget-binding"]
)
def test_hindsight_is_near_the_exact_optimum_and_the_bound_is_below_it(budget_w, radius_m, t_max_s):
    env = tiny_env(budget_w, radius_m, t_max_s)
    plan = solve_hindsight(env, budget_grid_db=GRID_DB)
    optimum = exact_optimum_g(env, plan)
    played = float(plan.carbon_g.sum())
    assert plan.feasible.all()
    assert (plan.power_w.sum(axis=0) <= budget_w * (1 + 1e-9)).all()
    assert plan.dual_bound_g <= optimum * (1 + 1e-9)  # strict lower bound
    assert plan.dual_bound_g <= played
    assert optimum * (1 - 1e-9) <= played <= optimum * (1 + (2e-3 if budget_w > 2 else 1e-2))  # near-exact


def test_the_played_plan_is_never_worse_than_the_old_length_preserving_repair():
    tight = tiny_env(1.0, 1500.0, 8.0)
    relaxed = solve_hindsight(tiny_env(1000.0, 1500.0, 8.0))  # same episode, budget never binds
    assert (relaxed.power_w.sum(axis=0) > 1.0).any(), "the instance must be budget-binding"
    old_carbon, old_latency_ok = old_repair_g(tight, relaxed.kappa, relaxed.power_w)
    new = solve_hindsight(tight, budget_grid_db=GRID_DB)
    assert new.feasible.all()
    assert float(new.carbon_g.sum()) <= old_carbon * (1 + 1e-9) or not old_latency_ok


def test_feasible_is_measured_on_the_played_plan():
    """A cell where no power meets the latency limit for any length: the played plan must say infeasible."""
    env = tiny_env(1.0, 4000.0, 0.6)
    plan = solve_hindsight(env, budget_grid_db=GRID_DB)
    latency = np.stack([env.outcomes(plan.kappa[:, t], plan.power_w[:, t], t).latency_s for t in range(4)], axis=1)
    broken = (latency > env.scenario.service.t_max_s).any(axis=1) | (plan.qoe.mean(axis=1) < 0.8 - 1e-9)
    np.testing.assert_array_equal(plan.feasible, ~broken)
    assert broken.any()


# --- with the model choice (service.model_action, docs/design.md §3.7) -------------------------------------------


def _model_options(env: CellEnv, plan, grid_w) -> list[tuple[int, int, float, float, float]]:
    """Every (user, epoch, power, carbon, QoE) of each (model, integer length) at each power of ``grid_w`` ∪ the
    pair's exact best power ∪ the plan's power that meets the latency limit."""
    ep, sv, pool = env.episode, env.scenario.service, env.models
    U, T = ep.ref_tokens.shape
    options = []
    for t in range(T):
        p_star = most_efficient_power_w(env, ep.channel_gain[:, t])
        for u in range(U):
            for m in range(pool.size):
                k_lo, k_hi = pool.length_limits(ep.ref_tokens[u, t], m)
                for k in np.arange(k_lo, k_hi + 1):
                    exact, _ = power_for_length_w(
                        env, k, p_star[u], ep.prompt_tokens[u, t], ep.channel_gain[u, t], pool.coefficients(m)
                    )
                    for p in np.concatenate([grid_w, [exact, plan.power_w[u, t]]]):
                        out = env.outcomes(np.array([k]), np.array([p]), t, users=[u], model=np.array([m]))
                        if out.latency_s[0] <= sv.t_max_s * (1 + 1e-6):
                            options.append((u, t, float(p), float(out.carbon_total_g[0]), float(out.qoe[0])))
    return options


def _solve_options(options, users: int, epochs: int, q_min: float, budget_w: float | None):
    """HiGHS on one choice per request, mean QoE >= q_min per user and (``budget_w``) Σ P <= budget per epoch."""
    n = len(options)
    rows = users * epochs + users + (epochs if budget_w is not None else 0)
    a = lil_matrix((rows, n))
    lo, hi = np.zeros(rows), np.zeros(rows)
    for j, (u, t, p, _, q) in enumerate(options):
        a[u * epochs + t, j] = 1.0
        a[users * epochs + u, j] = q / epochs
        if budget_w is not None:
            a[users * epochs + users + t, j] = p
    lo[: users * epochs], hi[: users * epochs] = 1.0, 1.0
    lo[users * epochs : users * epochs + users], hi[users * epochs : users * epochs + users] = q_min, np.inf
    if budget_w is not None:
        lo[users * epochs + users :], hi[users * epochs + users :] = -np.inf, budget_w
    res = milp(
        np.array([o[3] for o in options]) * 1e6,
        constraints=LinearConstraint(a.tocsr(), lo, hi),
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
        options={"mip_rel_gap": 1e-9},
    )
    assert res.success, res.message
    return float(res.fun) / 1e6, np.rint(res.x).astype(bool)


def exact_optimum_models_g(env: CellEnv, plan, grid_db: float | None = GRID_DB) -> float:
    """The exact optimum over (model, integer length, power), by HiGHS: a superset of the oracle's choices.

    ``grid_db=None``: powers are each pair's exact best power (and the plan's) only and the problem is solved
    per user — exact where the BS budget does not bind, which is checked on the solution."""
    ep, sv, radio = env.episode, env.scenario.service, env.scenario.radio
    U, T = ep.ref_tokens.shape
    budget = env.cell.bs_power_budget_w
    if grid_db is not None:
        grid_w = channel.dbm_to_w(np.arange(radio.p_min_dbm, radio.p_max_dbm + 1e-9, grid_db))
        return _solve_options(_model_options(env, plan, grid_w), U, T, sv.q_min, budget)[0]
    options = _model_options(env, plan, np.array([]))
    total, power = 0.0, np.zeros(T)
    for u in range(U):
        own = [(0, t, p, c, q) for (v, t, p, c, q) in options if v == u]
        carbon, chosen = _solve_options(own, 1, T, sv.q_min, None)
        total += carbon
        for (_, t, p, _, _), picked in zip(own, chosen, strict=True):
            power[t] += p * picked
    assert (power <= budget).all(), "the budget binds: solve with a power grid"
    return total


@pytest.mark.parametrize("day", [48, 139])
def test_hindsight_with_the_model_choice_against_the_exact_optimum(day):
    """A default cell (the budget never binds: every pair at its exact best power), 2 users x 24 epochs."""
    from aolo.envs.model_reference import solve_hindsight_models

    env = tiny_env(20.0, 250.0, 30.0, day=day, model_action=True, epochs=24)
    plan = solve_hindsight_models(env)
    assert (plan.power_w.sum(axis=0) < 20.0).all()
    optimum = exact_optimum_models_g(env, plan, grid_db=None)
    played = float(plan.carbon_g.sum())
    assert plan.feasible.all()
    assert plan.dual_bound_g <= optimum * (1 + 1e-9)  # strict lower bound with the model choice
    assert optimum * (1 - 1e-9) <= played <= optimum * 1.005  # hindsight within 0.5 % of the exact optimum
    assert set(np.unique(plan.model)) == {0, 1}  # the instance mixes models


def test_the_bound_with_the_model_choice_holds_where_the_budget_binds():
    from aolo.envs.model_reference import solve_hindsight_models

    env = tiny_env(1.0, 1500.0, 8.0, model_action=True)
    plan = solve_hindsight_models(env)
    assert (plan.power_w.sum(axis=0) <= 1.0 * (1 + 1e-9)).all()
    assert plan.dual_bound_g <= exact_optimum_models_g(env, plan) * (1 + 1e-9)
