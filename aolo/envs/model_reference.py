"""The reference policies and the hindsight bound over the joint (model, length) choice (docs/design.md §3.7).

Used by :mod:`aolo.envs.reference` when the cell's datacenter has a model pool (``service.model_action``): every
candidate answer is a (model, length) pair, each at its exact best power ``max(P*, P_lat)`` where the latency
limit uses its model's ITL, scored by :meth:`CellEnv.request_outcomes` with the model's energy, embodied share
and QoE curve. The single-model rules carry over with the model as one more candidate axis:

- ``myopic``: per request the cheapest (model, least length meeting ``Q_min``) pair; a model whose best answer
  stays below ``Q_min`` is not a candidate.
- ``forecast``: ``min C − λ Q`` over all pairs, λ priced on the forecast day for the best-rated model.
- ``hindsight``: the per-user λ bisection of :func:`aolo.envs.reference.solve_hindsight` over all pairs; its
  dual value is the strict lower bound (weak duality holds for any finite candidate set).
- ``fixed`` / ``fixed_large``: carbon-agnostic, the model's own reference length at 33 dBm on the cell's profile /
  on the best-rated model (what a carbon-agnostic service does).
"""

from __future__ import annotations

import numpy as np

from aolo.envs import channel
from aolo.envs.cell_env import CellEnv
from aolo.envs.reference import (
    HindsightPlan,
    _bisect_multipliers,
    allocate_budget,
    estimated_gain,
    most_efficient_power_w,
    power_for_length_w,
)

#: reference policies that exist only with a model pool
MODEL_REFERENCE_POLICIES = ("fixed_large",)


def fixed_model_act(env: CellEnv, model: int, power_dbm: float) -> dict[str, np.ndarray]:
    """Every answer on model ``model`` at that model's reference length ``ρ_m L_ref``, at ``power_dbm``."""
    models = np.full(env.num_users, model)
    kappa = np.rint(env.models.model_ref_tokens(env.episode.ref_tokens[:, env.t], models))
    return env.action_for(kappa, np.full(env.num_users, channel.dbm_to_w(power_dbm)), models)


class FixedLargePolicy:
    """Carbon-agnostic service: always the pool's best-rated model (70B by default) at its reference length."""

    name = "fixed_large"

    def __init__(self, power_dbm: float = 33.0):
        self.power_dbm = power_dbm

    def begin_episode(self, env: CellEnv) -> None:
        if env.models is None:
            raise ValueError("the fixed_large reference needs a model pool: set service.model_action: true")

    def act(self, env: CellEnv, obs=None) -> dict[str, np.ndarray]:
        return fixed_model_act(env, env.models.best, self.power_dbm)


def _candidates(env: CellEnv, ref, prompt, gain, p_star):
    """Every (model, length) candidate of requests shaped like ``ref``: arrays ``(..., M, K)`` of lengths, model
    indices, powers, whether the length is reachable and whether its latency is met at that power."""
    pool = env.models
    model = np.arange(pool.size)
    lo, hi = pool.length_limits(ref[..., None], model)  # (..., M)
    span = int((hi - lo).max()) + 1
    kappa = lo[..., None] + np.arange(span)  # (..., M, K)
    model = np.broadcast_to(model[:, None], kappa.shape[-2:])
    valid = kappa <= hi[..., None]
    power, latency_ok = power_for_length_w(
        env, kappa, p_star[..., None, None], prompt[..., None, None], gain[..., None, None], pool.coefficients(model)
    )
    return kappa, model, np.broadcast_to(power, kappa.shape), valid, latency_ok


def _scored(env, kappa, power, model, ref, prompt, gain, ci_dc, ci_cell):
    return env.request_outcomes(
        kappa,
        power,
        prompt_tokens=prompt,
        ref_tokens=ref,
        channel_gain=gain,
        ci_dc_g_per_kwh=ci_dc,
        ci_cell_g_per_kwh=ci_cell,
        model=model,
    )


