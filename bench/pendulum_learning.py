"""Learning benchmark: aolo's TD3 versus RLlib's SAC on gymnasium Pendulum-v1.

Both algorithms share every setting that they have in common (networks, learning
rates, batch size, replay buffer, replay ratio, learning start, tau, gamma); TD3 acts
uniformly at random until learning starts. Every ``--eval-every`` env steps each run
evaluates its deterministic policy on ``--eval-episodes`` episodes. The script prints
progress lines, then a Markdown table of the mean evaluation return versus env steps
(mean over seeds, per-seed values in brackets), and optionally writes the raw curves
as JSON.

Runs are independent processes (``--jobs`` at a time), each with its own local Ray
instance, one CPU and one torch thread.

Example (the command behind bench/RESULTS_pendulum.md)::

    python3 bench/pendulum_learning.py --seeds 0 1 --jobs 2 --json /tmp/pendulum.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET_RETURN = -400.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", choices=["td3", "sac"], default=["td3", "sac"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--env-steps", type=int, default=30_000, help="env steps per run")
    parser.add_argument("--eval-every", type=int, default=2_000, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument(
        "--learning-starts",
        type=int,
        default=5_000,
        help="env steps before learning starts (TD3: uniform-random warm-up length)",
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--replay-ratio", type=float, default=0.5, help="gradient updates per env step")
    parser.add_argument("--rollout-fragment-length", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-3, help="actor and critic learning rate")
    parser.add_argument("--hiddens", nargs="+", type=int, default=[256, 256], help="fcnet_hiddens (relu)")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (one process and CPU each)")
    parser.add_argument("--json", type=Path, help="write the raw curves here")
    return parser.parse_args(argv)


def build_config(algo: str, seed: int, args: argparse.Namespace) -> Any:
    """The AlgorithmConfig of one run; everything but the algorithm is shared."""
    from ray.rllib.algorithms.sac import SACConfig

    from aolo.policies.td3 import TD3Config

    config = TD3Config() if algo == "td3" else SACConfig()
    if algo == "sac":
        config.training(alpha_lr=args.lr)
    return (
        config.environment("Pendulum-v1")
        .env_runners(num_env_runners=0, rollout_fragment_length=args.rollout_fragment_length)
        .training(
            actor_lr=args.lr,
            critic_lr=args.lr,
            train_batch_size_per_learner=args.batch_size,
            # Replayed samples per sampled env step (see DQN's calculate_rr_weights).
            training_intensity=args.replay_ratio * args.batch_size,
            num_steps_sampled_before_learning_starts=args.learning_starts,
            replay_buffer_config={"type": "EpisodeReplayBuffer", "capacity": 100_000},
        )
        .rl_module(model_config={"fcnet_hiddens": args.hiddens, "fcnet_activation": "relu"})
        .evaluation(
            evaluation_interval=1,
            evaluation_duration=args.eval_episodes,
            evaluation_duration_unit="episodes",
            evaluation_num_env_runners=0,
            evaluation_config={"explore": False},
        )
        # One train() iteration = `eval_every` env steps, followed by an evaluation.
        .reporting(min_sample_timesteps_per_iteration=args.eval_every, min_time_s_per_iteration=0)
        .debugging(seed=seed)
    )


def run_one(algo: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Trains one algorithm on one seed; returns its evaluation curve."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    sys.path.insert(0, str(REPO_ROOT))
    import ray
    import torch

    torch.set_num_threads(1)
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    algo_obj = build_config(algo, seed, args).build_algo()
    start = time.time()
    curve: list[dict[str, float]] = []
    try:
        env_steps = 0
        while env_steps < args.env_steps:
            result = algo_obj.train()
            env_steps = int(result["num_env_steps_sampled_lifetime"])
            eval_return = float(result["evaluation"]["env_runners"]["episode_return_mean"])
            curve.append({"env_steps": env_steps, "eval_return": eval_return, "wall_s": time.time() - start})
            print(
                f"[{algo} seed {seed}] env_steps={env_steps:6d} eval_return={eval_return:8.1f} "
                f"elapsed={time.time() - start:6.0f}s",
                flush=True,
            )
    finally:
        algo_obj.stop()
        ray.shutdown()
    return {"algo": algo, "seed": seed, "curve": curve, "wall_s": time.time() - start}


def _cell(values: list[float]) -> str:
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.0f}"
    return f"{mean:.0f} ({', '.join(f'{v:.0f}' for v in values)})"


def markdown_table(runs: list[dict[str, Any]], algos: list[str]) -> str:
    """Mean evaluation return per algorithm (per-seed values in brackets) vs env steps."""
    by_algo = {algo: [r for r in runs if r["algo"] == algo] for algo in algos}
    steps = sorted({point["env_steps"] for r in runs for point in r["curve"]})
    lines = [
        "| env steps | " + " | ".join(a.upper() for a in algos) + " |",
        "|---:|" + "---:|" * len(algos),
    ]
    for step in steps:
        cells = []
        for algo in algos:
            values = [p["eval_return"] for r in by_algo[algo] for p in r["curve"] if p["env_steps"] == step]
            cells.append(_cell(values) if values else "")
        lines.append(f"| {step} | " + " | ".join(cells) + " |")

    def first_hit(run: dict[str, Any]) -> str:
        hits = [p["env_steps"] for p in run["curve"] if p["eval_return"] >= TARGET_RETURN]
        return str(hits[0]) if hits else "never"

    lines.append(
        f"| first eval >= {TARGET_RETURN:.0f} | "
        + " | ".join(", ".join(first_hit(r) for r in by_algo[a]) for a in algos)
        + " |"
    )
    lines.append(
        "| wall time (min) | "
        + " | ".join(", ".join(f"{r['wall_s'] / 60:.1f}" for r in by_algo[a]) for a in algos)
        + " |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tasks = [(algo, seed) for seed in args.seeds for algo in args.algos]
    print(f"{len(tasks)} runs, {args.jobs} at a time: {tasks}", flush=True)
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_one, algo, seed, args) for algo, seed in tasks]
        runs = [future.result() for future in futures]
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}, indent=1))
    print(markdown_table(runs, args.algos))


if __name__ == "__main__":
    main()
