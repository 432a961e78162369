"""The lean SAC learner computes the same update as RLlib's: one backward, one finiteness check, fused targets."""

from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.algorithms.sac import SACConfig
from ray.rllib.algorithms.sac.torch.sac_torch_learner import SACTorchLearner
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME
from torch import nn

from aolo.policies.learners import LeanSACTorchLearner, all_finite, polyak_update
from aolo.policies.sac import SACTorchRLModule
from aolo.policies.sdrl import SDRLTorchRLModule

torch.set_num_threads(1)

OBS_DIM, ACT_DIM = 3, 1  # Pendulum-v1
MODULES = {
    "sac": (SACTorchRLModule, {"fcnet_hiddens": [32, 32]}),
    "sdrl": (SDRLTorchRLModule, {"fcnet_hiddens": [32, 32], "popsan_hidden": [32, 32], "pop_in": 4, "pop_out": 4}),
}


def _learner(learner_class: type, module: str) -> SACTorchLearner:
    module_class, model_config = MODULES[module]
    config = (
        SACConfig()
        .training(tau=0.1, actor_lr=1e-2, critic_lr=1e-2)
        .learners(learner_class=learner_class)
        .rl_module(rl_module_spec=RLModuleSpec(module_class=module_class, model_config=model_config))
    )
    return config.build_learner(env=gym.make("Pendulum-v1"))


def _batch(n: int = 64, seed: int = 0) -> MultiAgentBatch:
    rng = np.random.default_rng(seed)
    data = {
        Columns.OBS: rng.uniform(-1, 1, (n, OBS_DIM)).astype(np.float32),
        Columns.NEXT_OBS: rng.uniform(-1, 1, (n, OBS_DIM)).astype(np.float32),
        Columns.ACTIONS: rng.uniform(-1, 1, (n, ACT_DIM)).astype(np.float32),
        Columns.REWARDS: rng.normal(size=n).astype(np.float32),
        Columns.TERMINATEDS: rng.random(n) < 0.1,
        "n_step": np.ones(n, dtype=np.int64),
        "weights": np.ones(n, dtype=np.float32),
    }
    return MultiAgentBatch({DEFAULT_MODULE_ID: SampleBatch(data)}, env_steps=n)


@pytest.mark.parametrize("module", ["sac", "sdrl"])
def test_same_updates_as_rllibs_sac_learner(module: str) -> None:
    lean, reference = _learner(LeanSACTorchLearner, module), _learner(SACTorchLearner, module)
    reference.module.set_state(lean.module.get_state())
    initial = {k: v.clone() for k, v in lean.module[DEFAULT_MODULE_ID].state_dict().items()}
    for step in range(3):
        for learner in (lean, reference):
            torch.manual_seed(step)  # the same reparameterisation noise for both
            learner.update(batch=_batch(seed=step), timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: step})
        lean_state = lean.module[DEFAULT_MODULE_ID].state_dict()
        reference_state = reference.module[DEFAULT_MODULE_ID].state_dict()
        assert lean_state.keys() == reference_state.keys()
        for key, value in lean_state.items():
            if step == 0 and not key.startswith("target_"):  # same gradients, same Adam step: bit for bit
                assert torch.equal(value, reference_state[key]), key
            else:  # the fused Polyak step (lerp) rounds differently from tau m + (1 - tau) t, and that carries on
                torch.testing.assert_close(value, reference_state[key], rtol=1e-5, atol=1e-6, msg=key)
    moved = [k for k, v in lean.module[DEFAULT_MODULE_ID].state_dict().items() if not torch.equal(v, initial[k])]
    assert any(k.startswith("pi.") for k in moved) and any(k.startswith("qf_twin.") for k in moved)
    assert any(k.startswith("target_qf.") for k in moved)
    torch.testing.assert_close(lean.curr_log_alpha[DEFAULT_MODULE_ID], reference.curr_log_alpha[DEFAULT_MODULE_ID])


def test_polyak_update_hand_computed() -> None:
    main, target = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        for p in main.parameters():
            p.fill_(1.0)
        for p in target.parameters():
            p.fill_(-1.0)
    polyak_update([(main, target)], tau=0.25)
    for p in target.parameters():
        assert torch.equal(p, torch.full_like(p, -0.5))  # -1 + 0.25 (1 - (-1))
    for p in main.parameters():
        assert torch.equal(p, torch.ones_like(p))


def test_polyak_update_averages_buffers_and_refuses_different_networks() -> None:
    main, target = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    with torch.no_grad():
        main.running_mean.fill_(2.0)
    polyak_update([(main, target)], tau=0.25)
    assert torch.equal(target.running_mean, torch.full((2,), 0.5))  # 0 + 0.25 (2 - 0)
    assert target.num_batches_tracked == 0  # integer buffers are not averaged
    with pytest.raises(ValueError, match="is not a copy of"):
        polyak_update([(nn.Linear(2, 1), nn.BatchNorm1d(2))], tau=0.5)


def test_all_finite_sees_one_bad_entry() -> None:
    good = [torch.ones(3, 4), torch.zeros(5)]
    assert all_finite(good)
    assert all_finite([])
    for bad in (float("nan"), float("inf"), float("-inf")):
        grads = [torch.ones(3, 4), torch.zeros(5)]
        grads[1][2] = bad
        assert not all_finite(grads)


def test_non_finite_gradients_take_rllibs_path() -> None:
    learner = _learner(LeanSACTorchLearner, "sac")
    module = learner.module[DEFAULT_MODULE_ID]
    before = {k: v.clone() for k, v in module.state_dict().items()}
    grads = {pid: torch.full_like(p, float("nan")) for pid, p in learner._params.items()}
    learner.apply_gradients(grads)  # RLlib zeroes nan/inf gradients: Adam steps with zero gradients
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key]), key
