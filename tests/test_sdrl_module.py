"""SDRLTorchRLModule: SAC module contract, inference-only copies, energy, training, checkpoints."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.sac import SACConfig
from ray.rllib.algorithms.sac.sac_learner import ACTION_DIST_INPUTS_NEXT, QF_PREDS, QF_TWIN_PREDS
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModule, RLModuleSpec
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from aolo.policies.energy import ENCODER_MACS_PER_NEURON, ActorEnergy
from aolo.policies.sdrl import SDRLTorchRLModule

torch.set_num_threads(1)

OBS_SPACE = gym.spaces.Box(-1.0, 1.0, (5,), np.float32)
ACT_SPACE = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
SMALL = {"popsan_hidden": [32, 32], "pop_in": 10, "pop_out": 10, "timesteps": 5}
Q_NETS = ("qf", "qf_twin", "qf_encoder", "qf_twin_encoder")


def _spec(inference_only: bool = False, **model_config) -> RLModuleSpec:
    return RLModuleSpec(
        module_class=SDRLTorchRLModule,
        observation_space=OBS_SPACE,
        action_space=ACT_SPACE,
        inference_only=inference_only,
        model_config={"twin_q": True, **SMALL, **model_config},
    )


def _batch(n: int = 7) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        Columns.OBS: torch.rand(n, 5, generator=g) * 2 - 1,
        Columns.NEXT_OBS: torch.rand(n, 5, generator=g) * 2 - 1,
        Columns.ACTIONS: torch.rand(n, 2, generator=g) * 2 - 1,
    }


@pytest.mark.parametrize("log_std_head", ["rates", "parameter"])
def test_forward_contract_and_actor_gradients(log_std_head: str) -> None:
    module = _spec(log_std_head=log_std_head).build()
    module.make_target_networks()
    batch = _batch()
    for out in (module.forward_inference(batch), module.forward_exploration(batch)):
        assert set(out) == {Columns.ACTION_DIST_INPUTS}
        assert out[Columns.ACTION_DIST_INPUTS].shape == (7, 4)

    out = module.forward_train(batch)
    per_sample = [QF_PREDS, QF_TWIN_PREDS, "logp_resampled", "logp_next_resampled", "q_curr", "q_target_next"]
    assert set(out) == {*per_sample, Columns.ACTION_DIST_INPUTS, ACTION_DIST_INPUTS_NEXT}
    for key in per_sample:
        assert out[key].shape == (7,), key
    assert out[Columns.ACTION_DIST_INPUTS].shape == out[ACTION_DIST_INPUTS_NEXT].shape == (7, 4)

    # The actor loss reaches every PopSAN parameter and no Q parameter.
    (out["logp_resampled"] * 0.2 - out["q_curr"]).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.pi.parameters())
    assert all(p.grad is None for name in Q_NETS for p in getattr(module, name).parameters())


def test_defaults_inference_only_copy_and_energy() -> None:
    full = RLModuleSpec(
        module_class=SDRLTorchRLModule,
        observation_space=OBS_SPACE,
        action_space=ACT_SPACE,
        model_config={"twin_q": True},
    ).build()
    assert full.pi.popsan.layer_sizes == [50, 256, 256, 20]  # PopSAN's SAC defaults, T = 5
    assert full.pi.popsan.timesteps == 5

    small = _spec().build()
    light = _spec(inference_only=True).build()
    assert not any(hasattr(light, name) for name in Q_NETS)
    assert all(hasattr(small, name) for name in Q_NETS)
    light.set_state(small.get_state(inference_only=True))
    obs = {Columns.OBS: _batch()[Columns.OBS]}
    assert torch.equal(
        light.forward_inference(obs)[Columns.ACTION_DIST_INPUTS],
        small.forward_inference(obs)[Columns.ACTION_DIST_INPUTS],
    )

    energy = small.actor_energy(obs[Columns.OBS])
    assert isinstance(energy, ActorEnergy)
    # Encoder fields + mean decoder + log-std readout (2 actions x 10 rates each).
    assert energy.macs == ENCODER_MACS_PER_NEURON * 50 + 20 + 20
    assert energy.synops > 0 and energy.neuron_updates == (50 + 32 + 32 + 20) * 5
    parameter_head = _spec(log_std_head="parameter").build().actor_energy(obs[Columns.OBS])
    assert parameter_head.macs == ENCODER_MACS_PER_NEURON * 50 + 20
    assert small.mlp_actor_energy().macs == 5 * 256 + 256 * 256 + 256 * 4

    with pytest.raises(ValueError):
        _spec(log_std_head="mlp").build()


class TwoAgentToyEnv(MultiAgentEnv):
    """Two agents, obs Box(5), act Box(2), 10-step episodes; reward: match the first obs dims."""

    def __init__(self, config: dict | None = None) -> None:
        super().__init__()
        self.agents = self.possible_agents = ["a0", "a1"]
        self.observation_spaces = {a: OBS_SPACE for a in self.agents}
        self.action_spaces = {a: ACT_SPACE for a in self.agents}
        self._rng = np.random.default_rng(0)
        self._t = 0
        self._obs: dict[str, np.ndarray] = {}

    def _observe(self) -> dict[str, np.ndarray]:
        self._obs = {a: self._rng.uniform(-1, 1, 5).astype(np.float32) for a in self.agents}
        return self._obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._t = 0
        return self._observe(), {}

    def step(self, actions: dict[str, np.ndarray]):
        rewards = {a: -float(np.sum((act - self._obs[a][:2]) ** 2)) for a, act in actions.items()}
        self._t += 1
        return self._observe(), rewards, {"__all__": False}, {"__all__": self._t >= 10}, {}


def _shared_policy(agent_id, episode, **kwargs) -> str:
    return "shared"


@pytest.mark.ray
def test_multi_agent_training_and_checkpoint_restore(ray_session, tmp_path: Path) -> None:
    spec = MultiRLModuleSpec(
        rl_module_specs={"shared": RLModuleSpec(module_class=SDRLTorchRLModule, model_config=SMALL)}
    )
    config = (
        SACConfig()
        .environment(TwoAgentToyEnv)
        .env_runners(num_env_runners=0, rollout_fragment_length=20)
        .multi_agent(policies={"shared"}, policy_mapping_fn=_shared_policy)
        .rl_module(rl_module_spec=spec)
        .training(
            train_batch_size_per_learner=32,
            num_steps_sampled_before_learning_starts=20,
            replay_buffer_config={"type": "MultiAgentEpisodeReplayBuffer", "capacity": 1000},
        )
    )
    algo = config.build_algo()
    try:
        learner = algo.learner_group._learner
        module = learner.module["shared"]
        policy_params = {id(p) for g in learner.get_optimizer("shared", "policy").param_groups for p in g["params"]}
        assert {id(p) for p in module.pi.parameters()} <= policy_params
        before = {k: v.clone() for k, v in module.pi.state_dict().items()}

        result = algo.train()
        assert "policy_loss" in result["learners"]["shared"]
        after = module.pi.state_dict()
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        assert {"popsan.encoder.mean", "popsan.fc.0.weight", "popsan.decoder.weight"} <= changed

        obs = {Columns.OBS: _batch(16)[Columns.OBS]}
        expected = module.forward_inference(obs)[Columns.ACTION_DIST_INPUTS]
        acting = algo.get_module("shared").forward_inference(obs)[Columns.ACTION_DIST_INPUTS]
        assert torch.equal(acting, expected), "EnvRunner module not synced with the learner"
        checkpoint = Path(algo.save_to_path(tmp_path / "ckpt"))
    finally:
        algo.stop()

    restored = Algorithm.from_checkpoint(checkpoint)
    try:
        learner_module = restored.learner_group._learner.module["shared"]
        for twin in (learner_module, restored.get_module("shared")):
            assert torch.equal(twin.forward_inference(obs)[Columns.ACTION_DIST_INPUTS], expected)
    finally:
        restored.stop()

    module_dir = checkpoint / "learner_group" / "learner" / "rl_module" / "shared"
    alone = RLModule.from_checkpoint(module_dir)
    assert isinstance(alone, SDRLTorchRLModule)
    assert torch.equal(alone.forward_inference(obs)[Columns.ACTION_DIST_INPUTS], expected)
