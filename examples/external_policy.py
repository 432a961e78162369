"""A heuristic written against aolo's policy protocol (docs/benchmark.md), scored with

    python -m aolo evaluate --preset quick --policy examples.external_policy:CleanHoursHeuristic

Rule: each answer's QoE shortfall 1 - Q is the shortfall the rest of the user's day may still have (so that
the day ends at the mean-QoE rule Q_min), scaled up for long reference answers (their QoE costs more tokens)
and when the grid is dirtier than its forecast day mean; sent at the power of least radio carbon per bit.
"""

import numpy as np


class CleanHoursHeuristic:
    name = "clean_hours"

    def __init__(self, margin: float = 0.006):
        self.margin = margin  # aim this far above Q_min

    def begin_episode(self, info):
        self.model, self.epochs = info.model, info.epochs
        service = info.model.scenario.service
        self.q_target = service.q_min + self.margin
        self.q_low, self.q_high = service.q_floor, service.q_max_effective
        _, ref_tokens = info.model.workload.sample(np.random.default_rng(0), 10_000)
        self.mean_ref_tokens = ref_tokens.mean()  # the workload's known distribution, not this day's requests

    def act(self, obs):
        t = obs.epoch
        # carbon now relative to the forecast day mean, datacenter and radio weighted alike
        dirt = 0.5 * np.log(obs["ci_dc_g_per_kwh"] / obs["ci_dc_day_mean_g_per_kwh"]) + 0.5 * np.log(
            obs["ci_cell_g_per_kwh"] / obs["ci_cell_day_mean_g_per_kwh"]
        )
        # the mean QoE the rest of the day needs to end at q_target
        needed = (self.epochs * self.q_target - obs["qoe_day_sum"]) / (self.epochs - t)
        shortfall = (1.0 - needed) * obs["request_ref_tokens"] / self.mean_ref_tokens * np.exp(dirt)
        q = np.clip(1.0 - shortfall, self.q_low, self.q_high)
        # the least answer length reaching q: QoE = 1 - exp(-alpha kappa / L_ref)
        alpha = self.model.scenario.service.qoe_alpha
        kappa = np.ceil(-np.log1p(-q) * obs["request_ref_tokens"] / alpha)
        power_w = 10.0 ** ((obs["power_centre_dbm"] - 30.0) / 10.0)
        return self.model.action_for(obs, kappa, power_w)
