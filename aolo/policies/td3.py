"""TD3 (Fujimoto, van Hoof & Meger, 2018) on RLlib's new API stack.

RLlib removed TD3 in Ray 2.11. This file re-implements it for ray 2.60 by reusing
SAC's pieces, the way RLlib's own TQC does:

* ``TD3Config(SACConfig)``: SAC's validation, n-step replay, episode replay buffers
  (single- and multi-agent) and NEXT_OBS learner connector, plus the TD3 settings
  ``policy_delay``, ``target_noise``, ``target_noise_clip`` and ``exploration_noise``.
* ``TD3(SAC)``: DQN's off-policy ``training_step`` (sample, store, replay, update,
  priority update, weight sync), plus keeping the EnvRunners' step count exact
  while the uniform-random warm-up lasts.
* ``DefaultTD3TorchRLModule(DefaultSACTorchRLModule)``: SAC's catalog-built twin Q networks (or, with
  ``model_config["critic"] = "mlp"``, ``obs + action -> fcnet_hiddens -> 1``: :mod:`aolo.policies.networks`)
  and their targets, with a deterministic actor ``tanh(pi(obs))`` and its target copy ``target_pi``.
* ``TD3TorchLearner(DQNTorchLearner)``: clipped double-Q MSE critic loss with target
  policy smoothing, and delayed actor and target-network updates.

All actions live in RLlib's normalised action space [-1, 1]; with
``config.environment(normalize_actions=True)`` (the default) RLlib's
``NormalizeAndClipActions`` connector maps them to the env's Box bounds, and the
replay buffer stores the normalised action.

Uniform-random warm-up
    Until ``num_steps_sampled_before_learning_starts`` env steps have been sampled
    (over all EnvRunners), ``_forward_exploration`` returns uniform actions in
    [-1, 1]; learning starts at the same count. The module learns the global step
    from the ``t`` keyword that RLlib's EnvRunners already pass to
    ``forward_exploration`` (their lifetime env-step count, refreshed by the
    Algorithm, plus the steps of the current ``sample()`` call). RLlib refreshes that
    count only once per ``train()`` iteration, so ``TD3.training_step`` pushes the
    exact count to every EnvRunner after each sampling round until the warm-up is
    over; it then ends within one rollout fragment of the threshold. The warm-up
    always counts env steps; with ``count_steps_by="agent_steps"`` (multi-agent)
    learning may therefore start before the warm-up ends.

Delayed policy and target updates (exact TD3)
    The learner counts its gradient updates per module. The critics are updated on
    every update; the actor only on every ``policy_delay``-th one (counting from 1,
    as in the authors' code). The Polyak updates of all target networks (twin Q and
    ``target_pi``, rate ``tau``) happen only after an update that stepped the actor,
    replacing DQN's every-step target update (``target_network_update_freq`` must
    therefore stay 0). The counter is not checkpointed: after a restore the delay
    phase restarts.

Custom actors
    The actor is ``model_config["actor_class"]`` when given: an ``nn.Module`` class
    built as ``actor_class(obs_dim, act_dim, **model_config.get("actor_kwargs", {}))``
    whose ``forward(obs)`` maps a (B, obs_dim) tensor to a pre-tanh (B, act_dim)
    tensor. Otherwise it is an MLP with ``fcnet_hiddens`` and ``fcnet_activation``
    (RLlib's ``DefaultModelConfig`` defaults, 256x256 tanh, as for SAC's Q nets).
    For example, the PopSAN spiking actor::

        RLModuleSpec(
            module_class=DefaultTD3TorchRLModule,
            model_config={"actor_class": PopSANActor, "actor_kwargs": {...}},
        )

    The actor lives under ``self.pi``, which is what the ``"policy"`` optimizer
    trains; no ``pi_encoder`` is built.

Settings inherited from SAC that TD3 does not use: ``initial_alpha``,
``target_entropy``, ``alpha_lr`` and ``target_network_update_freq``.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray import tune
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.algorithms.dqn.dqn_learner import DQNLearner
from ray.rllib.algorithms.dqn.torch.dqn_torch_learner import DQNTorchLearner
from ray.rllib.algorithms.sac.sac import SAC, SACConfig
from ray.rllib.algorithms.sac.sac_learner import (
    QF_LOSS_KEY,
    QF_MAX_KEY,
    QF_MEAN_KEY,
    QF_MIN_KEY,
    QF_PREDS,
    QF_TARGET_NEXT,
    QF_TWIN_LOSS_KEY,
    QF_TWIN_PREDS,
    TD_ERROR_MEAN_KEY,
)
from ray.rllib.algorithms.sac.torch.default_sac_torch_rl_module import (
    DefaultSACTorchRLModule,
)
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import POLICY_LOSS_KEY
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.models.utils import get_activation_fn
from ray.rllib.utils.metrics import (
    ALL_MODULES,
    ENV_RUNNER_RESULTS,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_TARGET_UPDATES,
    TD_ERROR_KEY,
)
from ray.rllib.utils.typing import ModuleID, ParamDict, TensorType
from torch import nn

from aolo.policies.learners import LeanStepMixin, fused_backward, polyak_update
from aolo.policies.networks import build_mlp_critics, critic_setting
from aolo.policies.replay_updates import BatchedReplayUpdates

__all__ = [
    "DefaultTD3TorchRLModule",
    "MLPActor",
    "TD3",
    "TD3Config",
    "TD3TorchLearner",
    "smooth_target_actions",
]

#: Forward-train output key: Q1(s, mu(s)) with the critic frozen (actor-loss input).
Q_CURR = "q_curr"


class TD3Config(SACConfig):
    """Configuration of TD3.

    Defaults follow the authors' reference implementation (Adam lr 3e-4 for actor
    and critics, batch 256, tau 0.005, gamma 0.99, uniform replay) with the paper's
    10k-step random warm-up; the networks are RLlib's defaults (see the module).

    Example::

        config = (
            TD3Config()
            .environment("Pendulum-v1")
            .training(actor_lr=1e-3, critic_lr=1e-3,
                      num_steps_sampled_before_learning_starts=5000)
        )
        algo = config.build_algo()
    """

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or TD3)
        # Actor update (and target update) every `policy_delay` critic updates.
        self.policy_delay = 2
        # Std and clip of the target-policy smoothing noise (normalised actions).
        self.target_noise = 0.2
        self.target_noise_clip = 0.5
        # Std of the Gaussian exploration noise (normalised actions).
        self.exploration_noise = 0.1
        # Weight of the L2 penalty on the actor's pre-tanh activation u (mu = tanh(u)) in the actor loss
        # (rlkit's ``policy_pre_activation_weight``): without it the deterministic actor drifts to |u| >> 1,
        # i.e. bang-bang actions at ±1 where tanh's gradient vanishes (measured on aolo's quick preset).
        self.policy_pre_activation_weight = 0.0
        # Also the length of the uniform-random warm-up (env steps).
        self.num_steps_sampled_before_learning_starts = 10_000
        self.actor_lr = 3e-4
        self.critic_lr = 3e-4
        # TD3 uses uniform replay; prioritized episode buffers also work.
        self.replay_buffer_config = {"type": "EpisodeReplayBuffer", "capacity": int(1e6)}

    def training(
        self,
        *,
        policy_delay: int = NotProvided,
        target_noise: float = NotProvided,
        target_noise_clip: float = NotProvided,
        exploration_noise: float = NotProvided,
        policy_pre_activation_weight: float = NotProvided,
        **kwargs: Any,
    ) -> TD3Config:
        """Sets the training settings: the TD3 ones below, SAC's through ``kwargs``.

        Args:
            policy_delay: Update the actor and the target networks once every
                ``policy_delay`` critic updates.
            target_noise: Std of the Gaussian noise added to the target actor's
                action when computing the critic target (target policy smoothing).
            target_noise_clip: That noise is clipped to [-target_noise_clip,
                target_noise_clip].
            exploration_noise: Std of the Gaussian noise added to the actor's
                action during exploration.
            policy_pre_activation_weight: Actor loss ``-Q(s, tanh(u)) + w · mean ||u||²``
                (``u`` the pre-tanh activation): keeps the actor off the saturated bounds.
            **kwargs: Passed to ``SACConfig.training``; note that
                ``num_steps_sampled_before_learning_starts`` is also the length of
                the uniform-random warm-up.
        """
        super().training(**kwargs)
        if policy_delay is not NotProvided:
            self.policy_delay = policy_delay
        if target_noise is not NotProvided:
            self.target_noise = target_noise
        if target_noise_clip is not NotProvided:
            self.target_noise_clip = target_noise_clip
        if exploration_noise is not NotProvided:
            self.exploration_noise = exploration_noise
        if policy_pre_activation_weight is not NotProvided:
            self.policy_pre_activation_weight = policy_pre_activation_weight
        return self

    def validate(self) -> None:
        super().validate()
        if not (isinstance(self.policy_delay, int) and self.policy_delay >= 1):
            raise ValueError(f"`policy_delay` must be an int >= 1, got {self.policy_delay}.")
        for name in ("target_noise", "target_noise_clip", "exploration_noise", "policy_pre_activation_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)}.")
        if self.target_network_update_freq != 0:
            raise ValueError(
                "TD3 updates its target networks on policy-update steps (every "
                "`policy_delay` learner updates); leave `target_network_update_freq=0`."
            )

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        return RLModuleSpec(module_class=DefaultTD3TorchRLModule)

    def get_default_learner_class(self) -> type[TD3TorchLearner]:
        return TD3TorchLearner

    @property
    def _model_config_auto_includes(self) -> dict[str, Any]:
        return super()._model_config_auto_includes | {
            "exploration_noise": self.exploration_noise,
            "target_noise": self.target_noise,
            "target_noise_clip": self.target_noise_clip,
            "random_warmup_steps": self.num_steps_sampled_before_learning_starts,
        }


class TD3(BatchedReplayUpdates, SAC):
    """TD3 algorithm: SAC's (i.e. DQN's) training loop with TD3's module and learner (optionally batched:
    :mod:`aolo.policies.replay_updates`)."""

    @classmethod
    def get_default_config(cls) -> TD3Config:
        return TD3Config()

    def setup(self, config: AlgorithmConfig) -> None:
        super().setup(config)
        self._warmup_over = False

    def training_step(self) -> None:
        super().training_step()
        if not self._warmup_over:
            self._push_env_steps_to_env_runners()

    def _push_env_steps_to_env_runners(self) -> None:
        """Sets every EnvRunner's lifetime env-step count (the ``t`` its module sees)
        to the exact global count, which RLlib itself only does once per iteration.
        """
        sampled = int(self.metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0))
        self.env_runner_group.foreach_env_runner(
            lambda env_runner: env_runner.set_state({NUM_ENV_STEPS_SAMPLED_LIFETIME: sampled})
        )
        self._warmup_over = sampled >= self.config.num_steps_sampled_before_learning_starts


def smooth_target_actions(target_mu: torch.Tensor, noise_std: float, noise_clip: float) -> torch.Tensor:
    """Target policy smoothing: ``clip(target_mu + clip(N(0, noise_std), ±noise_clip), -1, 1)``.

    Draws the noise from torch's global RNG.
    """
    noise = (torch.randn_like(target_mu) * noise_std).clamp(-noise_clip, noise_clip)
    return (target_mu + noise).clamp(-1.0, 1.0)


#: Forward-train output: the actor's pre-tanh activation u on the batch's observations (mu = tanh(u)).
PI_PRE_TANH = "pi_pre_tanh"


class MLPActor(nn.Module):
    """Default deterministic actor: an MLP from observations to pre-tanh actions."""

    def __init__(self, obs_dim: int, act_dim: int, hiddens: list[int], activation: str) -> None:
        super().__init__()
        activation_cls = get_activation_fn(activation, framework="torch")
        layers: list[nn.Module] = []
        in_dim = obs_dim
        for width in hiddens:
            layers += [nn.Linear(in_dim, width), activation_cls()]
            in_dim = width
        layers.append(nn.Linear(in_dim, act_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


@contextlib.contextmanager
def _frozen(*modules: nn.Module) -> Iterator[None]:
    """Disables gradients of the modules' parameters inside the block.

    Unlike ``torch.no_grad()`` this still lets gradients flow *through* the modules to
    their inputs (here: from Q1 into the actor).
    """
    params = [p for module in modules for p in module.parameters()]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class DefaultTD3TorchRLModule(DefaultSACTorchRLModule):
    """TD3 RLModule: a deterministic actor plus SAC's twin Q networks.

    [obs] -> [pi] -> tanh -> [mu in [-1, 1]]
    [obs, action] -> [qf_encoder] -> [qf] -> Q1       (and qf_twin_* -> Q2)
    target copies: target_pi, target_qf(_encoder), target_qf_twin(_encoder)

    ``model_config`` keys: ``actor_class``/``actor_kwargs`` (see the file docstring),
    ``fcnet_hiddens``/``fcnet_activation`` (default actor and SAC's Q nets), and the
    auto-included ``twin_q``, ``exploration_noise``, ``target_noise``,
    ``target_noise_clip`` and ``random_warmup_steps``.
    """

    def setup(self) -> None:
        if not isinstance(self.action_space, gym.spaces.Box):
            raise ValueError(f"TD3 needs a Box action space, got {self.action_space}.")
        cfg = self.model_config
        # TD3Config.model_config supplies these (its defaults are the one home of these numbers)
        self.twin_q = cfg["twin_q"]
        self.exploration_noise = cfg["exploration_noise"]
        self.target_noise = cfg["target_noise"]
        self.target_noise_clip = cfg["target_noise_clip"]
        self.random_warmup_steps = cfg["random_warmup_steps"]

        obs_dim = int(np.prod(self.observation_space.shape))
        act_dim = int(np.prod(self.action_space.shape))
        actor_class = cfg.get("actor_class")
        if actor_class is None:
            defaults = DefaultModelConfig()  # the same defaults SAC's catalog uses
            self.pi = MLPActor(
                obs_dim,
                act_dim,
                cfg.get("fcnet_hiddens", defaults.fcnet_hiddens),
                cfg.get("fcnet_activation", defaults.fcnet_activation),
            )
        else:
            self.pi = actor_class(obs_dim, act_dim, **cfg.get("actor_kwargs", {}))

        if not self.inference_only and critic_setting(cfg) == "mlp":
            build_mlp_critics(self)
        elif not self.inference_only:
            self.qf_encoder = self.catalog.build_qf_encoder(framework=self.framework)
            self.qf = self.catalog.build_qf_head(framework=self.framework)
            if self.twin_q:
                self.qf_twin_encoder = self.catalog.build_qf_encoder(framework=self.framework)
                self.qf_twin = self.catalog.build_qf_head(framework=self.framework)

    def make_target_networks(self) -> None:
        super().make_target_networks()
        self.target_pi = make_target_network(self.pi)

    def get_target_network_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return super().get_target_network_pairs() + [(self.pi, self.target_pi)]

    def get_non_inference_attributes(self) -> list[str]:
        return super().get_non_inference_attributes() + ["target_pi"]

    def actor(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic action mu(obs) = tanh(pi(obs)) in [-1, 1]."""
        return torch.tanh(self.pi(obs.flatten(start_dim=1)))

    def target_actions(self, next_obs: torch.Tensor) -> torch.Tensor:
        """Smoothed target-actor actions for the critic target (global torch RNG)."""
        target_mu = torch.tanh(self.target_pi(next_obs.flatten(start_dim=1)))
        return smooth_target_actions(target_mu, self.target_noise, self.target_noise_clip)

    def _forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {Columns.ACTIONS: self.actor(batch[Columns.OBS])}

    def _forward_exploration(self, batch: dict[str, Any], t: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Uniform actions while ``t`` (global env steps, passed by the EnvRunner) is
        below ``random_warmup_steps``; afterwards ``clip(mu + N(0, exploration_noise),
        -1, 1)``. Without ``t`` there is no warm-up.
        """
        mu = self.actor(batch[Columns.OBS])
        if t is not None and t < self.random_warmup_steps:
            actions = torch.rand_like(mu) * 2.0 - 1.0
        else:
            actions = (mu + self.exploration_noise * torch.randn_like(mu)).clamp(-1.0, 1.0)
        return {Columns.ACTIONS: actions}

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        obs, next_obs = batch[Columns.OBS], batch[Columns.NEXT_OBS]
        out = {
            QF_PREDS: self._qf_forward_train_helper(
                {Columns.OBS: obs, Columns.ACTIONS: batch[Columns.ACTIONS]}, self.qf_encoder, self.qf
            )
        }
        if self.twin_q:
            out[QF_TWIN_PREDS] = self._qf_forward_train_helper(
                {Columns.OBS: obs, Columns.ACTIONS: batch[Columns.ACTIONS]}, self.qf_twin_encoder, self.qf_twin
            )
        # Actor-loss input: gradients reach the actor through Q1, not Q1's parameters.
        pre_tanh = self.pi(obs.flatten(start_dim=1))
        out[PI_PRE_TANH] = pre_tanh
        with _frozen(self.qf_encoder, self.qf):
            out[Q_CURR] = self._qf_forward_train_helper(
                {Columns.OBS: obs, Columns.ACTIONS: torch.tanh(pre_tanh)}, self.qf_encoder, self.qf
            )
        # Critic-target input: min(Q1', Q2')(s', smoothed target action).
        with torch.no_grad():
            out[QF_TARGET_NEXT] = self.forward_target(
                {Columns.OBS: next_obs, Columns.ACTIONS: self.target_actions(next_obs)}
            )
        return out


class TD3TorchLearner(LeanStepMixin, DQNTorchLearner):
    """TD3 losses, with delayed actor and target-network updates.

    Optimizers per module: ``"qf"`` (qf_encoder + qf, ``critic_lr``), ``"qf_twin"``
    and ``"policy"`` (pi, ``actor_lr``).
    """

    def build(self) -> None:
        super().build()
        # Per-optimizer losses of the current update, consumed by compute_gradients.
        self._temp_losses: dict[tuple[ModuleID, str], TensorType] = {}
        # Gradient updates done so far, per module (not checkpointed).
        self._num_updates: dict[ModuleID, int] = defaultdict(int)
        # Modules whose actor was stepped in the current gradient step (their targets follow in `_update`).
        self._modules_to_sync_targets: set[ModuleID] = set()

    def configure_optimizers_for_module(self, module_id: ModuleID, config: TD3Config = None) -> None:
        module = self._module[module_id]
        groups = [("qf", [module.qf_encoder, module.qf], config.critic_lr)]
        if config.twin_q:
            groups.append(("qf_twin", [module.qf_twin_encoder, module.qf_twin], config.critic_lr))
        groups.append(("policy", [module.pi], config.actor_lr))
        for name, nets, lr in groups:
            params = [p for net in nets for p in self.get_parameters(net)]
            self.register_optimizer(
                module_id=module_id,
                optimizer_name=name,
                optimizer=torch.optim.Adam(params),
                params=params,
                lr_or_lr_schedule=lr,
            )

    def compute_loss_for_module(
        self,
        *,
        module_id: ModuleID,
        config: TD3Config,
        batch: dict[str, Any],
        fwd_out: dict[str, TensorType],
    ) -> TensorType:
        # Critic target: r + gamma^n (1 - terminated) min(Q1', Q2')(s', smoothed pi'(s')).
        not_done = 1.0 - batch[Columns.TERMINATEDS].float()
        q_target = (
            batch[Columns.REWARDS] + config.gamma ** batch["n_step"] * not_done * fwd_out[QF_TARGET_NEXT]
        ).detach()
        # Importance weights of prioritized replay (ones for uniform replay).
        weights = batch["weights"]

        q1 = fwd_out[QF_PREDS]
        qf_loss = torch.mean(weights * (q1 - q_target) ** 2)
        td_error = torch.abs(q1 - q_target)
        losses = {QF_LOSS_KEY: qf_loss}
        if config.twin_q:
            q2 = fwd_out[QF_TWIN_PREDS]
            losses[QF_TWIN_LOSS_KEY] = torch.mean(weights * (q2 - q_target) ** 2)
            td_error = 0.5 * (td_error + torch.abs(q2 - q_target))
        losses[POLICY_LOSS_KEY] = -fwd_out[Q_CURR].mean()
        if config.policy_pre_activation_weight > 0 and PI_PRE_TANH in fwd_out:
            pre_tanh_l2 = (fwd_out[PI_PRE_TANH] ** 2).sum(dim=-1).mean()
            losses[POLICY_LOSS_KEY] = losses[POLICY_LOSS_KEY] + config.policy_pre_activation_weight * pre_tanh_l2

        # Per-sample TD errors for the replay priorities (item_series keeps them 1:1).
        self.metrics.log_value((module_id, TD_ERROR_KEY), td_error, reduce="item_series")
        self.metrics.log_dict(
            {
                **losses,
                QF_MEAN_KEY: q1.mean(),
                QF_MAX_KEY: q1.max(),
                QF_MIN_KEY: q1.min(),
                TD_ERROR_MEAN_KEY: td_error.mean(),
            },
            key=module_id,
            window=1,
        )
        for key, loss in losses.items():
            self._temp_losses[(module_id, key)] = loss
        return sum(losses.values())

    def compute_gradients(self, loss_per_module: dict[ModuleID, TensorType], **kwargs: Any) -> ParamDict:
        """One backward pass of the critics' losses and, on every ``policy_delay``-th update, the actor's
        (its grads stay None otherwise, so Adam skips it); each loss reaches only its own optimizer's parameters
        (:func:`aolo.policies.learners.fused_backward`).
        """
        modules = set(loss_per_module) - {ALL_MODULES}
        skip = set()
        for module_id in modules:
            self._num_updates[module_id] += 1
            policy_delay = self.config.get_config_for_module(module_id).policy_delay
            if self._num_updates[module_id] % policy_delay == 0:
                self._modules_to_sync_targets.add(module_id)
            else:
                skip.add((module_id, "policy"))
        return fused_backward(self, modules, skip)

    def _update(self, batch: dict[str, Any], **kwargs: Any) -> tuple[Any, Any, Any]:
        """One gradient step on one minibatch, then Polyak-updates all target networks of the modules whose actor
        it stepped (instead of DQNLearner's update once per ``update()`` call)."""
        out = super()._update(batch, **kwargs)
        for module_id in self._modules_to_sync_targets:
            tau = self.config.get_config_for_module(module_id).tau
            polyak_update(self.module[module_id].unwrapped().get_target_network_pairs(), tau)
            self.metrics.log_value((module_id, NUM_TARGET_UPDATES), 1, reduce="lifetime_sum")
        self._modules_to_sync_targets.clear()
        return out

    def after_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        # Skip DQNLearner's target update (done per gradient step in `_update`); keep the base learners' lr scheduling.
        super(DQNLearner, self).after_gradient_based_update(timesteps=timesteps)


# Makes `Tuner("TD3", param_space=config)` work like RLlib's built-in algorithms.
tune.register_trainable("TD3", TD3)
