"""PopSAN vs MLP actor: forward time, SAC training-iteration time, and energy per decision on the cell env.

All measurements are interleaved (A B A B ...) in one run and reported as ratios, since the machine is
shared and noisy:
  1. actor forward time at batch 1 and 256 (no grad) and forward+backward at 256;
  2. one RLlib training iteration of SDRL (SAC + PopSAN actor) vs MLP-SAC on the quick scenario, same
     settings (target: SDRL ≤ 3× SAC);
  3. actor energy per decision [nJ] from the spikes PopSAN really fires on cell-env observations (held-out
     days), vs the MAC count of the MLP actor (target: PopSAN ≤ 1/3 of the MLP).
     With ``--sdrl-checkpoint`` (e.g. from ``aolo compare``) the trained actor's spikes are counted.

    python bench/actor_cost.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from aolo.envs.cell_env import OBS_FEATURES  # noqa: E402

OBS_DIM, ACT_DIM = len(OBS_FEATURES), 2


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls (after one warm-up call)."""
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def forward_times(repeats: int) -> dict[str, tuple[float, float]]:
    from aolo.policies.sdrl import PopSANGaussianActor

    torch.manual_seed(0)
    popsan = PopSANGaussianActor(OBS_DIM, ACT_DIM)
    mlp = nn.Sequential(nn.Linear(OBS_DIM, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 2 * ACT_DIM))
    rows = {}
    for label, batch, grad in (
        ("batch 1, no grad", 1, False),
        ("batch 256, no grad", 256, False),
        ("batch 256, forward+backward", 256, True),
    ):
        obs = torch.randn(batch, OBS_DIM)
        times = {"popsan": [], "mlp": []}
        for _ in range(repeats):  # interleave
            for name, net in (("popsan", popsan), ("mlp", mlp)):
                if grad:
                    times[name].append(timed(lambda net=net, obs=obs: net(obs).sum().backward(), 5))
                else:
                    with torch.no_grad():
                        times[name].append(timed(lambda net=net, obs=obs: net(obs), 20))
        rows[label] = (statistics.median(times["popsan"]), statistics.median(times["mlp"]))
    return rows


def iteration_times(repeats: int, preset: str):
    import ray

    from aolo.platform.algorithms import build_algorithm_config
    from aolo.platform.presets import load_experiment

    exp = load_experiment(preset)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    algos = {
        name: build_algorithm_config(name, exp.scenario, seed=0, settings=exp.training).build_algo()
        for name in ("sdrl", "sac")
    }
    try:
        for algo in algos.values():  # fill the replay buffer until learning has started
            while algo.train()["env_runners"]["num_env_steps_sampled_lifetime"] <= exp.training.learning_starts:
                pass
        times = {name: [] for name in algos}
        for _ in range(repeats):
            for name, algo in algos.items():
                t0 = time.perf_counter()
                algo.train()
                times[name].append(time.perf_counter() - t0)
        modules = {name: algo.get_module("shared") for name, algo in algos.items()}
        return times, modules, exp
    finally:
        for algo in algos.values():
            algo.stop()


def energy_per_decision(modules, exp, sdrl_checkpoint: str | None):
    from aolo.platform.evaluation import ModulePolicy, evaluate, load_module

    if sdrl_checkpoint:
        modules = dict(modules, sdrl=load_module(sdrl_checkpoint))
    out = {}
    for name, module in modules.items():
        result = evaluate(ModulePolicy(module, name), exp.scenario, days_per_cell=1)
        out[name] = result.metrics
    return out


def energy_at_paper_size(exp):
    """Energy per decision of untrained 256x256 actors (PopSAN's published size) on held-out cell-env days."""
    import gymnasium as gym
    from ray.rllib.algorithms.sac.torch.default_sac_torch_rl_module import DefaultSACTorchRLModule
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from aolo.envs.cell_env import OBS_BOUND
    from aolo.policies.sdrl import SDRLTorchRLModule

    spaces = dict(
        observation_space=gym.spaces.Box(-OBS_BOUND, OBS_BOUND, (OBS_DIM,), np.float32),
        action_space=gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32),
    )
    config = {"fcnet_hiddens": [256, 256], "popsan_hidden": [256, 256], "twin_q": True}
    modules = {
        name: RLModuleSpec(module_class=cls, model_config=config, **spaces).build()
        for name, cls in (("sdrl", SDRLTorchRLModule), ("sac", DefaultSACTorchRLModule))
    }
    return energy_per_decision(modules, exp, None)


def print_energy(metrics) -> None:
    print("| actor | nJ/decision | MACs | synaptic ops |\n|---|---|---|---|")
    for name, m in metrics.items():
        print(
            f"| {name} | {m['actor_nj_per_decision']:.1f} | {m['actor_macs_per_decision']:.0f} | "
            f"{m['actor_synops_per_decision']:.0f} |"
        )
    ratio = metrics["sdrl"]["actor_nj_per_decision"] / metrics["sac"]["actor_nj_per_decision"]
    print(f"PopSAN / MLP energy per decision: {ratio:.3f} — target <= 0.333", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--preset", default="quick", help="scenario and training settings (default quick)")
    parser.add_argument("--sdrl-checkpoint", default=None, help="count spikes of this trained SDRL checkpoint")
    args = parser.parse_args()
    torch.set_num_threads(1)

    print("1) actor forward time (median seconds, interleaved)")
    print("| case | PopSAN | MLP 256x256 | PopSAN / MLP |\n|---|---|---|---|")
    for label, (p, m) in forward_times(args.repeats).items():
        print(f"| {label} | {p * 1e3:.3f} ms | {m * 1e3:.3f} ms | {p / m:.1f}x |", flush=True)

    print(f"\n2) training iteration on preset {args.preset!r} (after the replay warm-up), interleaved")
    times, modules, exp = iteration_times(args.repeats, args.preset)
    ratios = [s / m for s, m in zip(times["sdrl"], times["sac"], strict=False)]
    print("| algorithm | median s/iteration |\n|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} |")
    print(
        f"SDRL / SAC iteration time: median {statistics.median(ratios):.2f}x "
        f"(range {min(ratios):.2f}–{max(ratios):.2f}) — target <= 3x",
        flush=True,
    )

    print(
        f"\n3) actor energy per decision on held-out cell-env days, preset {args.preset!r} network size "
        f"{list(exp.training.hidden)}; spikes from "
        + ("the given checkpoint" if args.sdrl_checkpoint else "the actor trained above")
    )
    print_energy(energy_per_decision(modules, exp, args.sdrl_checkpoint))
    print("\n4) the same at PopSAN's published size, 256x256 (untrained actors)")
    print_energy(energy_at_paper_size(exp))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
