"""``aolo compare`` with concurrent Tune trials vs the sequential path (``--max-concurrent 1``), side by side.

Both runs use the same preset, algorithms and seeds, each in its own output folder and its own local Ray
(``--num-cpus``, default: this machine's cores), one after the other in one invocation. Reports wall time,
the speed-up, each training's own wall time (from its ``history.csv``), and the carbon per policy of both
runs (same seeds: equal within seed noise; trainings are not bit-reproducible across processes). The
per-training times are what the scaling projection in BENCHMARKS.md is computed from.

    python bench/compare_concurrency.py --preset quick           # the issue-11 target: >= 1.6x on 2 cores
    python bench/compare_concurrency.py --preset smoke           # a try-out in about a minute
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_compare(preset: str, out: Path, max_concurrent: int | None, num_cpus: int, extra: list[str]) -> float:
    """One ``aolo compare`` in a fresh process (and a fresh local Ray of ``num_cpus``); its wall time in s."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    code = (
        f"import ray, sys; ray.init(num_cpus={num_cpus}, include_dashboard=False, log_to_driver=False); "
        "from aolo.platform.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    args = [
        sys.executable,
        "-c",
        code,
        "compare",
        "--preset",
        preset,
        "--output",
        str(out),
        "--tracking-uri",
        "none",
        *(["--max-concurrent", str(max_concurrent)] if max_concurrent else []),
        *extra,
    ]
    start = time.monotonic()
    with (out.parent / f"{out.name}.log").open("w") as log:
        proc = subprocess.run(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.monotonic() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"compare failed ({proc.returncode}); see {out.parent / (out.name + '.log')}")
    return wall


def per_training(out: Path) -> dict[str, float]:
    """``<algorithm>_seed<seed>`` -> training seconds (the last ``time_s`` of its history.csv)."""
    times = {}
    for path in sorted(out.glob("*/*_seed*/history.csv")):
        with path.open() as f:
            rows = list(csv.DictReader(f))
        if rows:
            times[path.parent.name] = float(rows[-1]["time_s"])
    return times


def carbon(out: Path) -> dict[str, str]:
    table = next(out.glob("*/compare/table.csv"))
    with table.open() as f:
        return {row["policy"]: row["carbon_g_per_request"] for row in csv.DictReader(f)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="the concurrent run's --max-concurrent (default: as many as fit)",
    )
    parser.add_argument("--output", type=Path, default=None, help="folder for both runs (default: a temp dir)")
    parser.add_argument("extra", nargs="*", help="more compare flags after --, e.g. -- --seeds 0,1")
    args = parser.parse_args()
    root = args.output or Path(tempfile.mkdtemp(prefix="aolo_bench_compare_"))
    root.mkdir(parents=True, exist_ok=True)
    walls = {}
    for name, limit in (("sequential", 1), ("concurrent", args.max_concurrent)):
        print(
            f"[bench] {name}: compare --preset {args.preset} (max-concurrent {limit or 'auto'}, "
            f"{args.num_cpus} CPUs) -> {root / name}",
            flush=True,
        )
        walls[name] = run_compare(args.preset, root / name, limit, args.num_cpus, args.extra)
        print(f"[bench] {name}: {walls[name]:.1f} s", flush=True)
    speedup = walls["sequential"] / walls["concurrent"]
    seq, con = per_training(root / "sequential"), per_training(root / "concurrent")
    print(
        f"\n| run | wall s |\n|---|---|\n| sequential (max-concurrent 1) | {walls['sequential']:.1f} |\n"
        f"| concurrent | {walls['concurrent']:.1f} |\n\nspeed-up: {speedup:.2f}x\n"
    )
    print("| training | sequential s | concurrent s |\n|---|---|---|")
    for name in seq:
        print(f"| {name} | {seq[name]:.1f} | {con.get(name, float('nan')):.1f} |")
    cs, cc = carbon(root / "sequential"), carbon(root / "concurrent")
    print("\n| policy | carbon g/request sequential | concurrent |\n|---|---|---|")
    for policy in cs:
        print(f"| {policy} | {cs[policy]} | {cc.get(policy, '-')} |")
    (root / "bench.json").write_text(
        json.dumps(
            {
                "walls_s": walls,
                "speedup": speedup,
                "per_training_s": {"sequential": seq, "concurrent": con},
                "carbon": {"sequential": cs, "concurrent": cc},
            },
            indent=2,
        )
    )
    print(f"\n[bench] written: {root / 'bench.json'}")


if __name__ == "__main__":
    main()
