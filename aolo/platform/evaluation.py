"""Evaluate trained RLlib modules and the reference policies on held-out days (docs/design.md §6 metrics).

Learned policies act deterministically (``forward_inference``), on exactly the episodes (cell, day,
seed) the reference policies see, so every algorithm is compared on the same requests and channels.
The gap to the bound compares with the ``hindsight`` policy on those same episodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ray.rllib.core.distribution.torch.torch_distribution import TorchSquashedGaussian

from aolo.envs.cell_env import CellEnv
from aolo.envs.config import ScenarioConfig
from aolo.envs.model_reference import MODEL_REFERENCE_POLICIES
from aolo.envs.physics import J_PER_KWH
from aolo.envs.protocol import CAUSAL_REFERENCES, Observations, ProtocolRunner
from aolo.envs.reference import REFERENCE_POLICIES, SITE_REFERENCE_POLICIES, HindsightPolicy, make_reference_policy
from aolo.envs.rollout import EpisodeRecord, run_episode, spread_days, summarize
from aolo.envs.site_env import SiteEnv, check_every_cell_on_a_site
from aolo.envs.site_rollout import make_site_policy, run_site_episode, summarize_sites
from aolo.errors import CheckpointError  # re-exported: aolo.platform.evaluation.CheckpointError
from aolo.platform.algorithms import MODULE_ID
from aolo.policies.energy import ActorEnergy, mlp_actor_energy


def module_path(checkpoint: str | Path) -> Path:
    """The shared RLModule inside an ``Algorithm.save_to_path`` checkpoint (or the module dir itself)."""
    path = Path(checkpoint).expanduser().resolve()
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; pass the directory printed by `aolo train`")
    for candidate in (path / "learner_group" / "learner" / "rl_module" / MODULE_ID, path):
        if (candidate / "module_state.pkl").exists() or any(candidate.glob("module_state*")):
            return candidate
    raise CheckpointError(
        f"{path} holds no RLlib module checkpoint (expected learner_group/learner/rl_module/{MODULE_ID}/)"
    )


def load_module(checkpoint: str | Path):
    """Restore the shared RLModule of a checkpoint for inference."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    return RLModule.from_checkpoint(module_path(checkpoint))


class ModulePolicy:
    """A trained RLModule acting deterministically on all users of a cell at once, through the policy protocol
    (:func:`evaluate` plays it with a :class:`~aolo.envs.protocol.ProtocolRunner`, as every causal policy)."""

    def __init__(self, module, name: str):
        self.module = module
        self.name = name
        self.module.eval()
        self._obs_log: list[np.ndarray] = []

    @torch.no_grad()
    def act(self, observations: Observations) -> np.ndarray:
        """(U, A) actions from the RL features of every user (a protocol policy, :mod:`aolo.envs.protocol`)."""
        return self.actions_for(np.array(observations.features))  # a writable copy for torch

    @torch.no_grad()
    def actions_for(self, batch: np.ndarray) -> np.ndarray:
        """(N, A) deterministic actions for (N, obs) observation rows (logged for :meth:`actor_energy`)."""
        from ray.rllib.core.columns import Columns

        self._obs_log.append(batch)
        out = self.module.forward_inference({Columns.OBS: torch.from_numpy(batch)})
        if Columns.ACTIONS in out:  # deterministic modules (TD3) emit actions directly
            actions = out[Columns.ACTIONS]
        else:
            dist = self.module.get_inference_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
            if isinstance(dist, TorchSquashedGaussian):  # also checkpoints of RLlib's own SAC module: act at tanh(μ),
                actions = dist._squash(dist.loc)  # not at RLlib's pre-tanh μ (aolo.policies.sac)
            else:
                actions = dist.to_deterministic().sample()
        return np.clip(actions.numpy().astype(np.float64), -1.0, 1.0)  # as RLlib's clip_actions does

    def actor_energy(self, max_decisions: int = 2048) -> ActorEnergy:
        """Energy per decision on the observations seen during evaluation (spikes counted for SNNs)."""
        obs = np.concatenate(self._obs_log)[:max_decisions] if self._obs_log else None
        if hasattr(self.module, "actor_energy"):
            return self.module.actor_energy(torch.from_numpy(obs))
        return mlp_actor_energy(mlp_layer_sizes(self.module))


