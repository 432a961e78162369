"""Reference policies of docs/design.md §3.5: ``fixed``, ``myopic`` and the ``hindsight`` lower bound.

All three act on a :class:`~aolo.envs.cell_env.CellEnv` through its normal ``step`` (so the same physics,
rounding and budget rules apply) via ``env.action_for(kappa, power_w)``.

Structure of the per-request problem used by ``myopic`` and ``hindsight``. For a fixed power ``P`` the
carbon of an answer is affine in its length, ``C = c_0 + kappa · m(P)``, with marginal carbon per token

    m(P) = CI_dc · e_dec,eff + embodied per token + CI_cell · ((P0 - P_sleep)/U + Δp P) · bits / R(P),

and the latency limit is ``kappa ≤ k_lat(P)``. ``m`` is quasi-convex in ``P`` (affine over concave), so for
an answer of ``kappa`` tokens the best power is ``max(P*, P_lat(kappa))`` clipped to the power range, where
``P*`` minimises ``m`` and ``P_lat`` is the least power meeting the latency limit. With ``P(kappa)`` so
chosen, the day problem of one user separates over epochs once the mean-QoE constraint is dualised:
``min_kappa_t C_t(kappa_t) - λ Q_t(kappa_t)`` per epoch, with ``λ ≥ 0`` found by bisection so the user's
mean QoE meets ``Q_min``. Epochs where the users' chosen powers exceed the BS budget are re-solved
with a multiplier on ``Σ_u P_u`` (bisection, exact per-user power search on a 0.01 dB grid).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aolo.envs import channel
from aolo.envs.cell_env import CellEnv
from aolo.envs.physics import J_PER_KWH, comm_energy_j, qoe, tokens_for_qoe

REFERENCE_POLICIES = ("fixed", "myopic", "myopic_true_csi", "forecast", "hindsight")
#: references that need a shared serving site (a SiteEnv, docs/design.md §10): not run on cell-only scenarios
SITE_REFERENCE_POLICIES = ("forecast_site",)


# --- per-request building blocks ---------------------------------------------------------------------


def marginal_comm_carbon_g_per_token(env: CellEnv, power_w, gain, t) -> np.ndarray:
    """Radio carbon per answer token [g] at ``power_w`` on true channel ``gain`` at epoch ``t``."""
    sv = env.scenario.service
    rate = channel.delivery_rate_bps(
        env.bandwidth_per_user_hz, power_w, gain, env.noise_w, env.interference_w, env.scenario.radio
    )
    joules = comm_energy_j(power_w, sv.payload_bits_per_token / rate, env.num_users, env.scenario.radio)
    return joules / J_PER_KWH * env.episode.ci_cell_g_per_kwh[t]


def most_efficient_power_w(env: CellEnv, gain) -> np.ndarray:
    """``P*`` minimising radio carbon per token on channel ``gain`` in ``env``'s cell
    (:func:`aolo.envs.physics.most_efficient_power_w`)."""
    return env.efficient_power_w(gain)


def latency_power_w(env: CellEnv, kappa, prompt_tokens, gain, inference=None) -> np.ndarray:
    """Least power meeting ``T_max`` for answers of ``kappa`` tokens (``inf`` where no power can); ``inference``:
    the serving model's coefficients (default: the cell's profile; a model pool passes each answer's model's)."""
    sv = env.scenario.service
    inference = env.inference if inference is None else inference
    slack_s = sv.t_max_s - inference.latency_s(prompt_tokens, kappa)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate_needed = np.where(slack_s > 0, kappa * sv.payload_bits_per_token / slack_s, np.inf)
    return channel.power_for_rate_w(
        rate_needed, env.bandwidth_per_user_hz, gain, env.noise_w, env.interference_w, env.scenario.radio
    )


def power_for_length_w(
    env: CellEnv, kappa, p_star_w, prompt_tokens, gain, inference=None
) -> tuple[np.ndarray, np.ndarray]:
    """Best power for answers of ``kappa`` tokens and whether the latency limit is met at that power."""
    radio = env.scenario.radio
    p_min, p_max = channel.dbm_to_w(radio.p_min_dbm), channel.dbm_to_w(radio.p_max_dbm)
    p_lat = latency_power_w(env, kappa, prompt_tokens, gain, inference)
    power = np.clip(np.maximum(p_star_w, p_lat), p_min, p_max)
    return power, p_lat <= p_max * (1 + 1e-9)


def length_bounds(env: CellEnv, ref_tokens) -> tuple[np.ndarray, np.ndarray]:
    """Integer answer-length range reachable by the action space and meeting the QoE floor.

    ``qoe`` action mode: exactly the lengths of the actions a = -1 and a = +1 (:meth:`CellEnv.length_limits`),
    every length between them is reachable. ``tokens`` mode: the f-range raised to the floor's least length."""
    sv = env.scenario.service
    if sv.length_action == "qoe":
        return env.length_limits(ref_tokens)
    k_lo = np.maximum(
        np.ceil(tokens_for_qoe(sv.q_floor, ref_tokens, sv.qoe_alpha) - 1e-9),
        np.maximum(1, np.ceil(sv.f_min * ref_tokens - 1e-9)),
    )
    k_hi = np.minimum(sv.kappa_max, np.floor(sv.f_max * ref_tokens + 1e-9))
    return k_lo, np.maximum(k_hi, k_lo)


