"""Run whole episodes of a :class:`~aolo.envs.site_env.SiteEnv` and summarise them (docs/design.md §10).

A site episode is recorded as one :class:`~aolo.envs.rollout.EpisodeRecord` per cell (so every cell metric of
:func:`~aolo.envs.rollout.summarize` reads it unchanged), each carrying the agents' request volumes and the
site's day (batch, utilisation, backlog, ...) in ``extra``. :class:`PerCellPolicy` lets any cell policy — the
``myopic`` and ``forecast`` references — act on a site, one instance per cell, blind to the coupling.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from aolo.envs.cell_env import OBS_FEATURES
from aolo.envs.reference import make_reference_policy
from aolo.envs.rollout import RECORDED_FIELDS, EpisodeRecord, Policy, summarize
from aolo.envs.site_env import SiteEnv
from aolo.envs.site_reference import ForecastSitePolicy, SiteHindsightPolicy

#: Site fields logged per epoch (``SiteEnv.history``) and kept in each record's ``extra["site"]``.
SITE_FIELDS = (
    "replicas",
    "background_tok_s",
    "agent_tok_s",
    "served_tok_s",
    "batch",
    "utilisation",
    "backlog_tok",
    "wait_s",
)


class PerCellPolicy:
    """A cell policy played on every cell of a site, one instance per cell, each seeing its own cell only.

    The references keep their private-datacenter view (the site's profile at its ``target_batch``): they ignore
    the coupling, which is what a site study measures."""

    def __init__(self, make: Callable[[], Policy], name: str):
        self.make, self.name = make, name
        self.policies: list[Policy] = []

    def begin_episode(self, env: SiteEnv) -> None:
        self.policies = [self.make() for _ in env.cells]
        for policy, cell in zip(self.policies, env.cells, strict=True):
            policy.begin_episode(cell)

    def act(self, env: SiteEnv, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        actions = {}
        n_cell = len(OBS_FEATURES)
        for policy, cell, ids in zip(self.policies, env.cells, env.agent_ids, strict=True):
            cell_obs = {f"user_{u}": obs[a][:n_cell] for u, a in enumerate(ids)}
            cell_actions = policy.act(cell, cell_obs)
            actions.update({a: cell_actions[f"user_{u}"] for u, a in enumerate(ids)})
        return actions


#: Site-aware policies by name, built fresh per evaluation (the site references of issue 18 — a coupled
#: ``hindsight`` whose policy exposes ``episode_bound_g()``, ``forecast_site`` — register here); any other
#: reference name runs per cell, blind to the coupling (:class:`PerCellPolicy`).
SITE_POLICIES: dict[str, Callable[[], Policy]] = {"hindsight": SiteHindsightPolicy, "forecast_site": ForecastSitePolicy}


def make_site_policy(name: str) -> Policy:
    """The site policy registered as ``name``, else the cell reference ``name`` on every cell."""
    if name in SITE_POLICIES:
        return SITE_POLICIES[name]()
    return PerCellPolicy(lambda: make_reference_policy(name), name)


def run_site_episode(
    env: SiteEnv, policy: Policy, *, day: int | None = None, split: str | None = None, seed: int | None = None
) -> list[EpisodeRecord]:
    """Play one episode of ``env`` with ``policy``; one record per cell of the site."""
    options = {k: v for k, v in (("day", day), ("split", split)) if v is not None}
    obs, _ = env.reset(seed=seed, options=options)
    policy.begin_episode(env)
    T = env.T
    n = len(env.agents)
    fields = {f: np.empty((n, T)) for f in RECORDED_FIELDS}
    rewards, actions, clipped = np.empty((n, T)), np.empty((n, T, 2)), np.zeros((len(env.cells), T), dtype=bool)
    for t in range(T):
        action = policy.act(env, obs)
        actions[:, t] = [np.asarray(action[a], dtype=np.float64) for a in env.agents]
        obs, rew, _, truncated, infos = env.step(action)
        for i, agent in enumerate(env.agents):
            for f in RECORDED_FIELDS:
                fields[f][i, t] = infos[agent][f]
            rewards[i, t] = rew[agent]
        clipped[:, t] = [infos[ids[0]]["power_clipped"] for ids in env.agent_ids]
    assert truncated["__all__"], "episode did not end after epochs_per_episode steps"
    site = {k: np.asarray(env.history[k]) for k in SITE_FIELDS}
    records, start = [], 0
    for k, (cell, ids) in enumerate(zip(env.cells, env.agent_ids, strict=True)):
        rows = slice(start, start + len(ids))
        start += len(ids)
        extra = {
            "actions": actions[rows],
            "volume": env.site_day.volume[k],
            "site_name": env.site.name,
            "site": site,
            "full_capacity_tok_s": env.full_capacity_tok_s,
            "epoch_s": env.epoch_s,
            "ci_dc_g_per_kwh": env.cells[0].episode.ci_dc_g_per_kwh,
        }
        cell_fields = {f: v[rows] for f, v in fields.items()}
        records.append(EpisodeRecord(cell.cell.name, env.site_day.day, cell_fields, rewards[rows], clipped[k], extra))
    return records


#: per-hour (UTC) site profiles in the metrics, ``site/<name>/<field>_h<HH>`` (what ``aolo report`` plots)
HOURLY_FIELDS = ("utilisation", "batch", "ci_dc_g_per_kwh")


def hourly_profile(site: str, days: list[dict]) -> dict[str, float]:
    """The site's utilisation, batch and datacenter carbon intensity by hour of the UTC day, each the mean over
    the evaluated days' epochs in that hour: ``site/<name>/utilisation_h00`` ... ``_h23``."""
    out = {}
    for field in HOURLY_FIELDS:
        values = np.concatenate(
            [d["ci_dc_g_per_kwh"] if field == "ci_dc_g_per_kwh" else d["site"][field] for d in days]
        )
        hours = np.concatenate([(np.arange(len(d["site"]["batch"])) * d["epoch_s"] / 3600.0) % 24.0 for d in days])
        for h in range(24):
            in_hour = np.floor(hours) == h
            if in_hour.any():
                out[f"site/{site}/{field}_h{h:02d}"] = float(values[in_hour].mean())
    return out


#: carbon metrics of :func:`~aolo.envs.rollout.summarize` and the per-request fields they average
CARBON_METRICS = {
    "carbon_g_per_request": "carbon_total_g",
    "carbon_inference_g": "carbon_inference_g",
    "carbon_embodied_g": "carbon_embodied_g",
    "carbon_comm_g": "carbon_comm_g",
}


def summarize_sites(records: list[EpisodeRecord], q_min: float, q_floor: float, t_max_s: float) -> dict[str, float]:
    """:func:`~aolo.envs.rollout.summarize` of the per-cell records, with the carbon metrics per request of the
    sites' traffic (each agent's answer weighted by its request volume: the total the agents minimise, over
    ``requests``; ``carbon_g_per_representative_request`` keeps the unweighted mean; QoE, latency and the
    constraint rates stay per representative answer, as the rules are stated) and, per site ``<name>``: mean and peak
    utilisation, mean batch, the share of saturated epochs (utilisation ≥ 0.999), the largest backlog as
    epochs of full capacity, the latency-violation rate, the agents' share of the peak epoch's demand, and the
    site's day by UTC hour (:func:`hourly_profile`)."""
    metrics = summarize(records, q_min, q_floor, t_max_s)
    volume = np.concatenate([r.extra["volume"].ravel() for r in records])
    metrics["carbon_g_per_representative_request"] = metrics["carbon_g_per_request"]
    for name, field in CARBON_METRICS.items():  # per request of the site's traffic: what the agents minimise
        values = np.concatenate([r.fields[field].ravel() for r in records])
        metrics[name] = float(np.sum(volume * values) / np.sum(volume))
    metrics["requests"] = float(np.sum(volume))
    by_site: dict[str, list[EpisodeRecord]] = {}
    for r in records:
        by_site.setdefault(r.extra["site_name"], []).append(r)
    for name, site_records in by_site.items():
        days = list({id(r.extra["site"]): r.extra for r in site_records}.values())  # one site day per episode
        site = {k: np.concatenate([d["site"][k] for d in days]) for k in SITE_FIELDS}
        full_tok = np.concatenate(
            [np.full(d["site"]["batch"].size, d["full_capacity_tok_s"] * d["epoch_s"]) for d in days]
        )
        demand = site["background_tok_s"] + site["agent_tok_s"]
        capacity = full_tok / days[0]["epoch_s"]
        peak_share = []
        for d in days:
            day_demand = d["site"]["background_tok_s"] + d["site"]["agent_tok_s"]
            peak = int(np.argmax(day_demand))
            peak_share.append(d["site"]["agent_tok_s"][peak] / max(day_demand[peak], 1e-12))
        latency = np.concatenate([r.fields["latency_s"].ravel() for r in site_records])
        metrics |= {
            f"site/{name}/utilisation_mean": float(site["utilisation"].mean()),
            f"site/{name}/utilisation_peak": float(site["utilisation"].max()),
            f"site/{name}/batch_mean": float(site["batch"].mean()),
            f"site/{name}/saturated_epoch_rate": float(np.mean(site["utilisation"] >= 0.999)),
            f"site/{name}/backlog_max_epochs": float(np.max(site["backlog_tok"] / full_tok)),
            f"site/{name}/latency_violation_rate": float(np.mean(latency > t_max_s)),
            f"site/{name}/agent_share_at_peak": float(np.mean(peak_share)),
            f"site/{name}/demand_peak_over_capacity": float(np.max(demand / capacity)),
        }
        metrics |= hourly_profile(name, days)
    return metrics
