"""``training.hidden`` sizes every network of SAC, SDRL and TD3: parameter counts computed by hand."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from aolo.envs.cell_env import OBS_FEATURES
from aolo.envs.config import ConfigError
from aolo.platform.algorithms import MODULE_ID, TrainingSettings, build_algorithm_config
from aolo.platform.presets import load_experiment
from aolo.policies.networks import architecture_summary, mlp

torch.set_num_threads(1)

OBS, ACT = len(OBS_FEATURES), 2  # the cell env: one user's observation, (P_trans, kappa) action
H1, H2 = 16, 8
POPSAN = {"pop_in": 4, "pop_out": 3, "timesteps": 5}


def _linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _module(algo: str, **critic: str):
    experiment = load_experiment("smoke")
    settings = TrainingSettings.from_dict(
        {**experiment.training.to_dict(), "hidden": [H1, H2], "popsan": POPSAN, **critic}
    )
    config = build_algorithm_config(algo, experiment.scenario, settings=settings)
    spaces = {
        MODULE_ID: (
            gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32),
            gym.spaces.Box(-1.0, 1.0, (ACT,), np.float32),
        )
    }
    return config.get_multi_rl_module_spec(spaces=spaces).build()[MODULE_ID]


CRITIC = _linear(OBS + ACT, H1) + _linear(H1, H2) + _linear(H2, 1)
ACTORS = {
    # obs -> h1 -> h2 -> (mean, log_std)
    "sac": _linear(OBS, H1) + _linear(H1, H2) + _linear(H2, 2 * ACT),
    # obs -> h1 -> h2 -> deterministic action
    "td3": _linear(OBS, H1) + _linear(H1, H2) + _linear(H2, ACT),
    # receptive fields (mean, std), spiking layers, mean decoder and log-std readout (one grouped conv each)
    "sdrl": 2 * OBS * 4 + _linear(OBS * 4, H1) + _linear(H1, H2) + _linear(H2, ACT * 3) + 2 * (ACT * 3 + ACT),
}


@pytest.mark.parametrize("algo", ["sac", "sdrl", "td3"])
def test_hidden_sizes_actor_and_both_critics(algo: str) -> None:
    module = _module(algo)
    summary = architecture_summary(module)
    assert summary == {"critic": "mlp", "actor_params": ACTORS[algo], "critic_params": CRITIC, "num_critics": 2}
    for name in ("qf_twin_encoder", "qf_twin"):  # the twin is the same architecture with its own weights
        assert getattr(module, name) is not None
    twin = sum(p.numel() for net in (module.qf_twin_encoder, module.qf_twin) for p in net.parameters())
    assert twin == CRITIC
    assert module.qf[0].weight.data_ptr() != module.qf_twin[0].weight.data_ptr()


def test_critic_is_the_plain_mlp_on_observation_and_action() -> None:
    module = _module("sac")
    obs, actions = torch.randn(5, OBS), torch.rand(5, ACT) * 2 - 1
    expected = module.qf(torch.cat([obs, actions], dim=-1)).squeeze(-1)
    q = module._qf_forward_train_helper({Columns.OBS: obs, Columns.ACTIONS: actions}, module.qf_encoder, module.qf)
    assert torch.equal(q, expected)
    assert [type(layer).__name__ for layer in module.qf] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    tanh = _module("sac", critic_activation="tanh")
    assert [type(layer).__name__ for layer in tanh.qf] == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]


def test_mlp_is_the_default_critic_and_catalog_stays_selectable() -> None:
    assert (TrainingSettings().critic, TrainingSettings().critic_activation) == ("mlp", "relu")
    summary = architecture_summary(_module("sac", critic="catalog"))
    assert summary["critic"] == "catalog"
    assert summary["critic_params"] > 256 * 256  # RLlib's 256-wide fusion stack, whatever `hidden` says
    with pytest.raises(ConfigError, match="training.critic_activation"):
        TrainingSettings(critic_activation="sigmoid")


def test_mlp_rejects_an_unknown_activation() -> None:
    assert len(mlp([3, 4, 1], "relu")) == 3
    with pytest.raises(ValueError, match="fcnet_activation must be one of"):
        mlp([3, 4, 1], "sigmoidal")


@pytest.mark.parametrize("algo", ["sac", "sdrl"])
def test_training_forward_is_rllibs_with_the_target_side_outside_autograd(algo: str) -> None:
    """aolo's ``_forward_train_continuous`` = RLlib's, value for value and gradient for gradient (same seed), and
    records no graph for the next-state actor pass, its sample and the target critics."""
    from ray.rllib.algorithms.sac.torch.default_sac_torch_rl_module import DefaultSACTorchRLModule

    module = _module(algo)
    module.make_target_networks()  # the Learner's step
    generator = torch.Generator().manual_seed(3)
    batch = {
        Columns.OBS: torch.randn(32, OBS, generator=generator),
        Columns.NEXT_OBS: torch.randn(32, OBS, generator=generator),
        Columns.ACTIONS: torch.rand(32, ACT, generator=generator) * 2 - 1,
    }

    def run(forward) -> tuple[dict, dict]:
        module.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        out = forward(module, batch)
        loss = out["q_curr"].sum() + out["logp_resampled"].sum() + out["qf_preds"].sum() + out["qf_twin_preds"].sum()
        loss.backward()
        grads = {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}
        return out, grads

    ours, our_grads = run(type(module)._forward_train_continuous)
    rllib, rllib_grads = run(DefaultSACTorchRLModule._forward_train_continuous)
    assert ours.keys() == rllib.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], rllib[key], rtol=0, atol=0, msg=key)
    assert our_grads.keys() == rllib_grads.keys() and any(name.startswith("pi") for name in our_grads)
    for name in our_grads:
        torch.testing.assert_close(our_grads[name], rllib_grads[name], rtol=0, atol=0, msg=name)
    for key in ("action_dist_inputs_next", "logp_next_resampled", "q_target_next"):
        assert ours[key].grad_fn is None
    assert rllib["action_dist_inputs_next"].grad_fn is not None  # RLlib records that graph
