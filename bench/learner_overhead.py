"""Where a SAC/SDRL training iteration spends its time, and the RLlib update against plain PyTorch.

Two measurements, each side by side in one process (the only timings that mean something on a shared machine):

1. **Update: RLlib vs plain PyTorch.** One gradient update (twin critics, actor, temperature, Polyak targets) on
   the same networks and the same batch: through aolo's RLlib learner (``Learner.update``: connector-free batch,
   forward, losses, gradients, optimizer steps, target update, metrics) and as a plain PyTorch function (the same
   losses written out, one Adam per network, ``torch._foreach_lerp_`` targets). Rounds interleave the two; the
   medians and their ratio are printed.
2. **Iteration breakdown.** Full ``algo.train()`` iterations of a preset (default ``quick``), the time split into
   env sampling, replay-buffer sampling, learner connector pipeline, forward + loss, backward, optimizer step,
   target update, metrics reduce, constraint measurement (RLlib evaluation of the deterministic policy) and the
   rest, by wrapping those calls on the built algorithm's instances.

Each measurement runs two variants, interleaved round by round:

* ``rllib`` — what aolo ran before issue 22: RLlib's SAC learner, RLlib's catalog critic (the 256-wide fusion
  stack), RLlib's episode replay buffer and one learner call per update and, for SDRL, snntorch ``Synaptic``
  neurons;
* ``aolo`` — the lean learner (:mod:`aolo.policies.learners`), PopSAN's plain-op neurons and the critic
  ``--critic`` names (default: the MLP critics ``training.hidden`` sizes, aolo's default), still with the
  episode buffer and one learner call per update;
* ``batched`` — ``aolo`` with ``training.batched_updates``: the iteration's updates in one replay sample and one
  learner call (:mod:`aolo.policies.replay_updates`); in the update benchmark, ``--updates`` updates in one
  ``Learner.update`` call;
* ``flat`` and ``flat-batched`` (iteration breakdown only) — ``aolo`` and ``batched`` with
  ``training.replay_buffer: flat``: transitions replayed from flat arrays straight into the train batch, no
  learner connector pipeline (:mod:`aolo.policies.flat_replay`). ``flat-batched`` with the MLP critic is aolo's
  default. Choose the breakdown's variants with ``--iteration-variants``; the first is the one the others'
  speed-ups are relative to.

Usage (on the shared 2-core machine wrap it in the heavy-job lock)::

    flock /tmp/aolo-heavy.lock python bench/learner_overhead.py --preset quick --algos sac sdrl --rounds 3
    flock /tmp/aolo-heavy.lock python bench/learner_overhead.py --skip-update --critic catalog \
        --iteration-variants aolo batched flat flat-batched   # the replay buffers, on the default critic
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from ray.rllib.algorithms.sac.torch.sac_torch_learner import SACTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchCompileWhatToCompile
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

from aolo.envs.cell_env import OBS_FEATURES
from aolo.platform.algorithms import MODULE_ID, TrainingSettings, build_algorithm_config
from aolo.platform.presets import load_experiment
from aolo.platform.train import init_ray
from aolo.policies.learners import polyak_update

VARIANTS = ("rllib", "aolo", "batched")
#: the iteration breakdown also runs aolo with ``training.replay_buffer: flat`` (without and with batched updates)
ITERATION_VARIANTS = (*VARIANTS, "flat", "flat-batched")
#: the TrainingSettings each variant sets (the ``aolo`` family's critic comes from ``--critic``)
VARIANT_SETTINGS = {
    "rllib": {"replay_buffer": "episode", "batched_updates": False},
    "aolo": {"replay_buffer": "episode", "batched_updates": False},
    "batched": {"replay_buffer": "episode", "batched_updates": True},
    "flat": {"replay_buffer": "flat", "batched_updates": False},
    "flat-batched": {"replay_buffer": "flat", "batched_updates": True},
}
PARTS = (
    "env sampling",
    "replay-buffer sample",
    "learner connector",
    "forward + loss",
    "backward",
    "optimizer step",
    "target update",
    "metrics reduce",
    "constraint measurement",
    "other",
)


CRITIC = {"critic": "mlp"}  #: the critic of every variant but ``rllib`` (``--critic``)


def variant_config(algo: str, experiment, variant: str):
    """The AlgorithmConfig of ``algo`` on the preset, as aolo builds it (``aolo``, ``batched``) or as before
    issue 22 (``rllib``)."""
    settings = TrainingSettings.from_dict(
        {**experiment.training.to_dict(), **CRITIC, **VARIANT_SETTINGS.get(variant, VARIANT_SETTINGS["aolo"])}
    )
    config = build_algorithm_config(
        algo, experiment.scenario, seed=0, settings=settings, constraints=experiment.constraints
    )
    if variant == "compiled":  # RLlib's torch.compile (inductor) of the module's forward_train in the learner
        config = config.framework(torch_compile_learner=True)
    if variant == "compiled-update":  # the whole update (forward, losses, backward, optimizer steps) compiled
        config = config.framework(
            torch_compile_learner=True, torch_compile_learner_what_to_compile=TorchCompileWhatToCompile.COMPLETE_UPDATE
        )
    if variant == "rllib":
        config = config.learners(learner_class=SACTorchLearner)
        multi_spec = copy.deepcopy(config._rl_module_spec)
        spec = multi_spec.rl_module_specs[MODULE_ID]
        spec.model_config = {**spec.model_config, "critic": "catalog"}
        config = config.rl_module(rl_module_spec=multi_spec)
    return config


def use_snntorch_neurons(module) -> None:
    """Swap an SDRL module's plain-op neurons for snntorch's ``Synaptic`` (the pre-issue-22 actor)."""
    from aolo.policies.popsan import SteppedNeurons, snntorch_synaptic

    popsan = getattr(getattr(module, "pi", None), "popsan", None)
    if popsan is None:
        return
    popsan.lif = torch.nn.ModuleList(SteppedNeurons(snntorch_synaptic()) for _ in popsan.fc)


# --- 1. one update: RLlib vs plain PyTorch ------------------------------------------------------------------


def synthetic_batch(batch_size: int, act_dim: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    obs_dim = len(OBS_FEATURES)
    return {
        Columns.OBS: rng.normal(size=(batch_size, obs_dim)).astype(np.float32),
        Columns.NEXT_OBS: rng.normal(size=(batch_size, obs_dim)).astype(np.float32),
        Columns.ACTIONS: rng.uniform(-1, 1, (batch_size, act_dim)).astype(np.float32),
        Columns.REWARDS: rng.normal(size=batch_size).astype(np.float32),
        Columns.TERMINATEDS: rng.random(batch_size) < 1 / 96,
        "n_step": np.ones(batch_size, dtype=np.int64),
        "weights": np.ones(batch_size, dtype=np.float32),
    }


class PlainSAC:
    """The SAC update of the learner's networks written in plain PyTorch (copies of its pi and Q networks)."""

    def __init__(self, module, gamma: float, tau: float, actor_lr: float, critic_lr: float, alpha: float) -> None:
        self.pi_encoder, self.pi = copy.deepcopy(module.pi_encoder), copy.deepcopy(module.pi)
        self.q = [copy.deepcopy(n) for n in (module.qf_encoder, module.qf, module.qf_twin_encoder, module.qf_twin)]
        self.q_target = [copy.deepcopy(n) for n in self.q]
        self.log_alpha = torch.tensor(float(np.log(alpha)), requires_grad=True)
        self.target_entropy = -float(np.prod(module.action_space.shape))
        self.gamma, self.tau = gamma, tau
        q_params = [p for net in self.q for p in net.parameters()]
        pi_params = [*self.pi_encoder.parameters(), *self.pi.parameters()]
        self.optimizers = [
            torch.optim.Adam(q_params, lr=critic_lr),
            torch.optim.Adam(pi_params, lr=actor_lr),
            torch.optim.Adam([self.log_alpha], lr=actor_lr),
        ]
        self.q_params = q_params

    def policy(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.pi(self.pi_encoder({Columns.OBS: obs})["encoder_out"]).chunk(2, dim=-1)
        std = log_std.clamp(-5.0, 2.0).exp()
        pre = mean + std * torch.randn_like(mean)
        action = torch.tanh(pre)
        logp = (-0.5 * ((pre - mean) / std) ** 2 - std.log() - 0.5 * np.log(2 * np.pi)).sum(-1)
        logp = logp - torch.log(1 - action.pow(2) + 1e-6).sum(-1)
        return action, logp

    @staticmethod
    def q_value(nets, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        batch = {Columns.OBS: obs, Columns.ACTIONS: action}
        q1 = nets[1](nets[0](batch)["encoder_out"]).squeeze(-1)
        q2 = nets[3](nets[2](batch)["encoder_out"]).squeeze(-1)
        return torch.min(q1, q2), q1, q2

    def update(self, batch: dict[str, torch.Tensor]) -> None:
        obs, next_obs, actions = batch[Columns.OBS], batch[Columns.NEXT_OBS], batch[Columns.ACTIONS]
        alpha = self.log_alpha.exp()
        with torch.no_grad():
            next_action, next_logp = self.policy(next_obs)
            next_q = self.q_value(self.q_target, next_obs, next_action)[0] - alpha * next_logp
            not_done = 1.0 - batch[Columns.TERMINATEDS].float()
            target = batch[Columns.REWARDS] + self.gamma * not_done * next_q
        _, q1, q2 = self.q_value(self.q, obs, actions)
        critic_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        action, logp = self.policy(obs)
        for p in self.q_params:
            p.requires_grad_(False)
        q_pi = self.q_value(self.q, obs, action)[0]
        for p in self.q_params:
            p.requires_grad_(True)
        actor_loss = (alpha.detach() * logp - q_pi).mean()
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)
        (critic_loss + actor_loss + alpha_loss).backward()
        for optimizer in self.optimizers:
            optimizer.step()
        polyak_update(zip(self.q, self.q_target, strict=True), self.tau)


def bench_update(
    algo: str, experiment, rounds: int, updates: int, variants: tuple[str, ...] = VARIANTS
) -> dict[str, dict[str, float]]:
    """Median seconds per update: {variant: {"rllib": s, "plain": s}}. ``batched`` takes a round's ``updates``
    updates in one ``Learner.update`` call (as ``training.batched_updates`` does), the others one call each."""
    settings = experiment.training
    spaces = {
        MODULE_ID: (
            gym.spaces.Box(-np.inf, np.inf, (len(OBS_FEATURES),), np.float32),
            gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
        )
    }
    size = settings.train_batch_size
    data = synthetic_batch(size, act_dim=2)
    tensors = {k: torch.as_tensor(v) for k, v in data.items()}
    batch = MultiAgentBatch({MODULE_ID: SampleBatch(data)}, env_steps=size)
    batches = MultiAgentBatch({MODULE_ID: SampleBatch(synthetic_batch(updates * size, act_dim=2))}, updates * size)
    timesteps = {NUM_ENV_STEPS_SAMPLED_LIFETIME: 10**6}
    # per variant: (RLlib call, plain PyTorch call, calls per round); a round is `updates` updates either way
    runs: dict[str, tuple[Callable[[], Any], Callable[[], Any], int]] = {}
    for variant in variants:
        config = variant_config(algo, experiment, variant)
        learner = config.build_learner(spaces=spaces)
        module = learner.module[MODULE_ID].unwrapped()
        if variant == "rllib":
            use_snntorch_neurons(module)
        plain = PlainSAC(module, settings.gamma, 0.005, settings.actor_lr, settings.critic_lr, settings.initial_alpha)
        if variant == "batched":
            runs[variant] = (
                lambda learner=learner: learner.update(
                    batch=batches,
                    timesteps=timesteps,
                    minibatch_size=size,
                    num_epochs=1,
                    num_total_minibatches=updates,
                    shuffle_batch_per_epoch=False,
                ),
                lambda plain=plain: [plain.update(tensors) for _ in range(updates)],
                1,
            )
        else:
            runs[variant] = (
                lambda learner=learner: learner.update(batch=batch, timesteps=timesteps),
                lambda plain=plain: plain.update(tensors),
                updates,
            )
    samples: dict[str, dict[str, list[float]]] = {v: {"rllib": [], "plain": []} for v in variants}
    for _ in range(rounds):
        for variant, (rllib_update, plain_update, calls) in runs.items():
            for kind, fn in (("rllib", rllib_update), ("plain", plain_update)):
                fn()  # warm
                start = time.perf_counter()
                for _ in range(calls):
                    fn()
                samples[variant][kind].append((time.perf_counter() - start) / updates)
    return {v: {k: statistics.median(s) for k, s in kinds.items()} for v, kinds in samples.items()}


# --- 2. iteration breakdown ---------------------------------------------------------------------------------


class Stopwatch:
    """Accumulates the wall time spent in wrapped calls, per part."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, owner: Any, name: str, part: str) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - start

        setattr(owner, name, timed)


def instrument(algo) -> Stopwatch:
    watch = Stopwatch()
    watch.wrap(algo.env_runner, "sample", "env sampling")
    watch.wrap(algo.local_replay_buffer, "sample", "replay-buffer sample")
    watch.wrap(algo, "evaluate", "constraint measurement")
    learner = algo.learner_group._learner
    watch.wrap(learner, "_make_batch_if_necessary", "learner connector")  # runs the connector pipeline
    watch.wrap(learner.module, "forward_train", "forward + loss")
    watch.wrap(learner, "compute_losses", "forward + loss")
    watch.wrap(learner, "compute_gradients", "backward")
    watch.wrap(learner, "apply_gradients", "optimizer step")
    watch.wrap(learner, "after_gradient_based_update", "target update")
    watch.wrap(learner.metrics, "reduce", "metrics reduce")
    return watch


def bench_iterations(
    algo_name: str, experiment, rounds: int, variants: tuple[str, ...] = ITERATION_VARIANTS
) -> dict[str, dict[str, float]]:
    """Median seconds per part of a training iteration (after the warm-up iteration), per variant."""
    algos, watches = {}, {}
    for variant in variants:
        algo = variant_config(algo_name, experiment, variant).build_algo()
        if variant == "rllib":
            use_snntorch_neurons(algo.learner_group._learner.module[MODULE_ID].unwrapped())
            use_snntorch_neurons(algo.env_runner.module[MODULE_ID].unwrapped())
            if algo.eval_env_runner is not None:
                use_snntorch_neurons(algo.eval_env_runner.module[MODULE_ID].unwrapped())
        algo.train()  # warm-up iteration (fills the replay buffer, no updates)
        algos[variant], watches[variant] = algo, instrument(algo)
    samples: dict[str, dict[str, list[float]]] = {v: defaultdict(list) for v in variants}
    for _ in range(rounds):
        for variant, algo in algos.items():
            watch = watches[variant]
            watch.seconds.clear()
            start = time.perf_counter()
            algo.train()
            total = time.perf_counter() - start
            parts = dict(watch.seconds)
            # the learner's timed pieces run inside ``learner_group.update``; everything untimed is "other"
            parts["other"] = total - sum(parts.values())
            parts["total"] = total
            for part, seconds in parts.items():
                samples[variant][part].append(seconds)
    for algo in algos.values():
        algo.stop()
    return {v: {p: statistics.median(s) for p, s in parts.items()} for v, parts in samples.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--algos", nargs="+", default=["sac", "sdrl"], choices=["sac", "sdrl"])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians are reported)")
    parser.add_argument("--updates", type=int, default=20, help="updates per round in the update benchmark")
    parser.add_argument("--skip-iterations", action="store_true", help="only the update benchmark")
    parser.add_argument("--skip-update", action="store_true", help="only the iteration breakdown")
    parser.add_argument(
        "--iteration-variants",
        nargs="+",
        default=list(ITERATION_VARIANTS),
        choices=ITERATION_VARIANTS,
        help="the iteration breakdown's variants; speed-ups are relative to the first",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time aolo's update with torch_compile_learner: forward_train, then the whole update",
    )
    parser.add_argument("--critic", choices=["mlp", "catalog"], default="mlp", help="the aolo variants' critic")
    args = parser.parse_args(argv)
    CRITIC["critic"] = args.critic
    torch.set_num_threads(1)
    experiment = load_experiment(args.preset)
    print(
        f"preset {args.preset}: hidden {list(experiment.training.hidden)}, batch {experiment.training.train_batch_size}"
    )
    for algo in [] if args.skip_update else args.algos:
        variants = (*VARIANTS, "compiled", "compiled-update") if args.compile else VARIANTS
        update = bench_update(algo, experiment, args.rounds, args.updates, variants)
        print(f"\n{algo}: one update, medians of {args.rounds} interleaved rounds x {args.updates} updates")
        print(f"  {'variant':8s} {'RLlib ms':>9s} {'plain ms':>9s} {'RLlib/plain':>12s}")
        for variant, times in update.items():
            ratio = times["rllib"] / times["plain"]
            print(f"  {variant:8s} {1e3 * times['rllib']:9.2f} {1e3 * times['plain']:9.2f} {ratio:11.2f}x")
        for variant in variants[1:]:
            print(f"  RLlib update, rllib/{variant}: {update['rllib']['rllib'] / update[variant]['rllib']:.2f}x")
    if args.skip_iterations:
        return
    init_ray()
    variants = tuple(args.iteration_variants)
    base = variants[0]
    for algo in args.algos:
        parts = bench_iterations(algo, experiment, args.rounds, variants)
        print(f"\n{algo}: one training iteration, seconds (medians of {args.rounds} interleaved rounds)")
        ratios = [f"{base}/{v}" for v in variants[1:]]
        print(
            f"  {'part':24s} " + " ".join(f"{v:>12s}" for v in variants) + " " + " ".join(f"{r:>20s}" for r in ratios)
        )
        for part in (*PARTS, "total"):
            seconds = [parts[v].get(part, 0.0) for v in variants]
            speedups = [f"{seconds[0] / x:.2f}x" if x > 1e-4 else "-" for x in seconds[1:]]
            print(
                f"  {part:24s} "
                + " ".join(f"{x:12.3f}" for x in seconds)
                + " "
                + " ".join(f"{r:>20s}" for r in speedups)
            )


if __name__ == "__main__":
    main()
