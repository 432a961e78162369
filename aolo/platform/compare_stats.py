"""The statistics and the table of a comparison: per policy, carbon per request over seeds with its 95 %
t-interval, the reduction versus each learned baseline with its 95 % interval, the gap to the strict lower bound,
QoE, constraint violations and the actor's own energy. Pure numbers (numpy, scipy): no Ray, no Tune, no MLflow;
running the comparison that produces the :class:`RunOutcome` values is :mod:`aolo.platform.compare`.

The table is printed by ``aolo compare`` (:func:`format_table`, carbon in mg per request) and written as
``compare/table.csv`` (:func:`table_records`, full precision in g).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from aolo.platform.console import fmt, format_columns, pct, share
from aolo.platform.results import CARBON_METRIC, MG_PER_G

#: Learned baselines the reductions are measured against, when the preset trains them.
BASELINES = ("sac", "ppo", "td3")
#: With a model pool (docs/design.md §3.7): the carbon-agnostic large-model service, a reference baseline.
MODEL_BASELINES = ("fixed_large",)
#: The proposed method whose reductions go to the parent run as ``compare/reduction_vs_<baseline>``.
PROPOSED = "sdrl"
#: Metrics averaged over seeds in the table (besides carbon per request).
MEAN_METRICS = (
    "gap_to_bound",
    "qoe_mean",
    "qoe_violation_rate",
    "qoe_mean_violation_rate",
    "qoe_floor_violation_rate",
    "qoe_shortfall",
    "qoe_guard_rate",
    "latency_violation_rate",
    "action_at_bound_rate",
    "actor_nj_per_decision",
)
CONFIDENCE = 0.95


@dataclass
class RunOutcome:
    """One evaluated policy run: a training (algorithm, seed) or a reference policy."""

    policy: str
    kind: str  #: ``learned``, ``reference`` or ``external`` (``--extra-policy``)
    seed: int | None
    metrics: dict[str, float] | None  #: held-out metrics (no ``eval/`` prefix); None if the run failed
    history: list[dict[str, float]] = field(default_factory=list)
    run_id: str | None = None
    error: str | None = None
    node_id: str | None = None  #: the Ray node the training (its last attempt) ran on
    node_ids: tuple[str, ...] = ()  #: the Ray node of every attempt, in order
    attempts: int = 1  #: Tune trial starts (> 1: restarted after a lost node or worker)


@dataclass
class PolicyRow:
    """One row of the comparison table: a policy's statistics over its successful seeds."""

    policy: str
    kind: str
    n: int  #: successful runs
    n_failed: int
    carbon_mean: float | None
    carbon_ci: float | None  #: 95 % t-interval half-width; None with fewer than 2 runs
    reductions: dict[str, float | None]  #: baseline -> 1 - carbon / carbon_baseline
    reduction_cis: dict[str, float | None]  #: baseline -> 95 % half-width of the reduction (None if n < 2)
    means: dict[str, float]  #: :data:`MEAN_METRICS` averaged over the successful runs
    errors: list[str] = field(default_factory=list)


