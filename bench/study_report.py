"""Markdown tables for REPORT.md from a finished ``aolo compare`` (and ``aolo sweep``) of a preset.

    python bench/study_report.py --preset paper --runs aolo_runs [--sweep aolo_runs_sweep]

Reads what ``aolo compare --preset P --output RUNS`` wrote (``RUNS/<scenario>/<algo>_seed<k>/evaluation.csv``,
one row per held-out (cell, day) episode plus an ``all`` row, and ``RUNS/<scenario>/compare/table.csv``),
re-evaluates the reference policies on the same held-out days (deterministic, seconds) and prints:

1. carbon per request per seed of every learned algorithm;
2. carbon per request per cell (mean over seeds) and each cell's gap to the hindsight bound;
3. mean QoE per cell;
4. constraint satisfaction: QoE violations (mean below Q_min, an answer below the floor) and latency;
5. the carbon split of each policy: inference (operational), embodied (GPU manufacturing), radio, actor;
6. with ``--sweep``: the reward-weight trials of ``aolo sweep`` (``RUNS/<scenario>/sweep/selection.json``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aolo.platform.evaluation import evaluate_references
from aolo.platform.presets import load_experiment
from aolo.platform.train import evaluation_rows

MG = 1000.0  # g -> mg: per-request carbon reads better in milligrams


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def cell_means(rows: list[dict], metric: str) -> dict[str, float]:
    """Per cell, the mean of ``metric`` over its held-out episodes (every episode has the same users)."""
    cells: dict[str, list[float]] = {}
    for r in rows:
        if r["cell"] != "all":
            cells.setdefault(r["cell"], []).append(float(r[metric]))
    return {c: float(np.mean(v)) for c, v in cells.items()}


def overall(rows: list[dict], metric: str) -> float:
    return float(next(r[metric] for r in rows if r["cell"] == "all") or "nan")


def markdown(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--runs", required=True, help="the --output of `aolo compare`")
    parser.add_argument("--sweep", help="the --output of `aolo sweep` on the same preset")
    args = parser.parse_args()

    experiment = load_experiment(args.preset)
    scenario = experiment.scenario
    root = Path(args.runs) / scenario.name
    policies: dict[str, list[list[dict]]] = {}  # policy -> one evaluation table per run
    for algo in experiment.algorithms:
        for seed in experiment.seeds:
            path = root / f"{algo}_seed{seed}" / "evaluation.csv"
            if path.exists():
                policies.setdefault(algo, []).append(read_csv(path))
    for name, result in evaluate_references(scenario, experiment.days_per_cell).items():
        policies[name] = [[{k: str(v) for k, v in row.items()} for row in evaluation_rows(result, scenario)]]
    cells = [c.name for c in scenario.cells]
    bound = cell_means(policies["hindsight"][0], "carbon_g_per_request")

    print("### Carbon per request per seed [mg]\n")
    seeds = [str(s) for s in experiment.seeds]
    print(markdown(["algorithm", *(f"seed {s}" for s in seeds)],
                   [[a, *(f"{MG * overall(run, 'carbon_g_per_request'):.3f}" for run in policies[a])]
                    for a in experiment.algorithms if a in policies]))

    print("\n### Carbon per request per cell [mg] (gap to hindsight)\n")
    lines = []
    for name, runs in policies.items():
        per_run = [cell_means(run, "carbon_g_per_request") for run in runs]
        mean = {c: np.mean([p[c] for p in per_run]) for c in cells}
        lines.append([name, *(f"{MG * mean[c]:.3f} ({100 * (mean[c] / bound[c] - 1):+.1f}%)" for c in cells)])
    print(markdown(["policy", *cells], lines))

    print("\n### Mean QoE per cell (target Q_min = %.2f)\n" % scenario.service.q_min)
    lines = []
    for name, runs in policies.items():
        per_run = [cell_means(run, "qoe_mean") for run in runs]
        lines.append([name, *(f"{np.mean([p[c] for p in per_run]):.3f}" for c in cells)])
    print(markdown(["policy", *cells], lines))

    print("\n### Constraint satisfaction (fractions of user-days; latency: of requests)\n")
    keys = ("qoe_violation_rate", "qoe_mean_violation_rate", "qoe_shortfall", "qoe_floor_violation_rate",
            "latency_violation_rate")
    lines = []
    for name, runs in policies.items():
        lines.append([name, f"{np.mean([overall(run, 'qoe_mean') for run in runs]):.3f}",
                      *(f"{np.mean([overall(run, k) for run in runs]):.4f}" if all(k in run[-1] for run in runs)
                        else "-" for k in keys)])
    print(markdown(["policy", "mean QoE", "QoE violated", "mean < Q_min", "mean shortfall", "an answer < Q_floor",
                    "latency > T_max"],
                   lines))

    print("\n### Where the carbon goes (share of each policy's total, actor included)\n")
    lines = []
    for name, runs in policies.items():
        parts = {k: np.mean([overall(run, k) for run in runs])
                 for k in ("carbon_inference_g", "carbon_embodied_g", "carbon_comm_g")}
        actor_share = np.mean([overall(run, "actor_carbon_share") for run in runs]) if name in experiment.algorithms \
            else 0.0
        total = sum(parts.values())
        shares = [(1 - actor_share) * parts[k] / total for k in parts]
        lines.append([name, *(f"{100 * s:.2f}%" for s in shares), f"{100 * actor_share:.1e}%",
                      f"{MG * total:.3f}"])
    print(markdown(["policy", "inference", "embodied", "radio", "actor", "total mg/request"], lines))

    if args.sweep:
        selection = json.loads((Path(args.sweep) / scenario.name / "sweep" / "selection.json").read_text())
        rule = selection["rule"]
        chosen = (selection["selected"] or {}).get("name")
        print(f"\n### Reward-weight sweep ({experiment.algorithm}, seed {experiment.seeds[0]}); rule: lowest carbon "
              f"with QoE violations <= {rule['max_qoe_violation_rate']} and latency violations <= "
              f"{rule['max_latency_violation_rate']}\n")
        keys = [k for k in selection["trials"][0]["params"] if k.startswith("scenario.reward.")]
        lines = []
        for t in sorted(selection["trials"], key=lambda t: t["metrics"].get("carbon_g_per_request", np.inf)):
            m = t["metrics"]
            lines.append([*(f"{t['params'][k]:g}" for k in keys), f"{MG * m['carbon_g_per_request']:.3f}",
                          f"{m['qoe_mean']:.3f}", f"{m['qoe_violation_rate']:.3f}",
                          f"{m['latency_violation_rate']:.4f}", "**selected**" if t["name"] == chosen else ""])
        print(markdown([*(k.removeprefix("scenario.reward.") for k in keys), "carbon mg/request", "QoE",
                        "QoE viol", "latency viol", ""], lines))


if __name__ == "__main__":
    main()
