"""References and the strict lower bound for cells that share a serving site (docs/design.md, "Shared sites:
the references and the strict lower bound"; the site model is §10, :mod:`aolo.envs.site`).

One site, one day, as a :class:`SiteProblem`: every agent (user group) ``u`` picks at each epoch ``t`` one
answer length ``k``; its radio power follows from the airtime the epoch leaves it (:class:`RadioModel`). The
site couples the agents through its decode load ``A_t = Σ_u load[u, t, k]``: with the background and the
backlog carried in it sets the replicas' batch, hence every token's carbon (energy per token and embodied
share fall with the batch) and inter-token latency (rises with it), and the queue's wait. The agents' carbon
is the site's energy attributed in proportion to tokens; each request must meet ``T_max``, each agent's day
the mean-QoE rule. :func:`score_site_plan` scores a plan exactly, with the env's own physics.

- :func:`site_dual_bound`: a Lagrangian lower bound valid with the coupling on — a monotone relaxation over
  load levels (no convexity needed), the QoE rules and the level links dualised with their own multipliers.
- :func:`solve_site_hindsight` / :class:`SiteHindsightPolicy`: the joint plan with everything known: dual
  decomposition, then exact block moves per agent; played through ``SiteEnv.step``.
- :class:`ForecastSitePolicy` (``forecast_site``): the causal reference — each cell's ``forecast`` rule on
  the site's predicted epoch plus a load price from dual ascent on the observed load.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from aolo.envs import channel
from aolo.envs.config import ConfigError, ServiceConfig, SiteSpec
from aolo.envs.physics import J_PER_KWH, InferenceCoefficients, RequestOutcomes, comm_energy_j, qoe, tokens_for_qoe
from aolo.envs.reference import ForecastPolicy, _bisect_multipliers, length_bounds
from aolo.envs.serving import ServingProfile
from aolo.envs.site import (
    autoscale_replicas,
    capacity_tok_s,
    fluid_queue,
    inter_token_latency_s,
    operating_batch,
    site_epoch,
    site_inference,
    throughput_tok_s,
)

#: tolerance on T_max and Q_min, as in reference.solve_hindsight
_TOL = 1e-9


class RadioModel(Protocol):
    """The radio side of the options: the least-carbon power for an airtime budget, and what a power costs.

    Both take integer index arrays ``u, t, k`` (agent, epoch, option) broadcast against the value array."""

    def best_power_w(self, u, t, k, airtime_budget_s) -> np.ndarray:
        """Least-carbon power delivering option ``k``'s answer within ``airtime_budget_s`` (``inf``: none can)."""

    def carbon_and_airtime(self, u, t, k, power_w) -> tuple[np.ndarray, np.ndarray]:
        """Radio carbon [g, over the option's requests] and airtime [s] of option ``k`` at ``power_w``."""

    def fastest_power_w(self, u, t, k) -> np.ndarray:
        """The power with the least airtime (played where no power meets T_max: a violation)."""


@dataclass
class SiteProblem:
    """One site's day as the references see it: options (U, T, K) of every agent and epoch, and the site.

    An option is an answer length; its radio power follows from the time left for the airtime (``radio``).

    Attributes:
        load_tokens: decode tokens the option adds to the site in the epoch (requests × answer length).
        hold_s: seconds the option's requests hold their GPU share before decoding (time to first token +
            prefill), summed over its requests; the embodied share charges them at ``num_gpus / b``.
        answer_tokens: answer length of one request [tokens] (decode time ``answer_tokens · itl``).
        qoe: QoE of the option.
        fixed_carbon_g: the option's carbon set by neither the site's load nor the radio (prefill energy) [g].
        fixed_latency_s: latency before decoding and delivery (time to first token, prefill) [s].
        valid: which options exist (ragged option sets are padded).
        radio: the options' radio side (:class:`RadioModel`).
        background_tok_s: (T,) the other tenants' decode demand [tokens/s].
        ci_dc_g_per_kwh: (T,) the site's grid carbon intensity.
        site, profile, service: the site's configuration, serving profile and accounting.
        epoch_s: epoch length [s].
        q_min, t_max_s: the mean-QoE rule per agent and day, the latency limit per request.
        replicas_in: replicas of the first epoch (``site.replicas``).
        backlog_in_tok: backlog carried into the first epoch [tokens].
    """

    load_tokens: np.ndarray
    hold_s: np.ndarray
    answer_tokens: np.ndarray
    qoe: np.ndarray
    fixed_carbon_g: np.ndarray
    fixed_latency_s: np.ndarray
    valid: np.ndarray
    radio: RadioModel
    background_tok_s: np.ndarray
    ci_dc_g_per_kwh: np.ndarray
    site: SiteSpec
    profile: ServingProfile
    service: ServiceConfig
    epoch_s: float
    q_min: float
    t_max_s: float
    replicas_in: int
    backlog_in_tok: float = 0.0

    def __post_init__(self) -> None:
        shape = self.load_tokens.shape
        if len(shape) != 3:
            raise ConfigError(f"SiteProblem.load_tokens must be (agents, epochs, options), got shape {shape}")
        for name in ("hold_s", "answer_tokens", "qoe", "fixed_carbon_g", "fixed_latency_s", "valid"):
            if getattr(self, name).shape != shape:
                raise ConfigError(f"SiteProblem.{name} must have shape {shape}, got {getattr(self, name).shape}")
        if not self.valid.any(axis=2).all():
            raise ConfigError("SiteProblem.valid: every agent needs at least one option in every epoch")
        for name in ("background_tok_s", "ci_dc_g_per_kwh"):
            if getattr(self, name).shape != shape[1:2]:
                raise ConfigError(f"SiteProblem.{name} must have shape ({shape[1]},), got {getattr(self, name).shape}")

    @property
    def num_agents(self) -> int:
        return self.load_tokens.shape[0]

    @property
    def num_epochs(self) -> int:
        return self.load_tokens.shape[1]

    @property
    def index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``u, t, k`` index arrays broadcasting to (U, T, K)."""
        U, T, K = self.load_tokens.shape
        return np.arange(U)[:, None, None], np.arange(T)[None, :, None], np.arange(K)[None, None, :]

    def carbon_per_token_and_hold_g(self, t, batch) -> tuple[np.ndarray, np.ndarray]:
        """Site carbon at batch ``b`` in epoch ``t``: per answer token ``γ = CI · PUE k_host e_dec(b) + g/GPU-s ·
        num_gpus itl(b) / b`` and per second held before decoding ``η = g/GPU-s · num_gpus / b``; both fall
        as the batch grows (ML.ENERGY: energy per token falls and throughput ``b / itl(b)`` rises with b)."""
        coef = site_inference(batch, self.profile, self.service)
        per_token = (
            np.asarray(self.ci_dc_g_per_kwh)[t] * coef.overhead * coef.decode_j_per_token / J_PER_KWH
            + coef.embodied_g_per_gpu_s * coef.gpu_share * coef.itl_s
        )
        return per_token, coef.embodied_g_per_gpu_s * coef.gpu_share

    def option_cost(self, u, t, k, airtime_budget_s) -> tuple[np.ndarray, np.ndarray]:
        """Carbon set by the option alone (prefill, radio at the best power within the budget; ``inf`` where
        no power meets it) and that power."""
        power = self.radio.best_power_w(u, t, k, airtime_budget_s)
        ok = np.isfinite(power) & self.valid[u, t, k]
        carbon, _ = self.radio.carbon_and_airtime(u, t, k, np.where(ok, power, 1.0))
        return np.where(ok, self.fixed_carbon_g[u, t, k] + carbon, np.inf), power


@dataclass
class SiteTrajectory:
    """The site's epochs under given agent loads (exactly :func:`aolo.envs.site.site_epoch`, epoch by epoch)."""

    replicas: np.ndarray  #: (T,)
    batch: np.ndarray  #: (T,) operating batch
    backlog_in_tok: np.ndarray  #: (T + 1,) backlog at the start of each epoch (and after the last)
    wait_s: np.ndarray  #: (T,) mean queueing wait of the epoch's arrivals
    itl_s: np.ndarray  #: (T,)
    carbon_per_token_g: np.ndarray  #: (T,) γ_t
    carbon_per_hold_s_g: np.ndarray  #: (T,) η_t


def _next_replicas(problem: SiteProblem, demand_tok_s, backlog_tok) -> np.ndarray:
    """The autoscaler's replicas for the next epoch from what this one had to serve (as ``SiteEnv.step``)."""
    return autoscale_replicas(demand_tok_s + backlog_tok / problem.epoch_s, problem.site, problem.profile)