def _play(env: CellEnv, kappa, power, model, t: int, prompt, gain) -> dict[str, np.ndarray]:
    """The action of the chosen (model, length, power) per user, its powers fitted to the BS budget."""
    power = allocate_budget(env, kappa, power, t, prompt, gain, env.models.coefficients(model))
    return env.action_for(kappa, power, model)


def myopic_model_act(env: CellEnv, gain) -> dict[str, np.ndarray]:
    """Per request the cheapest (model, length) pair meeting ``Q_min``, each model at its least such length (a
    model that cannot reach ``Q_min`` only where none can: then the best-rated model's top answer)."""
    ep, t, sv, pool = env.episode, env.t, env.scenario.service, env.models
    ref, prompt = ep.ref_tokens[:, t], ep.prompt_tokens[:, t]
    p_star = most_efficient_power_w(env, gain)
    kappa, power, carbon, score = [], [], [], []
    for m in range(pool.size):
        model = np.full(env.num_users, m)
        lo, hi = pool.length_limits(ref, model)
        k = np.clip(pool.least_length(min(sv.q_min, pool.q_top[m]), ref, model), lo, hi)
        p, latency_ok = power_for_length_w(env, k, p_star, prompt, gain, pool.coefficients(model))
        out = _scored(env, k, p, model, ref, prompt, gain, ep.ci_dc_g_per_kwh[t], ep.ci_cell_g_per_kwh[t])
        meets = (out.qoe >= sv.q_min) & latency_ok
        kappa.append(k)
        power.append(p)
        carbon.append(out.carbon_total_g)
        score.append(np.where(meets, out.carbon_total_g, np.inf))
    score = np.stack(score, axis=1)
    best = np.where(np.isfinite(score).any(axis=1), np.argmin(score, axis=1), pool.best)
    pick = lambda a: np.stack(a, axis=1)[np.arange(env.num_users), best]  # noqa: E731
    return _play(env, pick(kappa), pick(power), best, t, prompt, gain)


def forecast_model_act(policy, env: CellEnv, q_target: float) -> dict[str, np.ndarray]:
    """:class:`~aolo.envs.reference.ForecastPolicy`'s rule over (model, length) pairs. λ is priced for the
    best-rated model ``b``: with ``Q_b = c_b (1 − e^{−α κ / (ρ_b L)})`` the rule gives ``c_b − Q = m ρ_b L / (λ α)``,
    so ``λ = m̄_b ρ_b E[L_ref] / (α (c_b − q_target))``; the running-deficit correction is the single model's."""
    ep, t, sv, pool, T = env.episode, env.t, env.scenario.service, env.models, env.scenario.epochs_per_episode
    ref, prompt, gain = ep.ref_tokens[:, t], ep.prompt_tokens[:, t], estimated_gain(env, t)
    ci_dc, ci_cell = float(ep.ci_dc_g_per_kwh[t]), float(ep.ci_cell_g_per_kwh[t])
    dc_mean, cell_mean = float(ep.forecast_dc_g_per_kwh[t, 2]), float(ep.forecast_cell_g_per_kwh[t, 2])
    p_star = most_efficient_power_w(env, gain)
    kappa, model, power, valid, latency_ok = _candidates(env, ref, prompt, gain, p_star)
    out = _scored(
        env, kappa, power, model, ref[:, None, None], prompt[:, None, None], gain[:, None, None], ci_dc, ci_cell
    )

    b = pool.best
    best = np.full(env.num_users, b)
    k_mid = np.maximum(pool.length_limits(ref, best)[0], 2.0)
    p_mid, _ = power_for_length_w(env, k_mid, p_star, prompt, gain, pool.coefficients(best))
    parts = [_scored(env, k, p_mid, best, ref, prompt, gain, ci_dc, ci_cell) for k in (k_mid - 1.0, k_mid)]
    m_bar = (
        (parts[1].carbon_inference_g - parts[0].carbon_inference_g) * dc_mean / max(ci_dc, 1e-9)
        + (parts[1].carbon_embodied_g - parts[0].carbon_embodied_g)
        + (parts[1].carbon_comm_g - parts[0].carbon_comm_g) * cell_mean / max(ci_cell, 1e-9)
    )
    mean_ref = policy._mean_ref_tokens(env) * pool.length_ratio[b]
    lam = np.maximum(m_bar, 1e-30) * mean_ref / (sv.qoe_alpha * (pool.ceiling[b] - q_target))
    if t > 0:
        needed = (T * q_target - policy._qoe_sum) / (T - t)
        lam = lam * np.exp(np.clip(policy.gain * (needed - q_target), -20.0, 20.0))

    flat = lambda a: np.broadcast_to(a, kappa.shape).reshape(env.num_users, -1)  # noqa: E731
    cost = flat(np.where(valid & latency_ok, out.carbon_total_g - lam[:, None, None] * out.qoe, np.inf))
    shortest = flat(np.where(valid, -kappa, np.inf))  # no pair meets latency: the shortest answer
    choice = np.argmin(np.where(np.isfinite(cost).any(axis=1, keepdims=True), cost, shortest), axis=1)
    pick = lambda a: np.take_along_axis(flat(a), choice[:, None], axis=1)[:, 0]  # noqa: E731
    return _play(env, pick(kappa).astype(np.float64), pick(power), pick(model), t, prompt, gain)


