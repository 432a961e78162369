"""Where a policy's late answers on shared sites come from, on a site preset's held-out days.

For each policy (a trained run directory ``<output>/<scenario>/<algorithm>_seed<seed>`` or a reference name such as
``forecast_site``): the share of late answers (``latency > T_max``, per representative answer as the evaluation's
``latency_violation_rate``), and of those the share late only because of the site queue's wait
(``latency - wait <= T_max``, the answers ``reward.site_latency_cost: load_share`` shares by load), the share the
mean-QoE guard had lengthened, the share at the day's edges (the last and the first UTC hour of the episode) and
in its first epoch, and the UTC hours with the most late answers (docs/design.md §10).

    python bench/site_lateness.py --preset sites_paper runs/sites_paper/td3_seed0 forecast_site forecast
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aolo.platform.evaluation import evaluate, evaluate_checkpoint  # noqa: E402
from aolo.platform.presets import load_experiment  # noqa: E402
from aolo.platform.results import CHECKPOINT_DIR  # noqa: E402


def lateness(records, t_max_s: float, epoch_s: float) -> dict[str, float | list]:
    """The late-answer breakdown of one evaluation's site records (each a cell-day, ``(U, T)`` fields)."""
    late = queue_only = guarded = edges = first = answers = 0.0
    by_hour, per_hour = np.zeros(24), np.zeros(24)
    for r in records:
        latency = r.fields["latency_s"]
        wait = np.asarray(r.extra["site"]["wait_s"])[None, :]
        is_late = latency > t_max_s
        hour = (np.arange(latency.shape[1]) * epoch_s / 3600.0).astype(int) % 24
        answers += latency.size
        late += is_late.sum()
        queue_only += (is_late & (latency - wait <= t_max_s)).sum()
        guarded += (is_late & (r.fields["qoe_guard_added"] > 0.0)).sum()
        edges += is_late[:, (hour == 23) | (hour == 0)].sum()
        first += is_late[:, 0].sum()
        np.add.at(by_hour, hour, is_late.sum(axis=0))
        np.add.at(per_hour, hour, latency.shape[0])
    share = by_hour / np.maximum(per_hour, 1)
    of_late = 1.0 / max(late, 1.0)
    return {
        "late": late / answers,
        "queue_only": queue_only * of_late,
        "guarded": guarded * of_late,
        "edges": edges * of_late,
        "first_epoch": first * of_late,
        "worst_hours": [(int(h), float(share[h])) for h in np.argsort(-share)[:3]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policies", nargs="+", help="run directories of trained policies, or reference names")
    parser.add_argument("--preset", default="sites_paper", help="a site preset (default: sites_paper)")
    args = parser.parse_args()
    experiment = load_experiment(args.preset)
    scenario = experiment.scenario
    if not scenario.sites:
        parser.error(f"--preset: {args.preset!r} has no sites")
    print(
        f"{'policy':<28} {'late':>6} {'queue-only':>10} {'guarded':>8} {'23h+0h':>7} {'1st epoch':>9}  worst UTC hours"
    )
    for policy in args.policies:
        run_dir = Path(policy)
        if run_dir.is_dir():
            algorithm = run_dir.name.split("_seed")[0]
            result = evaluate_checkpoint(run_dir / CHECKPOINT_DIR, scenario, algorithm, experiment.days_per_cell)
            name = f"{run_dir.parent.parent.name}/{run_dir.name}"
        else:
            result, name = evaluate(policy, scenario, experiment.days_per_cell), policy
        b = lateness(result.records, scenario.service.t_max_s, scenario.epoch_s)
        hours = ", ".join(f"{h:02d}h {100 * s:.1f} %" for h, s in b["worst_hours"])
        print(
            f"{name:<28} {100 * b['late']:5.2f}% {100 * b['queue_only']:9.0f}% {100 * b['guarded']:7.0f}% "
            f"{100 * b['edges']:6.0f}% {100 * b['first_epoch']:8.0f}%  {hours}",
            flush=True,
        )


if __name__ == "__main__":
    main()
