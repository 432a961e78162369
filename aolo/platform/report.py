"""REPORT.md's tables, from a finished ``aolo compare`` (and ``aolo sweep``) read back by
:func:`aolo.platform.results.load_study`; the command is :mod:`aolo.platform.commands.report`, the figures
:func:`aolo.platform.plots.write_study_figures`.

:func:`report_markdown` gives the tables of docs/design.md's evaluation protocol:

1. carbon per request per seed of every learned algorithm;
2. carbon per request per cell (mean over seeds) and each cell's gap to the strict lower bound;
3. mean QoE per cell;
4. constraint satisfaction: QoE violations (mean below Q_min, an answer below the floor) and latency;
5. the carbon split of each policy: inference (operational), embodied (GPU manufacturing), radio, actor;
6. with a sweep's ``selection.json`` (:func:`sweep_markdown`): the reward-weight trials and the selected one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from aolo.platform.results import (
    CARBON_METRIC,
    CARBON_PARTS,
    MG_PER_G,
    StudyData,
    bound_by_cell,
    cell_carbon,
    cell_means,
    overall,
)

CONSTRAINT_KEYS = (
    "qoe_violation_rate",
    "qoe_mean_violation_rate",
    "qoe_shortfall",
    "qoe_floor_violation_rate",
    "latency_violation_rate",
    "qoe_guard_rate",
)


# --- tables ---------------------------------------------------------------------------------------------


def markdown(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def report_markdown(data: StudyData, selection: Mapping[str, Any] | None = None) -> str:
    """The tables of REPORT.md as Markdown (see the module docstring for the list)."""
    policies = data.policies()
    seeds = sorted({s for runs in data.learned.values() for s in runs})
    parts = [
        "### Carbon per request per seed [mg]\n",
        markdown(
            ["algorithm", *(f"seed {s}" for s in seeds)],
            [
                [a, *(f"{MG_PER_G * overall(runs[s], CARBON_METRIC):.3f}" if s in runs else "-" for s in seeds)]
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
                f"{MG_PER_G * per_cell[name][c]:.3f} ({100 * (per_cell[name][c] / bound[c] - 1):+.1f}%)"
                if c in per_cell[name] and c in bound
                else "-"
                for c in data.cells
            ),
        ]
        for name in policies
    ]
    lines.append(["strict lower bound", *(f"{MG_PER_G * bound[c]:.3f}" if c in bound else "-" for c in data.cells)])
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
        lines.append(
            [name, *(f"{100 * s:.2f}%" for s in shares), f"{100 * actor_share:.1e}%", f"{MG_PER_G * total:.3f}"]
        )
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
    trials = [t for t in selection["trials"] if CARBON_METRIC in t.get("metrics", {})]
    keys = list(dict.fromkeys(k for t in trials for k in t["params"] if k.startswith("scenario.reward.")))
    lines = []
    for t in sorted(trials, key=lambda t: t["metrics"][CARBON_METRIC]):
        m = t["metrics"]
        lines.append(
            [
                *(f"{t['params'][k]:g}" if k in t["params"] else "-" for k in keys),
                f"{MG_PER_G * m[CARBON_METRIC]:.3f}",
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