def _guard_line(env: CellEnv) -> np.ndarray:
    """(T,) the least running QoE sum after each epoch that the pool's mean-QoE guard leaves alone:
    ``T Q_min − (T − t − 1) g`` with ``g`` the guard's planned answer (:meth:`CellEnv.pool_mean_qoe_guard`); a
    plan whose running sum stays on or above it is played as planned. The last entry is the day's rule ``T Q_min``;
    without the guard only that one binds. The others carry a 1e-9 margin against the env's running-sum rounding."""
    sv, T = env.scenario.service, env.scenario.epochs_per_episode
    line = np.full(T, -np.inf)
    if sv.mean_qoe_guard:
        line[:-1] = T * sv.q_min - (T - 1 - np.arange(T - 1)) * float(env.models.q_guard.max()) + 1e-9
    line[-1] = T * sv.q_min
    return line


def _per_user_greedy(carbon, q, idx, move, max_rounds: int) -> np.ndarray:
    """Per user, replace the plan ``idx[u]`` by ``move(carbon[u], q[u], idx[u])`` until it returns None."""
    idx = idx.copy()
    for u in range(carbon.shape[0]):
        for _ in range(max_rounds):
            better = move(carbon[u], q[u], idx[u])
            if better is None:
                break
            idx[u] = better
    return idx


def _keep_ahead_of_guard(carbon, q, idx, line, max_rounds: int = 500) -> np.ndarray:
    """Per user, raise answers until the plan's running QoE sum stays on or above ``line`` (:func:`_guard_line`):
    at the first epoch below it, the raise at or before it that costs the least carbon per unit of the QoE still
    missing there. The λ plan catches up late where the grid is clean, sometimes with answers above the guard's
    planned ``g``; raising earlier answers is what the guard would do, done where it costs least."""
    rows = np.arange(carbon.shape[1])

    def raise_one(c, qq, plan):
        now_c, now_q = c[rows, plan], qq[rows, plan]
        behind = np.flatnonzero(np.cumsum(now_q) < line)
        if behind.size == 0:
            return None
        t0 = int(behind[0])
        missing = line[t0] - now_q[: t0 + 1].sum()
        gain = qq[: t0 + 1] - now_q[: t0 + 1, None]
        extra = c[: t0 + 1] - now_c[: t0 + 1, None]
        raise_ok = (gain > 0.0) & np.isfinite(c[: t0 + 1])
        if not raise_ok.any():
            return None
        covered = np.where(raise_ok, np.minimum(gain, missing), 1.0)
        t, j = divmod(int(np.argmin(np.where(raise_ok, np.maximum(extra, 0.0) / covered, np.inf))), c.shape[1])
        return _with(plan, (t, j))

    return _per_user_greedy(carbon, q, idx, raise_one, max_rounds)


