"""RLlib's SAC RLModule with a deterministic action that is the squashed Gaussian's squashed mean.

RLlib 2.60's ``TorchSquashedGaussian.to_deterministic()`` returns the *pre-tanh* mean ``μ``; with
``clip_actions=True`` the env then gets ``clip(μ, -1, 1)`` instead of ``tanh(μ)``. Every ``explore=False``
action (RLlib evaluation runners, aolo's held-out evaluation) was off the policy it trained: ``μ = 2.2`` acts at
the bound, not at ``tanh(2.2) = 0.976``, and ``μ = -0.8`` at ``-0.8``, not ``-0.66``. Measured on the quick
preset: SAC's deterministic actions sat at the action bound and delivered QoE 0.989 where its mean action
meant 0.8.
"""

from __future__ import annotations

from ray.rllib.algorithms.sac.torch.default_sac_torch_rl_module import DefaultSACTorchRLModule
from ray.rllib.core.distribution.torch.torch_distribution import TorchDeterministic, TorchSquashedGaussian

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
