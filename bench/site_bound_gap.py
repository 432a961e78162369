"""How far the site bounds sit below the played site hindsight plan, on a site preset's held-out days.

For each site of the preset and its first ``--days`` held-out days (the evaluation's spread, so the same days
``compare`` evaluates first): the played joint plan (``solve_site_hindsight``, whose level bound it computes),
the state bound (``site_state_bound``, searched around the level bound's multipliers, as ``SiteHindsightPolicy``
does), with ``--cold`` the state bound searched from scratch, with ``--steer`` a feasible plan built on the state
bound's cheapest path (:func:`steered_plan`, then block moves where it breaks a rule: a diagnostic upper bound
on the optimum). Carbon in g over the day's requests, the gaps in % of the bound, wall times on one core, and
all three per request of the site's traffic (the evaluation's ``carbon_g_per_request`` and
``bound_g_per_request``; docs/design.md §11).

    python bench/site_bound_gap.py --preset sites_quick --days 1
    python bench/site_bound_gap.py --preset sites_paper --days 1 --sites 0
    python bench/site_bound_gap.py --preset sites_quick --day 6     # the first held-out day
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")  # "on one core"

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aolo.envs.rollout import spread_days  # noqa: E402
from aolo.envs.site_env import SiteEnv  # noqa: E402
from aolo.envs.site_reference import (  # noqa: E402
    SiteOutcome,
    SiteProblem,
    SiteStateBound,
    _best_powers,
    _pick,
    block_moves,
    score_site_plan,
    site_problem,
    site_state_bound,
    solve_site_hindsight,
)
from aolo.platform.presets import load_experiment  # noqa: E402


def steered_plan(problem: SiteProblem, bound: SiteStateBound) -> SiteOutcome:
    """A feasible plan built on the state bound's cheapest path (a diagnostic upper bound on the optimum): the
    Lagrangian's answers, shortened where an epoch's load exceeds its level's top on the path (the agent losing
    the least QoE per token first), then each agent short of ``q_min`` lengthened where the path leaves room
    (most QoE per token over the site's carbon intensity first); scored exactly."""
    p, choice = problem, bound.primal_choice.copy()
    U, T, K = p.load_tokens.shape
    agents, epochs = np.arange(U), np.arange(T)
    cap = bound.load_cap_tokens * (1 - 1e-6)
    load = lambda c: _pick(p.load_tokens, c).sum(axis=0)  # noqa: E731
    for t in range(T):
        while load(choice)[t] > cap[t] and (choice[:, t] > 0).any():
            shorter = np.maximum(choice[:, t] - 1, 0)
            lost_q = p.qoe[agents, t, choice[:, t]] - p.qoe[agents, t, shorter]
            saved = p.load_tokens[agents, t, choice[:, t]] - p.load_tokens[agents, t, shorter]
            u = np.argmin(np.where(choice[:, t] > 0, lost_q / np.maximum(saved, 1e-9), np.inf))
            choice[u, t] -= 1
    for u in range(U):
        while _pick(p.qoe, choice)[u].mean() < p.q_min and (choice[u] < K - 1).any():
            longer = np.minimum(choice[u] + 1, K - 1)
            added = p.load_tokens[u, epochs, longer] - p.load_tokens[u, epochs, choice[u]]
            gain = p.qoe[u, epochs, longer] - p.qoe[u, epochs, choice[u]]
            can = (longer > choice[u]) & p.valid[u, epochs, longer]
            room = can & (added <= cap - load(choice))
            score = gain / np.maximum(added, 1e-9) / p.ci_dc_g_per_kwh
            choice[u, int(np.argmax(np.where(room if room.any() else can, score, -np.inf)))] += 1
    return score_site_plan(p, choice, _best_powers(p, choice))


def gap(played_g: float, bound_g: float) -> str:
    return f"{bound_g:.2f} ({100 * (played_g / bound_g - 1):+.2f} %)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sites_quick")
    parser.add_argument("--days", type=int, default=1, help="held-out days per site (evaluation spread)")
    parser.add_argument("--sites", type=int, nargs="*", help="site indices (default: all)")
    parser.add_argument("--evaluation-days", type=int, default=4, help="the preset's days_per_cell spread")
    parser.add_argument("--day", type=int, nargs="*", help="these held-out days instead of the spread")
    parser.add_argument("--cold", action="store_true", help="also the state bound searched from scratch")
    parser.add_argument("--steer", action="store_true", help="also a feasible plan built on the bound's path")
    args = parser.parse_args()
    scenario = load_experiment(args.preset).scenario
    sites = args.sites if args.sites else range(len(scenario.sites))
    print("site day | played g | level bound g (gap) | state bound g (gap) [s] | times: plan, state bound")
    for s in sites:
        env = SiteEnv({"scenario": scenario, "site_index": s, "split": "heldout"})
        days = args.day if args.day else spread_days(env.days["heldout"], args.evaluation_days)[: args.days]
        for day in days:
            env.reset(seed=int(day), options={"day": int(day), "split": "heldout"})
            problem = site_problem(env)
            start = time.perf_counter()
            plan = solve_site_hindsight(problem)
            plan_s = time.perf_counter() - start
            start = time.perf_counter()
            state = site_state_bound(problem, multipliers=plan.bound.qoe_multiplier, qoe_steps=8)
            state_s = time.perf_counter() - start
            played, level = plan.outcome.total_carbon_g, plan.bound.bound_g
            line = f"{scenario.sites[s].name} {int(day)} | {played:.2f} | {gap(played, level)}"
            line += f" | {gap(played, state.bound_g)} | {plan_s:.1f} s, {state_s:.1f} s"
            if args.steer:
                steered = steered_plan(problem, state)
                above = 100 * (steered.total_carbon_g / state.bound_g - 1)
                line += f" | steered {steered.total_carbon_g:.2f} ({above:+.2f} % above the state bound,"
                line += f" feasible {steered.feasible.sum()}/{problem.num_agents})"
                if not steered.feasible.all():  # block moves from it, as the hindsight plan's repair
                    steered, _ = block_moves(problem, steered)
                    above = 100 * (steered.total_carbon_g / state.bound_g - 1)
                    line += f", block moves {steered.total_carbon_g:.2f} ({above:+.2f} %,"
                    line += f" feasible {steered.feasible.sum()}/{problem.num_agents})"
            if args.cold:
                start = time.perf_counter()
                cold = site_state_bound(problem)
                line += f" | cold {gap(played, cold.bound_g)} {time.perf_counter() - start:.1f} s"
            requests = sum(float(v.sum()) for v in env.site_day.volume)
            per_request = ", ".join(f"{1e3 * g / requests:.4f}" for g in (played, level, state.bound_g))
            print(line, f"| mg/request (played, level, state) {per_request} | feasible {plan.outcome.feasible.all()}")


if __name__ == "__main__":
    main()
