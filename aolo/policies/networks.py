"""The Q networks of SAC, SDRL and TD3, sized by ``training.hidden``, and the parameter counts aolo reports.

RLlib's catalog critic for a Box action space (``SACCatalog._build_qf_encoder_continuous``) is not the
``obs + action -> hidden -> 1`` MLP the settings name: it encodes the observation with ``fcnet_hiddens``, the
action with ``fcnet_hiddens[:-1]``, concatenates both and runs a *fusion* MLP sized by ``fusionnet_hiddens``
(default 256 x 256, whatever ``fcnet_hiddens`` says) before the head. With the cell env's 15 observation
features, 2 actions and ``hidden: [128, 128]`` that is 298 369 parameters per critic instead of 18 945
(``[256, 256]``: 661 761 instead of 70 657), and the four critic copies were most of an update's arithmetic.

aolo's critic (``model_config["critic"] == "mlp"``, ``training.critic: mlp``, aolo's default) is the textbook one
(Haarnoja et al. 2018, Fujimoto et al. 2018)::

    [obs, action] -> concat -> Linear(obs+act, h_1) -> act -> ... -> Linear(h_n, 1)

with ``h = fcnet_hiddens`` and ``act = model_config["critic_activation"]`` (``training.critic_activation``, aolo's
default ``relu``; without the key RLlib's ``fcnet_activation``, ``tanh``). The activation matters: on quick the
``tanh`` MLP critic left SDRL 7-33 % above where the ``relu`` one and the catalog critic land (BENCHMARKS.md, issue
22). ``"catalog"`` keeps RLlib's fusion critic; it is also what a module built without the ``critic`` key gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.models.base import ENCODER_OUT
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from torch import Tensor, nn

CRITICS = ("mlp", "catalog")
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "silu": nn.SiLU, "swish": nn.SiLU, "elu": nn.ELU}


class StateActionConcat(nn.Module):
    """Weightless ``qf_encoder`` (RLlib's encoder contract): ``{obs, actions} -> {ENCODER_OUT: [obs, action]}``."""

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        obs, actions = batch[Columns.OBS], batch[Columns.ACTIONS]
        return {ENCODER_OUT: torch.cat([obs.flatten(start_dim=1), actions.flatten(start_dim=1)], dim=-1)}


def mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    """``Linear`` layers through ``sizes`` with ``activation`` between them (none after the last)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"fcnet_activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def critic_setting(model_config: dict[str, Any]) -> str:
    """The module's ``critic`` setting, validated."""
    critic = model_config.get("critic", "catalog")
    if critic not in CRITICS:
        raise ValueError(f"model_config['critic'] must be one of {list(CRITICS)}, got {critic!r}")
    return critic


def build_mlp_critics(module: Any) -> None:
    """Set ``module``'s ``qf_encoder``/``qf`` (and ``qf_twin_*`` with ``twin_q``) to the MLP critic above.

    Called in ``setup()`` of a learner-side SAC-family module, before the Learner makes the target copies."""
    defaults = DefaultModelConfig()
    cfg = module.model_config
    obs_dim = int(np.prod(module.observation_space.shape))
    act_dim = int(np.prod(module.action_space.shape))
    sizes = [obs_dim + act_dim, *cfg.get("fcnet_hiddens", defaults.fcnet_hiddens), 1]
    activation = cfg.get("critic_activation", cfg.get("fcnet_activation", defaults.fcnet_activation))
    module.qf_encoder, module.qf = StateActionConcat(), mlp(sizes, activation)
    if cfg["twin_q"]:
        module.qf_twin_encoder, module.qf_twin = StateActionConcat(), mlp(sizes, activation)


def count_parameters(net: nn.Module | None) -> int:
    return 0 if net is None else sum(p.numel() for p in net.parameters())


def architecture_summary(module: Any) -> dict[str, Any]:
    """What a SAC-family module really is: the critic kind and the trainable parameters per network (targets
    not counted): ``actor_params``, ``critic_params`` (one Q network, encoder included), ``num_critics``."""
    actor = count_parameters(getattr(module, "pi_encoder", None)) + count_parameters(getattr(module, "pi", None))
    critic = count_parameters(getattr(module, "qf_encoder", None)) + count_parameters(getattr(module, "qf", None))
    return {
        "critic": critic_setting(module.model_config),
        "actor_params": actor,
        "critic_params": critic,
        "num_critics": 2 if getattr(module, "twin_q", False) else 1,
    }


def architecture_params(algo: Any, module_id: str) -> dict[str, Any]:
    """MLflow params ``architecture.<key>`` of :func:`architecture_summary` for a SAC-family algorithm's learner
    module (the copy with the critics); empty for other algorithms (PPO)."""
    results = algo.learner_group.foreach_learner(
        lambda learner: (
            architecture_summary(learner.module[module_id].unwrapped())
            if hasattr(learner.module[module_id].unwrapped(), "qf")
            else {}
        )
    )
    summaries = [result.get() for result in results]
    summary = summaries[0] if summaries else {}
    return {f"architecture.{k}": v for k, v in summary.items()}
