"""Tests of TD3 on RLlib's new API stack (aolo.policies.td3)."""

from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.examples.envs.classes.multi_agent import MultiAgentPendulum
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME, NUM_TARGET_UPDATES
from ray.tune.registry import get_trainable_cls
from torch import nn

from aolo.policies.td3 import (
    PI_PRE_TANH,
    TD3,
    DefaultTD3TorchRLModule,
    TD3Config,
    TD3TorchLearner,
    smooth_target_actions,
)

torch.set_num_threads(1)

OBS_DIM, ACT_DIM = 3, 1  # Pendulum-v1


def _learner(config: TD3Config) -> TD3TorchLearner:
    return config.build_learner(env=gym.make("Pendulum-v1"))


def _module(warmup: int = 0, inference_only: bool = True) -> DefaultTD3TorchRLModule:
    env = gym.make("Pendulum-v1")
    config = TD3Config().training(num_steps_sampled_before_learning_starts=warmup)
    return RLModuleSpec(
        module_class=DefaultTD3TorchRLModule,
        observation_space=env.observation_space,
        action_space=env.action_space,
        model_config=config.model_config,
        inference_only=inference_only,
    ).build()


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


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in net.state_dict().items()}


def _changed(net: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(p, before[name]) for name, p in net.state_dict().items())


# --- config --------------------------------------------------------------------------


def test_config_training_keys_and_validation() -> None:
    config = TD3Config().training(policy_delay=3, target_noise=0.3, target_noise_clip=0.4, exploration_noise=0.05)
    assert (config.policy_delay, config.target_noise, config.target_noise_clip, config.exploration_noise) == (
        3,
        0.3,
        0.4,
        0.05,
    )
    assert config.algo_class is TD3
    assert config.get_default_learner_class() is TD3TorchLearner
    assert config.get_default_rl_module_spec().module_class is DefaultTD3TorchRLModule
    assert config.model_config["target_noise"] == 0.3
    with pytest.raises(ValueError, match="target_network_update_freq"):
        TD3Config().environment("Pendulum-v1").training(target_network_update_freq=5).validate()
    with pytest.raises(ValueError, match="policy_delay"):
        TD3Config().environment("Pendulum-v1").training(policy_delay=0).validate()


def test_registered_with_tune() -> None:
    assert get_trainable_cls("TD3") is TD3


# --- learner: delayed updates, targets, losses ----------------------------------------


def test_delayed_policy_and_target_updates() -> None:
    delay, tau = 3, 0.5
    learner = _learner(TD3Config().training(policy_delay=delay, tau=tau, actor_lr=1e-2, critic_lr=1e-2))
    module = learner.module[DEFAULT_MODULE_ID]
    tracked = {
        name: getattr(module, name)
        for name in ("pi", "qf", "qf_twin", "target_pi", "target_qf", "target_qf_twin", "target_qf_encoder")
    }
    for step in range(1, 2 * delay + 1):
        before = {name: _snapshot(net) for name, net in tracked.items()}
        results = learner.update(batch=_batch(seed=step), timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 0})
        changed = {name: _changed(net, before[name]) for name, net in tracked.items()}
        policy_step = step % delay == 0
        assert changed["qf"] and changed["qf_twin"], step
        assert changed["pi"] == policy_step, step
        for name in ("target_pi", "target_qf", "target_qf_twin", "target_qf_encoder"):
            assert changed[name] == policy_step, (name, step)
        if policy_step:
            # Polyak: target <- tau * main + (1 - tau) * target, with the updated main nets.
            for main, target in (("pi", "target_pi"), ("qf", "target_qf")):
                for key, value in tracked[target].state_dict().items():
                    expected = tau * tracked[main].state_dict()[key] + (1 - tau) * before[target][key]
                    torch.testing.assert_close(value, expected)
            assert results[DEFAULT_MODULE_ID][NUM_TARGET_UPDATES].peek() == 1  # this update's count


