"""``aolo report``: REPORT.md's tables and figures, regenerated from a finished ``aolo compare`` (and ``aolo sweep``).

    aolo report --preset paper --output aolo_runs [--sweep aolo_runs_sweep] [--figures docs/report] [--markdown F]

Reads what ``aolo compare --preset P --output RUNS`` wrote:

- ``RUNS/<scenario>/<algo>_seed<k>/evaluation.csv`` (one row per held-out (cell, day) episode plus an ``all``
  row) and ``history.csv`` (per training iteration) of every learned run;
- ``RUNS/<scenario>/compare/table.csv`` (the comparison table) and ``compare/references/<policy>.csv`` (the
  reference policies' evaluation rows; when absent, the reference policies are evaluated again on the same
  held-out days — deterministic, seconds);

and, with ``--sweep``, ``SWEEP/<scenario>/sweep/selection.json`` and ``tradeoff.png`` of ``aolo sweep``. It prints
(or writes with ``--markdown``) the tables of docs/design.md's evaluation protocol:

1. carbon per request per seed of every learned algorithm;
2. carbon per request per cell (mean over seeds) and each cell's gap to the strict lower bound;
3. mean QoE per cell;
4. constraint satisfaction: QoE violations (mean below Q_min, an answer below the floor) and latency;
5. the carbon split of each policy: inference (operational), embodied (GPU manufacturing), radio, actor;
6. with ``--sweep``: the reward-weight trials and the selected one;

and writes the figures (``--figures``): carbon.png, carbon_vs_qoe.png, learning_curves.png, cell_carbon.png,
site_load.png (scenarios with shared sites) and, with ``--sweep``, tradeoff.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aolo.errors import ConfigError
from aolo.platform.plots import (
    MG,
    cell_means,
    plot_carbon,
    plot_carbon_vs_qoe,
    plot_cell_carbon,
    plot_learning_curves,
    plot_site_load,
)

CARBON = "carbon_g_per_request"
BOUND = "bound_g_per_request"
REFERENCES_DIR = "references"  #: ``compare/references/<policy>.csv``: reference evaluation rows
CARBON_PARTS = ("carbon_inference_g", "carbon_embodied_g", "carbon_comm_g")
CONSTRAINT_KEYS = (
    "qoe_violation_rate",
    "qoe_mean_violation_rate",
    "qoe_shortfall",
    "qoe_floor_violation_rate",
    "latency_violation_rate",
    "qoe_guard_rate",
)

Rows = list[dict[str, str]]  #: rows of an evaluation.csv, values as read


@dataclass
class StudyData:
    """A finished comparison, read back from disk."""

    cells: list[str]
    q_min: float
    learned: dict[str, dict[int, Rows]]  #: algorithm -> seed -> evaluation rows
    references: dict[str, Rows]  #: reference policy -> evaluation rows (hindsight's carry ``bound_g_per_request``)
    histories: dict[str, list[list[dict[str, float]]]] = field(default_factory=dict)  #: algorithm -> per seed
    users_per_episode: float = 1.0  #: mean users per cell (a cell's episode return sums over its users)
    epochs_per_episode: int = 1
    sites: list[str] = field(default_factory=list)  #: shared serving sites (docs/design.md §10), if any

    def policies(self) -> dict[str, list[Rows]]:
        """Every policy with one evaluation table per run: learned algorithms first, then the references."""
        return {
            **{a: list(runs.values()) for a, runs in self.learned.items()},
            **{name: [rows] for name, rows in self.references.items()},
        }


# --- reading --------------------------------------------------------------------------------------------


def read_csv(path: Path) -> Rows:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def write_rows(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Rows with possibly different keys as CSV (columns: their union, in first-seen order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def reference_rows(result: Any, scenario: Any) -> list[dict[str, Any]]:
    """A reference policy's evaluation rows (:func:`~aolo.platform.train.evaluation_rows`); the hindsight
    policy's episodes also get their strict lower bound per request, ``bound_g_per_request``."""
    from aolo.platform.train import evaluation_rows

    rows = evaluation_rows(result, scenario)
    for row, record in zip(rows, result.records, strict=False):  # rows end with the `all` row
        if "bound_g" in record.extra:
            row[BOUND] = record.extra["bound_g"] / record.fields["carbon_total_g"].size
    return rows


