"""SDRL: RLlib SAC whose actor is PopSAN (population-coded spiking actor network).

``SDRLTorchRLModule`` keeps everything of RLlib's ``DefaultSACTorchRLModule`` (twin Q networks,
their encoders and targets, the forward passes and the squashed-Gaussian action distribution)
and replaces the actor: ``pi_encoder`` is a weightless observation pass-through and ``pi`` is a
``PopSANGaussianActor`` producing the action-distribution inputs [B, 2 * act_dim] =
(mean, log_std). Both live under the attributes SAC's Learner puts into its "policy" optimizer,
and both are kept in the inference-only copies on EnvRunners.

Log-std choice. PopSAN's own SAC actor takes log_std from a separate obs -> 256 -> 256 -> act MLP,
which costs as much as a whole ANN actor and so undoes the spiking actor's energy advantage
(docs/design.md §4). Here, by default (``log_std_head="rates"``), log_std is a second grouped
linear readout on the output population's firing rates, exactly like the mean decoder: one
readout of ``pop_out`` weights + 1 bias per action dimension. It stays state-dependent, as SAC
assumes, and costs ``act_dim * pop_out`` MACs per decision (20 MACs = 92 pJ for 2 actions x 10
neurons), which ``actor_energy`` counts. ``log_std_head="parameter"`` instead uses a
state-independent learnable log_std initialised to 0 (PopSAN-PPO style), costing no operations.
RLlib's ``TorchSquashedGaussian`` clamps log_std to [-5, 2].

``model_config`` keys (defaults: PopSAN's SAC settings): ``popsan_hidden`` (256, 256), ``pop_in``
10, ``pop_out`` 10, ``timesteps`` 5, ``mean_range`` (-3, 3), ``encoder_std`` sqrt(0.15),
``log_std_head`` "rates". The Q networks read RLlib's usual keys (``fcnet_hiddens``, ``twin_q``,
...). Observations should be normalised to about ``mean_range`` (e.g. with RLlib's
``MeanStdFilter`` connector), since the receptive fields cover that range.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.models.base import ENCODER_OUT
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from torch import Tensor, nn

from aolo.policies.energy import ActorEnergy, mlp_actor_energy, popsan_energy_nj
from aolo.policies.popsan import PopSANActor
from aolo.policies.sac import SACTorchRLModule

LOG_STD_HEADS = ("rates", "parameter")


class ObsPassThrough(nn.Module):
    """``pi_encoder`` without weights: RLlib's encoder contract, flat observations out."""

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        obs = batch[Columns.OBS]
        return {ENCODER_OUT: obs.reshape(obs.shape[0], -1)}


#: PopSAN settings an SDRL model config may give (plus ``popsan_hidden``, the spiking hidden layer widths).
POPSAN_SETTINGS = ("log_std_head", "pop_in", "pop_out", "timesteps", "mean_range", "encoder_std")


class PopSANGaussianActor(nn.Module):
    """PopSAN mean plus a cheap log-std head -> [B, 2 * act_dim] = (mean, log_std).

    Args:
        obs_dim: flat observation size.
        act_dim: action size.
        log_std_head: "rates" (grouped readout on output firing rates) or "parameter"
            (state-independent learnable vector); see the module docstring.
        **popsan_kwargs: ``PopSANActor`` settings (hidden, pop_in, pop_out, timesteps, ...).
    """

    def __init__(self, obs_dim: int, act_dim: int, log_std_head: str = "rates", **popsan_kwargs: Any) -> None:
        super().__init__()
        if log_std_head not in LOG_STD_HEADS:
            raise ValueError(f"log_std_head must be one of {LOG_STD_HEADS}, got {log_std_head!r}")
        self.popsan = PopSANActor(obs_dim, act_dim, **popsan_kwargs)
        self.log_std_head = log_std_head
        pop_out = self.popsan.pop_out
        if log_std_head == "rates":
            self.log_std: nn.Module | nn.Parameter = nn.Conv1d(act_dim, act_dim, pop_out, groups=act_dim)
        else:
            self.log_std = nn.Parameter(torch.zeros(act_dim))

    @property
    def log_std_macs(self) -> int:
        """MACs per decision of the log-std head (it reads real-valued rates)."""
        return self.popsan.act_dim * self.popsan.pop_out if self.log_std_head == "rates" else 0

    def forward(self, obs: Tensor) -> Tensor:
        rates, _ = self.popsan.population_rates(obs)
        mean = self.popsan.decode(rates)
        if isinstance(self.log_std, nn.Parameter):
            log_std = self.log_std.expand_as(mean)
        else:
            grouped = rates.view(-1, self.popsan.act_dim, self.popsan.pop_out)
            log_std = self.log_std(grouped).view_as(mean)
        return torch.cat([mean, log_std], dim=-1)

    def energy(self, obs_batch: Tensor | np.ndarray) -> ActorEnergy:
        """Mean energy per decision on ``obs_batch`` from real spike counts, log-std included."""
        return popsan_energy_nj(self.popsan, obs_batch, extra_real_macs=self.log_std_macs)


class SDRLTorchRLModule(SACTorchRLModule):
    """SAC RLModule with RLlib's default twin Q networks and a PopSAN actor (see module doc)."""

    def setup(self) -> None:
        super().setup()
        if not isinstance(self.action_space, gym.spaces.Box):
            raise ValueError(f"SDRL needs a Box action space, got {self.action_space}")
        cfg = self.model_config
        # only the settings the model config gives: the defaults live once, in PopSANGaussianActor/PopSANActor
        settings = {key: cfg[key] for key in POPSAN_SETTINGS if key in cfg}
        if "popsan_hidden" in cfg:
            settings["hidden"] = tuple(cfg["popsan_hidden"])
        if "mean_range" in settings:
            settings["mean_range"] = tuple(settings["mean_range"])
        self.pi_encoder = ObsPassThrough()
        self.pi = PopSANGaussianActor(
            obs_dim=int(np.prod(self.observation_space.shape)),
            act_dim=int(np.prod(self.action_space.shape)),
            **settings,
        )

    def actor_energy(self, obs_batch: Tensor | np.ndarray) -> ActorEnergy:
        """Mean actor energy per decision on ``obs_batch``, counting the spikes really emitted."""
        return self.pi.energy(obs_batch)

    def mlp_actor_energy(self) -> ActorEnergy:
        """Energy of the ANN actor this module replaces: RLlib's default SAC pi, i.e. the
        ``fcnet_hiddens`` encoder and ``head_fcnet_hiddens`` head, output (mean, log_std)."""
        defaults = DefaultModelConfig()
        sizes = [
            self.pi.popsan.obs_dim,
            *self.model_config.get("fcnet_hiddens", defaults.fcnet_hiddens),
            *self.model_config.get("head_fcnet_hiddens", defaults.head_fcnet_hiddens),
            2 * self.pi.popsan.act_dim,
        ]
        return mlp_actor_energy(sizes)