def test_critic_and_actor_loss_values() -> None:
    gamma = 0.9
    learner = _learner(TD3Config().training(gamma=gamma))
    batch = {
        Columns.REWARDS: torch.tensor([1.0, 2.0, -1.0]),
        Columns.TERMINATEDS: torch.tensor([False, True, False]),
        "n_step": torch.tensor([1, 1, 2]),
        "weights": torch.tensor([1.0, 0.5, 2.0]),
    }
    fwd_out = {
        "qf_preds": torch.tensor([0.0, 1.0, 2.0]),
        "qf_twin_preds": torch.tensor([1.0, 1.0, 1.0]),
        "q_target_next": torch.tensor([10.0, 10.0, 10.0]),
        "q_curr": torch.tensor([3.0, 5.0, 7.0]),
    }
    learner.compute_loss_for_module(module_id=DEFAULT_MODULE_ID, config=learner.config, batch=batch, fwd_out=fwd_out)
    losses = {key[1]: value for key, value in learner._temp_losses.items()}
    learner._temp_losses.clear()
    target = torch.tensor([1.0 + gamma * 10.0, 2.0, -1.0 + gamma**2 * 10.0])
    torch.testing.assert_close(losses["qf_loss"], (batch["weights"] * (fwd_out["qf_preds"] - target) ** 2).mean())
    torch.testing.assert_close(
        losses["qf_twin_loss"], (batch["weights"] * (fwd_out["qf_twin_preds"] - target) ** 2).mean()
    )
    torch.testing.assert_close(losses["policy_loss"], torch.tensor(-5.0))


def test_custom_actor_drops_in_and_is_trained_by_policy_optimizer() -> None:
    class TinyActor(nn.Module):
        def __init__(self, obs_dim: int, act_dim: int, width: int) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(obs_dim, width), nn.ReLU(), nn.Linear(width, act_dim))

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return self.net(obs)

    config = (
        TD3Config()
        .training(policy_delay=1)
        .rl_module(model_config={"actor_class": TinyActor, "actor_kwargs": {"width": 7}})
    )
    learner = _learner(config)
    module = learner.module[DEFAULT_MODULE_ID]
    assert isinstance(module.pi, TinyActor) and module.pi.net[0].out_features == 7
    policy_params = {id(p) for p in learner.get_optimizer(DEFAULT_MODULE_ID, "policy").param_groups[0]["params"]}
    assert policy_params == {id(p) for p in module.pi.parameters()}
    before = _snapshot(module.pi)
    learner.update(batch=_batch(), timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 0})
    assert _changed(module.pi, before)


# --- target policy smoothing ------------------------------------------------------------


def test_smooth_target_actions_matches_formula_and_clips_noise() -> None:
    mu = torch.linspace(-0.99, 0.99, 1000).unsqueeze(-1)
    torch.manual_seed(0)
    actions = smooth_target_actions(mu, noise_std=0.2, noise_clip=0.5)
    torch.manual_seed(0)
    noise = torch.randn_like(mu) * 0.2
    torch.testing.assert_close(actions, (mu + noise.clamp(-0.5, 0.5)).clamp(-1.0, 1.0))

    # Large noise: every draw is clipped to +-c and the action to [-1, 1].
    zeros = torch.zeros(10_000, 2)
    actions = smooth_target_actions(zeros, noise_std=10.0, noise_clip=0.3)
    assert actions.abs().max() <= 0.3 + 1e-7
    assert (actions.abs() > 0.2999).float().mean() > 0.9
    ones = torch.full((1000, 1), 0.95)
    assert smooth_target_actions(ones, noise_std=10.0, noise_clip=0.5).max() <= 1.0


def test_module_target_actions_use_target_actor() -> None:
    module = _module(inference_only=False)
    module.make_target_networks()
    with torch.no_grad():
        for p in module.pi.parameters():  # target_pi must not follow pi
            p.add_(1.0)
    next_obs = torch.randn(256, OBS_DIM)
    torch.manual_seed(1)
    actions = module.target_actions(next_obs)
    torch.manual_seed(1)
    target_mu = torch.tanh(module.target_pi(next_obs))
    expected = (target_mu + (torch.randn_like(target_mu) * 0.2).clamp(-0.5, 0.5)).clamp(-1, 1)
    torch.testing.assert_close(actions, expected)


