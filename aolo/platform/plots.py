"""Every figure aolo draws (PNG, matplotlib's Agg canvas; no display and no pyplot state needed). Carbon per
request is drawn in mg (:data:`~aolo.platform.results.MG_PER_G`; callers pass grams), returns per user-epoch.

- :func:`write_study_figures`: the figures of a finished comparison (``aolo compare`` writes them, ``aolo
  report`` regenerates them): carbon.png, carbon_vs_qoe.png, learning_curves.png, cell_carbon.png;

- :func:`plot_carbon`: carbon per request per learned algorithm with 95 % CI error bars, reference policies
  as horizontal lines;
- :func:`plot_carbon_vs_qoe`: every evaluated policy (each seed a point) in the carbon–QoE plane with the
  Pareto front (lower carbon and higher QoE are better);
- :func:`plot_learning_curves`: return per user-epoch vs env steps per algorithm, median and inter-quartile
  band over seeds on a linear axis (:func:`learning_curve_bands`); also one run's learning_curve.png;
- :func:`plot_cell_carbon`: carbon per request per cell for every policy, next to the cell's strict lower
  bound (and the hindsight plan it plays);
- :func:`plot_sweep_tradeoff` (``aolo sweep``): every trial in the carbon–QoE plane, labelled with its swept
  values, the Pareto front, the trials that break the selection rule hollow and the selected one ringed;
- :func:`plot_model_share` (model pool, docs/design.md §3.7): the share of answers each policy sends to a model,
  by hour of day, one panel per cell (grid pair) (:func:`~aolo.platform.results.model_share_by_hour`).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from aolo.platform.results import (
    CARBON_METRIC,
    MG_PER_G,
    StudyData,
    bound_by_cell,
    cell_carbon,
    model_share,
    overall,
    site_load,
)

#: One colour per policy in every figure; other names cycle through :data:`_EXTRA_COLORS`.
POLICY_COLORS = {
    "sdrl": "tab:green",
    "sac": "tab:blue",
    "td3": "tab:orange",
    "ppo": "tab:red",
    "hindsight": "black",
    "fixed": "tab:gray",
    "myopic": "tab:brown",
    "fixed_large": "tab:purple",
}
_EXTRA_COLORS = ("tab:pink", "tab:olive", "tab:cyan")
CARBON_LABEL = "carbon per request [mgCO2e]"
_LINESTYLES = ("--", ":", "-.", (0, (5, 1)), (0, (1, 1)))


def policy_color(name: str) -> str:
    return POLICY_COLORS.get(name) or _EXTRA_COLORS[sum(map(ord, name)) % len(_EXTRA_COLORS)]


def _plot_pareto_front(ax, qoe_carbon: list[tuple[float, float]], min_points: int, label: str | None = None) -> None:
    """The dashed Pareto front (lowest carbon for the QoE) through the (QoE, carbon) points, if it has enough."""
    front = pareto_front([(carbon, qoe) for qoe, carbon in qoe_carbon])
    if len(front) >= min_points:
        xs, ys = [qoe_carbon[i][0] for i in front], [qoe_carbon[i][1] for i in front]
        ax.plot(xs, ys, color="0.2", linestyle="--", linewidth=1, label=label, zorder=2)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated ``(carbon, qoe)`` points, by increasing carbon.

    A point is dominated when another has carbon ≤ and QoE ≥ with at least one strict; of identical
    points only the first is kept.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front: list[int] = []
    best_qoe = -np.inf
    for i in order:
        if points[i][1] > best_qoe:
            front.append(i)
            best_qoe = points[i][1]
    return front


def plot_carbon(bars: Sequence[tuple[str, float, float | None]], lines: Mapping[str, float], path: str | Path) -> Path:
    """``bars``: ``(label, mean carbon, 95 % CI half-width or None)``; ``lines``: reference policies' carbon."""
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(bars))
    means = [MG_PER_G * b[1] for b in bars]
    errors = [MG_PER_G * (b[2] or 0.0) for b in bars]
    ax.bar(x, means, yerr=errors, capsize=5, color=[policy_color(b[0]) for b in bars])
    ax.set_xticks(x, [b[0] for b in bars])
    for i, (label, value) in enumerate(lines.items()):
        ax.axhline(
            MG_PER_G * value,
            color=policy_color(label),
            linestyle=_LINESTYLES[i % len(_LINESTYLES)],
            linewidth=1.2,
            label=label,
        )
    if lines:
        ax.legend(title="reference", fontsize="small")
    ax.set_ylim(bottom=0.0)  # carbon is never negative; a wide small-n interval may reach below zero
    ax.set_ylabel(CARBON_LABEL)
    ax.set_title("Held-out carbon per request (95 % CI over seeds)")
    return _save(fig, path)


