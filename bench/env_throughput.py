"""Environment throughput: CellEnv (U = 8) and the raw vectorised physics vs mobile-env, side by side.

Measures, interleaved in one run (A B C A B C ...) so machine noise hits all of them alike:
  * CellEnv agent-steps/s (8 users, random valid actions, full info dicts, episode resets included);
  * SiteEnv agent-steps/s (one shared site, 2 cells x 8 user-group agents, as ``sites_quick``; same protocol);
  * raw physics user-epochs/s: ``physics.request_outcomes`` on 1e6 requests at once, one thread;
  * mobile-env agent-steps/s of its default multi-agent scenarios (``mobile-small-ma-v0``,
    ``mobile-medium-ma-v0``; random actions), run in a separate virtual environment so mobile-env never
    becomes a project dependency (created on first use under ``bench/_mobile_env_venv``).

Targets (issue #2): CellEnv ≥ 20× mobile-env's agent-steps/s; physics ≥ 1,000,000 user-epochs/s on one core.
Issue 18: a site env ≥ 50,000 CellEnv-equivalent agent-steps/s.

    python bench/env_throughput.py --repeats 5 --seconds 3
    python bench/env_throughput.py --skip-mobile-env     # CellEnv, SiteEnv and physics only
    python bench/env_throughput.py --against a63652c     # this tree vs a commit's envs, interleaved rounds

``--against REV`` extracts ``aolo/`` and ``bench/`` of commit ``REV`` (``git archive``) into a temporary folder
and times both trees' envs and physics (2e5 requests) in short alternating bursts of ``--seconds`` each, one
long-lived process per tree running that tree's own copy of this file's measurement functions, so a shared
machine's load hits both alike; a tree without a SiteEnv reports none. Use many short rounds on a busy machine
(``--repeats 30 --seconds 0.3``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # "on one core"

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MOBILE_ENV_SNIPPET = r"""
import json, sys, time, gymnasium, mobile_env
name, seconds = sys.argv[1], float(sys.argv[2])
env = gymnasium.make(name)
env.reset(seed=0)
agents = len(env.unwrapped.users)
rng_space = env.action_space
rng_space.seed(0)
steps, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < seconds:
    _, _, term, trunc, _ = env.step(rng_space.sample())
    steps += 1
    if term or trunc:
        env.reset()
print(json.dumps({"agent_steps_per_s": steps * agents / (time.perf_counter() - t0), "agents": agents}))
"""


#: A worker timing one tree's envs and physics with that tree's own bench functions (run with cwd = the tree):
#: each stdin line "<measurement> <seconds>" is answered by one JSON line (null: the tree lacks that env).
TREE_WORKER = r"""
import json, sys
sys.path.insert(0, "bench")
import env_throughput as bench
for line in sys.stdin:
    what, seconds = line.split()
    if what == "physics":
        value = bench.physics_user_epochs_per_s(n=200_000, repeats=3)
    else:
        measure = getattr(bench, f"{what}_agent_steps_per_s", None)
        value = None if measure is None else measure(float(seconds))
    print(json.dumps(value), flush=True)
