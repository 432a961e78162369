"""RLlib's SAC RLModule with a deterministic action that is the squashed Gaussian's squashed mean.

RLlib 2.60's ``TorchSquashedGaussian.to_deterministic()`` returns the *pre-tanh* mean ``μ``; with
``clip_actions=True`` the env then gets ``clip(μ, -1, 1)`` instead of ``tanh(μ)``. Every ``explore=False``
action (RLlib evaluation runners, aolo's held-out evaluation) was off the policy it trained: ``μ = 2.2`` acts at
the bound, not at ``tanh(2.2) = 0.976``, and ``μ = -0.8`` at ``-0.8``, not ``-0.66``. Measured on the quick
preset: SAC's deterministic actions sat at the action bound and delivered QoE 0.989 where its mean action
meant 0.8.
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.algorithms.sac.sac_learner import ACTION_DIST_INPUTS_NEXT, QF_PREDS, QF_TWIN_PREDS
from ray.rllib.algorithms.sac.torch.default_sac_torch_rl_module import DefaultSACTorchRLModule
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchDeterministic, TorchSquashedGaussian
from ray.rllib.core.models.base import ENCODER_OUT

from aolo.policies.networks import build_mlp_critics, critic_setting


class SquashedGaussian(TorchSquashedGaussian):
    """``TorchSquashedGaussian`` whose deterministic action is ``squash(μ)`` (``tanh`` rescaled to the bounds)."""

    def to_deterministic(self) -> TorchDeterministic:
        return TorchDeterministic(loc=self._squash(self.loc))


class SACTorchRLModule(DefaultSACTorchRLModule):
    """RLlib's default SAC module (MLP actor ``obs -> fcnet_hiddens -> 2 act_dim``) acting with
    :class:`SquashedGaussian`; its twin critics are RLlib's catalog critics or, with ``model_config["critic"] =
    "mlp"``, ``obs + action -> fcnet_hiddens -> 1`` (:mod:`aolo.policies.networks`)."""

    def setup(self) -> None:
        super().setup()
        if self.action_dist_cls is TorchSquashedGaussian:
            self.action_dist_cls = SquashedGaussian
        if not self.inference_only and critic_setting(self.model_config) == "mlp":
            build_mlp_critics(self)

    def _forward_train_continuous(self, batch: dict[str, Any]) -> dict[str, Any]:
        """RLlib's SAC training forward pass: the same outputs from the same random draws in the same order, with
        what only feeds the critics' target (the actor on the next observations, its sampled action, the target
        critics) computed outside autograd. RLlib records a graph for those and then detaches the results; on the
        paper preset the SDRL actor's forward took 13.4 ms with a graph and 8.6 ms without (batch 256)."""
        obs, next_obs = batch[Columns.OBS], batch[Columns.NEXT_OBS]
        output: dict[str, Any] = {}
        replayed = {Columns.OBS: obs, Columns.ACTIONS: batch[Columns.ACTIONS]}
        output[QF_PREDS] = self._qf_forward_train_helper(replayed, self.qf_encoder, self.qf)
        if self.twin_q:
            output[QF_TWIN_PREDS] = self._qf_forward_train_helper(replayed, self.qf_twin_encoder, self.qf_twin)

        action_logits = self.pi(self.pi_encoder({Columns.OBS: obs})[ENCODER_OUT])
        with torch.no_grad():
            action_logits_next = self.pi(self.pi_encoder({Columns.OBS: next_obs})[ENCODER_OUT])
        output[Columns.ACTION_DIST_INPUTS] = action_logits
        output[ACTION_DIST_INPUTS_NEXT] = action_logits_next
        dist_class = self.get_train_action_dist_cls()
        actions, output["logp_resampled"] = dist_class.from_logits(action_logits).rsample_and_logp()
        with torch.no_grad():
            next_actions, output["logp_next_resampled"] = dist_class.from_logits(action_logits_next).sample_and_logp()

        # Q of the reparameterised actions: the actor loss's gradient reaches the actor, not the critics
        critic_params = [*self.qf.parameters(), *self.qf_encoder.parameters()]
        if self.twin_q:
            critic_params += [*self.qf_twin.parameters(), *self.qf_twin_encoder.parameters()]
        for param in critic_params:
            param.requires_grad_(False)
        output["q_curr"] = self.compute_q_values({Columns.OBS: obs, Columns.ACTIONS: actions})
        for param in critic_params:
            param.requires_grad_(True)
        with torch.no_grad():
            output["q_target_next"] = self.forward_target({Columns.OBS: next_obs, Columns.ACTIONS: next_actions})
        return output