def allocate_budget(env: CellEnv, kappa, power_w, t, prompt_tokens, gain, inference=None) -> np.ndarray:
    """Powers of one epoch meeting ``Σ P ≤ P_BS`` at least carbon for fixed lengths ``kappa``.

    Bisection on the budget multiplier ``μ``: each user minimises ``kappa · m(P) + μ P`` over a 0.01 dB
    grid above its latency power. Returns ``power_w`` unchanged if it already fits.
    """
    budget = env.cell.bs_power_budget_w
    if power_w.sum() <= budget:
        return power_w
    radio = env.scenario.radio
    grid_w = channel.dbm_to_w(np.arange(radio.p_min_dbm, radio.p_max_dbm + 1e-9, 0.01))
    p_lat = latency_power_w(env, kappa, prompt_tokens, gain, inference)
    cost = kappa[:, None] * marginal_comm_carbon_g_per_token(env, grid_w[None, :], gain[:, None], t)
    cost = np.where(grid_w[None, :] >= p_lat[:, None] * (1 - 1e-9), cost, np.inf)
    if (
        not np.isfinite(cost).any(axis=1).all()
        or np.where(np.isfinite(cost), grid_w, np.inf).min(axis=1).sum() > budget
    ):
        return power_w * (budget / power_w.sum())  # latency cannot be met for all within the budget

    def powers(mu: float) -> np.ndarray:
        return grid_w[np.argmin(cost + mu * grid_w[None, :], axis=1)]

    mu_lo, mu_hi = 0.0, 1e-12
    while powers(mu_hi).sum() > budget:
        mu_hi *= 4.0
    for _ in range(60):
        mu = 0.5 * (mu_lo + mu_hi)
        mu_lo, mu_hi = (mu, mu_hi) if powers(mu).sum() > budget else (mu_lo, mu)
    return powers(mu_hi)


# --- policies ----------------------------------------------------------------------------------------


class FixedPolicy:
    """Carbon-agnostic: the reference answer length (``kappa = L_ref``) at a fixed power."""

    name = "fixed"

    def __init__(self, power_dbm: float = 33.0):
        self.power_dbm = power_dbm

    def begin_episode(self, env: CellEnv) -> None:
        pass

    def act(self, env: CellEnv, obs=None) -> dict[str, np.ndarray]:
        if env.models is not None:  # the cell's profile (else the pool's first) at its reference length (§3.7)
            from aolo.envs.model_reference import fixed_model_act

            names = env.models.names
            own = names.index(env.cell.serving_profile) if env.cell.serving_profile in names else 0
            return fixed_model_act(env, own, self.power_dbm)
        kappa = env.episode.ref_tokens[:, env.t]
        return env.action_for(kappa, np.full(env.num_users, channel.dbm_to_w(self.power_dbm)))


def estimated_gain(env: CellEnv, t: int) -> np.ndarray:
    """(U,) channel power gain a base station knows at epoch ``t``: large-scale gain × the CSI estimate
    ``|ĥ|²`` (× 1 under the ergodic-rate model, where the delivery rate averages the fading out)."""
    return env.known_gain[:, t]


