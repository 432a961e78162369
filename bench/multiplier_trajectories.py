"""The constraint multipliers' trajectories of trainings side by side (issue 22 item 4: measuring the
deterministic policy's constraints every k-th iteration must not change what the multipliers converge to).

Reads every ``<algorithm>_seed<N>/history.csv`` under the given run directories (what ``compare`` and ``train``
write, one row per iteration with ``lambda_qoe`` and ``lambda_latency``), groups them by label, and draws
λ against env steps, one panel per (algorithm, multiplier), every seed a thin line and the label's mean a thick
one. Prints per label and algorithm the mean λ over the last quarter of the iterations and its spread over the
seeds, and the final held-out carbon where ``results.json`` is beside the history.

    python bench/multiplier_trajectories.py \\
        --runs every1=aolo_runs/quick --runs every2=aolo_runs_every2/quick --out lambda.png
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

MULTIPLIERS = ("lambda_qoe", "lambda_latency")


def read_runs(directories: list[Path], algorithms: list[str]) -> dict[str, dict[int, dict[str, np.ndarray]]]:
    """``{algorithm: {seed: {column: values}}}`` from every ``<algorithm>_seed<N>/history.csv`` found."""
    runs: dict[str, dict[int, dict[str, np.ndarray]]] = {a: {} for a in algorithms}
    for directory in directories:
        for algorithm in algorithms:
            for history in sorted(directory.glob(f"{algorithm}_seed*/history.csv")):
                seed = int(history.parent.name.rsplit("_seed", 1)[1])
                with history.open() as f:
                    rows = list(csv.DictReader(f))
                columns = {k: np.array([float(r[k] or "nan") for r in rows]) for k in ("env_steps", *MULTIPLIERS)}
                results = history.parent / "results.json"
                if results.is_file():
                    summary = json.loads(results.read_text())["summary"]
                    columns["carbon_mg"] = np.array([1e3 * summary["carbon_g_per_request"]])
                runs[algorithm][seed] = columns
    return runs


def tail_mean(values: np.ndarray) -> float:
    """Mean over the last quarter of the iterations (at least one)."""
    return float(np.nanmean(values[-max(1, len(values) // 4) :]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs",
        action="append",
        required=True,
        metavar="LABEL=DIR[,DIR...]",
        help="a label and the run directories (holding <algorithm>_seed<N>/history.csv) it stands for; repeatable",
    )
    parser.add_argument("--algorithms", default="sac,sdrl", help="comma-separated (default: sac,sdrl)")
    parser.add_argument("--out", type=Path, help="write the figure here (PNG)")
    args = parser.parse_args(argv)

    algorithms = args.algorithms.split(",")
    labelled = {}
    for spec in args.runs:
        label, _, dirs = spec.partition("=")
        if not dirs:
            parser.error(f"--runs {spec!r}: expected LABEL=DIR[,DIR...]")
        labelled[label] = read_runs([Path(d) for d in dirs.split(",")], algorithms)
        if not any(labelled[label].values()):
            parser.error(f"--runs {spec!r}: no <algorithm>_seed<N>/history.csv for {algorithms} under {dirs}")

    print("λ: mean over the last quarter of the iterations, mean ± sd over the seeds")
    print(f"{'label':10s} {'algorithm':9s} {'seeds':>5s}  " + "".join(f"{m:>20s}" for m in MULTIPLIERS))
    for label, runs in labelled.items():
        for algorithm, seeds in runs.items():
            if not seeds:
                continue
            cells = []
            for m in MULTIPLIERS:
                tails = [tail_mean(run[m]) for run in seeds.values()]
                cells.append(f"{np.mean(tails):12.3f} ± {np.std(tails):5.3f}")
            carbon = [float(run["carbon_mg"][0]) for run in seeds.values() if "carbon_mg" in run]
            carbon_text = (
                f"  carbon {np.mean(carbon):.3f} mg ({', '.join(f'{c:.3f}' for c in carbon)})" if carbon else ""
            )
            print(f"{label:10s} {algorithm:9s} {len(seeds):5d}  " + "".join(cells) + carbon_text)

    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(
            len(MULTIPLIERS), len(algorithms), figsize=(5 * len(algorithms), 3.2 * len(MULTIPLIERS)), squeeze=False
        )
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for j, algorithm in enumerate(algorithms):
            for i, m in enumerate(MULTIPLIERS):
                ax = axes[i][j]
                for colour, (label, runs) in zip(colours, labelled.items(), strict=False):
                    seeds = runs[algorithm]
                    for run in seeds.values():
                        ax.plot(run["env_steps"], run[m], color=colour, alpha=0.35, linewidth=0.8)
                    if seeds:
                        length = min(len(run[m]) for run in seeds.values())
                        steps = next(iter(seeds.values()))["env_steps"][:length]
                        mean = np.nanmean([run[m][:length] for run in seeds.values()], axis=0)
                        ax.plot(steps, mean, color=colour, linewidth=2.0, label=f"{label} ({len(seeds)} seeds)")
                ax.set_title(f"{algorithm}: {m}")
                ax.set_xlabel("env steps")
                ax.legend(fontsize=8)
        fig.tight_layout()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.out, dpi=120)
        print(f"figure: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
