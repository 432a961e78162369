"""One function builds any of ``sdrl | sac | td3 | ppo`` as an RLlib ``AlgorithmConfig`` for a scenario.

All four share the cell environment, one shared RLModule for every user of every cell, the training
budget (env steps), the seed and the evaluation protocol. The settings that make off-policy training
practical on a 2-core machine are set here, in one place: a rollout fragment of many env steps, a fixed
number of gradient updates per sampled env step (``training_intensity``), small train batches, and one
torch thread per process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.algorithms.sac import SACConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from aolo.envs.cell_env import CellEnv
from aolo.envs.config import ConfigError, ScenarioConfig, Validated, bounded, is_integer, satisfies
from aolo.envs.site_env import SiteEnv, check_every_cell_on_a_site
from aolo.platform.constraints import (
    CONSTRAINTS,
    COST_KEYS,
    ConstraintCallbacks,
    ConstraintSettings,
    lagrangian_algo_class,
    learner_connector,
    measurement_config,
    training_scenario,
)
from aolo.policies.learners import LeanSACTorchLearner
from aolo.policies.replay_updates import BATCHED_UPDATES, FLAT_TRANSITIONS, BatchedSAC

ALGORITHMS = ("sdrl", "sac", "td3", "ppo")
MODULE_ID = "shared"
REPLAY_BUFFERS = ("episode", "flat")
#: The replay buffers' capacity in env steps (RLlib's episode buffer counts env steps, not agent steps).
REPLAY_CAPACITY_ENV_STEPS = 200_000


@dataclass(frozen=True)
class TrainingSettings(Validated):
    """Budget and the learner settings every algorithm gets (validated; presets set these from YAML).

    Each field declares what it allows; a bad construction raises one :class:`ConfigError` listing every bad
    field as ``training.<field>: <what is allowed>, got <value>``."""

    _path = "training"

    #: training budget in env steps (one env step = one epoch of one cell, all users)
    env_steps: int = bounded(1920, 1, integer=True)
    rollout_fragment_length: int = bounded(48, 1, integer=True)  #: env steps sampled per env copy per iteration
    #: gradient updates per sampled env step (off-policy algorithms)
    updates_per_env_step: float = bounded(0.5, 0, 64, lo_open=True, noun="")
    train_batch_size: int = bounded(256, 1, integer=True)  #: off-policy minibatch (transitions)
    #: env steps of warm-up before the first update (TD3: uniform-random actions)
    learning_starts: int = bounded(192, 0, integer=True)
    #: MLP actor/critic hidden sizes; also PopSAN's hidden sizes
    hidden: tuple[int, ...] = satisfies(
        (256, 256),
        lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(is_integer(h) and h >= 1 for h in v),
        "must be a non-empty list of positive integers",
    )
    #: SAC/SDRL/TD3 critics: "mlp" = [obs, action] -> hidden -> 1 (aolo.policies.networks), "catalog" = RLlib's SAC
    #: critic (obs and action encoders sized by ``hidden`` plus a 256 x 256 fusion stack ``hidden`` does not size;
    #: 4.6x the update time of "mlp" on the paper preset). Chosen by measurement (BENCHMARKS.md, issue 22).
    critic: str = satisfies("mlp", lambda v: v in ("catalog", "mlp"), "must be 'catalog' or 'mlp'")
    #: the "mlp" critic's hidden activation (the actor keeps RLlib's ``tanh``). Quick, SDRL: "relu" learned as well
    #: as the catalog critic (5.18 / 5.17 mg on seeds 0 / 1); "tanh" did not (+33 % / +6.6 % to those), BENCHMARKS.md.
    critic_activation: str = satisfies(
        "relu", lambda v: v in ("tanh", "relu", "silu", "elu"), "must be one of 'tanh', 'relu', 'silu', 'elu'"
    )
    gamma: float = bounded(0.99, 0, 1, lo_open=True, noun="")
    actor_lr: float = bounded(3e-4, 0, 1, lo_open=True, hi_open=True, noun="")
    critic_lr: float = bounded(3e-4, 0, 1, lo_open=True, hi_open=True, noun="")
    ppo_lr: float = bounded(3e-4, 0, 1, lo_open=True, hi_open=True, noun="")
    #: SAC/SDRL entropy temperature: start value and learning rate. RLlib's defaults (1.0, 3e-4) are sized for
    #: 1M-step runs; with a few thousand updates alpha barely moves and the entropy bonus swamps a per-step
    #: reward of order 1, so the learned mean over-delivers QoE (a safety margin for the noisy actions).
    initial_alpha: float = bounded(1.0, 0, 100, lo_open=True, noun="")
    alpha_lr: float = bounded(3e-4, 0, 1, lo_open=True, hi_open=True, noun="")
    #: TD3: L2 weight on the actor's pre-tanh activation (rlkit's policy_pre_activation_weight); 0 = off. Quick
    #: preset, 1920 env steps, seed 0, 2 held-out days/cell: share of action components at |a| >= 0.99 was 50 % with
    #: 0, 0 % with 0.01 / 0.1 / 1 (held-out carbon 4.72 / 4.67 / 5.00 / 5.40 mg per request).
    td3_pre_activation_weight: float = bounded(0.01, 0, 100, noun="")
    #: SAC/SDRL/TD3: draw an iteration's minibatches in one replay sample and take its gradient steps in one
    #: learner call (metrics reduced once; aolo.policies.replay_updates). Off: RLlib's one call per update.
    batched_updates: bool = satisfies(True, lambda v: isinstance(v, bool), "must be true or false")
    #: SAC/SDRL/TD3 replay: "episode" = RLlib's MultiAgentEpisodeReplayBuffer and the learner connector pipeline;
    #: "flat" = every agent's one-step transitions in flat arrays, sampled straight into a train batch with the
    #: Lagrangian price applied there (aolo.policies.flat_replay; same transitions, terminals and costs).
    replay_buffer: str = satisfies("flat", lambda v: v in REPLAY_BUFFERS, "must be 'episode' or 'flat'")
    ppo_epochs: int = bounded(6, 1, integer=True)
    ppo_minibatch_size: int = bounded(256, 1, integer=True)
    #: PopSAN overrides (pop_in, pop_out, timesteps, ...)
    popsan: dict[str, Any] = satisfies(
        None, lambda v: isinstance(v, dict), "must be a mapping of PopSAN settings", factory=dict
    )

    def __post_init__(self) -> None:
        self.validate()
        object.__setattr__(self, "hidden", tuple(self.hidden))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TrainingSettings:
        """Settings from a mapping; one :class:`ConfigError` lists every unknown key and bad value."""
        return cls.from_mapping(data, "training")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_algorithm_config(
    algo: str,
    scenario: ScenarioConfig,
    *,
    seed: int = 0,
    settings: TrainingSettings | None = None,
    num_env_runners: int = 0,
    constraints: ConstraintSettings | None = None,
) -> AlgorithmConfig:
    """An ``AlgorithmConfig`` training ``algo`` on ``scenario``: one shared module, one env copy per cell.

    With ``num_env_runners == 0`` everything samples in the driver process (best on 2 cores); with
    ``N > 0`` remote EnvRunners, each runner holds one env copy per cell.
    ``constraints`` (default: ``penalty``, the scenario's fixed reward weights): with ``method: lagrangian`` the
    env rewards carbon only (``reward.terms: carbon``), the learner prices the QoE-mean and latency costs with
    PID-learned multipliers, and the algorithm class is the matching ``Lagrangian*`` subclass
    (:mod:`aolo.platform.constraints`).
    """
    if algo not in ALGORITHMS:
        raise ConfigError(f"algorithm: must be one of {list(ALGORITHMS)}, got {algo!r}")
    s = settings or TrainingSettings()
    constraints = constraints or ConstraintSettings()
    torch.set_num_threads(1)  # 2-core machines: torch's default threads oversubscribe with Ray (13× slower)
    num_envs = len(scenario.cells)
    env_class: type = CellEnv
    if scenario.sites:  # shared serving sites: one SiteEnv copy per site (docs/design.md §10)
        check_every_cell_on_a_site(scenario)
        num_envs, env_class = len(scenario.sites), SiteEnv
    scenario = training_scenario(scenario, constraints)  # constraints.method decides the reward terms
    env_config = {
        "scenario": scenario.to_dict(),
        "seed": seed,
        "num_envs_per_env_runner": num_envs,
        "constraints": constraints.to_dict(),
    }

    if algo == "ppo":
        config = PPOConfig().training(
            lr=s.ppo_lr,
            gamma=s.gamma,
            lambda_=0.95,
            num_epochs=s.ppo_epochs,
            minibatch_size=s.ppo_minibatch_size,
            train_batch_size_per_learner=s.rollout_fragment_length * num_envs * max(num_env_runners, 1),
            entropy_coeff=0.0,
        )
        module_spec = RLModuleSpec(model_config={"fcnet_hiddens": list(s.hidden), "vf_share_layers": False})
    else:
        q_networks = {"fcnet_hiddens": list(s.hidden), "critic": s.critic, "critic_activation": s.critic_activation}
        if algo == "td3":
            from aolo.policies.td3 import TD3Config

            config = TD3Config().training(policy_pre_activation_weight=s.td3_pre_activation_weight)
            module_spec = RLModuleSpec(model_config=q_networks)
        elif algo == "sac":
            from aolo.policies.sac import SACTorchRLModule

            config = (
                SACConfig(algo_class=BatchedSAC if s.batched_updates or s.replay_buffer == "flat" else None)
                .training(initial_alpha=s.initial_alpha, alpha_lr=s.alpha_lr)
                .learners(learner_class=LeanSACTorchLearner)
            )
            module_spec = RLModuleSpec(module_class=SACTorchRLModule, model_config=q_networks)
        else:  # sdrl
            from aolo.policies.sdrl import SDRLTorchRLModule

            config = (
                SACConfig(algo_class=BatchedSAC if s.batched_updates or s.replay_buffer == "flat" else None)
                .training(initial_alpha=s.initial_alpha, alpha_lr=s.alpha_lr)
                .learners(learner_class=LeanSACTorchLearner)
            )
            module_spec = RLModuleSpec(
                module_class=SDRLTorchRLModule,
                model_config={**q_networks, "popsan_hidden": list(s.hidden), **s.popsan},
            )
        config = config.training(
            gamma=s.gamma,
            actor_lr=s.actor_lr,
            critic_lr=s.critic_lr,
            train_batch_size_per_learner=s.train_batch_size,
            num_steps_sampled_before_learning_starts=s.learning_starts,
            # training_intensity = replayed / sampled steps, so this many updates follow each sampled env step
            # (RLlib turns it into sample/train round-robin weights: dqn.calculate_rr_weights)
            training_intensity=s.updates_per_env_step * s.train_batch_size,
            replay_buffer_config=replay_buffer_config(s.replay_buffer, scenario, constraints),
        ).learners(learner_config_dict={BATCHED_UPDATES: s.batched_updates})

    if constraints.lagrangian:
        config.algo_class = lagrangian_algo_class(config.algo_class)
        config = config.learners(learner_connector=learner_connector).callbacks(ConstraintCallbacks)
        config = measurement_config(config, num_envs, constraints.measure_every, constraints.measure_days)
    return (
        config.environment(env_class, env_config=env_config, clip_actions=True, normalize_actions=True)
        .framework("torch")
        .env_runners(
            num_env_runners=num_env_runners,
            num_envs_per_env_runner=num_envs,
            rollout_fragment_length=s.rollout_fragment_length,
            sample_timeout_s=600.0,
        )
        .multi_agent(policies={MODULE_ID}, policy_mapping_fn=_map_to_shared_module)
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={MODULE_ID: module_spec}))
        .reporting(
            min_time_s_per_iteration=0,
            min_sample_timesteps_per_iteration=0,
            metrics_num_episodes_for_smoothing=max(2, num_envs),
        )
        .fault_tolerance(restart_failed_env_runners=True)
        .debugging(seed=seed, log_level="ERROR")
    )


def replay_buffer_config(kind: str, scenario: ScenarioConfig, constraints: ConstraintSettings) -> dict[str, Any]:
    """SAC's ``replay_buffer_config``: RLlib's multi-agent episode buffer, or (``kind == "flat"``) the flat
    transition buffer's arguments under :data:`~aolo.policies.replay_updates.FLAT_TRANSITIONS` (the ``type`` stays,
    as SAC's config check wants). The flat buffer counts agent transitions: it holds as many env steps as the
    episode buffer, of the env copy with the most agents; it stores the constraint costs under ``lagrangian``."""
    config: dict[str, Any] = {"type": "MultiAgentEpisodeReplayBuffer", "capacity": REPLAY_CAPACITY_ENV_STEPS}
    if kind == "flat":
        if scenario.sites:
            agents = max(sum(c.num_users for c in scenario.cells if c.site == site.name) for site in scenario.sites)
        else:
            agents = max(c.num_users for c in scenario.cells)
        cost_keys = [COST_KEYS[k] for k in CONSTRAINTS] if constraints.lagrangian else []
        config[FLAT_TRANSITIONS] = {"capacity": REPLAY_CAPACITY_ENV_STEPS * agents, "cost_keys": cost_keys}
    return config


def stop_algorithm(algo) -> None:
    """``algo.stop()``, then remove the empty log directory Ray creates under ``~/ray_results`` for every
    Algorithm built outside Tune (aolo logs to MLflow and checkpoints to ``--output`` instead)."""
    algo.stop()
    logdir = Path(getattr(algo, "logdir", "") or "")
    if logdir.is_dir() and logdir.parent == Path("~/ray_results").expanduser() and not any(logdir.iterdir()):
        logdir.rmdir()


def _map_to_shared_module(agent_id, episode, **kwargs) -> str:
    return MODULE_ID
