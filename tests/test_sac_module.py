"""The SAC/SDRL deterministic action is the squashed Gaussian's squashed mean tanh(μ), not RLlib's pre-tanh μ."""

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.algorithms.sac.torch.default_sac_torch_rl_module import DefaultSACTorchRLModule
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchSquashedGaussian
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from aolo.envs.cell_env import OBS_FEATURES
from aolo.platform.evaluation import ModulePolicy
from aolo.policies.sac import SACTorchRLModule, SquashedGaussian
from aolo.policies.sdrl import SDRLTorchRLModule

OBS = gym.spaces.Box(-5.0, 5.0, (len(OBS_FEATURES),), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def test_deterministic_action_is_the_squashed_mean():
    logits = torch.tensor([[2.2, -0.8, 0.3, -1.0]])  # (μ, log σ) for two action dims
    action = SquashedGaussian.from_logits(logits).to_deterministic().sample()
    np.testing.assert_allclose(action.numpy(), np.tanh([[2.2, -0.8]]), rtol=1e-6)
    # RLlib 2.60's own class hands out the pre-tanh mean, which clip_actions turns into the bound
    raw = TorchSquashedGaussian.from_logits(logits).to_deterministic().sample()
    assert raw[0, 0].item() == pytest.approx(2.2)


@pytest.mark.parametrize("module_class", [SACTorchRLModule, SDRLTorchRLModule])
def test_sac_and_sdrl_modules_act_with_the_squashed_mean(module_class):
    config = {"twin_q": True, "fcnet_hiddens": [16], "popsan_hidden": [16], "timesteps": 2}
    module = RLModuleSpec(
        module_class=module_class, observation_space=OBS, action_space=ACT, model_config=config
    ).build()
    assert module.get_inference_action_dist_cls() is SquashedGaussian
    assert module.get_exploration_action_dist_cls() is SquashedGaussian


def test_evaluation_squashes_checkpoints_of_rllibs_own_sac_module():
    module = RLModuleSpec(
        module_class=DefaultSACTorchRLModule,
        observation_space=OBS,
        action_space=ACT,
        model_config={"twin_q": True, "fcnet_hiddens": [16]},
    ).build()
    with torch.no_grad():  # a mean far outside [-1, 1]: clip(μ) and tanh(μ) differ
        module.pi.net.mlp[-1].bias.copy_(torch.tensor([3.0, -0.7, 0.0, 0.0]))
    obs = np.random.default_rng(0).normal(size=(3, len(OBS_FEATURES))).astype(np.float32)

    actions = ModulePolicy(module, "sac").act(SimpleNamespace(features=obs))  # what the protocol hands it
    with torch.no_grad():
        loc = module.forward_inference({Columns.OBS: torch.from_numpy(obs)})[Columns.ACTION_DIST_INPUTS][:, :2]
    np.testing.assert_allclose(actions, np.tanh(loc.numpy()), rtol=1e-5)