class MyopicPolicy:
    """Per request: the shortest answer meeting ``Q_min``, at the power minimising radio carbon under ``T_max``.

    Causal (it sees only the current epoch) and cannot shift load in time. ``csi="estimate"`` (``myopic``)
    plans on the CSI estimate, as a real base station; ``csi="true"`` (``myopic_true_csi``) on the true channel.
    """

    name = "myopic"

    def __init__(self, csi: str = "estimate"):
        if csi not in ("estimate", "true"):
            raise ValueError(f"csi must be 'estimate' or 'true', got {csi!r}")
        self.csi = csi
        self.name = "myopic" if csi == "estimate" else "myopic_true_csi"

    def begin_episode(self, env: CellEnv) -> None:
        pass

    def act(self, env: CellEnv, obs=None) -> dict[str, np.ndarray]:
        ep, t, sv = env.episode, env.t, env.scenario.service
        ref, prompt = ep.ref_tokens[:, t], ep.prompt_tokens[:, t]
        gain = estimated_gain(env, t) if self.csi == "estimate" else ep.channel_gain[:, t]
        if env.models is not None:  # the cheapest (model, length) meeting Q_min (docs/design.md §3.7)
            from aolo.envs.model_reference import myopic_model_act

            return myopic_model_act(env, gain)
        k_lo, k_hi = length_bounds(env, ref)
        kappa = np.clip(np.ceil(tokens_for_qoe(sv.q_min, ref, sv.qoe_alpha) - 1e-9), k_lo, k_hi)
        power, _ = power_for_length_w(env, kappa, most_efficient_power_w(env, gain), prompt, gain)
        power = allocate_budget(env, kappa, power, t, prompt, gain)
        return env.action_for(kappa, power)


