"""Run whole episodes of a ``CellEnv`` under any policy and summarise them with docs/design.md §6 metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from aolo.envs.cell_env import CellEnv

#: Per-request info fields recorded for every user and epoch.
RECORDED_FIELDS = (
    "carbon_inference_g",
    "carbon_embodied_g",
    "carbon_comm_g",
    "carbon_total_g",
    "energy_inference_j",
    "energy_comm_j",
    "qoe",
    "latency_s",
    "airtime_s",
    "kappa",
    "power_w",
    "qoe_guard_added",
)


class Policy(Protocol):
    name: str

    def begin_episode(self, env: CellEnv) -> None: ...

    def act(self, env: CellEnv, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass
class EpisodeRecord:
    """Everything one episode produced: ``(U, T)`` arrays per recorded field, plus rewards."""

    cell: str
    day: int
    fields: dict[str, np.ndarray]
    rewards: np.ndarray  #: (U, T)
    power_clipped: np.ndarray  #: (T,) whether the BS budget scaled powers down
    extra: dict = field(default_factory=dict)


def run_episode(
    env: CellEnv, policy: Policy, *, day: int | None = None, split: str | None = None, seed: int | None = None
) -> EpisodeRecord:
    """Play one episode of ``env`` with ``policy`` (``begin_episode`` is called after ``reset``)."""
    options = {k: v for k, v in (("day", day), ("split", split)) if v is not None}
    obs, _ = env.reset(seed=seed, options=options)
    policy.begin_episode(env)
    n, T = env.num_users, env.scenario.epochs_per_episode
    fields = {f: np.empty((n, T)) for f in RECORDED_FIELDS}
    rewards = np.empty((n, T))
    clipped = np.zeros(T, dtype=bool)
    actions = np.empty((n, T, 2))
    for t in range(T):
        action = policy.act(env, obs)
        actions[:, t] = [np.asarray(action[a], dtype=np.float64) for a in env.agents]
        obs, rew, _, truncated, infos = env.step(action)
        for i, agent in enumerate(env.agents):
            info = infos[agent]
            for f in RECORDED_FIELDS:
                fields[f][i, t] = info[f]
            rewards[i, t] = rew[agent]
        clipped[t] = infos[env.agents[0]]["power_clipped"]
    assert truncated["__all__"], "episode did not end after epochs_per_episode steps"
    return EpisodeRecord(env.cell.name, env.episode.day, fields, rewards, clipped, {"actions": actions})


def spread_days(days: np.ndarray, k: int | None) -> np.ndarray:
    """``k`` of ``days`` evenly spread over the whole set: the middle day of each of ``k`` equal strata, so a
    few evaluation days still cover every season; ``None`` (or ``k >= len(days)``) keeps them all. With the 52
    held-out days of a year (every 7th) and ``k = 4`` this picks days 48, 139, 230, 321 (18 Feb, 20 May,
    19 Aug, 18 Nov of 2023): one day per season."""
    days = np.asarray(days)
    if k is None or k >= len(days):
        return days
    if k < 1:
        raise ValueError(f"days_per_cell must be >= 1 or None, got {k!r}")
    return days[((np.arange(k) + 0.5) * len(days) / k).astype(int)]


def summarize(records: list[EpisodeRecord], q_min: float, q_floor: float, t_max_s: float) -> dict[str, float]:
    """Evaluation metrics over episodes (names without the ``eval/`` prefix).

    Carbon, mean per request [g]: ``carbon_g_per_request`` is the total; ``carbon_inference_g`` the operational
    inference carbon (datacenter energy × grid intensity) and ``carbon_embodied_g`` the embodied GPU/server
    share, which together make docs/design.md's ``C_I`` (§3.4); ``carbon_comm_g`` is the radio's ``C_C``.

    ``qoe_violation_rate`` is the fraction of user-episodes whose mean QoE is below ``q_min`` or with any
    answer below ``q_floor`` (``qoe_mean_violation_rate`` and ``qoe_floor_violation_rate`` count the two
    causes separately, ``qoe_shortfall`` is the mean of ``max(0, q_min - mean QoE)`` over user-episodes: how
    deep the mean-QoE violations go); ``qoe_guard_rate`` is the share of answers the mean-QoE guard lengthened
    and ``qoe_guard_added`` the mean QoE it added per answer (how much the policy leaned on the safety layer);
    ``latency_violation_rate`` the fraction of requests over ``t_max_s``.
    ``action_at_bound_rate`` is the share of action components (answer length, power) within 1 % of a bound of
    ``[-1, 1]`` (``|a| >= 0.99``): near 1 for a bang-bang policy (nan when no record kept its actions).
    """
    acts = [np.clip(r.extra["actions"], -1.0, 1.0).ravel() for r in records if "actions" in r.extra]
    at_bound = float(np.mean(np.abs(np.concatenate(acts)) >= 0.99)) if acts else float("nan")
    cat = lambda f: np.concatenate([r.fields[f].ravel() for r in records])  # noqa: E731
    user_mean_q = np.concatenate([r.fields["qoe"].mean(axis=1) for r in records])
    user_min_q = np.concatenate([r.fields["qoe"].min(axis=1) for r in records])
    return {
        "carbon_g_per_request": float(cat("carbon_total_g").mean()),
        "carbon_inference_g": float(cat("carbon_inference_g").mean()),
        "carbon_embodied_g": float(cat("carbon_embodied_g").mean()),
        "carbon_comm_g": float(cat("carbon_comm_g").mean()),
        "qoe_mean": float(cat("qoe").mean()),
        "qoe_violation_rate": float(np.mean((user_mean_q < q_min - 1e-9) | (user_min_q < q_floor - 1e-9))),
        "qoe_mean_violation_rate": float(np.mean(user_mean_q < q_min - 1e-9)),
        "qoe_floor_violation_rate": float(np.mean(user_min_q < q_floor - 1e-9)),
        "qoe_shortfall": float(np.mean(np.maximum(0.0, q_min - user_mean_q))),
        "qoe_guard_rate": float(np.mean(cat("qoe_guard_added") > 1e-12)),
        "qoe_guard_added": float(cat("qoe_guard_added").mean()),
        "latency_violation_rate": float(np.mean(cat("latency_s") > t_max_s)),
        "power_clipped_rate": float(np.mean(np.concatenate([r.power_clipped for r in records]))),
        "action_at_bound_rate": at_bound,
        "return_per_user": float(np.mean([r.rewards.sum(axis=1).mean() for r in records])),
        "num_episodes": float(len(records)),
    }


def evaluate_policy(
    make_env: Callable[[int], CellEnv],
    policy: Policy,
    num_cells: int,
    days_per_cell: int | None = None,
    split: str = "heldout",
) -> tuple[dict[str, float], list[EpisodeRecord]]:
    """Run ``policy`` on the ``split`` days of every cell (``make_env(cell_index)``) and summarise."""
    records = []
    for c in range(num_cells):
        env = make_env(c)
        days = spread_days(env.days[split], days_per_cell)
        for d in days:
            records.append(run_episode(env, policy, day=int(d), split=split, seed=int(d)))
    sv = env.scenario.service
    return summarize(records, sv.q_min, sv.q_floor, sv.t_max_s), records