def write_reference_rows(evaluations: Mapping[str, Any], scenario: Any, compare_dir: Path) -> list[Path]:
    """``compare/references/<policy>.csv`` for every reference evaluation (what ``aolo report`` reads)."""
    return [
        write_rows(reference_rows(result, scenario), compare_dir / REFERENCES_DIR / f"{name}.csv")
        for name, result in evaluations.items()
    ]


def load_study(experiment: Any, runs_dir: str | Path) -> StudyData:
    """The comparison of ``experiment`` that ``aolo compare --output runs_dir`` wrote."""
    from aolo.platform.train import read_history

    scenario = experiment.scenario
    root = Path(runs_dir).expanduser() / scenario.name
    if not root.is_dir():
        raise ConfigError(
            f"--output {runs_dir}: no comparison of scenario {scenario.name!r} there ({root} is "
            f"missing); give the --output of `aolo compare --preset {experiment.name}`"
        )
    learned: dict[str, dict[int, Rows]] = {}
    histories: dict[str, list[list[dict[str, float]]]] = {}
    for algo in experiment.algorithms:
        for seed in experiment.seeds:
            run_dir = root / f"{algo}_seed{seed}"
            if (run_dir / "evaluation.csv").is_file():
                learned.setdefault(algo, {})[seed] = read_csv(run_dir / "evaluation.csv")
                histories.setdefault(algo, []).append(read_history(run_dir / "history.csv"))
    folder = root / "compare" / REFERENCES_DIR
    if folder.is_dir():
        references = {p.stem: read_csv(p) for p in sorted(folder.glob("*.csv"))}
        references = {n: references[n] for n in ("hindsight", "myopic", "fixed", *references) if n in references}
    else:  # a comparison from before the reference rows were saved: evaluate them again (deterministic)
        from aolo.platform.evaluation import evaluate_references

        evaluations = evaluate_references(scenario, experiment.days_per_cell)
        references = {
            name: [{k: str(v) for k, v in row.items()} for row in reference_rows(result, scenario)]
            for name, result in evaluations.items()
        }
    return StudyData(
        cells=[c.name for c in scenario.cells],
        q_min=scenario.service.q_min,
        learned=learned,
        references=references,
        histories=histories,
        users_per_episode=float(np.mean([c.num_users for c in scenario.cells])),
        epochs_per_episode=scenario.epochs_per_episode,
        sites=[s.name for s in scenario.sites],
    )


# --- tables ---------------------------------------------------------------------------------------------


def overall(rows: Rows, metric: str) -> float:
    """The ``all`` row's value of ``metric`` (NaN when missing or empty)."""
    value = next((r.get(metric, "") for r in rows if r["cell"] == "all"), "")
    return float(value) if value not in ("", None) else math.nan