class ForecastPolicy:
    """The causal reference (docs/design.md §3.5): an online primal-dual controller on what the agent observes.

    Inputs at epoch ``t``: the current carbon intensities, the day-mean forecasts (``Episode.forecast_*``, the
    same — possibly noisy — numbers as the observation), the user's running QoE, the CSI estimate, the request
    sizes. Per request it plays the hindsight rule ``min_κ C(κ) − λ Q(κ)`` (power ``max(P*, P_lat(κ))`` from
    the estimated channel) with a multiplier priced against the forecast day: for ``C ≈ c_0 + κ m`` the rule
    gives ``1 − Q = m L_ref / (λ α)``, so ``λ = m̄ E[L_ref] / (α (1 − q_target))``, with ``m̄`` the marginal
    carbon per token at the forecast day-mean intensities and ``E[L_ref]`` the workload's mean, meets
    ``q_target`` on average, answers longer when carbon is below the day mean and short requests fully.
    The running deficit corrects it:
    ``λ ← λ · exp(gain · (r − q_target))`` with ``r = (T q_target − Σ Q) / (T − t)`` the mean QoE the rest of
    the day needs. ``q_target = q_min + margin``.
    """

    name = "forecast"

    def __init__(self, margin: float = 0.006, gain: float = 60.0):
        self.margin, self.gain = margin, gain
        self._qoe_sum: np.ndarray | None = None

    def begin_episode(self, env: CellEnv) -> None:
        self._qoe_sum = np.zeros(env.num_users)

    def _mean_ref_tokens(self, env: CellEnv) -> float:
        """Mean reference length of the service's workload (its known distribution, not this day's draws):
        one λ per user prices every request alike, so short answers buy QoE cheaply, as in hindsight."""
        if getattr(self, "_mean_ref_for", None) is not env.workload:
            _, ref = env.workload.sample(np.random.default_rng(0), 20_000)
            self._mean_ref, self._mean_ref_for = float(np.mean(ref)), env.workload
        return self._mean_ref

    def _request_outcomes(self, env: CellEnv, kappa, power_w, prompt, gain, ci_dc, ci_cell):
        return env.request_outcomes(
            kappa,
            power_w,
            prompt_tokens=prompt,
            ref_tokens=1.0,
            channel_gain=gain,
            ci_dc_g_per_kwh=ci_dc,
            ci_cell_g_per_kwh=ci_cell,
        )

    def act(self, env: CellEnv, obs=None) -> dict[str, np.ndarray]:
        ep, t, sv, T = env.episode, env.t, env.scenario.service, env.scenario.epochs_per_episode
        if t == 0 or self._qoe_sum is None:
            self.begin_episode(env)
        elif hasattr(env, "_qoe_sum"):
            self._qoe_sum = np.asarray(env._qoe_sum, dtype=np.float64).copy()  # the running QoE it observes
        ref, prompt, gain = ep.ref_tokens[:, t], ep.prompt_tokens[:, t], estimated_gain(env, t)
        ci_dc, ci_cell = float(ep.ci_dc_g_per_kwh[t]), float(ep.ci_cell_g_per_kwh[t])
        dc_mean, cell_mean = float(ep.forecast_dc_g_per_kwh[t, 2]), float(ep.forecast_cell_g_per_kwh[t, 2])
        q_target = min(sv.q_min + self.margin, 0.5 * (sv.q_min + sv.q_max_effective))
        if env.models is not None:  # the same rule over the joint (model, length) choice (docs/design.md §3.7)
            from aolo.envs.model_reference import forecast_model_act

            return forecast_model_act(self, env, q_target)

        k_lo, k_hi = length_bounds(env, ref)
        span = int((k_hi - k_lo).max()) + 1
        kappa = k_lo[:, None] + np.arange(span)  # (U, K)
        valid = kappa <= k_hi[:, None]
        p_star = most_efficient_power_w(env, gain)
        power, lat_ok = power_for_length_w(env, kappa, p_star[:, None], prompt[:, None], gain[:, None])
        out = self._request_outcomes(env, kappa, power, prompt[:, None], gain[:, None], ci_dc, ci_cell)
        # marginal carbon per token at the forecast day-mean intensities (inference part ∝ CI_dc, radio ∝ CI_cell)
        k_mid = np.maximum(k_lo, 2.0)
        p_mid, _ = power_for_length_w(env, k_mid, p_star, prompt, gain)
        parts = [self._request_outcomes(env, k, p_mid, prompt, gain, ci_dc, ci_cell) for k in (k_mid - 1.0, k_mid)]
        m_bar = (
            (parts[1].carbon_inference_g - parts[0].carbon_inference_g) * dc_mean / max(ci_dc, 1e-9)
            + (parts[1].carbon_embodied_g - parts[0].carbon_embodied_g)
            + (parts[1].carbon_comm_g - parts[0].carbon_comm_g) * cell_mean / max(ci_cell, 1e-9)
        )
        lam = np.maximum(m_bar, 1e-30) * self._mean_ref_tokens(env) / (sv.qoe_alpha * (1.0 - q_target))
        if t > 0:
            needed = (T * q_target - self._qoe_sum) / (T - t)
            lam = lam * np.exp(np.clip(self.gain * (needed - q_target), -20.0, 20.0))
        cost = out.carbon_total_g - lam[:, None] * qoe(kappa, ref[:, None], sv.qoe_alpha)
        cost = np.where(valid & lat_ok, cost, np.inf)
        best = np.argmin(
            np.where(np.isfinite(cost).any(axis=1, keepdims=True), cost, np.where(valid, kappa, np.inf)), axis=1
        )  # no length meets latency: the shortest
        kappa_t = np.take_along_axis(kappa, best[:, None], axis=1)[:, 0].astype(np.float64)
        power_t = np.take_along_axis(np.broadcast_to(power, kappa.shape), best[:, None], axis=1)[:, 0]
        power_t = allocate_budget(env, kappa_t, power_t, t, prompt, gain)
        return env.action_for(kappa_t, power_t)


@dataclass
class HindsightPlan:
    kappa: np.ndarray  #: (U, T) played answer lengths
    power_w: np.ndarray  #: (U, T) played powers (Σ_u ≤ the BS budget in every epoch)
    carbon_g: np.ndarray  #: (U, T) carbon of the played plan
    qoe: np.ndarray  #: (U, T)
    multiplier: np.ndarray  #: (U,) λ of each user's mean-QoE constraint
    dual_bound_g: float  #: strict Lagrangian lower bound on Σ carbon over every feasible plan
    feasible: np.ndarray  #: (U,) whether the PLAYED plan meets the user's mean-QoE and latency constraints
    repaired_epochs: int = 0  #: epochs whose lengths and powers were re-optimised jointly (repair (b) played)
    model: np.ndarray | None = None  #: (U, T) model index of each answer (model pool only)