def _spend_slack(carbon, q, idx, line, max_rounds: int = 200) -> np.ndarray:
    """Greedy primal polish of a plan meeting the mean-QoE rule, per user, until neither move lowers its carbon:
    (1) move one answer to the candidate of its epoch that saves the most carbon without spending more QoE than
    the surplus of the running sum over ``line`` (:func:`_guard_line`) at that epoch and after; (2) raise one
    answer and lower another in a different epoch with the surplus that buys, where the pair saves carbon and
    keeps the running sum on the line. Every move keeps the plan feasible and lowers its carbon."""
    rows = np.arange(carbon.shape[1])

    def lower(c, qq, plan):
        now_c, now_q = c[rows, plan], qq[rows, plan]
        surplus = np.cumsum(now_q) - line
        from_here = np.minimum.accumulate(surplus[::-1])[::-1]  # the least surplus at each epoch and after
        saving = now_c[:, None] - c  # (T, C): carbon saved by moving epoch t to candidate j
        spend = now_q[:, None] - qq  # QoE given up by that move
        down = (saving > 0.0) & (spend <= from_here[:, None]) & np.isfinite(c)
        if down.any():
            return _with(plan, divmod(int(np.argmax(np.where(down, saving, -np.inf))), c.shape[1]))
        pair = _best_exchange(saving, spend, float(surplus[-1]), np.isfinite(c))
        if pair is None:
            return None
        trial = _with(plan, *pair)
        return None if (np.cumsum(qq[rows, trial]) < line).any() else trial  # not behind the guard's line

    return _per_user_greedy(carbon, q, idx, lower, max_rounds)


def _with(plan: np.ndarray, *moves: tuple[int, int]) -> np.ndarray:
    """A copy of ``plan`` with epoch ``t`` on candidate ``j`` for every ``(t, j)`` of ``moves``."""
    plan = plan.copy()
    for t, j in moves:
        plan[t] = j
    return plan