def markdown(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def bound_by_cell(data: StudyData) -> dict[str, float]:
    """Per cell, the strict lower bound per request (the hindsight plan's own carbon where the bound was not
    recorded)."""
    hindsight = data.references.get("hindsight", [])
    return cell_means(hindsight, BOUND) or cell_means(hindsight, CARBON)


def site_load(data: StudyData) -> tuple[dict[str, dict[str, list[float]]], dict[str, list[float]]]:
    """Shared sites (docs/design.md §10): per policy and site, the hourly utilisation (mean over runs), and per
    site the hourly datacenter carbon intensity, from the ``all`` rows' ``site/<name>/..._hHH`` columns; empty
    for a scenario without sites."""
    utilisation: dict[str, dict[str, list[float]]] = {}
    carbon: dict[str, list[float]] = {}
    for name, runs in data.policies().items():
        for site in data.sites:
            per_run = [[overall(run, f"site/{site}/utilisation_h{h:02d}") for h in range(24)] for run in runs]
            if per_run and not np.isnan(per_run[0]).all():
                utilisation.setdefault(name, {})[site] = list(np.nanmean(per_run, axis=0))
                carbon.setdefault(site, [overall(runs[0], f"site/{site}/ci_dc_g_per_kwh_h{h:02d}") for h in range(24)])
    return utilisation, carbon


def cell_carbon(data: StudyData) -> dict[str, dict[str, float]]:
    """Per policy, per cell: carbon per request [g], mean over the policy's runs."""
    out = {}
    for name, runs in data.policies().items():
        per_run = [cell_means(run, CARBON) for run in runs]
        out[name] = {
            c: float(np.mean([p[c] for p in per_run if c in p])) for c in data.cells if any(c in p for p in per_run)
        }
    return out


def report_markdown(data: StudyData, selection: Mapping[str, Any] | None = None) -> str:
    """The tables of REPORT.md as Markdown (see the module docstring for the list)."""
    policies = data.policies()
    seeds = sorted({s for runs in data.learned.values() for s in runs})
    parts = [
        "### Carbon per request per seed [mg]\n",
        markdown(
            ["algorithm", *(f"seed {s}" for s in seeds)],
            [
                [a, *(f"{MG * overall(runs[s], CARBON):.3f}" if s in runs else "-" for s in seeds)]
                for a, runs in data.learned.items()
            ],
        ),
    ]

    bound = bound_by_cell(data)
    per_cell = cell_carbon(data)
    lines = [
        [
            name,
            *(
                f"{MG * per_cell[name][c]:.3f} ({100 * (per_cell[name][c] / bound[c] - 1):+.1f}%)"
                if c in per_cell[name] and c in bound
                else "-"
                for c in data.cells
            ),
        ]
        for name in policies
    ]
    lines.append(["strict lower bound", *(f"{MG * bound[c]:.3f}" if c in bound else "-" for c in data.cells)])
    parts += [
        "\n### Carbon per request per cell [mg] (gap to the strict lower bound)\n",
        markdown(["policy", *data.cells], lines),
    ]

    lines = []
    for name, runs in policies.items():
        per_run = [cell_means(run, "qoe_mean") for run in runs]
        lines.append([name, *(f"{np.mean([p[c] for p in per_run if c in p]):.3f}" for c in data.cells)])
    parts += [f"\n### Mean QoE per cell (target Q_min = {data.q_min:.2f})\n", markdown(["policy", *data.cells], lines)]

    lines = []
    for name, runs in policies.items():
        values = [[overall(run, k) for run in runs] for k in CONSTRAINT_KEYS]
        lines.append(
            [
                name,
                f"{np.mean([overall(run, 'qoe_mean') for run in runs]):.3f}",
                *("-" if any(math.isnan(v) for v in vs) else f"{np.mean(vs):.4f}" for vs in values),
            ]
        )
    parts += [
        "\n### Constraint satisfaction (fractions of user-days; latency and guard: of requests)\n",
        markdown(
            [
                "policy",
                "mean QoE",
                "QoE violated",
                "mean < Q_min",
                "mean shortfall",
                "an answer < Q_floor",
                "latency > T_max",
                "answers the guard lengthened",
            ],
            lines,
        ),
    ]

    lines = []
    for name, runs in policies.items():
        carbon = {k: float(np.mean([overall(run, k) for run in runs])) for k in CARBON_PARTS}
        actor = [overall(run, "actor_carbon_share") for run in runs]
        actor_share = 0.0 if any(math.isnan(a) for a in actor) else float(np.mean(actor))
        total = sum(carbon.values())
        shares = [(1 - actor_share) * carbon[k] / total for k in CARBON_PARTS]
        lines.append([name, *(f"{100 * s:.2f}%" for s in shares), f"{100 * actor_share:.1e}%", f"{MG * total:.3f}"])
    parts += [
        "\n### Where the carbon goes (share of each policy's total, actor included)\n",
        markdown(["policy", "inference", "embodied", "radio", "actor", "total mg/request"], lines),
    ]

    if selection is not None:
        parts += ["", sweep_markdown(selection)]
    return "\n".join(parts) + "\n"


def sweep_markdown(selection: Mapping[str, Any]) -> str:
    """The trials of ``aolo sweep`` (its ``selection.json``), lowest carbon first, the selected one marked."""
    rule = selection["rule"]
    chosen = (selection.get("selected") or {}).get("name")
    trials = [t for t in selection["trials"] if CARBON in t.get("metrics", {})]
    keys = list(dict.fromkeys(k for t in trials for k in t["params"] if k.startswith("scenario.reward.")))
    lines = []
    for t in sorted(trials, key=lambda t: t["metrics"][CARBON]):
        m = t["metrics"]
        lines.append(
            [
                *(f"{t['params'][k]:g}" if k in t["params"] else "-" for k in keys),
                f"{MG * m[CARBON]:.3f}",
                f"{m['qoe_mean']:.3f}",
                f"{m['qoe_violation_rate']:.3f}",
                f"{m['latency_violation_rate']:.4f}",
                "**selected**" if t["name"] == chosen else "",
            ]
        )
    head = (
        f"### Reward-weight sweep; rule: lowest carbon with QoE violations <= {rule['max_qoe_violation_rate']} "
        f"and latency violations <= {rule['max_latency_violation_rate']}\n"
    )
    return (
        head
        + "\n"
        + markdown(
            [
                *(k.removeprefix("scenario.reward.") for k in keys),
                "carbon mg/request",
                "QoE",
                "QoE viol",
                "latency viol",
                "",
            ],
            lines,
        )
    )


# --- figures --------------------------------------------------------------------------------------------


def write_figures(
    data: StudyData, out_dir: str | Path, table: Rows | None = None, sweep_plot: Path | None = None
) -> list[Path]:
    """carbon.png (from ``table``, the comparison's table.csv), carbon_vs_qoe.png, learning_curves.png,
    cell_carbon.png and a copy of the sweep's tradeoff.png in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    if table:
        bars = [
            (r["policy"], float(r[CARBON]), float(r[f"{CARBON}_ci95"]) if r.get(f"{CARBON}_ci95") else None)
            for r in table
            if r["kind"] == "learned" and r.get(CARBON)
        ]
        lines = {r["policy"]: float(r[CARBON]) for r in table if r["kind"] == "reference" and r.get(CARBON)}
        files.append(plot_carbon(bars, lines, out_dir / "carbon.png"))
    points = [
        (name, overall(run, "qoe_mean"), overall(run, CARBON)) for name, runs in data.policies().items() for run in runs
    ]
    files.append(plot_carbon_vs_qoe(points, out_dir / "carbon_vs_qoe.png", references=list(data.references)))
    files.append(
        plot_learning_curves(
            data.histories, out_dir / "learning_curves.png", data.users_per_episode, data.epochs_per_episode
        )
    )
    bound = bound_by_cell(data)
    files.append(plot_cell_carbon(cell_carbon(data), out_dir / "cell_carbon.png", bound or None))
    utilisation, site_carbon = site_load(data)
    if site_carbon:
        files.append(plot_site_load(utilisation, site_carbon, out_dir / "site_load.png"))
    if sweep_plot is not None and sweep_plot.is_file():
        files.append(Path(shutil.copyfile(sweep_plot, out_dir / "tradeoff.png")))
    return files


# --- CLI ------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``aolo report`` flags (``--output`` is read, not written: the comparison's folder)."""
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("./aolo_runs"),
        metavar="DIR",
        help="the --output of `aolo compare` on the same preset (default: ./aolo_runs)",
    )
    parser.add_argument("--sweep", type=Path, metavar="DIR", help="the --output of `aolo sweep` on the same preset")
    parser.add_argument(
        "--figures", type=Path, metavar="DIR", help="write the figures here (e.g. docs/report); default: none"
    )
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write the tables here instead of printing")


def run(args: argparse.Namespace) -> int:
    """``aolo report``: print (or write) the tables, write the figures; 0 on success."""
    from aolo.platform.presets import load_experiment

    experiment = load_experiment(args.preset)
    data = load_study(experiment, args.output)
    selection, sweep_plot = None, None
    if args.sweep is not None:
        folder = Path(args.sweep).expanduser() / experiment.scenario.name / "sweep"
        if not (folder / "selection.json").is_file():
            raise ConfigError(
                f"--sweep {args.sweep}: no {folder / 'selection.json'}; give the --output of "
                f"a finished `aolo sweep` on the same preset"
            )
        selection = json.loads((folder / "selection.json").read_text())
        sweep_plot = folder / "tradeoff.png"
    text = report_markdown(data, selection)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
        print(f"[report] tables: {args.markdown}")
    else:
        print(text, end="")
    if args.figures is not None:
        table_path = Path(args.output).expanduser() / experiment.scenario.name / "compare" / "table.csv"
        table = read_csv(table_path) if table_path.is_file() else None
        files = write_figures(data, args.figures, table, sweep_plot)
        print(f"[report] figures: {', '.join(str(f) for f in files)}")
    return 0