def plot_carbon_vs_qoe(
    points: Sequence[tuple[str, float, float]], path: str | Path, references: Sequence[str] = ()
) -> Path:
    """``points``: ``(policy, mean QoE, carbon per request)``, one per evaluated run; ``references`` are drawn
    as squares, learned policies as dots."""
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    for label in dict.fromkeys(p[0] for p in points):
        mine = [p for p in points if p[0] == label]
        ax.scatter(
            [p[1] for p in mine],
            [MG_PER_G * p[2] for p in mine],
            color=policy_color(label),
            label=label,
            zorder=3,
            marker="s" if label in references else "o",
        )
    _plot_pareto_front(ax, [(p[1], MG_PER_G * p[2]) for p in points], min_points=1, label="Pareto front")
    ax.set_xlabel("mean QoE")
    ax.set_ylabel(CARBON_LABEL)
    ax.set_title("Carbon vs QoE on held-out days")
    ax.legend(fontsize="small")
    return _save(fig, path)


@dataclass(frozen=True)
class CurveBand:
    """One algorithm's learning curve over seeds: median and quartiles of the return per user-epoch."""

    env_steps: np.ndarray
    median: np.ndarray
    q25: np.ndarray
    q75: np.ndarray
    n: int  #: seeds with at least one finite return


def learning_curve_bands(
    histories: Mapping[str, Sequence[Sequence[Mapping[str, float]]]],
    users_per_episode: float = 1.0,
    epochs_per_episode: int = 1,
) -> dict[str, CurveBand]:
    """Per algorithm, the seeds' curves on the env steps they all cover, as median and inter-quartile range.

    ``episode_return_mean`` is the return of a cell's episode summed over its users and epochs; dividing by
    ``users_per_episode · epochs_per_episode`` gives the mean reward of one user in one epoch, a number whose
    scale does not depend on the scenario's size. Seeds are linearly interpolated onto the union of their
    env steps inside the range every seed covers. The median and quartiles (rather than mean ± sd) keep one
    diverging seed from drawing a band no seed ever reached; with one or two seeds the band is their range.
    """
    scale = float(users_per_episode) * float(epochs_per_episode)
    if not scale > 0:
        raise ValueError(f"users_per_episode * epochs_per_episode must be > 0, got {scale}")
    bands = {}
    for algo, runs in histories.items():
        curves = [c for c in (_curve(h) for h in runs) if len(c[0])]
        if not curves:
            continue
        lo = max(c[0][0] for c in curves)
        hi = min(c[0][-1] for c in curves)
        steps = np.unique(np.concatenate([c[0] for c in curves]))
        steps = steps[(steps >= lo) & (steps <= hi)]
        values = np.array([np.interp(steps, *c) for c in curves]) / scale
        q25, median, q75 = np.percentile(values, [25, 50, 75], axis=0)
        bands[algo] = CurveBand(steps, median, q25, q75, len(curves))
    return bands


def plot_learning_curves(
    histories: Mapping[str, Sequence[Sequence[Mapping[str, float]]]],
    path: str | Path,
    users_per_episode: float = 1.0,
    epochs_per_episode: int = 1,
    title: str = "Learning curves (median and inter-quartile range over seeds)",
) -> Path:
    """``histories[algorithm]``: one per-iteration history per seed (``env_steps``, ``episode_return_mean``);
    drawn as :func:`learning_curve_bands` on a linear axis (a single run: ``{algorithm: [history]}``)."""
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for algo, band in learning_curve_bands(histories, users_per_episode, epochs_per_episode).items():
        color = policy_color(algo)
        ax.plot(
            band.env_steps,
            band.median,
            color=color,
            marker="." if len(band.env_steps) < 20 else None,
            label=f"{algo} (n={band.n})",
        )
        if band.n > 1:
            ax.fill_between(band.env_steps, band.q25, band.q75, color=color, alpha=0.2, linewidth=0)
    ax.set_xlabel("env steps")
    ax.set_ylabel("return per user-epoch")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.has_data():
        ax.legend(fontsize="small")
    return _save(fig, path)