def _best_exchange(saving, spend, slack: float, allowed):
    """The pair (raise epoch a, lower epoch b ≠ a) saving the most carbon while the QoE surplus stays ≥ 0, or None.

    Down moves are sorted by the QoE they spend; a running maximum of their saving answers "the best down move
    spending at most s" for every up move's new surplus ``s`` at once (a best down move in the up move's own
    epoch is skipped, not replaced by the runner-up: the search may miss a pair, never plays a wrong one)."""
    T, C = saving.shape
    down = allowed & (saving > 0.0)
    up = allowed & (spend < 0.0)  # raises QoE (and costs carbon: a free raise would have been a down move)
    if not down.any() or not up.any():
        return None
    d_flat = np.flatnonzero(down)
    order = np.argsort(spend.ravel()[d_flat], kind="stable")
    d_flat = d_flat[order]
    d_spend, d_saving = spend.ravel()[d_flat], saving.ravel()[d_flat]
    best_pos = np.maximum.accumulate(np.where(d_saving == np.maximum.accumulate(d_saving), np.arange(len(d_flat)), 0))
    u_flat = np.flatnonzero(up)
    budget = slack - spend.ravel()[u_flat]  # the surplus after the up move (spend < 0 adds to it)
    pos = np.searchsorted(d_spend, budget, side="right") - 1
    ok = pos >= 0
    u_flat, pos = u_flat[ok], pos[ok]
    partner = d_flat[best_pos[pos]]
    gain = saving.ravel()[u_flat] + saving.ravel()[partner]  # up-move saving is negative (its extra carbon)
    gain = np.where(partner // C != u_flat // C, gain, -np.inf)
    if len(gain) == 0 or not gain.max() > 0.0:
        return None
    i = int(np.argmax(gain))
    return divmod(int(u_flat[i]), C), divmod(int(partner[i]), C)


def solve_hindsight_models(env: CellEnv, bisection_steps: int = 60) -> HindsightPlan:
    """The hindsight plan and its strict Lagrangian bound over both models and all lengths.

    Per user, bisection on the multiplier λ of ``min Σ_t C_t − λ Q_t`` over every (model, length) pair of every
    epoch, each at its exact best power; the dual value ``Σ_u [Σ_t min (C − λ_u Q) + λ_u T Q_min]`` bounds every
    plan meeting the constraints from below (relaxing the BS budget only lowers it). Where the chosen powers
    exceed the BS budget they are re-allocated with the lengths and models kept (repair (a) of
    :func:`~aolo.envs.reference.solve_hindsight`; its joint repair (b) is not extended to the model choice).
    The played plan keeps its running QoE on or above the mean-QoE guard's line, so the guard never rewrites it:
    :func:`_keep_ahead_of_guard` raises early answers where the λ plan would catch up late with answers above the
    guard's planned ``g``. The two models make each epoch's choice lumpy, so the plan overshoots ``Q_min``;
    :func:`_spend_slack` then trades that surplus for carbon, staying on the line.
    """
    ep, sv, T, pool, n = env.episode, env.scenario.service, env.scenario.epochs_per_episode, env.models, env.num_users
    ref, prompt, gain = ep.ref_tokens, ep.prompt_tokens, ep.channel_gain  # (U, T)
    p_star = np.stack([most_efficient_power_w(env, gain[:, t]) for t in range(T)], axis=1)
    kappa, model, power, valid, latency_ok = _candidates(env, ref, prompt, gain, p_star)
    out = _scored(
        env,
        kappa,
        power,
        model,
        ref[..., None, None],
        prompt[..., None, None],
        gain[..., None, None],
        ep.ci_dc_g_per_kwh.reshape(1, T, 1, 1),
        ep.ci_cell_g_per_kwh.reshape(1, T, 1, 1),
    )
    flat = lambda a: np.broadcast_to(a, kappa.shape).reshape(n, T, -1)  # noqa: E731
    feasible = flat(valid & latency_ok).copy()
    feasible[..., 0] |= ~feasible.any(axis=2)  # nothing meets latency: the shortest answer (a violation)
    carbon = np.where(feasible, flat(out.carbon_total_g), np.inf)
    q = flat(out.qoe)

    lam, idx = _bisect_multipliers(carbon, q, sv.q_min, bisection_steps)
    lagrangian = (carbon - lam[:, None, None] * q).min(axis=2).sum(axis=1) + lam * T * sv.q_min
    dual_bound = float(np.where(np.isfinite(lagrangian), lagrangian, 0.0).sum())

    line = _guard_line(env)
    idx = _spend_slack(carbon, q, _keep_ahead_of_guard(carbon, q, idx, line), line)
    pick = lambda a: np.take_along_axis(flat(a), idx[..., None], axis=2)[..., 0]  # noqa: E731
    plan_kappa, plan_model, plan_power = pick(kappa).astype(np.float64), pick(model), pick(power).copy()
    for t in np.flatnonzero(plan_power.sum(axis=0) > env.cell.bs_power_budget_w * (1 + 1e-9)):
        plan_power[:, t] = allocate_budget(
            env, plan_kappa[:, t], plan_power[:, t], t, prompt[:, t], gain[:, t], pool.coefficients(plan_model[:, t])
        )
    played = _scored(
        env,
        plan_kappa,
        plan_power,
        plan_model,
        ref,
        prompt,
        gain,
        ep.ci_dc_g_per_kwh.reshape(1, T),
        ep.ci_cell_g_per_kwh.reshape(1, T),
    )
    ok = (played.qoe.mean(axis=1) >= sv.q_min - 1e-9) & (played.latency_s <= sv.t_max_s * (1 + 1e-9)).all(axis=1)
    return HindsightPlan(
        kappa=plan_kappa,
        power_w=plan_power,
        carbon_g=played.carbon_total_g,
        qoe=played.qoe,
        multiplier=lam,
        dual_bound_g=dual_bound,
        feasible=ok,
        model=plan_model,
    )