# --- module: exploration, inference, warm-up ---------------------------------------------


def test_inference_is_deterministic_tanh_of_actor() -> None:
    module = _module()
    obs = torch.randn(128, OBS_DIM)
    a1 = module.forward_inference({Columns.OBS: obs})[Columns.ACTIONS]
    a2 = module.forward_inference({Columns.OBS: obs})[Columns.ACTIONS]
    torch.testing.assert_close(a1, a2)
    torch.testing.assert_close(a1, torch.tanh(module.pi(obs)))
    assert not hasattr(module, "qf") and not hasattr(module, "target_pi")  # inference-only


def test_exploration_is_noisy_and_stays_in_bounds() -> None:
    module = _module(warmup=100)
    with torch.no_grad():
        module.pi.net[-1].bias.fill_(5.0)  # mu ~= tanh(5) ~= 1: noise would push past 1
    obs = torch.randn(4000, OBS_DIM)
    mu = module.forward_inference({Columns.OBS: obs})[Columns.ACTIONS]
    actions = module.forward_exploration({Columns.OBS: obs}, t=100)[Columns.ACTIONS]
    assert actions.shape == mu.shape
    assert actions.min() >= -1.0 and actions.max() <= 1.0
    assert (actions == 1.0).any()  # clipped draws
    below = actions < mu
    assert below.float().mean() > 0.4  # noise present
    noise = (actions - mu)[below]  # unclipped side: N(0, 0.1) half-normal
    assert 0.05 < noise.abs().mean() < 0.11


def test_warmup_actions_are_uniform_until_t_reaches_warmup() -> None:
    module = _module(warmup=1000)
    with torch.no_grad():
        module.pi.net[-1].bias.fill_(5.0)  # mu ~= 1, far from a uniform sample
    obs = torch.randn(20_000, OBS_DIM)
    warm = module.forward_exploration({Columns.OBS: obs}, t=999)[Columns.ACTIONS]
    assert warm.min() >= -1.0 and warm.max() <= 1.0
    assert abs(warm.mean().item()) < 0.03
    assert abs(warm.std().item() - 1 / np.sqrt(3)) < 0.02
    histogram = torch.histc(warm, bins=10, min=-1.0, max=1.0) / warm.numel()
    assert torch.allclose(histogram, torch.full((10,), 0.1), atol=0.015)
    after = module.forward_exploration({Columns.OBS: obs}, t=1000)[Columns.ACTIONS]
    assert after.mean() > 0.9  # mu + small noise
    no_t = module.forward_exploration({Columns.OBS: obs})[Columns.ACTIONS]
    assert no_t.mean() > 0.9


# --- end to end ---------------------------------------------------------------------


def _pendulum_config(warmup: int = 100) -> TD3Config:
    return (
        TD3Config()
        .environment("Pendulum-v1")
        .env_runners(num_env_runners=0, rollout_fragment_length=50)
        .training(
            num_steps_sampled_before_learning_starts=warmup,
            train_batch_size_per_learner=32,
            training_intensity=32,
        )
        .rl_module(model_config={"fcnet_hiddens": [32, 32]})
        .reporting(min_sample_timesteps_per_iteration=100, min_time_s_per_iteration=0)
        .debugging(seed=0)
    )


@pytest.mark.ray
def test_env_runner_step_count_is_exact_during_warmup(ray_session) -> None:
    algo = _pendulum_config(warmup=120).build_algo()
    try:
        counts = []
        for _ in range(4):
            algo.training_step()  # one 50-step sampling round (+ updates after warm-up)
            counts.append(algo.env_runner.num_env_steps_sampled_lifetime)
        # Pushed after every round until the warm-up is over (150 >= 120), then RLlib's
        # own once-per-iteration refresh takes over.
        assert counts == [50, 100, 150, 150]
        assert algo._warmup_over
    finally:
        algo.stop()


