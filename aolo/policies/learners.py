"""Lean gradient steps for the SAC family (SAC, SDRL, TD3): the same arithmetic with less bookkeeping.

RLlib's torch learners spend more per update on bookkeeping than on the networks' arithmetic (profile in
BENCHMARKS.md, ``bench/learner_overhead.py``). Three pieces here change how an update is executed, not what it
computes:

* **One backward pass.** ``SACTorchLearner.compute_gradients`` backpropagates each optimizer's loss separately
  (``qf``, ``qf_twin``, ``policy``, ``alpha``; ``retain_graph=True``). Every loss reaches only its own
  optimizer's parameters (the critic targets and the entropy terms are detached, and the actor's ``q_curr`` is
  computed with the critics' parameters frozen), so one backward pass of their sum gives every parameter the
  same gradient, bit for bit (tests/test_lean_learner.py).
* **One finiteness check.** ``TorchLearner.apply_gradients`` calls ``torch.isfinite(grad).all()`` twice per
  parameter tensor (one host sync each). Here one fused norm over all gradients decides; only if it is not
  finite does RLlib's own per-tensor path run (zeroing non-finite entries and warning, as before).
* **One fused target update.** RLlib's ``update_target_network`` rebuilds both state dicts and loads one into
  the other for every (network, target) pair; here ``torch._foreach_lerp_`` moves all target parameters toward
  their networks in one call: ``target += tau (main - target)``, the same Polyak average.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from ray.rllib.algorithms.sac.torch.sac_torch_learner import SACTorchLearner
from ray.rllib.core.learner.learner import Learner
from ray.rllib.core.rl_module.apis import TargetNetworkAPI
from ray.rllib.utils.metrics import (
    ALL_MODULES,
    LAST_TARGET_UPDATE_TS,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_TARGET_UPDATES,
)
from ray.rllib.utils.typing import ModuleID, ParamDict, TensorType
from torch import nn

from aolo.policies.replay_updates import BATCHED_UPDATES


@torch.no_grad()
def polyak_update(pairs: Iterable[tuple[nn.Module, nn.Module]], tau: float) -> None:
    """``target ← target + tau (main - target)`` for every floating-point entry of every (main, target) pair's
    state dict (parameters and buffers, as RLlib's ``update_target_network``), in one fused call."""
    mains: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    for main, target in pairs:
        main_state, target_state = main.state_dict(), target.state_dict()
        if main_state.keys() != target_state.keys():
            raise ValueError(f"polyak_update: {type(target).__name__} is not a copy of {type(main).__name__}")
        for key, value in target_state.items():
            if value.is_floating_point():
                targets.append(value)
                mains.append(main_state[key])
    if targets:
        torch._foreach_lerp_(targets, mains, float(tau))


def all_finite(grads: list[torch.Tensor]) -> bool:
    """Whether every entry of every tensor is finite, with one host sync (a fused norm per tensor).

    A norm overflows to inf only for entries beyond ~1e19 (float32); such gradients take the slow exact path."""
    if not grads:
        return True
    return bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all())


class LeanStepMixin:
    """``apply_gradients`` with one fused finiteness check (put before a ``TorchLearner`` in the bases), and the
    shuffle that makes the minibatches of a batched update call independent uniform draws again."""

    def _make_batch_if_necessary(self, training_data: Any) -> Any:
        """The learner connector's train batch; shuffled when the iteration's updates come in one call.

        RLlib's connector groups the sampled transitions by their source (episode, agent) and its minibatch
        iterator slices the batch in order without shuffling the first pass, so the K minibatches of one call
        would each hold a few agent-days' transitions instead of B independent draws."""
        batch = super()._make_batch_if_necessary(training_data=training_data)
        if self.config.learner_config_dict.get(BATCHED_UPDATES, False):
            for module_batch in batch.policy_batches.values():
                module_batch.shuffle()
        return batch

    def apply_gradients(self, gradients_dict: ParamDict) -> None:
        grads = [g for g in gradients_dict.values() if g is not None]
        plain = self._lr_scheduler_classes is None and self._grad_scalers is None
        if not (plain and all_finite(grads)):
            return super().apply_gradients(gradients_dict)  # RLlib's path: schedulers, scalers, nan/inf handling
        for pid, grad in gradients_dict.items():
            self._params[pid].grad = grad
        for module_id, optimizer_names in self._module_optimizers.items():
            for optimizer_name in optimizer_names:
                self.get_optimizer(module_id, optimizer_name).step()


def fused_backward(learner: Any, module_ids: Iterable[ModuleID], skip: set[tuple[ModuleID, str]]) -> ParamDict:
    """One backward pass of the sum of each module's per-optimizer losses (``learner._temp_losses``, keyed
    ``(module_id, "<optimizer>_loss")``); the optimizers named in ``skip`` get no gradient (None)."""
    grads: ParamDict = {}
    losses: list[TensorType] = []
    for module_id in module_ids:
        for optim_name, optim in learner.get_optimizers_for_module(module_id):
            optim.zero_grad(set_to_none=True)
            loss = learner._temp_losses.pop((module_id, f"{optim_name}_loss"))
            if (module_id, optim_name) in skip:
                continue
            losses.append(loss)
            grads.update(learner.filter_param_dict_for_optimizer(learner._params, optim))
    if losses:
        torch.stack(losses).sum().backward()
    return {pid: p.grad for pid, p in grads.items()}


class LeanSACTorchLearner(LeanStepMixin, SACTorchLearner):
    """RLlib's SAC learner (losses unchanged) with the lean steps of this module; SAC's and SDRL's learner."""

    def compute_gradients(self, loss_per_module: dict[ModuleID, TensorType], **kwargs: Any) -> ParamDict:
        grads = fused_backward(self, set(loss_per_module) - {ALL_MODULES}, skip=set())
        assert not self._temp_losses
        return grads

    def before_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        super().before_gradient_based_update(timesteps=timesteps)
        self._aolo_timestep = timesteps.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0)

    def _update(self, batch: dict[str, Any], **kwargs: Any) -> tuple[Any, Any, Any]:
        """One gradient step on one minibatch, then the target update that belongs to it (RLlib does the target
        update once per ``update()`` call, which with several minibatches per call would skip all but one)."""
        out = super()._update(batch, **kwargs)
        self._update_targets(self._aolo_timestep)
        return out

    def after_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        """The base learners' bookkeeping only: the targets moved after each gradient step (``_update``)."""
        Learner.after_gradient_based_update(self, timesteps=timesteps)

    def _update_targets(self, timestep: int) -> None:
        """DQNLearner's target update (same schedule, same metrics) as one fused Polyak step per module."""
        for module_id, module in self.module._rl_modules.items():
            config = self.config.get_config_for_module(module_id)
            due = timestep - self.last_update_ts_by_mid[module_id] >= config.target_network_update_freq
            if due and isinstance(module.unwrapped(), TargetNetworkAPI):
                polyak_update(module.unwrapped().get_target_network_pairs(), config.tau)
                self.metrics.log_value((module_id, NUM_TARGET_UPDATES), 1, reduce="lifetime_sum")
                self.last_update_ts_by_mid[module_id] = timestep
                self.metrics.log_value((module_id, LAST_TARGET_UPDATE_TS), timestep, reduce="max")