def plot_cell_carbon(
    policies: Mapping[str, Mapping[str, float]], path: str | Path, bound: Mapping[str, float] | None = None
) -> Path:
    """``policies[name][cell]``: carbon per request [g] (mean over seeds); one group of bars per cell, one bar
    per policy; ``bound[cell]``: the strict lower bound, drawn as a dashed line across each group."""
    cells = list(dict.fromkeys(c for per_cell in policies.values() for c in per_cell))
    fig = Figure(figsize=(max(6.4, 1.3 * len(cells) + 4.0), 4.2), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(cells))
    width = 0.8 / max(len(policies), 1)
    for i, (name, per_cell) in enumerate(policies.items()):
        values = [per_cell.get(c, np.nan) * MG_PER_G for c in cells]
        ax.bar(
            x - 0.4 + (i + 0.5) * width,
            values,
            width,
            color=policy_color(name),
            label="hindsight (played plan)" if name == "hindsight" else name,
        )
    if bound:
        ax.hlines(
            [bound.get(c, np.nan) * MG_PER_G for c in cells],
            x - 0.45,
            x + 0.45,
            colors="crimson",
            linewidth=2,
            linestyles="--",
            label="strict lower bound",
            zorder=3,
        )
    ax.set_xticks(x, cells, rotation=15 if len(cells) > 3 else 0)
    ax.set_ylim(bottom=0.0)
    ax.set_ylabel(CARBON_LABEL)
    ax.set_title("Held-out carbon per request per cell")
    if policies:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, not on them
    return _save(fig, path)


def plot_site_load(
    utilisation: Mapping[str, Mapping[str, Sequence[float]]],
    carbon: Mapping[str, Sequence[float]],
    path: str | Path,
) -> Path:
    """Shared serving sites over the UTC day: ``utilisation[policy][site]`` (24 hourly values, mean over seeds
    and held-out days) as one line per policy, and the site's datacenter carbon intensity ``carbon[site]`` on a
    second axis: where each policy puts the load against the carbon (docs/design.md §10)."""
    sites = list(carbon)
    fig = Figure(figsize=(6.4, 2.6 * max(len(sites), 1)), layout="constrained")
    axes = fig.subplots(max(len(sites), 1), 1, squeeze=False)[:, 0]
    hours = np.arange(24) + 0.5
    for ax, site in zip(axes, sites, strict=False):
        for name, per_site in utilisation.items():
            if site in per_site:
                ax.plot(hours, per_site[site], color=policy_color(name), label=name)
        ax.set(xlim=(0, 24), ylim=(0.0, 1.05), ylabel="utilisation", title=f"site {site}")
        ci = ax.twinx()
        ci.plot(hours, carbon[site], color="black", linestyle="--", linewidth=1, label="carbon intensity")
        ci.set_ylabel("gCO2e/kWh")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("hour of the day (UTC)")
    if utilisation:
        axes[0].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.12, 1.0))
    return _save(fig, path)


def plot_sweep_tradeoff(
    points: Sequence[tuple[str, float, float, bool]],
    selected: str | None,
    path: str | Path,
    q_min: float | None = None,
    references: Mapping[str, tuple[float, float]] | None = None,
) -> Path:
    """``points``: ``(label, mean QoE, carbon per request, meets the selection rule)``, one per finished trial;
    ``selected`` is the label of the chosen trial; ``q_min`` draws the QoE target as a vertical line;
    ``references`` maps reference policies to their ``(mean QoE, carbon per request)`` (drawn as squares)."""
    fig = Figure(figsize=(7.6, 5.0), layout="constrained")
    ax = fig.add_subplot()
    for name, (qoe, carbon_g) in (references or {}).items():
        carbon = MG_PER_G * carbon_g
        ax.scatter([qoe], [carbon], marker="s", s=36, color=policy_color(name), zorder=3)
        ax.annotate(
            name, (qoe, carbon), textcoords="offset points", xytext=(5, -9), fontsize=7, color=policy_color(name)
        )
    for label, qoe, carbon_g, ok in points:
        carbon = MG_PER_G * carbon_g
        ax.scatter(
            [qoe],
            [carbon],
            s=36,
            zorder=3,
            color="tab:green",
            facecolors="tab:green" if ok else "none",
            edgecolors="tab:green",
        )
        ax.annotate(label, (qoe, carbon), textcoords="offset points", xytext=(5, 3), fontsize=7)
        if label == selected:
            ax.scatter([qoe], [carbon], s=160, facecolors="none", edgecolors="black", linewidths=1.5, zorder=4)
    _plot_pareto_front(ax, [(p[1], MG_PER_G * p[2]) for p in points], min_points=2)
    if q_min is not None:
        ax.axvline(q_min, color="tab:red", linewidth=0.8, linestyle=":")
    handles = [
        ax.scatter([], [], color="tab:green", label="meets the selection rule"),
        ax.scatter([], [], facecolors="none", edgecolors="tab:green", label="violates it"),
        ax.scatter([], [], s=160, facecolors="none", edgecolors="black", label="selected"),
        ax.plot([], [], color="0.2", linestyle="--", label="Pareto front")[0],
    ]
    if q_min is not None:
        handles.append(ax.plot([], [], color="tab:red", linestyle=":", label="Q_min")[0])
    if references:
        handles.append(ax.scatter([], [], marker="s", color="0.4", label="reference policies"))
    ax.margins(x=0.35, y=0.08)  # room for the labels right of the points
    ax.legend(handles=handles, fontsize="small", loc="upper left")
    ax.set_xlabel("mean QoE on held-out days")
    ax.set_ylabel(CARBON_LABEL)
    ax.set_title("Reward-weight sweep: carbon vs QoE per trial")
    return _save(fig, path)