def solve_hindsight(env: CellEnv, bisection_steps: int = 60, budget_grid_db: float = 0.05) -> HindsightPlan:
    """The hindsight plan for the env's current episode (all carbon, channels, requests known) and its bound.

    1. Budget relaxed: per user, bisection on λ of ``min Σ_t C_t(κ_t) − λ Q_t(κ_t)`` over the reachable integer
       lengths, each at its exact best power ``max(P*, P_lat(κ))``. Its dual value
       ``Σ_u [Σ_t min_κ (C − λ_u Q) + λ_u T Q_min]`` is a strict lower bound on every plan that meets the
       constraints (weak duality; relaxing the BS budget only lowers it): ``dual_bound_g``.
    2. Where this plan's powers exceed the BS budget, two repairs are built and the better one that meets the
       constraints is played: (a) the relaxed lengths kept, powers re-allocated under the budget and the
       latency limit (:func:`allocate_budget`, 0.01 dB grid); (b) lengths AND powers re-optimised jointly —
       with a budget multiplier μ_t each user picks ``(κ, P)`` minimising ``C − λ_u Q + μ_t P`` over its
       lengths and a ``budget_grid_db`` power grid, μ_t bisected so the epoch fits, then the λ bisection
       re-run with these epochs' costs (up to 4 rounds), (a)'s power step for what still exceeds.
       Checked against an exact MILP in the tests: within 0.2 % of the optimum in default cells and within
       1 % in a cell whose budget binds in every epoch.
    ``feasible`` is measured on the played plan (the old code measured it before the repair).
    """
    ep, sv, T = env.episode, env.scenario.service, env.scenario.epochs_per_episode
    ref, prompt, gain = ep.ref_tokens, ep.prompt_tokens, ep.channel_gain  # (U, T)
    k_lo, k_hi = length_bounds(env, ref)
    span = int((k_hi - k_lo).max()) + 1
    kappa = k_lo[..., None] + np.arange(span)  # (U, T, K) candidate lengths
    valid = kappa <= k_hi[..., None]
    p_star = np.stack([most_efficient_power_w(env, gain[:, t]) for t in range(T)], axis=1)  # (U, T)
    power, latency_ok = power_for_length_w(env, kappa, p_star[..., None], prompt[..., None], gain[..., None])
    carbon = _carbon_g(env, kappa, power, prompt[..., None], gain[..., None])
    feasible_k = valid & latency_ok
    # if no length meets the latency limit, keep the shortest answer at full power (it will be a violation)
    nothing = ~feasible_k.any(axis=2)
    feasible_k[..., 0] |= nothing
    carbon = np.where(feasible_k, carbon, np.inf)
    q = qoe(kappa, ref[..., None], sv.qoe_alpha)

    lam, idx = _bisect_multipliers(carbon, q, sv.q_min, bisection_steps)
    lagrangian = (carbon - lam[:, None, None] * q).min(axis=2).sum(axis=1) + lam * T * sv.q_min
    dual_bound = float(np.where(np.isfinite(lagrangian), lagrangian, 0.0).sum())

    # 2. the epochs where the budget binds: two repairs, the better feasible one is played
    budget = env.cell.bs_power_budget_w
    pick = lambda a, i: np.take_along_axis(a, i[..., None], axis=2)[..., 0]  # noqa: E731

    def fit_budget(plan_kappa, plan_power):  # lengths kept, latency-feasible powers on a 0.01 dB grid
        plan_power = plan_power.copy()
        for t in np.flatnonzero(plan_power.sum(axis=0) > budget * (1 + 1e-9)):
            plan_power[:, t] = allocate_budget(env, plan_kappa[:, t], plan_power[:, t], t, prompt[:, t], gain[:, t])
        return plan_kappa, plan_power

    candidates = [fit_budget(pick(kappa, idx).astype(np.float64), pick(np.broadcast_to(power, kappa.shape), idx))]
    carbon_played, power_played = carbon.copy(), np.broadcast_to(power, carbon.shape).copy()
    lam_joint, idx_joint, repaired = lam, idx, set()
    for _ in range(4):
        binding = np.flatnonzero(pick(power_played, idx_joint).sum(axis=0) > budget * (1 + 1e-9))
        if len(binding) == 0:
            break
        for t in binding:
            carbon_played[:, t], power_played[:, t] = _budget_epoch(
                env, t, lam_joint, kappa[:, t], feasible_k[:, t], q[:, t], budget_grid_db
            )
            repaired.add(int(t))
        lam_joint, idx_joint = _bisect_multipliers(carbon_played, q, sv.q_min, bisection_steps)
    if repaired:
        candidates.append(fit_budget(pick(kappa, idx_joint).astype(np.float64), pick(power_played, idx_joint)))

    def score(candidate):
        plan_kappa, plan_power = candidate
        out = _outcomes(env, plan_kappa, plan_power, prompt, gain)
        plan_q = qoe(plan_kappa, ref, sv.qoe_alpha)
        feasible = (plan_q.mean(axis=1) >= sv.q_min - 1e-9) & (out.latency_s <= sv.t_max_s * (1 + 1e-9)).all(axis=1)
        return (-int(feasible.sum()), float(out.carbon_total_g.sum())), out, plan_q, feasible

    scores = [score(c) for c in candidates]
    best = min(range(len(candidates)), key=lambda i: scores[i][0])
    (_, out, plan_q, feasible), (plan_kappa, plan_power) = scores[best], candidates[best]
    return HindsightPlan(
        kappa=plan_kappa,
        power_w=plan_power,
        carbon_g=out.carbon_total_g,
        qoe=plan_q,
        multiplier=(lam, lam_joint)[best],
        dual_bound_g=dual_bound,
        feasible=feasible,
        repaired_epochs=len(repaired) if best == 1 else 0,
    )