def site_trajectory(problem: SiteProblem, agent_load_tokens: np.ndarray) -> SiteTrajectory:
    """Replicas (autoscaled from the demand seen), batch, backlog, wait and ITL of every epoch."""
    T = problem.num_epochs
    replicas, batch, wait, itl = np.empty(T, dtype=np.int64), np.empty(T), np.empty(T), np.empty(T)
    backlog = np.empty(T + 1)
    backlog[0], replicas[0] = problem.backlog_in_tok, problem.replicas_in
    for t in range(T):
        epoch = site_epoch(
            [agent_load_tokens[t]],
            problem.background_tok_s[t],
            backlog[t],
            replicas[t],
            problem.profile,
            problem.epoch_s,
        )
        batch[t], backlog[t + 1], wait[t], itl[t] = epoch.batch, epoch.backlog_tok, epoch.wait_s, epoch.itl_s
        if t + 1 < T:
            replicas[t + 1] = _next_replicas(problem, epoch.demand_tok_s, epoch.backlog_tok)
    gamma, eta = problem.carbon_per_token_and_hold_g(np.arange(T), batch)
    return SiteTrajectory(replicas, batch, backlog, wait, itl, gamma, eta)


@dataclass
class SiteOutcome:
    """A plan scored on the exact site model."""

    choice: np.ndarray  #: (U, T) option index
    power_w: np.ndarray  #: (U, T) radio power
    carbon_g: np.ndarray  #: (U, T) carbon per agent and epoch (site energy attributed by tokens)
    qoe: np.ndarray  #: (U, T)
    latency_s: np.ndarray  #: (U, T)
    feasible: np.ndarray  #: (U,) mean QoE ≥ q_min and every latency ≤ T_max
    trajectory: SiteTrajectory

    @property
    def total_carbon_g(self) -> float:
        return float(self.carbon_g.sum())


def _pick(array: np.ndarray, choice: np.ndarray) -> np.ndarray:
    return np.take_along_axis(array, choice[..., None], axis=2)[..., 0]


def score_site_plan(problem: SiteProblem, choice: np.ndarray, power_w: np.ndarray) -> SiteOutcome:
    """Carbon, QoE, latency and feasibility of the plan ``choice``, ``power_w`` (U, T) on the exact site model."""
    U, T = choice.shape
    u, t = np.arange(U)[:, None], np.arange(T)[None, :]
    load = _pick(problem.load_tokens, choice)
    traj = site_trajectory(problem, load.sum(axis=0))
    radio_g, airtime_s = problem.radio.carbon_and_airtime(u, t, choice, power_w)
    site_g = load * traj.carbon_per_token_g + _pick(problem.hold_s, choice) * traj.carbon_per_hold_s_g
    carbon = _pick(problem.fixed_carbon_g, choice) + radio_g + site_g
    decode_s = _pick(problem.answer_tokens, choice) * traj.itl_s
    latency = _pick(problem.fixed_latency_s, choice) + decode_s + traj.wait_s + airtime_s
    q = _pick(problem.qoe, choice)
    feasible = (q.mean(axis=1) >= problem.q_min - _TOL) & (latency <= problem.t_max_s * (1 + _TOL)).all(axis=1)
    feasible &= _pick(problem.valid, choice).all(axis=1)
    return SiteOutcome(choice, power_w, carbon, q, latency, feasible, traj)


# --- the bound ---------------------------------------------------------------------------------------


@dataclass
class SiteBound:
    bound_g: float  #: strict lower bound on Σ carbon over every plan meeting the constraints
    qoe_multiplier: np.ndarray  #: (U,) λ
    load_price: np.ndarray  #: (T, V) π of each epoch and load level, g per token of agent load
    levels: np.ndarray  #: (T, V + 1) load level edges
    primal_choice: np.ndarray  #: (U, T) the Lagrangian's minimiser at the best (λ, π)


@dataclass
class _Relaxation:
    """The level relaxation: per epoch ``t`` and level ``v`` (agent load in ``[edges[t, v], edges[t, v+1]]``)
    under-estimates of the site carbon per token and per held second, and of each option's own carbon."""

    edges: np.ndarray  # (T, V + 1)
    gamma_lo: np.ndarray  # (T, V) carbon per answer token at the level's largest possible batch
    eta_lo: np.ndarray  # (T, V) carbon per held second at that batch
    option_g: np.ndarray  # (U, T, B, V) per QoE bin: prefill + radio of its shortest length at its best power
    hold_s: np.ndarray  # (U, T, B) seconds held before decoding (the same for every length)
    qoe_hi: np.ndarray  # (U, T, B) QoE of the bin's longest length
    load_lo: np.ndarray  # (U, T, B) load of its shortest length
    load_hi: np.ndarray  # (U, T, B) load of its longest length
    last: np.ndarray  # (U, T, B) the bin's longest option (the primal choice a bin stands for)
    hopeless: np.ndarray  # (U, T) requests that meet T_max at no level (their latency rule is dropped)