def write_study_figures(data: StudyData, out_dir: str | Path, sweep_plot: Path | None = None) -> list[Path]:
    """The figures of a finished comparison in ``out_dir``: carbon.png (from its table.csv, when read),
    carbon_vs_qoe.png (each run a point), learning_curves.png, cell_carbon.png (against the strict bound),
    site_load.png (scenarios with shared sites), model_share.png (a model pool: the share of answers on the
    best-rated model by hour, per cell and policy) and a copy of the sweep's ``sweep_plot`` as tradeoff.png."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    if data.table:
        ci = f"{CARBON_METRIC}_ci95"
        bars = [
            (r["policy"], float(r[CARBON_METRIC]), float(r[ci]) if r.get(ci) else None)
            for r in data.table
            if r["kind"] == "learned" and r.get(CARBON_METRIC)
        ]
        lines = {
            r["policy"]: float(r[CARBON_METRIC])
            for r in data.table
            if r["kind"] == "reference" and r.get(CARBON_METRIC)
        }
        files.append(plot_carbon(bars, lines, out_dir / "carbon.png"))
    points = [
        (name, overall(run, "qoe_mean"), overall(run, CARBON_METRIC))
        for name, runs in data.policies().items()
        for run in runs
    ]
    files.append(plot_carbon_vs_qoe(points, out_dir / "carbon_vs_qoe.png", references=list(data.references)))
    files.append(
        plot_learning_curves(
            data.histories, out_dir / "learning_curves.png", data.users_per_episode, data.epochs_per_episode
        )
    )
    files.append(plot_cell_carbon(cell_carbon(data), out_dir / "cell_carbon.png", bound_by_cell(data) or None))
    utilisation, site_carbon = site_load(data)
    if site_carbon:
        files.append(plot_site_load(utilisation, site_carbon, out_dir / "site_load.png"))
    model, shares = model_share(data)
    if shares:
        files.append(plot_model_share(shares, model, out_dir / "model_share.png"))
    if sweep_plot is not None and sweep_plot.is_file():
        files.append(Path(shutil.copyfile(sweep_plot, out_dir / "tradeoff.png")))
    return files


def plot_model_share(shares: Mapping[str, Mapping[str, np.ndarray]], model: str, path: str | Path) -> Path:
    """``shares[policy][cell]``: (24,) share of answers sent to ``model`` per hour of day; one panel per cell."""
    cells = list(dict.fromkeys(c for per_cell in shares.values() for c in per_cell))
    fig = Figure(figsize=(4.2 * max(len(cells), 1) + 1.5, 3.6), layout="constrained")
    axes = fig.subplots(1, max(len(cells), 1), sharey=True, squeeze=False)[0]
    for ax, cell in zip(axes, cells, strict=False):
        for name, per_cell in shares.items():
            if cell in per_cell:
                ax.stairs(per_cell[cell], np.arange(25), color=policy_color(name), label=name, linewidth=1.5)
        ax.set_title(cell, fontsize="medium")
        ax.set_xlabel("hour of day (UTC)")
        ax.set_xlim(0, 24)
        ax.set_xticks(range(0, 25, 6))
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].set_ylabel(f"share of answers on {model}")
    if shares:
        axes[-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def _curve(history: Sequence[Mapping[str, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(env steps, return) of one run, iterations without a finite return dropped."""
    pts = [
        (h["env_steps"], h["episode_return_mean"])
        for h in history
        if np.isfinite(h.get("episode_return_mean", np.nan)) and "env_steps" in h
    ]
    arr = np.array(pts, dtype=float).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