@pytest.mark.ray
def test_pendulum_train_checkpoint_restore(ray_session, tmp_path) -> None:
    algo = _pendulum_config().build_algo()
    try:
        for _ in range(2):
            result = algo.train()
        learner_results = result["learners"][DEFAULT_MODULE_ID]
        assert np.isfinite(learner_results["qf_loss"]) and np.isfinite(learner_results["policy_loss"])
        assert learner_results[NUM_TARGET_UPDATES] >= 1
        algo.save_to_path(str(tmp_path))
        obs = torch.randn(16, OBS_DIM)
        actions = algo.get_module().forward_inference({Columns.OBS: obs})[Columns.ACTIONS]
    finally:
        algo.stop()
    restored = Algorithm.from_checkpoint(str(tmp_path))
    try:
        assert isinstance(restored, TD3)
        restored_actions = restored.get_module().forward_inference({Columns.OBS: obs})[Columns.ACTIONS]
        torch.testing.assert_close(actions, restored_actions, rtol=0, atol=0)
    finally:
        restored.stop()


@pytest.mark.ray
def test_multi_agent_shared_module(ray_session) -> None:
    config = (
        _pendulum_config()
        .environment(MultiAgentPendulum, env_config={"num_agents": 2})
        .multi_agent(policies={"shared"}, policy_mapping_fn=lambda agent_id, episode, **kw: "shared")
        .training(replay_buffer_config={"type": "MultiAgentEpisodeReplayBuffer", "capacity": 10_000})
    )
    algo = config.build_algo()
    try:
        for _ in range(2):
            result = algo.train()
        assert isinstance(algo.get_module("shared"), DefaultTD3TorchRLModule)
        assert np.isfinite(result["learners"]["shared"]["qf_loss"])
        assert result["learners"]["shared"][NUM_TARGET_UPDATES] >= 1
    finally:
        algo.stop()


@pytest.mark.ray
def test_tune_sweep_by_registered_name(ray_session, tmp_path) -> None:
    from ray import tune

    tuner = tune.Tuner(
        "TD3",
        param_space=_pendulum_config(),
        run_config=tune.RunConfig(storage_path=str(tmp_path), stop={"training_iteration": 1}, verbose=0),
    )
    results = tuner.fit()
    assert len(results) == 1 and results.errors == []
    assert results[0].metrics["training_iteration"] == 1


def test_pre_activation_penalty_in_actor_loss_and_forward_train() -> None:
    learner = _learner(TD3Config().training(policy_pre_activation_weight=0.5))
    batch = {
        Columns.REWARDS: torch.zeros(2),
        Columns.TERMINATEDS: torch.tensor([False, False]),
        "n_step": torch.ones(2, dtype=torch.int64),
        "weights": torch.ones(2),
    }
    fwd_out = {
        "qf_preds": torch.zeros(2),
        "qf_twin_preds": torch.zeros(2),
        "q_target_next": torch.zeros(2),
        "q_curr": torch.tensor([3.0, 5.0]),
        PI_PRE_TANH: torch.tensor([[1.0, 2.0], [3.0, 0.0]]),  # ||u||² = 5, 9 -> mean 7
    }
    learner.compute_loss_for_module(module_id=DEFAULT_MODULE_ID, config=learner.config, batch=batch, fwd_out=fwd_out)
    losses = {key[1]: value for key, value in learner._temp_losses.items()}
    learner._temp_losses.clear()
    torch.testing.assert_close(losses["policy_loss"], torch.tensor(-4.0 + 0.5 * 7.0))
    with pytest.raises(ValueError, match="policy_pre_activation_weight"):
        TD3Config().training(policy_pre_activation_weight=-1.0).validate()
    module = _module(inference_only=False)
    module.make_target_networks()
    obs = torch.rand(4, OBS_DIM)
    out = module.forward_train({Columns.OBS: obs, Columns.NEXT_OBS: obs, Columns.ACTIONS: torch.zeros(4, ACT_DIM)})
    torch.testing.assert_close(torch.tanh(out[PI_PRE_TANH]), module.actor(obs))