"""


def compare_with_commit(rev: str, repeats: int, seconds: float) -> None:
    """This tree vs commit ``rev``: one long-lived worker process per tree, alternating short bursts (this tree
    first) so both see the same machine load; prints each tree's medians and the median and min of the per-burst
    ratios."""
    measurements = {"cell_env": "agent-steps/s", "site_env": "agent-steps/s", "physics": "user-epochs/s"}
    with tempfile.TemporaryDirectory(prefix="aolo-bench-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "aolo", "bench"], check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        trees = {"this tree": ROOT, rev: Path(tmp)}
        workers = {
            name: subprocess.Popen(
                [sys.executable, "-W", "ignore", "-c", TREE_WORKER],
                cwd=tree,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"},
            )
            for name, tree in trees.items()
        }
        rows: dict[str, dict[str, list]] = {name: {m: [] for m in measurements} for name in trees}
        try:
            for r in range(repeats):
                for m in measurements:
                    for name, worker in workers.items():
                        worker.stdin.write(f"{m} {seconds}\n")
                        worker.stdin.flush()
                        rows[name][m].append(json.loads(worker.stdout.readline()))
                print(
                    f"round {r + 1}/{repeats}: cell_env " + ", ".join(f"{rows[n]['cell_env'][-1]:,.0f}" for n in trees)
                )
        finally:
            for worker in workers.values():
                worker.stdin.close()
                worker.wait()
    print(f"\n| measurement | this tree | {rev} | this tree / {rev} (median, min over bursts) |\n|---|---|---|---|")
    for m, unit in measurements.items():
        new, old = rows["this tree"][m], rows[rev][m]
        if None in old:
            print(f"| {m} ({unit}) | {statistics.median(new):,.0f} | — | — |")
            continue
        ratios = [n / o for n, o in zip(new, old, strict=True)]
        print(
            f"| {m} ({unit}) | {statistics.median(new):,.0f} | {statistics.median(old):,.0f} | "
            f"{statistics.median(ratios):.2f}x, {min(ratios):.2f}x |"
        )


def mobile_env_python(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with mobile-env 2.1.0 (benchmark-only dependency) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "mobile-env==2.1.0"], check=True)
    return python


def cell_env_agent_steps_per_s(seconds: float) -> float:
    from aolo.envs.cell_env import CellEnv

    env = CellEnv({"scenario": {"cells": [{"name": "bench", "num_users": 8}]}})
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        acts = rng.uniform(-1.0, 1.0, (8, 2)).astype(np.float32)
        _, _, _, trunc, _ = env.step({a: acts[i] for i, a in enumerate(env.agents)})
        steps += 1
        if trunc["__all__"]:
            env.reset()
    return steps * 8 / (time.perf_counter() - t0)


def site_env_agent_steps_per_s(seconds: float) -> float:
    from aolo.envs.site_env import SiteEnv
    from aolo.platform.presets import load_experiment

    env = SiteEnv({"scenario": load_experiment("sites_quick").scenario})
    n = len(env.agents)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        acts = rng.uniform(-1.0, 1.0, (n, 2)).astype(np.float32)
        _, _, _, trunc, _ = env.step({a: acts[i] for i, a in enumerate(env.agents)})
        steps += 1
        if trunc["__all__"]:
            env.reset()
    return steps * n / (time.perf_counter() - t0)


def physics_user_epochs_per_s(n: int = 1_000_000, repeats: int = 3) -> float:
    from aolo.envs import channel
    from aolo.envs.config import RadioConfig, ServiceConfig
    from aolo.envs.physics import InferenceCoefficients, request_outcomes
    from aolo.envs.serving import get_serving_profile

    rng = np.random.default_rng(0)
    service, radio = ServiceConfig(), RadioConfig()
    inference = InferenceCoefficients.build(get_serving_profile("llama-3.1-8b-h100"), 64, service)
    args = dict(
        kappa=rng.integers(10, 400, n).astype(np.float64),
        prompt_tokens=rng.integers(50, 3000, n).astype(np.float64),
        ref_tokens=rng.integers(10, 400, n).astype(np.float64),
        power_w=rng.uniform(0.01, 5.0, n),
        channel_gain=10 ** (-rng.uniform(90, 130, n) / 10) * rng.exponential(1.0, n),
        noise_w=float(channel.noise_power_w(2.5e6, 7.0)),
        interference_w=0.0,
        ci_datacenter_g_per_kwh=rng.uniform(5, 800, n),
        ci_cell_g_per_kwh=rng.uniform(5, 800, n),
        users_in_cell=8,
        bandwidth_per_user_hz=2.5e6,
        inference=inference,
        radio=radio,
        service=service,
    )
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = request_outcomes(**args)
        _ = out.carbon_total_g
        best = max(best, n / (time.perf_counter() - t0))
    return best


def mobile_env_agent_steps_per_s(python: Path, name: str, seconds: float) -> float:
    out = subprocess.run(
        [str(python), "-W", "ignore", "-c", MOBILE_ENV_SNIPPET, name, str(seconds)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["agent_steps_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per env measurement (default 3)")
    parser.add_argument(
        "--mobile-env-venv",
        type=Path,
        default=ROOT / "bench" / "_mobile_env_venv",
        help="virtualenv holding mobile-env (created if missing)",
    )
    parser.add_argument("--skip-mobile-env", action="store_true", help="measure aolo's envs and physics only")
    parser.add_argument("--against", metavar="REV", help="time this tree's envs against commit REV's instead")
    args = parser.parse_args()
    if args.against:
        compare_with_commit(args.against, args.repeats, args.seconds)
        return
    mobile = () if args.skip_mobile_env else ("mobile-small-ma-v0", "mobile-medium-ma-v0")
    python = None if args.skip_mobile_env else mobile_env_python(args.mobile_env_venv)
    rows: dict[str, list[float]] = {k: [] for k in ("cell_env", "site_env", "physics", *mobile)}
    for r in range(args.repeats):
        rows["cell_env"].append(cell_env_agent_steps_per_s(args.seconds))
        rows["site_env"].append(site_env_agent_steps_per_s(args.seconds))
        rows["physics"].append(physics_user_epochs_per_s())
        for name in mobile:
            rows[name].append(mobile_env_agent_steps_per_s(python, name, args.seconds))
        print(f"round {r + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rows.items()), flush=True)
    med = {k: statistics.median(v) for k, v in rows.items()}
    site_ratios = [s / c for s, c in zip(rows["site_env"], rows["cell_env"], strict=True)]
    print("\n| measurement | median | unit |\n|---|---|---|")
    print(f"| CellEnv (U = 8) | {med['cell_env']:,.0f} | agent-steps/s |")
    print(f"| SiteEnv (sites_quick: 2 cells x 8 agents) | {med['site_env']:,.0f} | agent-steps/s |")
    print(f"| raw physics (1e6 requests, 1 thread) | {med['physics']:,.0f} | user-epochs/s |")
    print(
        f"\nSiteEnv / CellEnv agent-steps/s: median ratio {statistics.median(site_ratios):.2f} "
        f"(min {min(site_ratios):.2f}); SiteEnv {med['site_env']:,.0f} agent-steps/s — target >= 50,000"
    )
    print(f"physics: {med['physics']:,.0f} user-epochs/s — target >= 1,000,000")
    if not mobile:
        return
    ratios_small = [c / m for c, m in zip(rows["cell_env"], rows["mobile-small-ma-v0"], strict=False)]
    ratios_medium = [c / m for c, m in zip(rows["cell_env"], rows["mobile-medium-ma-v0"], strict=False)]
    print(f"| mobile-env mobile-small-ma-v0 (5 UEs, 3 BSs) | {med['mobile-small-ma-v0']:,.0f} | agent-steps/s |")
    print(f"| mobile-env mobile-medium-ma-v0 (15 UEs, 7 BSs) | {med['mobile-medium-ma-v0']:,.0f} | agent-steps/s |")
    print(
        f"\nCellEnv / mobile-small: median ratio {statistics.median(ratios_small):.1f}x "
        f"(min {min(ratios_small):.1f}x) — target >= 20x"
    )
    print(
        f"CellEnv / mobile-medium: median ratio {statistics.median(ratios_medium):.1f}x "
        f"(min {min(ratios_medium):.1f}x) — target >= 20x"
    )


if __name__ == "__main__":
    main()
