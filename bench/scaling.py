"""Sampling throughput vs EnvRunners and envs per runner, as ratios measured side by side in one run.

For every (num_env_runners, num_envs_per_env_runner) in {0 (driver), 1, 2} × {1, 2, 4, 8} an SAC algorithm
on the quick scenario's cells (one module shared by all users, cells assigned per env copy) samples
``--fragments`` rollout fragments through its EnvRunnerGroup, without training, and reports env-steps/s and
agent-steps/s. Rounds are interleaved so load on the shared machine hits every setting alike; the table
gives each setting's median relative to 1 runner × 1 env.

    python bench/scaling.py --repeats 3
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(runners: int, envs: int, preset: str):
    from aolo.envs.config import ScenarioConfig
    from aolo.platform.algorithms import build_algorithm_config
    from aolo.platform.presets import load_experiment

    exp = load_experiment(preset)
    # env copies take cells round-robin: repeat the preset's cells so every copy has a distinct slot
    cells = [c for c in exp.scenario.cells]
    scenario = ScenarioConfig.from_dict(
        {
            **exp.scenario.to_dict(),
            "cells": [
                {**cells[i % len(cells)].__dict__, "name": f"{cells[i % len(cells)].name}#{i}"} for i in range(envs)
            ],
        }
    )
    config = build_algorithm_config("sac", scenario, seed=0, settings=exp.training, num_env_runners=runners)
    config = config.env_runners(num_envs_per_env_runner=envs, rollout_fragment_length=96)
    return config.build_algo(), scenario.cells[0].num_users


def sample_rate(algo, fragments: int) -> float:
    group = algo.env_runner_group
    steps, t0 = 0, time.perf_counter()
    for _ in range(fragments):
        if group.num_remote_env_runners() > 0:
            batches = group.foreach_env_runner(lambda r: r.sample(), local_env_runner=False)
        else:
            batches = [group.local_env_runner.sample()]
        steps += sum(ep.env_steps() for episodes in batches for ep in episodes)
    return steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--fragments", type=int, default=3, help="rollout fragments per measurement (default 3)")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--runners", default="0,1,2", help="EnvRunner counts (0 = sample in the driver)")
    parser.add_argument("--envs", default="1,2,4,8", help="envs per EnvRunner")
    args = parser.parse_args()

    import ray
    import torch

    torch.set_num_threads(1)
    # Every setting's EnvRunners stay alive so rounds can interleave; only one setting samples at a time,
    # so logical CPU slots are over-provisioned (the physical cores are what the measurement shares).
    ray.init(num_cpus=64, include_dashboard=False, log_to_driver=False)
    settings = list(
        itertools.product([int(x) for x in args.runners.split(",")], [int(x) for x in args.envs.split(",")])
    )
    algos = {}
    for runners, envs in settings:
        algos[(runners, envs)] = build(runners, envs, args.preset)
        sample_rate(algos[(runners, envs)][0], 1)  # warm-up: env creation, first episode draw
    rates = {s: [] for s in settings}
    try:
        for r in range(args.repeats):
            for s in settings:
                rates[s].append(sample_rate(algos[s][0], args.fragments))
            print(f"round {r + 1}/{args.repeats} done", flush=True)
    finally:
        for algo, _ in algos.values():
            algo.stop()
    base = statistics.median(rates[(1, 1)]) if (1, 1) in rates else statistics.median(rates[settings[0]])
    print(f"\n{os.cpu_count()} CPUs; median over {args.repeats} interleaved rounds")
    print("| EnvRunners | envs/runner | env-steps/s | agent-steps/s | vs 1 runner × 1 env |\n|---|---|---|---|---|")
    for s in settings:
        med = statistics.median(rates[s])
        users = algos[s][1]
        label = "0 (driver)" if s[0] == 0 else str(s[0])
        print(f"| {label} | {s[1]} | {med:,.0f} | {med * users:,.0f} | {med / base:.2f}x |")


if __name__ == "__main__":
    main()