def _bisect_multipliers(carbon, q, q_min: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Per user the least λ ≥ 0 whose per-epoch choices ``argmin_κ C − λ Q`` meet mean QoE ≥ ``q_min``."""
    n = carbon.shape[0]

    def choose(lam: np.ndarray) -> np.ndarray:
        return np.argmin(carbon - lam[:, None, None] * q, axis=2)  # (U, T)

    def mean_q(idx: np.ndarray) -> np.ndarray:
        return np.take_along_axis(q, idx[..., None], axis=2)[..., 0].mean(axis=1)

    lam_lo, lam_hi = np.zeros(n), np.full(n, 1e-6)
    for _ in range(200):  # grow the upper bracket until every user meets Q_min (or cannot)
        short = mean_q(choose(lam_hi)) < q_min
        if not short.any() or lam_hi.max() > 1e6:
            break
        lam_hi = np.where(short, lam_hi * 4.0, lam_hi)
    lam_lo = np.where(mean_q(choose(lam_lo)) >= q_min, lam_hi, lam_lo)
    for _ in range(steps):
        lam = 0.5 * (lam_lo + lam_hi)
        ok = mean_q(choose(lam)) >= q_min
        lam_hi = np.where(ok, lam, lam_hi)
        lam_lo = np.where(ok, lam_lo, lam)
    lam_hi = np.where(mean_q(choose(np.zeros(n))) >= q_min, 0.0, lam_hi)
    return lam_hi, choose(lam_hi)


def _budget_epoch(env: CellEnv, t: int, lam, kappa, allowed, q, grid_db: float):
    """Carbon and power of every candidate length of epoch ``t`` when the users share the BS budget.

    Each user's candidate ``(κ, P)`` pairs: its lengths × a ``grid_db`` power grid, latency-feasible only.
    μ ≥ 0 is bisected so the users' choices ``argmin C − λ_u Q + μ P`` fit the budget; returned per length is
    the carbon and power of the best power at that μ (what the λ bisection then chooses from).
    """
    ep, sv, radio = env.episode, env.scenario.service, env.scenario.radio
    grid_w = channel.dbm_to_w(np.arange(radio.p_min_dbm, radio.p_max_dbm + 1e-9, grid_db))  # (G,)
    out = env.request_outcomes(
        kappa[:, :, None],
        grid_w,
        prompt_tokens=ep.prompt_tokens[:, t, None, None],
        ref_tokens=1.0,
        channel_gain=ep.channel_gain[:, t, None, None],
        ci_dc_g_per_kwh=ep.ci_dc_g_per_kwh[t],
        ci_cell_g_per_kwh=ep.ci_cell_g_per_kwh[t],
    )  # (U, K, G)
    ok = allowed[:, :, None] & (out.latency_s <= sv.t_max_s)
    carbon = np.where(ok, out.carbon_total_g, np.inf)  # (U, K, G)
    objective = carbon - lam[:, None, None] * q[:, :, None]

    def choice(mu: float):
        flat = (objective + mu * grid_w).reshape(len(lam), -1)
        best = np.argmin(flat, axis=1)
        return best // len(grid_w), best % len(grid_w)

    budget = env.cell.bs_power_budget_w
    mu_lo, mu_hi = 0.0, 1e-9
    while grid_w[choice(mu_hi)[1]].sum() > budget and mu_hi < 1e6:
        mu_hi *= 4.0
    for _ in range(50):
        mu = 0.5 * (mu_lo + mu_hi)
        mu_lo, mu_hi = (mu, mu_hi) if grid_w[choice(mu)[1]].sum() > budget else (mu_lo, mu)
    g_best = np.argmin(carbon + mu_hi * grid_w, axis=2)  # (U, K): best power of each length at μ
    carbon_k = np.take_along_axis(carbon, g_best[..., None], axis=2)[..., 0]
    return carbon_k, grid_w[g_best]


def _outcomes(env: CellEnv, kappa, power_w, prompt_tokens, gain):
    """Outcomes of answers over the whole episode (broadcasts over a trailing candidate axis)."""
    ep = env.episode
    shape = (1, env.scenario.epochs_per_episode) + (1,) * (np.ndim(kappa) - 2)
    return env.request_outcomes(
        kappa,
        power_w,
        prompt_tokens=prompt_tokens,
        ref_tokens=1.0,
        channel_gain=gain,
        ci_dc_g_per_kwh=ep.ci_dc_g_per_kwh.reshape(shape),
        ci_cell_g_per_kwh=ep.ci_cell_g_per_kwh.reshape(shape),
    )


def _carbon_g(env: CellEnv, kappa, power_w, prompt_tokens, gain) -> np.ndarray:
    """Total carbon [g] of answers over the whole episode (broadcasts over a trailing candidate axis)."""
    return _outcomes(env, kappa, power_w, prompt_tokens, gain).carbon_total_g


class HindsightPolicy:
    """Replays :func:`solve_hindsight`'s plan: the lower bound no causal policy can beat."""

    name = "hindsight"

    def __init__(self) -> None:
        self.plan: HindsightPlan | None = None

    def begin_episode(self, env: CellEnv) -> None:
        if env.models is not None:  # over both models and all lengths (docs/design.md §3.7)
            from aolo.envs.model_reference import solve_hindsight_models

            self.plan = solve_hindsight_models(env)
        else:
            self.plan = solve_hindsight(env)

    def act(self, env: CellEnv, obs=None) -> dict[str, np.ndarray]:
        if env.models is not None:
            return env.action_for(self.plan.kappa[:, env.t], self.plan.power_w[:, env.t], self.plan.model[:, env.t])
        return env.action_for(self.plan.kappa[:, env.t], self.plan.power_w[:, env.t])


def _forecast_site():  # aolo.envs.site_reference builds on this module: imported on demand
    from aolo.envs.site_reference import ForecastSitePolicy

    return ForecastSitePolicy()


def _fixed_large():  # model pool only (docs/design.md §3.7); aolo.envs.model_reference builds on this module
    from aolo.envs.model_reference import FixedLargePolicy

    return FixedLargePolicy()


def make_reference_policy(name: str):
    """A fresh reference policy by name: the cell references, ``forecast_site`` (shared sites only) and
    ``fixed_large`` (model pools only)."""
    policies = {
        "fixed": FixedPolicy,
        "myopic": MyopicPolicy,
        "myopic_true_csi": lambda: MyopicPolicy(csi="true"),
        "forecast": ForecastPolicy,
        "hindsight": HindsightPolicy,
        "forecast_site": _forecast_site,
        "fixed_large": _fixed_large,
    }
    try:
        return policies[name]()
    except KeyError:
        raise ValueError(f"unknown reference policy {name!r}; allowed: {list(policies)}") from None