class SiteModulePolicy:
    """A :class:`ModulePolicy` on a :class:`SiteEnv` (its agents observe the cell columns plus the site's): the
    env-level interface of :func:`~aolo.envs.site_rollout.run_site_episode`; site envs have no protocol view yet."""

    def __init__(self, policy: ModulePolicy):
        self.policy, self.name = policy, policy.name

    def begin_episode(self, env: SiteEnv) -> None:
        pass

    def act(self, env: SiteEnv, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        actions = self.policy.actions_for(np.stack([obs[a] for a in env.agents]).astype(np.float32))
        return dict(zip(env.agents, actions, strict=True))


def mlp_layer_sizes(module) -> list[int]:
    """Dense layer widths of the actor path of an RLlib default module (encoder + pi head)."""
    sizes: list[int] = []
    for part in ("pi_encoder", "encoder", "pi"):
        sub = getattr(module, part, None)
        if sub is None:
            continue
        actor = getattr(sub, "actor_encoder", None) if part == "encoder" else sub
        for layer in (actor or sub).modules():
            if isinstance(layer, torch.nn.Linear):
                if not sizes:
                    sizes.append(layer.in_features)
                sizes.append(layer.out_features)
    return sizes


@dataclass
class EvaluationResult:
    policy: str
    metrics: dict[str, float]  #: docs/design.md §6 names without the ``eval/`` prefix
    records: list[EpisodeRecord] = field(repr=False, default_factory=list)


def evaluation_episodes(scenario: ScenarioConfig, days_per_cell: int | None) -> list[tuple[int, int]]:
    """(cell index, held-out day) pairs: ``days_per_cell`` held-out days of every cell, evenly spread over the
    year (:func:`~aolo.envs.rollout.spread_days`), so every season is evaluated. With ``scenario.sites``:
    (site index, held-out day) pairs, ``days_per_cell`` days of every site."""
    pairs = []
    if scenario.sites:
        for s in range(len(scenario.sites)):
            days = SiteEnv({"scenario": scenario, "site_index": s}).days["heldout"]
            pairs += [(s, int(d)) for d in spread_days(days, days_per_cell)]
        return pairs
    for c in range(len(scenario.cells)):
        days = CellEnv({"scenario": scenario, "cell_index": c}).days["heldout"]
        pairs += [(c, int(d)) for d in spread_days(days, days_per_cell)]
    return pairs


def reference_policy(name: str, scenario: ScenarioConfig | None = None):
    """The reference policy ``name`` as :func:`evaluate` plays it: the causal ones (``fixed``, ``myopic``,
    ``forecast``) through the policy protocol (:class:`~aolo.envs.protocol.ProtocolRunner`), exactly as an external
    policy; ``hindsight`` and ``myopic_true_csi``, which read the truth by definition, on the env itself. With a
    model pool (``service.model_action``) every reference acts on the env: the protocol's observed stand-in of
    the cell (:class:`~aolo.envs.protocol.CausalCell`) does not carry the pool yet."""
    if name in CAUSAL_REFERENCES and not (scenario is not None and scenario.service.model_action):
        return ProtocolRunner(CAUSAL_REFERENCES[name]())
    return make_reference_policy(name)


def evaluate(
    policy, scenario: ScenarioConfig, days_per_cell: int | None = 4, bound: EvaluationResult | None = None
) -> EvaluationResult:
    """Run ``policy`` on held-out days: a reference-policy name (:func:`reference_policy`), a protocol policy
    wrapped in :class:`~aolo.envs.protocol.ProtocolRunner`, or an env-level policy (``begin_episode(env)`` /
    ``act(env, obs)``, as the oracles); a :class:`ModulePolicy` is played through the protocol."""
    if scenario.sites:
        return evaluate_sites(policy, scenario, days_per_cell, bound)
    if isinstance(policy, str):
        policy = reference_policy(policy, scenario)
    module_policy = policy if isinstance(policy, ModulePolicy) else None
    if module_policy is not None:
        policy = ProtocolRunner(module_policy)
    envs: dict[int, CellEnv] = {}
    records = []
    for cell_index, day in evaluation_episodes(scenario, days_per_cell):
        env = envs.setdefault(cell_index, CellEnv({"scenario": scenario, "cell_index": cell_index, "split": "heldout"}))
        records.append(run_episode(env, policy, day=day, split="heldout", seed=day))
        if isinstance(policy, HindsightPolicy):
            records[-1].extra["bound_g"] = policy.plan.dual_bound_g
    sv = scenario.service
    metrics = summarize(records, sv.q_min, sv.q_floor, sv.t_max_s)
    if isinstance(policy, HindsightPolicy):  # the strict lower bound, per request
        requests = sum(r.fields["carbon_total_g"].size for r in records)
        metrics["bound_g_per_request"] = sum(r.extra["bound_g"] for r in records) / requests
    metrics.update(_actor_metrics(module_policy, envs, records, metrics["carbon_g_per_request"]))
    if bound is not None:
        metrics["gap_to_bound"] = gap_to_bound(metrics["carbon_g_per_request"], bound)
    return EvaluationResult(policy.name, metrics, records)


def evaluate_sites(
    policy, scenario: ScenarioConfig, days_per_site: int | None = 4, bound: EvaluationResult | None = None
) -> EvaluationResult:
    """:func:`evaluate` on a scenario with shared sites (docs/design.md §10): one :class:`SiteEnv` episode per
    (site, held-out day); a reference-policy name plays on every cell of the site, blind to the coupling
    (:func:`~aolo.envs.site_rollout.make_site_policy`: a site-aware policy registered under the name, else
    the cell reference per cell). Carbon is per request of the sites' traffic (volume-weighted) and the metrics
    add the per-site load (:func:`~aolo.envs.site_rollout.summarize_sites`). A policy with ``episode_bound_g()``
    (a coupled site hindsight) records ``bound_g_per_request``; without one, ``hindsight`` is the per-cell plan at
    the site's target batch and the gap falls back to its played carbon."""
    check_every_cell_on_a_site(scenario)
    module_policy = policy if isinstance(policy, ModulePolicy) else None
    if isinstance(policy, str):
        policy = make_site_policy(policy)
    elif module_policy is not None:
        policy = SiteModulePolicy(module_policy)
    envs: dict[int, SiteEnv] = {}
    records, bounds = [], []
    for site_index, day in evaluation_episodes(scenario, days_per_site):
        env = envs.setdefault(site_index, SiteEnv({"scenario": scenario, "site_index": site_index, "split": "heldout"}))
        records += run_site_episode(env, policy, day=day, split="heldout", seed=day)
        if hasattr(policy, "episode_bound_g"):  # a coupled site hindsight: the episode's strict lower bound [g]
            bounds.append(policy.episode_bound_g())
    sv = scenario.service
    metrics = summarize_sites(records, sv.q_min, sv.q_floor, sv.t_max_s)
    if bounds:  # over the sites' requests, as the volume-weighted carbon per request
        metrics["bound_g_per_request"] = sum(bounds) / metrics["requests"]
    cells = {i: cell for env in envs.values() for i, cell in zip(env.cell_indices, env.cells, strict=True)}
    metrics.update(_actor_metrics(module_policy, cells, records, metrics["carbon_g_per_request"]))
    if bound is not None:
        metrics["gap_to_bound"] = gap_to_bound(metrics["carbon_g_per_request"], bound)
    return EvaluationResult(policy.name, metrics, records)


def _actor_metrics(
    policy: ModulePolicy | None, cells: dict[int, CellEnv], records: list[EpisodeRecord], carbon_g_per_request: float
) -> dict[str, float]:
    """A learned actor's energy per decision (spikes counted for SNNs), its operations and its share of the
    carbon at the evaluated cells' grid intensity; a reference policy's actor costs nothing (0 nJ)."""
    if policy is None:
        return {"actor_nj_per_decision": 0.0}
    energy = policy.actor_energy()
    actor_g = energy.nj_per_decision * 1e-9 / J_PER_KWH * _mean_cell_ci(cells, records)
    return {
        "actor_nj_per_decision": energy.nj_per_decision,
        "actor_synops_per_decision": energy.synops,
        "actor_macs_per_decision": energy.macs,
        "actor_carbon_share": actor_g / (carbon_g_per_request + actor_g),
    }


def gap_to_bound(carbon_g_per_request: float, bound: EvaluationResult) -> float:
    """Relative gap to the strict Lagrangian lower bound of the ``hindsight`` evaluation on the same episodes
    (to its played plan for results saved before the bound was recorded)."""
    reference = bound.metrics.get("bound_g_per_request", bound.metrics["carbon_g_per_request"])
    return carbon_g_per_request / reference - 1.0


def _mean_cell_ci(envs: dict[int, CellEnv], records: list[EpisodeRecord]) -> float:
    """Mean BS-grid carbon intensity over the evaluated episodes [g/kWh] (prices the actor's energy)."""
    by_name = {env.cell.name: env for env in envs.values()}
    values = []
    for r in records:
        env = by_name[r.cell]
        T = env.scenario.epochs_per_episode
        hours = r.day * 24.0 + np.arange(T) * env.scenario.epoch_s / 3600.0
        values.append(env.trace_cell.values_at(hours).mean())
    return float(np.mean(values))


def evaluate_checkpoint(
    checkpoint: str | Path,
    scenario: ScenarioConfig,
    name: str,
    days_per_cell: int | None = 4,
    bound: EvaluationResult | None = None,
) -> EvaluationResult:
    return evaluate(ModulePolicy(load_module(checkpoint), name), scenario, days_per_cell, bound)


def evaluate_references(scenario: ScenarioConfig, days_per_cell: int | None = 4) -> dict[str, EvaluationResult]:
    """All reference policies on the held-out days; ``hindsight`` first, since the others' gap needs it.

    With a model pool (``service.model_action``, docs/design.md §3.7) ``fixed_large`` joins them, and every
    result gets ``reduction_vs_fixed_large``: 1 − its carbon per request over that of the carbon-agnostic
    large-model service."""
    bound = evaluate("hindsight", scenario, days_per_cell)
    bound.metrics["gap_to_bound"] = gap_to_bound(bound.metrics["carbon_g_per_request"], bound)
    results = {"hindsight": bound}
    site_names = SITE_REFERENCE_POLICIES if scenario.sites else ()  # forecast_site: only where sites exist
    model_names = MODEL_REFERENCE_POLICIES if scenario.service.model_action else ()  # fixed_large: with a pool
    for name in REFERENCE_POLICIES + site_names + model_names:
        if name != "hindsight":
            results[name] = evaluate(name, scenario, days_per_cell, bound)
    if scenario.service.model_action:
        for result in results.values():
            result.metrics["reduction_vs_fixed_large"] = reduction_vs(result.metrics, results["fixed_large"])
    return results


def reduction_vs(metrics: dict[str, float], baseline: EvaluationResult) -> float:
    """``1 − carbon / carbon of the baseline`` per request (e.g. against ``fixed_large``)."""
    return 1.0 - metrics["carbon_g_per_request"] / baseline.metrics["carbon_g_per_request"]


def eval_metrics_for_mlflow(metrics: dict[str, Any]) -> dict[str, float]:
    """Prefix metric names with ``eval/`` (docs/design.md §6 names)."""
    return {f"eval/{k}": float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}