def _qoe_bins(problem: SiteProblem, width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Consecutive options grouped in QoE bins of ``width``: (first, last, exists) arrays (U, T, B)."""
    p = problem
    U, T, K = p.load_tokens.shape
    bin_of = np.floor((p.qoe - p.qoe[..., :1]) / width)
    start = p.valid & np.concatenate([np.ones((U, T, 1), bool), bin_of[..., 1:] != bin_of[..., :-1]], axis=2)
    rank = np.cumsum(start, axis=2) - 1
    B = int(start.sum(axis=2).max())
    first, last = np.zeros((U, T, B), dtype=np.int64), np.zeros((U, T, B), dtype=np.int64)
    exists = np.zeros((U, T, B), dtype=bool)
    u, t, k = np.nonzero(start)
    first[u, t, rank[u, t, k]], exists[u, t, rank[u, t, k]] = k, True
    u, t, k = np.nonzero(p.valid)
    np.maximum.at(last, (u, t, rank[u, t, k]), k)
    return first, last, exists


def _load_range(problem: SiteProblem) -> tuple[np.ndarray, np.ndarray]:
    """(T,) least and greatest agent load of each epoch."""
    lo = np.where(problem.valid, problem.load_tokens, np.inf).min(axis=2).sum(axis=0)
    hi = np.where(problem.valid, problem.load_tokens, -np.inf).max(axis=2).sum(axis=0)
    return lo, hi


def _bracket_site(problem: SiteProblem, a_lo: np.ndarray, a_hi: np.ndarray):
    """Replica and backlog brackets of every epoch over all plans that meet T_max. The autoscaler is monotone
    in the demand and backlog it saw, the backlog monotone in demand and backlog and anti-monotone in
    capacity, so the least and greatest agent loads bracket them: (fewest replicas, least backlog) at the
    least, (most replicas, most backlog) at the greatest; the bound pairs them pessimistically per quantity.
    A backlog whose wait alone exceeds T_max even at the epoch's least demand and most replicas breaks every
    request's latency, so no feasible plan carries it: the greatest backlog is capped there (bisection)."""
    T, p = problem.num_epochs, problem
    r_lo, r_hi, q_lo, q_hi = np.empty(T), np.empty(T), np.empty(T), np.empty(T)
    r_lo[0] = r_hi[0] = p.replicas_in
    q_lo[0] = q_hi[0] = p.backlog_in_tok
    d_lo, d_hi = p.background_tok_s + a_lo / p.epoch_s, p.background_tok_s + a_hi / p.epoch_s
    for t in range(1, T):
        q_lo[t] = fluid_queue(d_lo[t - 1], q_lo[t - 1], capacity_tok_s(r_hi[t - 1], p.profile), p.epoch_s).backlog_tok
        q_hi[t] = fluid_queue(d_hi[t - 1], q_hi[t - 1], capacity_tok_s(r_lo[t - 1], p.profile), p.epoch_s).backlog_tok
        r_lo[t] = _next_replicas(p, d_lo[t - 1], q_lo[t])
        r_hi[t] = _next_replicas(p, d_hi[t - 1], q_hi[t])
        capacity = capacity_tok_s(r_hi[t], p.profile)
        if fluid_queue(d_lo[t], q_hi[t], capacity, p.epoch_s).wait_s > p.t_max_s:
            ok, too_long = q_lo[t], q_hi[t]
            for _ in range(50):
                mid = 0.5 * (ok + too_long)
                ok, too_long = (
                    (mid, too_long) if fluid_queue(d_lo[t], mid, capacity, p.epoch_s).wait_s <= p.t_max_s else (ok, mid)
                )
            q_hi[t] = max(too_long, q_lo[t])
            r_hi[t] = _next_replicas(p, d_hi[t - 1], q_hi[t])
    return r_lo, r_hi, q_lo, q_hi


def _level_edges(problem: SiteProblem, levels: int) -> np.ndarray:
    """(T, levels + 1) edges of the load levels, uniform over each epoch's load range."""
    a_lo, a_hi = _load_range(problem)
    return a_lo[:, None] + (a_hi - a_lo)[:, None] * np.linspace(0.0, 1.0, levels + 1)[None, :]


def _relax(problem: SiteProblem, edges: np.ndarray, qoe_bin: float) -> _Relaxation:
    """Relaxation R (docs/design.md): per level, the site's carbon per token and per held second at the
    largest batch the level allows, and each answer's own carbon at the best power for the most airtime the
    level can leave it; per QoE bin of consecutive lengths, the least carbon, load (both ends, for either sign
    of the price) and the greatest QoE of its members — every member costs at least that in the Lagrangian
    (options are lengths in increasing order; carbon, load and QoE rise with the length)."""
    p, T = problem, problem.num_epochs
    a_lo, a_hi = edges[:, 0], edges[:, -1]
    r_lo, r_hi, q_lo, q_hi = _bracket_site(p, a_lo, a_hi)
    bg = p.background_tok_s[:, None]
    demand_lo, demand_hi = bg + edges[:, :-1] / p.epoch_s, bg + edges[:, 1:] / p.epoch_s  # (T, V)
    # per replica the served rate is min((D + B_0/Δ)/r, X_max): largest with the fewest replicas, most backlog
    batch_hi = operating_batch(demand_hi + q_hi[:, None] / p.epoch_s, r_lo[:, None], p.profile)
    batch_lo = operating_batch(demand_lo + q_lo[:, None] / p.epoch_s, r_hi[:, None], p.profile)
    gamma_lo, eta_lo = p.carbon_per_token_and_hold_g(np.arange(T)[:, None], batch_hi)
    itl_lo = site_inference(batch_lo, p.profile, p.service).itl_s
    wait_lo = fluid_queue(demand_lo, q_lo[:, None], capacity_tok_s(r_hi[:, None], p.profile), p.epoch_s).wait_s
    first, last, exists = _qoe_bins(p, qoe_bin)
    pick = lambda a, i: np.take_along_axis(a, i, axis=2)  # noqa: E731
    # the most airtime any plan in the level can leave the bin's shortest answer: its best power for it
    decode_s = pick(p.answer_tokens, first)[..., None] * itl_lo[None, :, None, :]  # (U, T, B, V)
    budget = p.t_max_s - pick(p.fixed_latency_s, first)[..., None] - decode_s - wait_lo[None, :, None, :]
    u, t, _ = p.index
    option_g, _ = p.option_cost(u[..., None], t[..., None], first[..., None], budget * (1 + _TOL))
    option_g = np.where(exists[..., None], option_g, np.inf)
    # an agent that can meet T_max at no level keeps its shortest option without radio (a violation): the
    # bound then holds for the problem with that request's latency rule dropped, as reference.solve_hindsight
    hopeless = ~np.isfinite(option_g).any(axis=(2, 3))  # (U, T)
    if hopeless.any():
        fallback = pick(p.fixed_carbon_g, first[..., :1])  # bin 0 starts at the shortest option
        option_g[:, :, 0, :] = np.where(hopeless[..., None], fallback, option_g[:, :, 0, :])
    return _Relaxation(
        edges,
        gamma_lo,
        eta_lo,
        option_g,
        hold_s=pick(p.hold_s, first),
        qoe_hi=pick(p.qoe, last),
        load_lo=pick(p.load_tokens, first),
        load_hi=pick(p.load_tokens, last),
        last=last,
        hopeless=hopeless,
    )


def _level_dual(problem: SiteProblem, rel: _Relaxation, lam: np.ndarray, steps: int):
    """The dual function at ``λ``: ``Σ_t min_v max_π φ_{t,v}(π) + λ · T q_min`` with

        φ_{t,v}(π) = Σ_u min_k [g_{u,t,k,v} − λ_u q_{u,t,k} + π load_{u,t,k}] + min_{A ∈ I_v} (γ_v − π) A,

    the Lagrangian of epoch ``t`` restricted to load level ``v`` with the link ``Σ_u load = A`` priced by π
    (concave in π: bisected on its supergradient, the agents' tokens minus A). Returns the value, the
    minimiser's choices (U, T), the QoE shortfalls (λ's supergradient), the prices (T, V) and levels (T,)."""
    p, T = problem, problem.num_epochs
    value_tv, price, choice_tv = np.empty(rel.gamma_lo.shape), np.empty(rel.gamma_lo.shape), []
    for start in range(0, T, _EPOCH_CHUNK):  # epochs are independent given λ: chunks bound the memory
        ts = slice(start, min(start + _EPOCH_CHUNK, T))
        value_tv[ts], price[ts], k = _epoch_level_duals(rel, lam, ts, steps)
        choice_tv.append(k)
    choice_tv = np.concatenate(choice_tv, axis=1)  # (U, T, V) QoE bins
    level = np.argmin(value_tv, axis=1)
    epochs = np.arange(T)
    bins = choice_tv[:, epochs, level]
    value = float(value_tv[epochs, level].sum() + lam.sum() * T * p.q_min)
    return value, _pick(rel.last, bins), T * p.q_min - _pick(rel.qoe_hi, bins).sum(axis=1), price, level


#: epochs per block in :func:`_level_dual` (its arrays are agents × epochs × lengths × levels)
_EPOCH_CHUNK = 8


def _epoch_level_duals(rel: _Relaxation, lam: np.ndarray, ts: slice, steps: int):
    """``max_π φ_{t,v}(π)`` for the epochs ``ts`` and every level: values and prices (t, V), bins (U, t, V)."""
    base = (
        rel.option_g[:, ts]
        + rel.hold_s[:, ts, :, None] * rel.eta_lo[None, ts, None, :]
        - lam[:, None, None, None] * rel.qoe_hi[:, ts, :, None]
    )
    load_lo, load_hi = rel.load_lo[:, ts, :, None], rel.load_hi[:, ts, :, None]
    gamma, edges = rel.gamma_lo[ts], rel.edges[ts]

    def phi(price: np.ndarray):
        load = np.where(price[None, :, None, :] >= 0, load_lo, load_hi)  # the bin's end the price favours
        objective = base + price[None, :, None, :] * load  # (U, t, B, V)
        k = np.argmin(objective, axis=2)[:, :, None, :]
        agents = np.take_along_axis(objective, k, axis=2)[:, :, 0, :].sum(axis=0)  # (t, V)
        tokens = np.take_along_axis(load, k, axis=2)[:, :, 0, :].sum(axis=0)
        slope = gamma - price
        level_a = np.where(slope >= 0, edges[:, :-1], edges[:, 1:])
        possible = np.isfinite(agents)  # a level where some agent has no option is impossible: its value is inf
        return agents + slope * level_a, np.where(possible, tokens - level_a, 0.0), k[:, :, 0, :]

    price = _bracket_bisect(lambda x: phi(x)[1], 2.0 * gamma, True, steps)
    value, _, k = phi(price)
    return value, price, k


def _bracket_bisect(sign_at: Callable[[np.ndarray], np.ndarray], start: np.ndarray, signed: bool, steps: int):
    """Per coordinate, where a non-increasing supergradient changes sign: the bracket ``[0, start]`` (``[-start,
    start]`` if ``signed``) grown ×4 until it holds the change, then bisected ``steps`` times."""
    hi = np.asarray(start, dtype=np.float64).copy()
    for _ in range(60):
        up = sign_at(hi) > 0
        if not up.any():
            break
        hi = np.where(up, hi * 4.0, hi)
    lo = np.zeros_like(hi)
    if signed:
        lo = -np.asarray(start, dtype=np.float64)
        for _ in range(60):
            down = sign_at(lo) < 0
            if not down.any():
                break
            lo = np.where(down, lo * 4.0, lo)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        up = sign_at(mid) > 0
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    return 0.5 * (lo + hi)


def _decoupled_multipliers(problem: SiteProblem, rel: _Relaxation) -> np.ndarray:
    """Each agent's λ with the site at its middle level and no coupling: the scale the λ search starts from."""
    mid = rel.gamma_lo.shape[1] // 2
    cost = rel.option_g[..., mid] + rel.load_lo * rel.gamma_lo[None, :, mid, None]
    lam, _ = _bisect_multipliers(cost, rel.qoe_hi, problem.q_min, 40)
    return lam


def site_dual_bound(
    problem: SiteProblem, levels: int = 8, qoe_bin: float = 0.004, steps: int = 24, qoe_steps: int = 16
) -> SiteBound:
    """Strict lower bound on the day's least carbon with the site coupling on (docs/design.md, "Shared sites:
    the references and the strict lower bound").

    ``max_{λ ≥ 0} Σ_t min_v max_π φ_{t,v}(π) + λ T q_min`` (:func:`_level_dual`) over the level relaxation
    (:func:`_relax`): each agent's mean-QoE rule carries λ_u, each (epoch, level) its own load price. The λ_u
    are bisected together on the agents' QoE shortfalls (the dual is concave in λ); every λ and every price
    gives a valid bound (weak duality), and the best value seen is returned.
    """
    rel = _relax(problem, _level_edges(problem, levels), qoe_bin)
    lam0 = _decoupled_multipliers(problem, rel)
    best = None

    def shortfall(lam: np.ndarray) -> np.ndarray:
        nonlocal best
        result = _level_dual(problem, rel, lam, steps)
        if best is None or result[0] > best[1][0]:
            best = (lam.copy(), result)
        return result[2]

    _bracket_bisect(shortfall, 4.0 * lam0 + 1e-12, False, qoe_steps)
    lam, (value, choice, _, price, _) = best
    return SiteBound(value, lam, price, rel.edges, choice)


# --- the bound with the site's state carried: a dynamic programme over (replicas, backlog) ---------------


@dataclass
class SiteStateBound:
    """:func:`site_state_bound`: the bound and the cheapest path of relaxed site states behind it."""

    bound_g: float  #: strict lower bound on Σ carbon over every plan meeting the constraints (inf: none can)
    qoe_multiplier: np.ndarray  #: (U,) λ
    levels: np.ndarray  #: (T, V + 1) load level edges
    replicas: np.ndarray  #: (T,) replicas on the cheapest path
    backlog_tok: np.ndarray  #: (T, 2) the backlog cell [lo, hi] entering each epoch on that path
    level: np.ndarray  #: (T,) the agent load level of each epoch on that path
    load_cap_tokens: np.ndarray  #: (T,) the greatest agent load of that level in that state (``top``)
    primal_choice: np.ndarray  #: (U, T) the Lagrangian's minimiser on that path


@dataclass
class _SiteStates:
    """Relaxed site states — replicas × backlog cell entering epoch ``t`` — within the brackets of
    :func:`_bracket_site`, and what each (epoch ``t``, state ``s``, load level ``v``) allows."""

    replicas: np.ndarray  # (T, S)
    backlog_lo: np.ndarray  # (T, S) the cell's backlog range [tokens]
    backlog_hi: np.ndarray  # (T, S)
    top: np.ndarray  # (T, S, V) the greatest agent load of the level at which every request can meet T_max
    slope: np.ndarray  # (T, S, V) the site's carbon is at least intercept + slope · A on [edges[v], top]
    intercept: np.ndarray  # (T, S, V)
    allowed: np.ndarray  # (T, S, V) the state exists and some load of the level lets every request meet T_max
    successor: np.ndarray  # (T - 1, S, V, S) state s' at t + 1 can follow state s at level v


def _replica_values(problem: SiteProblem) -> np.ndarray:
    """Every replica count the site can run: the first epoch's, and the autoscaler's range (or the fixed count)."""
    site = problem.site
    counts = {problem.replicas_in, site.replicas}
    if site.scaling == "autoscale":
        counts |= set(range(site.min_replicas, site.max_replicas + 1))
    return np.array(sorted(counts), dtype=np.float64)


def _state_level_edges(problem: SiteProblem, levels: int) -> np.ndarray:
    """(T, V + 1) load level edges: ``levels`` uniform levels over each epoch's load range, split further where
    the agents' load (with no backlog) moves the autoscaler to one more replica (demand ``r X(b*)``) or fills
    ``r`` replicas (``r X(b_max)``), so that a level fixes the next replicas and whether a queue forms."""
    p = problem
    a_lo, a_hi = _load_range(p)
    uniform = a_lo[:, None] + (a_hi - a_lo)[:, None] * np.linspace(0.0, 1.0, levels + 1)[None, :]
    per_replica = [float(capacity_tok_s(1, p.profile))]
    if p.site.scaling == "autoscale":
        per_replica.append(float(throughput_tok_s(p.site.target_batch, p.profile)))
    # just above each threshold (by 1e-6 of it), so that a level's least load is already past it: the level
    # below holds the threshold itself, and the level above leads to one more replica, or to a queue, only
    demand = (_replica_values(p)[:, None] * np.array(per_replica)[None, :]).reshape(-1) * (1 + 1e-6)
    at = (demand[None, :] - p.background_tok_s[:, None]) * p.epoch_s
    return np.sort(np.concatenate([uniform, np.clip(at, a_lo[:, None], a_hi[:, None])], axis=1), axis=1)


def _least_latency(problem: SiteProblem, hopeless: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per agent and epoch (U, T): a least latency before the queue and decoding — the least fixed latency of
    its options plus the airtime of its shortest answer at the radio's fastest power — and the least answer
    tokens; ``-inf`` for hopeless requests, whose latency rule the bound drops."""
    p = problem
    u, t, _ = p.index
    shortest = np.argmax(p.valid, axis=2)[..., None]  # (U, T, 1): options are lengths in increasing order
    _, airtime = p.radio.carbon_and_airtime(u, t, shortest, p.radio.fastest_power_w(u, t, shortest))
    latency = np.where(p.valid, p.fixed_latency_s, np.inf).min(axis=2) + airtime[..., 0]
    return np.where(hopeless, -np.inf, latency), np.where(p.valid, p.answer_tokens, np.inf).min(axis=2)


def _latency_top(demand_lo, demand_hi, backlog_tok, capacity_tok_s, epoch_s, wait_max_s, steps):
    """The greatest demand in ``[demand_lo, demand_hi]`` whose queueing wait stays within ``wait_max_s``: the
    wait rises with the demand, so bisection, keeping the upper end (never below the true greatest)."""
    fits = lambda d: fluid_queue(d, backlog_tok, capacity_tok_s, epoch_s).wait_s <= wait_max_s  # noqa: E731
    shape = np.broadcast_shapes(np.shape(demand_lo), np.shape(wait_max_s))
    ok, too_long = np.broadcast_to(demand_lo, shape), np.broadcast_to(demand_hi, shape)
    capped = ~fits(too_long)
    for _ in range(steps):
        mid = 0.5 * (ok + too_long)
        good = fits(mid)
        ok, too_long = np.where(good, mid, ok), np.where(good, too_long, mid)
    return np.where(capped, too_long, demand_hi)


def _site_states(
    problem: SiteProblem, rel: _Relaxation, backlog_cells: int, pieces: int = 8, steps: int = 50
) -> _SiteStates:
    """The states of every epoch and what each allows (docs/design.md, "Shared sites", the state bound), built
    forward from the first epoch's replicas and backlog.

    States of epoch ``t``: each replica count within ``[r_lo, r_hi]`` × the backlog range ``[Q_lo, Q_hi]`` cut into
    the point ``Q_lo`` and ``backlog_cells`` equal intervals ``(x_{j-1}, x_j]``; the ranges are those the allowed
    states of ``t - 1`` lead to. On (state, level), with ``a_v`` the level's least load:

    - *latency*: at least ``least latency + answer tokens · itl`` (the batch at ``a_v``, the cell's least backlog)
      ``+ wait`` for every request; the wait rises with the load, so the level is cut at ``top``, the greatest
      load whose wait leaves every request (not hopeless) within T_max (bisection, its upper end kept), and the
      state is not allowed where even ``a_v`` breaks it;
    - *carbon*: on ``pieces`` sub-intervals of ``[a_v, top]`` the site's carbon ``A γ(b) + H η(b)`` is at least
      its value at the sub-interval's largest batch (top load, the cell's most backlog: γ, η fall with b), a
      function linear in ``A`` on each; the line through its ends, lowered below every piece, bounds it;
    - *successors*: queue and autoscaler are monotone, so ``(a_v, least backlog)`` and ``(top, most backlog)``
      bracket the next backlog and replicas; every state of ``t + 1`` with a replica count and a cell in those
      ranges may follow.
    """
    p, (T, V), dt = problem, rel.gamma_lo.shape, problem.epoch_s
    replica_values = _replica_values(p)
    cells = backlog_cells + 1
    S = len(replica_values) * cells
    r = np.repeat(replica_values, cells)[:, None]  # (S, 1)
    point = np.arange(S) % cells == 0
    capacity = capacity_tok_s(r, p.profile)
    latency, tokens = _least_latency(p, rel.hopeless)
    held_s = np.where(p.valid, p.hold_s, np.inf).min(axis=2).sum(axis=0)  # (T,) the least held seconds
    out = {
        name: np.zeros(shape, dtype)
        for name, shape, dtype in (
            ("replicas", (T, S), np.float64),
            ("backlog_lo", (T, S), np.float64),
            ("backlog_hi", (T, S), np.float64),
            ("top", (T, S, V), np.float64),
            ("slope", (T, S, V), np.float64),
            ("intercept", (T, S, V), np.float64),
            ("allowed", (T, S, V), bool),
            ("successor", (max(T - 1, 0), S, V, S), bool),
        )
    }
    r_range, q_range = (p.replicas_in, p.replicas_in), (p.backlog_in_tok, p.backlog_in_tok)
    reached = point & (r[:, 0] == p.replicas_in)
    for t in range(T):
        x = q_range[0] + (q_range[1] - q_range[0]) * np.linspace(0.0, 1.0, backlog_cells + 1)
        b_lo, b_hi = (
            np.tile(np.concatenate([x[:1], x[:-1]]), len(replica_values))[:, None],
            np.tile(x, len(replica_values))[:, None],
        )
        exists = reached & (r[:, 0] >= r_range[0]) & (r[:, 0] <= r_range[1]) & (point | (q_range[1] > q_range[0]))
        bg, a_bottom, a_level_top = p.background_tok_s[t], rel.edges[t, None, :-1], rel.edges[t, None, 1:]
        least = fluid_queue(bg + a_bottom / dt, b_lo, capacity, dt)  # (S, V)
        itl_lo = inter_token_latency_s(operating_batch(least.served_tok_s, r, p.profile), p.profile)
        before_wait = (latency[:, t, None, None] + tokens[:, t, None, None] * itl_lo[None]).max(axis=0)
        wait_max = p.t_max_s * (1 + _TOL) - before_wait
        allowed = exists[:, None] & (least.wait_s <= wait_max)
        top = _latency_top(bg + a_bottom / dt, bg + a_level_top / dt, b_lo, capacity, dt, wait_max, steps)
        top = (top - bg) * dt

        # the site's carbon on [a_v, top]: A γ + H η at each sub-interval's largest batch
        grid = a_bottom[..., None] + (top - a_bottom)[..., None] * np.linspace(0.0, 1.0, pieces + 1)  # (S, V, n+1)
        batch = operating_batch(bg + (grid[..., 1:] + b_hi[..., None]) / dt, r[..., None], p.profile)
        gamma, eta = p.carbon_per_token_and_hold_g(t, batch)
        left, right = grid[..., :-1] * gamma + held_s[t] * eta, grid[..., 1:] * gamma + held_s[t] * eta
        width = top - a_bottom
        slope = np.where(width > 0, (right[..., -1] - left[..., 0]) / np.where(width > 0, width, 1.0), gamma[..., -1])
        intercept = np.minimum(left - slope[..., None] * grid[..., :-1], right - slope[..., None] * grid[..., 1:])
        out["replicas"][t], out["backlog_lo"][t], out["backlog_hi"][t] = r[:, 0], b_lo[:, 0], b_hi[:, 0]
        out["top"][t], out["slope"][t], out["intercept"][t], out["allowed"][t] = top, slope, intercept.min(-1), allowed
        if t + 1 == T or not allowed.any():
            break

        most = fluid_queue(bg + top / dt, b_hi, capacity, dt)
        next_lo = _next_replicas(p, bg + a_bottom / dt, least.backlog_tok)
        next_hi = _next_replicas(p, bg + top / dt, most.backlog_tok)
        queue_lo, queue_hi = least.backlog_tok, most.backlog_tok
        r_range = (next_lo[allowed].min(), next_hi[allowed].max())
        q_range = (queue_lo[allowed].min(), queue_hi[allowed].max())
        x = q_range[0] + (q_range[1] - q_range[0]) * np.linspace(0.0, 1.0, backlog_cells + 1)
        later_lo = np.tile(np.concatenate([x[:1], x[:-1]]), len(replica_values))[None, None, :]
        later_hi = np.tile(x, len(replica_values))[None, None, :]
        later_r = r[None, None, :, 0]
        successor = allowed[..., None] & (later_r >= next_lo[..., None]) & (later_r <= next_hi[..., None])
        successor &= point[None, None, :] | (q_range[1] > q_range[0])
        # the point cell holds Q_lo (to rounding); the others are half-open (x_{j-1}, x_j]
        lo, hi = queue_lo[..., None], queue_hi[..., None]
        tol = 1e-9 * (1.0 + hi)
        enters = np.where(point[None, None, :], later_lo >= lo - tol, later_lo < hi)
        successor &= enters & (later_lo <= hi + tol) & (later_hi >= lo - tol)
        out["successor"][t] = successor
        reached = successor.any(axis=(0, 1))
    return _SiteStates(**out)


def _agents_at(base: np.ndarray, load_lo: np.ndarray, load_hi: np.ndarray, price: np.ndarray):
    """``Σ_u min_b [base + π load]`` for prices ``price`` (t, V, m): values and tokens (t, V, m), bins (U, t, V, m);
    a bin's load is its shortest length's for ``π ≥ 0``, its longest's for ``π < 0`` (the end the price favours)."""
    pi = price[None, :, None, :, :]  # (1, t, 1, V, m)
    load = np.where(pi >= 0, load_lo[..., None, None], load_hi[..., None, None])  # (U, t, B, V, m)
    objective = base[..., None] + pi * load
    k = np.argmin(objective, axis=2)[:, :, None]
    value = np.take_along_axis(objective, k, axis=2)[:, :, 0].sum(axis=0)
    tokens = np.take_along_axis(load, k, axis=2)[:, :, 0].sum(axis=0)
    return value, tokens, k[:, :, 0]


def _price_range(base: np.ndarray, load_lo: np.ndarray, load_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(t, V) prices beyond which every agent takes its least-load bin (above ``hi``) or its greatest-load bin
    (below ``lo``): bin ``f`` beats bin ``b`` at π iff ``c_f + π ℓ_f ≤ c_b + π ℓ_b``, so every crossing of the
    agents' tokens lies in ``[lo, hi]``. ``base`` (U, t, B, V): each bin's Lagrangian cost (``inf``: no option)."""
    finite = np.isfinite(base)
    B = base.shape[2]
    index = np.arange(B)[None, None, :, None]
    first = np.minimum(np.where(finite, index, B).min(axis=2, keepdims=True), B - 1)
    last = np.maximum(np.where(finite, index, -1).max(axis=2, keepdims=True), 0)
    at = lambda a, i: np.take_along_axis(np.broadcast_to(a[..., None], base.shape), i, axis=2)  # noqa: E731
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = load_lo[..., None] - at(load_lo, first)
        above = np.where(finite & (gap > 0), (np.take_along_axis(base, first, axis=2) - base) / gap, -np.inf)
        gap = at(load_hi, last) - load_hi[..., None]
        below = np.where(finite & (gap > 0), (base - np.take_along_axis(base, last, axis=2)) / gap, np.inf)
    hi = np.maximum(above.max(axis=2).max(axis=0), 0.0)
    lo = np.minimum(below.min(axis=2).min(axis=0), 0.0)
    return lo - 1e-3 * (hi - lo) - 1e-12, hi + 1e-3 * (hi - lo) + 1e-12


def _state_epoch_duals(rel: _Relaxation, states: _SiteStates, lam: np.ndarray, ts: slice, steps: int):
    """``max_π φ_{t,s,v}(π)`` for the epochs ``ts``, every state and level: values (t, S, V), bins (U, t, S, V).

    The agents' options do not depend on the state (their latency is the level's most generous), so
    ``φ_{t,s,v}(π) = F_{t,v}(π) + min_{A ∈ [a_v, top]} (β − π) A + α`` with ``F`` the agents' Lagrangian and
    ``α + β A`` the state's carbon line. ``F`` is concave with supergradient the agents' tokens ``L(π)``,
    non-increasing; with ``π⁺`` where ``L`` crosses the level's top and ``π⁻`` where it crosses its bottom
    (π⁺ ≤ π⁻), φ rises up to ``clip(β, π⁺, π⁻)`` and falls after, so one bisection per level edge serves every
    state (a state whose top is cut by the latency gets the uncut top's ``π⁺``: a lower price than its best).
    φ is evaluated exactly at the price chosen: any price gives a valid bound."""
    base = rel.option_g[:, ts] - lam[:, None, None, None] * rel.qoe_hi[:, ts, :, None]  # (U, t, B, V)
    load_lo, load_hi = rel.load_lo[:, ts], rel.load_hi[:, ts]
    edges = rel.edges[ts]
    targets = np.stack([edges[:, 1:], edges[:, :-1]], axis=-1)  # (t, V, 2): the level's top, bottom
    # bisection in single precision (it only picks the prices; φ is evaluated in double below)
    base32, lo32, hi32 = base.astype(np.float32), load_lo.astype(np.float32), load_hi.astype(np.float32)
    lo, hi = (np.repeat(x[..., None], 2, axis=-1) for x in _price_range(base, load_lo, load_hi))
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        up = _agents_at(base32, lo32, hi32, mid.astype(np.float32))[1] > targets
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    crossing = 0.5 * (lo + hi)
    # only the allowed states of each (epoch, level), gathered first: m of them at most
    allowed = np.moveaxis(states.allowed[ts], 1, 2)  # (t, V, S)
    order = np.argsort(~allowed, axis=2, kind="stable")[..., : max(int(allowed.sum(axis=2).max()), 1)]
    gather = lambda a: np.take_along_axis(np.moveaxis(a[ts], 1, 2), order, axis=2)  # noqa: E731
    slope, intercept, top = gather(states.slope), gather(states.intercept), gather(states.top)  # (t, V, m)
    price = np.clip(slope, crossing[..., :1], crossing[..., 1:])
    agents, _, bins = _agents_at(base, load_lo, load_hi, price)
    level_a = np.where(slope >= price, edges[:, :-1, None], top)
    value_m = agents + (slope - price) * level_a + intercept  # (t, V, m)
    value = np.full(allowed.shape, np.inf)
    np.put_along_axis(value, order, np.where(np.take_along_axis(allowed, order, axis=2), value_m, np.inf), axis=2)
    state_bins = np.zeros(bins.shape[:3] + allowed.shape[2:], dtype=bins.dtype)
    np.put_along_axis(state_bins, np.broadcast_to(order[None], bins.shape), bins, axis=3)
    return np.moveaxis(value, 2, 1), np.moveaxis(state_bins, 3, 2)


def _state_dual(problem: SiteProblem, rel: _Relaxation, states: _SiteStates, lam: np.ndarray, steps: int):
    """The dual function at ``λ``: the cheapest path of (state, level) through the day, each epoch's cost its
    ``max_π φ_{t,s,v}(π)``, plus ``λ · T q_min``. Returns the value, the path's choices (U, T), the QoE
    shortfalls (λ's supergradient) and the path (states (T,), levels (T,))."""
    p, T = problem, problem.num_epochs
    S, V = states.allowed.shape[1:]
    value, bins = np.empty((T, S, V)), np.empty((p.num_agents, T, S, V), dtype=np.int64)
    for start in range(0, T, _STATE_EPOCH_CHUNK):
        ts = slice(start, min(start + _STATE_EPOCH_CHUNK, T))
        value[ts], bins[:, ts] = _state_epoch_duals(rel, states, lam, ts, steps)
    value = np.where(states.allowed, value, np.inf)
    # backward: the least cost from each state of t to the day's end
    to_go, after = np.zeros((T + 1, S)), np.zeros((T, S, V))
    for t in range(T - 1, -1, -1):
        if t + 1 < T:
            after[t] = np.where(states.successor[t], to_go[t + 1], np.inf).min(axis=2)
        to_go[t] = (value[t] + after[t]).min(axis=1)
    state, path_s, path_v = int(np.argmin(to_go[0])), np.empty(T, np.int64), np.empty(T, np.int64)
    for t in range(T):
        path_s[t], path_v[t] = state, int(np.argmin(value[t, state] + after[t, state]))
        if t + 1 < T:
            state = int(np.argmin(np.where(states.successor[t, state, path_v[t]], to_go[t + 1], np.inf)))
    chosen = bins[:, np.arange(T), path_s, path_v]  # (U, T)
    total = float(to_go[0].min() + lam.sum() * T * p.q_min)
    shortfall = T * p.q_min - _pick(rel.qoe_hi, chosen).sum(axis=1)
    return total, _pick(rel.last, chosen), shortfall, path_s, path_v


#: epochs per block in :func:`_state_dual` (its arrays are agents × epochs × QoE bins × levels × states)
_STATE_EPOCH_CHUNK = 4


def site_state_bound(
    problem: SiteProblem,
    levels: int = 16,
    backlog_cells: int = 4,
    qoe_bin: float = 0.004,
    steps: int = 20,
    qoe_steps: int = 16,
    multipliers: np.ndarray | None = None,
) -> SiteStateBound:
    """Strict lower bound on the day's least carbon with the site's replicas and backlog carried from epoch to
    epoch (docs/design.md, "Shared sites: the references and the strict lower bound"): the level relaxation of
    :func:`site_dual_bound` per relaxed site state (:func:`_site_states`), the QoE rules and each (epoch, state,
    level)'s load link dualised, and a dynamic programme over the states for the cheapest path
    (:func:`_state_dual`). The λ_u are bisected together on the QoE shortfalls; every λ gives a valid bound and
    the best value seen is returned. ``multipliers``: a λ to search around (e.g. :func:`site_dual_bound`'s
    best, the search then bisects each λ_u within ``[0, 2 λ_u]``), else the decoupled multipliers' scale."""
    rel = _relax(problem, _state_level_edges(problem, levels), qoe_bin)
    states = _site_states(problem, rel, backlog_cells)
    start = 4.0 * _decoupled_multipliers(problem, rel) if multipliers is None else 2.0 * multipliers
    best = None

    def shortfall(lam: np.ndarray) -> np.ndarray:
        nonlocal best
        result = _state_dual(problem, rel, states, lam, steps)
        if best is None or result[0] > best[1][0]:
            best = (lam.copy(), result)
        return result[2]

    _bracket_bisect(shortfall, start + 1e-12, False, qoe_steps)
    lam, (value, choice, _, path_s, path_v) = best
    epochs = np.arange(problem.num_epochs)
    backlog = np.stack([states.backlog_lo[epochs, path_s], states.backlog_hi[epochs, path_s]], axis=1)
    replicas = states.replicas[epochs, path_s].astype(np.int64)
    cap = states.top[epochs, path_s, path_v]
    return SiteStateBound(value, lam, rel.edges, replicas, backlog, path_v, cap, choice)


# --- hindsight on a site -----------------------------------------------------------------------------


@dataclass
class SiteHindsightPlan:
    outcome: SiteOutcome  #: the played plan (``choice``, ``power_w``) scored on the exact site model
    bound: SiteBound  #: the strict lower bound and the dual point the plan started from
    sweeps: int  #: block-move sweeps until no agent's day improved


def _best_powers(problem: SiteProblem, choice: np.ndarray) -> np.ndarray:
    """Each answer's best power for the airtime its epoch leaves it, on the exact site trajectory."""
    U, T = choice.shape
    traj = site_trajectory(problem, _pick(problem.load_tokens, choice).sum(axis=0))
    budget = (
        problem.t_max_s
        - _pick(problem.fixed_latency_s, choice)
        - _pick(problem.answer_tokens, choice) * traj.itl_s
        - traj.wait_s
    )
    power = problem.radio.best_power_w(np.arange(U)[:, None], np.arange(T)[None, :], choice, budget)
    # where no power meets T_max the answer goes at the fastest power the radio has (a violation)
    fastest = problem.radio.fastest_power_w(np.arange(U)[:, None], np.arange(T)[None, :], choice)
    return np.where(np.isfinite(power), power, fastest)


def _best_day_for_agent(
    problem: SiteProblem, outcome: SiteOutcome, u: int, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Agent ``u``'s best day with the others' answers fixed: in each epoch, every option's exact change of the
    agents' carbon (its own prefill and radio at its best power, plus everyone's site share at the epoch's
    replicas and backlog) with the options that would push another agent over T_max masked out; then λ_u
    bisected for its mean QoE (:func:`aolo.envs.reference._bisect_multipliers`)."""
    p, traj = problem, outcome.trajectory
    T, K = p.num_epochs, p.load_tokens.shape[2]
    load, hold = _pick(p.load_tokens, outcome.choice), _pick(p.hold_s, outcome.choice)
    others = np.arange(p.num_agents) != u
    others_before_decode = (outcome.latency_s - _pick(p.answer_tokens, outcome.choice) * traj.itl_s - traj.wait_s)[
        others
    ]
    others_tokens = _pick(p.answer_tokens, outcome.choice)[others]
    cost, power = np.full((T, K), np.inf), np.full((T, K), np.nan)
    for t in range(T):
        a_others, h_others = load[others, t].sum(), hold[others, t].sum()
        epoch = site_epoch(
            (a_others + p.load_tokens[u, t])[:, None],
            p.background_tok_s[t],
            traj.backlog_in_tok[t],
            traj.replicas[t],
            p.profile,
            p.epoch_s,
        )  # (K,): the epoch with each of u's options
        gamma, eta = p.carbon_per_token_and_hold_g(t, epoch.batch)
        site_g = (a_others + p.load_tokens[u, t]) * gamma + (h_others + p.hold_s[u, t]) * eta
        own_g, power[t] = p.option_cost(
            u, t, np.arange(K), p.t_max_s - p.fixed_latency_s[u, t] - p.answer_tokens[u, t] * epoch.itl_s - epoch.wait_s
        )
        now = outcome.latency_s[others, t]
        others_after = others_before_decode[:, t, None] + others_tokens[:, t, None] * epoch.itl_s + epoch.wait_s
        others_ok = (others_after <= np.maximum(p.t_max_s, now)[:, None] * (1 + _TOL)).all(axis=0)
        cost[t] = np.where(others_ok, own_g + site_g, np.inf)
    stuck = ~np.isfinite(cost).any(axis=1)  # no option keeps everyone within T_max: keep the current answer
    cost[stuck, outcome.choice[u, stuck]] = 0.0
    power[stuck] = outcome.power_w[u, stuck, None]
    _, best = _bisect_multipliers(cost[None], p.qoe[u][None], p.q_min, steps)
    return best[0], np.take_along_axis(power, best[0][:, None], axis=1)[:, 0]


def solve_site_hindsight(
    problem: SiteProblem, levels: int = 8, max_sweeps: int = 12, steps: int = 60
) -> SiteHindsightPlan:
    """The joint hindsight plan of a site's day: dual decomposition, then an exact primal repair.

    1. :func:`site_dual_bound` gives the bound and the Lagrangian's minimiser at its best multipliers (each
       agent's answers priced by λ_u, each epoch's load by π_t); its answers get their best powers on the
       exact site trajectory.
    2. Exact block moves from that plan: in turn each agent re-plans its whole day against the others'
       answers (:func:`_best_day_for_agent`); a move is kept only when the plan scored exactly
       (:func:`score_site_plan`: backlog and autoscaler carried across epochs) has more feasible agents or,
       as many, less carbon. Sweeps stop when no move is kept.
    """
    bound = site_dual_bound(problem, levels=levels)
    choice = bound.primal_choice.copy()
    best, sweeps = block_moves(
        problem, score_site_plan(problem, choice, _best_powers(problem, choice)), max_sweeps, steps
    )
    return SiteHindsightPlan(best, bound, sweeps)


def block_moves(problem: SiteProblem, start: SiteOutcome, max_sweeps: int = 12, steps: int = 60):
    """Exact block moves from the plan ``start``: in turn each agent re-plans its whole day against the others'
    answers (:func:`_best_day_for_agent`); a move is kept only when the plan scored exactly has more feasible
    agents or, as many, less carbon. Returns the best plan and the sweeps run (they stop when no move is kept)."""
    best, sweeps = start, 0
    while sweeps < max_sweeps:
        sweeps += 1
        improved = False
        for u in range(problem.num_agents):
            choice, power = best.choice.copy(), best.power_w.copy()
            choice[u], power[u] = _best_day_for_agent(problem, best, u, steps)
            trial = score_site_plan(problem, choice, power)
            more_feasible = trial.feasible.sum() > best.feasible.sum()
            as_feasible = trial.feasible.sum() == best.feasible.sum()
            if more_feasible or (as_feasible and trial.total_carbon_g < best.total_carbon_g * (1 - 1e-12)):
                best, improved = trial, True
        if not improved:
            break
    return best, sweeps


# --- on a SiteEnv ------------------------------------------------------------------------------------


class CellRadio:
    """The :class:`RadioModel` of a site's cells (docs/design.md §3.2, §3.4): agent ``u``'s answers go over its
    cell's channel at the true gain; the least-carbon power for an airtime budget is ``max(P*, P_lat)``
    clipped to the power range (radio carbon per token is quasi-convex in P, as in
    :func:`aolo.envs.reference.power_for_length_w`); carbon is the EARTH marginal energy at the cell's intensity,
    over the agent's requests of the epoch."""

    def __init__(self, env, kappa: np.ndarray, volume: np.ndarray):
        cells = [(cell, cell.num_users) for cell in env.cells]
        per_agent = lambda f: np.concatenate([np.full(n, f(c), dtype=np.float64) for c, n in cells])  # noqa: E731
        self.bandwidth_hz = per_agent(lambda c: c.bandwidth_per_user_hz)
        self.noise_w = per_agent(lambda c: c.noise_w)
        self.interference_w = per_agent(lambda c: c.interference_w)
        self.users = per_agent(lambda c: c.num_users)
        self.gain = np.concatenate([c.episode.channel_gain for c, _ in cells])  # (U, T)
        self.ci_cell = np.concatenate(
            [np.broadcast_to(c.episode.ci_cell_g_per_kwh, (n, kappa.shape[1])) for c, n in cells]
        )
        self.p_star = np.concatenate([c.efficient_power_w(c.episode.channel_gain) for c, _ in cells])
        self.kappa, self.volume = kappa, volume
        self.radio, self.bits = env.scenario.radio, env.scenario.service.payload_bits_per_token
        self.p_min_w, self.p_max_w = channel.dbm_to_w(self.radio.p_min_dbm), channel.dbm_to_w(self.radio.p_max_dbm)

    def best_power_w(self, u, t, k, airtime_budget_s) -> np.ndarray:
        budget = np.asarray(airtime_budget_s, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(budget > 0, self.kappa[u, t, k] * self.bits / budget, np.inf)
        p_lat = channel.power_for_rate_w(
            rate, self.bandwidth_hz[u], self.gain[u, t], self.noise_w[u], self.interference_w[u], self.radio
        )
        power = np.clip(np.maximum(self.p_star[u, t], p_lat), self.p_min_w, self.p_max_w)
        return np.where(p_lat <= self.p_max_w * (1 + 1e-9), power, np.inf)

    def carbon_and_airtime(self, u, t, k, power_w) -> tuple[np.ndarray, np.ndarray]:
        rate = channel.delivery_rate_bps(
            self.bandwidth_hz[u], power_w, self.gain[u, t], self.noise_w[u], self.interference_w[u], self.radio
        )
        airtime = self.kappa[u, t, k] * self.bits / rate
        energy = comm_energy_j(power_w, airtime, self.users[u], self.radio)
        return self.volume[u, t] * energy / J_PER_KWH * self.ci_cell[u, t], airtime

    def fastest_power_w(self, u, t, k) -> np.ndarray:
        return np.full(np.broadcast(u, t, k).shape, self.p_max_w)


def site_problem(env) -> SiteProblem:
    """The day a reset :class:`~aolo.envs.site_env.SiteEnv` will play, everything known (for hindsight and
    the bound): per agent its reachable answer lengths (:func:`aolo.envs.reference.length_bounds`), its request
    volume, prompt, channel; the site's background, carbon trace, replicas and profile."""
    cells, T = env.cells, env.T
    volume = np.concatenate(env.site_day.volume)  # (U, T)
    ref = np.concatenate([c.episode.ref_tokens for c in cells])
    prompt = np.concatenate([c.episode.prompt_tokens for c in cells])
    bounds = [length_bounds(c, c.episode.ref_tokens) for c in cells]
    k_lo, k_hi = np.concatenate([b[0] for b in bounds]), np.concatenate([b[1] for b in bounds])
    kappa = k_lo[..., None] + np.arange(int((k_hi - k_lo).max()) + 1)  # (U, T, K)
    valid = kappa <= k_hi[..., None]
    kappa = np.where(valid, kappa, k_lo[..., None])
    sv, profile = env.scenario.service, env.profile
    ci_dc = np.asarray(cells[0].episode.ci_dc_g_per_kwh[:T], dtype=np.float64)
    coef = site_inference(profile.batch_sizes[-1], profile, sv)  # prefill terms do not depend on the batch
    prefill_s = coef.ttft_overhead_s + coef.prefill_s_per_token * prompt  # (U, T)
    prefill_g = volume * coef.overhead * coef.prefill_j_per_token * prompt / J_PER_KWH * ci_dc
    shape = kappa.shape
    return SiteProblem(
        load_tokens=volume[..., None] * kappa,
        hold_s=np.broadcast_to((volume * prefill_s)[..., None], shape).copy(),
        answer_tokens=kappa,
        qoe=qoe(kappa, ref[..., None], sv.qoe_alpha),
        fixed_carbon_g=np.broadcast_to(prefill_g[..., None], shape).copy(),
        fixed_latency_s=np.broadcast_to(prefill_s[..., None], shape).copy(),
        valid=valid,
        radio=CellRadio(env, kappa, volume),
        background_tok_s=np.asarray(env.site_day.background_tok_s, dtype=np.float64),
        ci_dc_g_per_kwh=ci_dc,
        site=env.site,
        profile=profile,
        service=sv,
        epoch_s=env.epoch_s,
        q_min=sv.q_min,
        t_max_s=sv.t_max_s,
        replicas_in=env.site.replicas,
    )


def _site_actions(env, kappa_by_cell, power_by_cell) -> dict[str, np.ndarray]:
    actions = {}
    for cell, ids, kappa, power in zip(env.cells, env.agent_ids, kappa_by_cell, power_by_cell, strict=True):
        per_user = cell.action_for(kappa, power)
        actions.update({a: per_user[f"user_{u}"] for u, a in enumerate(ids)})
    return actions


def _split_by_cell(env, values: np.ndarray) -> list[np.ndarray]:
    return np.split(values, np.cumsum([c.num_users for c in env.cells])[:-1])


class SiteHindsightPolicy:
    """Replays :func:`solve_site_hindsight`'s joint plan on a SiteEnv; its episode bound is the better of the
    level bound the plan starts from (``plan.bound``) and, unless ``state_bound=False``, the state bound
    (:func:`site_state_bound`, searched around the level bound's multipliers; ≈ the level bound's time again)."""

    name = "hindsight"

    def __init__(self, state_bound: bool = True) -> None:
        self.plan: SiteHindsightPlan | None = None
        self.problem: SiteProblem | None = None
        self.with_state_bound = state_bound
        self.state_bound: SiteStateBound | None = None

    def begin_episode(self, env) -> None:
        self.problem = site_problem(env)
        self.plan = solve_site_hindsight(self.problem)
        if self.with_state_bound:
            self.state_bound = site_state_bound(self.problem, multipliers=self.plan.bound.qoe_multiplier, qoe_steps=8)

    def episode_bound_g(self) -> float:
        """The site bound of the episode just planned [g over the sites' requests] (``evaluate_sites``): both
        bounds are valid, so the greater is; an infinite state bound (no plan meets every latency rule, not
        even relaxed) leaves the level bound, which drops the rules no plan can meet."""
        bound = self.plan.bound.bound_g
        if self.state_bound is not None and np.isfinite(self.state_bound.bound_g):
            bound = max(bound, self.state_bound.bound_g)
        return bound

    def act(self, env, obs=None) -> dict[str, np.ndarray]:
        t, out = env.t, self.plan.outcome
        kappa = _pick(self.problem.answer_tokens, out.choice)[:, t]
        return _site_actions(env, _split_by_cell(env, kappa), _split_by_cell(env, out.power_w[:, t]))


# --- forecast_site: the causal reference for coupled sites -------------------------------------------


@dataclass
class _PricedOutcomes(RequestOutcomes):
    """Outcomes whose total carbon carries the site's load price (the three carbon parts stay physical)."""

    load_price_g: np.ndarray | float = 0.0

    @property
    def carbon_total_g(self) -> np.ndarray:
        return self.carbon_inference_g + self.carbon_embodied_g + self.carbon_comm_g + self.load_price_g


class _PredictedSiteCell:
    """A site's cell seen through the site's predicted epoch (what :class:`ForecastSitePolicy` plans on): its
    inference at the predicted batch, the predicted queueing wait added to the time to first token (a
    constant per request: it moves the latency limit, not the choice between lengths), and the site's load
    price per answer token added to each answer's total carbon — which the forecast rule minimises — but not
    to the carbon parts it prices the day's multiplier from (a price in the multiplier would cancel out)."""

    def __init__(self, cell, inference: InferenceCoefficients, price_g_per_token: float):
        self._cell, self.inference, self.price_g_per_token = cell, inference, price_g_per_token

    def __getattr__(self, name: str):
        return getattr(self._cell, name)

    def request_outcomes(self, kappa, power_w, **kwargs):
        out = self._cell.request_outcomes(kappa, power_w, inference=self.inference, **kwargs)
        price = self.price_g_per_token * np.asarray(kappa, dtype=np.float64)
        return _PricedOutcomes(**{f.name: getattr(out, f.name) for f in dataclasses.fields(out)}, load_price_g=price)


class ForecastSitePolicy:
    """``forecast_site`` (docs/design.md, "Shared sites: the references and the strict lower bound"): the
    ``forecast`` controller of every cell, planned on the site's predicted epoch, plus a site price on load.

    Causal: at epoch t it reads the site's state now (backlog, replicas), the background observed up to t−1
    and its day shape (the background forecast of :func:`aolo.envs.site_env.background_forecast_tok_s`), the
    request volumes of t (observed) and its own last answers. Per epoch:

    1. predicted demand ``D̂ = B̂_t + Σ_u v_u κ̂_u / Δ`` (κ̂: the agent's answer of the last epoch, then the
       answers just planned: two rounds of a fixed point), hence the predicted batch, ITL and wait
       (:func:`aolo.envs.site.site_epoch`, the env's own physics);
    2. a load price ``ρ_t = γ_max (y + k · max(0, D̂_t / C_t − u_target))`` per answer token, ``γ_max`` the
       site's carbon per token at its largest batch (the price's unit), ``y ≥ 0`` a dual variable updated by
       ascent on the observed load, ``y ← max(0, y + η (served/C + backlog/(C Δ) − u_target))``: it lengthens
       answers nowhere and shortens them where the site is or was full;
    3. each cell's :class:`~aolo.envs.reference.ForecastPolicy` on the predicted epoch with the price added.
    """

    name = "forecast_site"

    def __init__(self, target_utilisation: float = 0.9, ascent: float = 2.0, price_steps: int = 24):
        self.target_utilisation, self.ascent, self.price_steps = target_utilisation, ascent, price_steps
        self.cell_policies: list[ForecastPolicy] = []

    def begin_episode(self, env) -> None:
        if not hasattr(env, "site_day"):
            raise ValueError(
                "forecast_site plans for a shared serving site: it acts on a SiteEnv (a scenario with "
                f"scenario.sites), got {type(env).__name__}; on a cell with a private datacenter use forecast"
            )
        self.cell_policies = [ForecastPolicy() for _ in env.cells]
        for policy, cell in zip(self.cell_policies, env.cells, strict=True):
            policy.begin_episode(cell)
        self.dual, self.last_kappa = 0.0, None

    def _background_now_tok_s(self, env) -> float:
        """The background of epoch t from what is known at t: the last epoch's ratio to the day shape."""
        day, t = env.site_day, env.t
        if t == 0:
            return float(day.climatology_tok_s[0])
        clim_prev = day.climatology_tok_s[t - 1]
        ratio = day.background_tok_s[t - 1] / clim_prev if clim_prev > 0 else 1.0
        return float(ratio * day.climatology_tok_s[t])

    def act(self, env, obs=None) -> dict[str, np.ndarray]:
        t, sv = env.t, env.scenario.service
        if t == 0 or not self.cell_policies:
            self.begin_episode(env)
        volume = [v[:, t] for v in env.site_day.volume]
        capacity = float(capacity_tok_s(env.replicas, env.profile))
        if t > 0:
            served, backlog = env.history["served_tok_s"][-1], env.backlog_tok
            observed = (served + backlog / env.epoch_s) / float(
                capacity_tok_s(env.history["replicas"][-1], env.profile)
            )
            self.dual = max(0.0, self.dual + self.ascent * (observed - self.target_utilisation))
        if self.last_kappa is None:  # before any answer: the myopic length of every request
            self.last_kappa = [
                np.ceil(tokens_for_qoe(sv.q_min, cell.episode.ref_tokens[:, t], sv.qoe_alpha)) for cell in env.cells
            ]
        ci_dc = float(env.cells[0].episode.ci_dc_g_per_kwh[t])
        top = site_inference(env.profile.batch_sizes[-1], env.profile, sv)
        gamma_max = ci_dc * top.overhead * top.decode_j_per_token / J_PER_KWH
        gamma_max += top.embodied_g_per_gpu_s * top.gpu_share * top.itl_s
        background = self._background_now_tok_s(env)
        headroom_tok = (self.target_utilisation * capacity - background) * env.epoch_s - env.backlog_tok

        def plan(kappa_guess: list[np.ndarray], price: float):
            """The cells' forecast rule on the epoch predicted for answers ``kappa_guess`` at load price ``price``."""
            tokens = sum(float(v @ k) for v, k in zip(volume, kappa_guess, strict=True))
            # the epoch as the price means it to be: the agents within the headroom (no new queue)
            tokens = min(tokens, max(headroom_tok, 0.0))
            epoch = site_epoch([tokens], background, env.backlog_tok, env.replicas, env.profile, env.epoch_s)
            inference = dataclasses.replace(
                site_inference(float(epoch.batch), env.profile, sv),
                ttft_overhead_s=env.profile.ttft_overhead_s + float(epoch.wait_s),
            )
            actions, kappa = {}, []
            for policy, cell, ids in zip(self.cell_policies, env.cells, env.agent_ids, strict=True):
                per_user = policy.act(_PredictedSiteCell(cell, inference, price))
                kappa.append(cell.decode_actions(np.stack([per_user[f"user_{u}"] for u in range(cell.num_users)]))[0])
                actions.update({a: per_user[f"user_{u}"] for u, a in enumerate(ids)})
            return actions, kappa, sum(float(v @ k) for v, k in zip(volume, kappa, strict=True))

        price = gamma_max * self.dual
        actions, kappa_planned, tokens = plan(self.last_kappa, price)
        if tokens > headroom_tok:  # the least price (log-bisection) whose answers fit the site's headroom
            lo, hi = max(price, gamma_max * 1e-3), max(price, gamma_max * 1e-3) * 1e9
            for _ in range(self.price_steps):
                mid = np.sqrt(lo * hi)
                lo, hi = (mid, hi) if plan(kappa_planned, mid)[2] > headroom_tok else (lo, mid)
            price = hi
        actions, kappa_planned, _ = plan(plan(kappa_planned, price)[1], price)  # the batch of these answers
        self.last_kappa = kappa_planned
        return actions