# --- statistics -----------------------------------------------------------------------------------------


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float | None]:
    """Mean and the half-width of the Student-t confidence interval (None for a single value)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("t_interval needs at least one value")
    mean = float(x.mean())
    if x.size < 2:
        return mean, None
    sem = float(stats.sem(x))
    if sem == 0.0:  # identical values: scipy's t.interval needs scale > 0
        return mean, 0.0
    _, high = stats.t.interval(confidence, df=x.size - 1, loc=mean, scale=sem)
    return mean, float(high) - mean


def reduction(carbon: float, baseline: float) -> float:
    """Relative carbon reduction versus a baseline: ``1 - carbon / baseline`` (positive = less carbon)."""
    return 1.0 - carbon / baseline


def reduction_interval(
    values: Sequence[float],
    baseline_values: Sequence[float],
    confidence: float = CONFIDENCE,
    baseline_exact: bool = False,
) -> tuple[float, float | None]:
    """The reduction ``1 - mean(values) / mean(baseline_values)`` and its confidence half-width.

    The two samples are independent trainings (seed ``k`` of one algorithm has nothing in common with seed
    ``k`` of another), so the interval is the delta-method one for a ratio of independent means,
    ``se(R) = R sqrt(s_a²/(n_a ā²) + s_b²/(n_b b̄²))``, with Student-t quantile at the Welch–Satterthwaite
    degrees of freedom. None when either sample has a single value.

    ``baseline_exact``: the baseline is a deterministic reference policy (one value, no sampling error, e.g.
    ``fixed_large``): the interval is that of ``mean(values)`` alone, Student-t with ``n_a − 1`` degrees of freedom.
    """
    a, b = np.asarray(values, dtype=float), np.asarray(baseline_values, dtype=float)
    ratio = a.mean() / b.mean()
    if baseline_exact:
        if a.size < 2:
            return 1.0 - ratio, None
        half = stats.t.ppf(0.5 + confidence / 2, df=a.size - 1) * a.std(ddof=1) / math.sqrt(a.size) / b.mean()
        return 1.0 - ratio, float(half)
    if a.size < 2 or b.size < 2:
        return 1.0 - ratio, None
    va = a.var(ddof=1) / (a.size * a.mean() ** 2)  # squared relative standard errors of the two means
    vb = b.var(ddof=1) / (b.size * b.mean() ** 2)
    if va + vb == 0.0:
        return 1.0 - ratio, 0.0
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = stats.t.ppf(0.5 + confidence / 2, df=df) * ratio * math.sqrt(va + vb)
    return 1.0 - ratio, float(half)


def summarize(outcomes: Sequence[RunOutcome], baselines: Sequence[str] = BASELINES) -> list[PolicyRow]:
    """Table rows, in the order policies first appear in ``outcomes``; reductions against ``baselines``
    that have at least one successful run."""
    policies = list(dict.fromkeys(o.policy for o in outcomes))
    kinds = {o.policy: o.kind for o in outcomes}
    carbon: dict[str, list[float]] = {}  # per policy, the carbon of each successful run
    rows = []
    for policy in policies:
        mine = [o for o in outcomes if o.policy == policy]
        ok = [o.metrics for o in mine if o.metrics is not None]
        mean, ci = t_interval([m[CARBON_METRIC] for m in ok]) if ok else (None, None)
        if ok:
            carbon[policy] = [m[CARBON_METRIC] for m in ok]
        rows.append(
            PolicyRow(
                policy=policy,
                kind=mine[0].kind,
                n=len(ok),
                n_failed=len(mine) - len(ok),
                carbon_mean=mean,
                carbon_ci=ci,
                reductions={},
                reduction_cis={},
                means={k: float(np.mean([m[k] for m in ok])) for k in MEAN_METRICS if ok and all(k in m for m in ok)},
                errors=[f"seed {o.seed}: {o.error}" for o in mine if o.metrics is None],
            )
        )
    for row in rows:
        for b in (b for b in baselines if b in policies):
            both = row.policy in carbon and b in carbon and b != row.policy  # a policy vs itself: no entry
            row.reductions[b], row.reduction_cis[b] = (
                reduction_interval(carbon[row.policy], carbon[b], baseline_exact=kinds[b] == "reference")
                if both
                else (None, None)
            )
    return rows


# --- presentation ---------------------------------------------------------------------------------------


def format_table(rows: Sequence[PolicyRow]) -> str:
    """The comparison as an aligned terminal table."""
    baselines = list(rows[0].reductions) if rows else []
    header = [
        "policy",
        "carbon mg/request (95% CI)",
        *(f"vs {b}" for b in baselines),
        "gap to bound",
        "QoE",
        "QoE viol",
        "lat viol",
        "actor nJ/dec",
        "status",
    ]
    lines = [header]
    for r in rows:
        if r.carbon_mean is None:
            carbon = "-"
        elif r.carbon_ci is None:
            carbon = f"{MG_PER_G * r.carbon_mean:.3f} (n={r.n})"
        else:
            carbon = f"{MG_PER_G * r.carbon_mean:.3f} ± {MG_PER_G * r.carbon_ci:.3f} (n={r.n})"
        lines.append(
            [
                r.policy,
                carbon,
                *(_reduction_cell(r, b) for b in baselines),
                pct(r.means.get("gap_to_bound")),
                fmt(r.means.get("qoe_mean"), ".3f"),
                share(r.means.get("qoe_violation_rate")),
                share(r.means.get("latency_violation_rate")),
                fmt(r.means.get("actor_nj_per_decision"), ".1f"),
                _status(r),
            ]
        )
    out = format_columns(lines, rule=True)
    out.append(
        "vs <baseline>: carbon reduction 1 - carbon / carbon_baseline (+ = less carbon) ± 95 % interval; "
        "gap to bound: carbon / strict lower bound (hindsight dual) - 1; CI: 95 % Student-t interval over seeds"
    )
    return "\n".join(out)


def _reduction_cell(row: PolicyRow, baseline: str) -> str:
    value, half = row.reductions[baseline], row.reduction_cis[baseline]
    if baseline == row.policy or value is None:
        return "-"
    return pct(value) + ("" if half is None else f" ± {100 * half:.1f}")


def _status(row: PolicyRow) -> str:
    if row.n_failed == 0:
        return "ok" if row.kind == "learned" else row.kind  # reference | external
    return "FAILED" if row.n == 0 else f"{row.n_failed} of {row.n + row.n_failed} seeds FAILED"


def table_records(rows: Sequence[PolicyRow]) -> list[dict[str, Any]]:
    """The table as CSV rows (full precision; empty cells where a value does not exist)."""
    records = []
    for r in rows:
        records.append(
            {
                "policy": r.policy,
                "kind": r.kind,
                "n": r.n,
                "n_failed": r.n_failed,
                CARBON_METRIC: r.carbon_mean,
                f"{CARBON_METRIC}_ci95": r.carbon_ci,
                **{f"reduction_vs_{b}": v for b, v in r.reductions.items()},
                **{f"reduction_vs_{b}_ci95": v for b, v in r.reduction_cis.items()},
                **{k: r.means.get(k) for k in MEAN_METRICS},
                "errors": " | ".join(r.errors),
            }
        )
    return records
