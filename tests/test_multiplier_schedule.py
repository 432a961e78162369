"""Measuring the constraints every k iterations: the multipliers take the steps of a per-iteration measurement."""

from __future__ import annotations

import numpy as np
import pytest

from aolo.envs.config import ConfigError
from aolo.platform.algorithms import build_algorithm_config
from aolo.platform.constraints import (
    DAY_KEYS,
    ConstraintSettings,
    PIDGains,
    PIDLagrangian,
    _LagrangianMixin,
)
from aolo.platform.presets import load_experiment

GAINS = PIDGains(initial=1.0, target=0.0, kp=2.0, ki=1.0)


def test_every_other_iteration_reaches_the_per_iteration_multipliers() -> None:
    # hand-computed: costs 0.5, 0.5, -0.25, -0.25 measured every iteration (I and λ = 2e + I) ...
    every = PIDLagrangian(GAINS)
    assert [every.update(c) for c in (0.5, 0.5, -0.25, -0.25)] == [2.5, 3.0, 1.25, 1.0]
    # ... and measured every 2nd iteration: I = 1 + 2 * 0.5 = 2, λ = 1 + 2 = 3; I = 2 - 2 * 0.25 = 1.5, λ = 1
    sparse = PIDLagrangian(GAINS)
    assert [sparse.update(c, iterations=2) for c in (0.5, -0.25)] == [3.0, 1.0]
    assert sparse.integral == every.integral == 1.5


class _RLlibStub:
    """Stands in for RLlib's Algorithm: evaluation results on iterations (i + 1) % k == 0, as RLlib's step()."""

    def __init__(self, costs: list[float], every: int) -> None:
        self.iteration, self.costs, self.every = 0, costs, every
        self.learner_group = type("LearnerGroup", (), {"foreach_learner": lambda self, fn: []})()

    def step(self) -> dict:
        cost = self.costs[self.iteration]
        evaluation = {"aolo_user_days": 2.0, f"aolo_{DAY_KEYS['qoe']}_sum": 2 * cost}
        evaluation[f"aolo_{DAY_KEYS['latency']}_sum"] = 0.0
        # a result without a measurement must not move λ, even if stale evaluation numbers are around
        return {"evaluation": {"env_runners": evaluation}}


class _Algo(_LagrangianMixin, _RLlibStub):
    def __init__(self, costs: list[float], every: int) -> None:
        _RLlibStub.__init__(self, costs, every)
        self.aolo_pid = {"qoe": PIDLagrangian(GAINS), "latency": PIDLagrangian(GAINS)}
        self.aolo_measure_every = every


def _lambdas(costs: list[float], every: int) -> list[float]:
    algo, out = _Algo(costs, every), []
    for _ in costs:
        out.append(algo.step()["constraints"]["lambda_qoe"])
        algo.iteration += 1
    return out


def test_algorithm_updates_the_multipliers_on_measured_iterations_only() -> None:
    costs = [9.0, 0.5, 9.0, -0.25]  # iterations 1 and 3 are not measured with k = 2: their 9.0 is never seen
    assert _lambdas(costs, every=2) == [1.0, 3.0, 3.0, 1.0]
    assert _lambdas([0.5, 0.5, -0.25, -0.25], every=1) == [2.5, 3.0, 1.25, 1.0]
    stats = _Algo(costs, every=2).step()["constraints"]
    assert stats["user_days"] == 0.0 and np.isnan(stats["cost_qoe_day_mean"])


@pytest.mark.parametrize(("every", "days"), [(1, 1), (3, 1), (1, 3)])
def test_measurement_schedule_reaches_rllibs_evaluation_config(every: int, days: int) -> None:
    """Every k-th iteration, n measured days per cell: n episodes of every env copy (one copy per cell),
    deterministic."""
    experiment = load_experiment("smoke")
    constraints = ConstraintSettings(method="lagrangian", measure_every=every, measure_days=days)
    config = build_algorithm_config("sac", experiment.scenario, settings=experiment.training, constraints=constraints)
    assert config.evaluation_interval == every
    assert config.num_envs_per_env_runner == len(experiment.scenario.cells)
    assert config.evaluation_duration == days * len(experiment.scenario.cells)
    assert config.evaluation_duration_unit == "episodes"
    assert config.evaluation_config["explore"] is False


@pytest.mark.parametrize("bad", [0, 101, 1.5, True, "2"])
def test_measure_every_is_validated(bad) -> None:
    with pytest.raises(ConfigError, match=r"constraints.measure_every: must be an integer in \[1, 100\]"):
        ConstraintSettings.from_dict({"method": "lagrangian", "measure_every": bad})


@pytest.mark.parametrize("bad", [0, 21, 2.0, False, "3"])
def test_measure_days_is_validated(bad) -> None:
    with pytest.raises(ConfigError, match=r"constraints.measure_days: must be an integer in \[1, 20\]"):
        ConstraintSettings.from_dict({"method": "lagrangian", "measure_days": bad})
