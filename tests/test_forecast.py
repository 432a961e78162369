"""Carbon-intensity forecasts (aolo.envs.forecast): perfect = truth, noisy reproducible with the configured MAPE."""

from __future__ import annotations

import numpy as np
import pytest

from aolo.envs.cell_env import CellEnv
from aolo.envs.config import ConfigError, ForecastConfig, ScenarioConfig
from aolo.envs.forecast import horizon_sigma, lognormal_mape, make_forecasts, sigma_for_mape


def _env(kind: str, seed: int = 0) -> CellEnv:
    scenario = ScenarioConfig().replace(**{"forecast.kind": kind, "forecast.seed": seed})
    return CellEnv({"scenario": scenario, "cell_index": 0})


def test_sigma_calibration() -> None:
    assert lognormal_mape(0.0) == 0.0
    # hand value: σ = 0.1 → e^{0.005} (2Φ(0.1) − 1) = 1.005013 · 0.0796557 = 0.080055
    assert lognormal_mape(0.1) == pytest.approx(0.080055, rel=1e-4)
    assert lognormal_mape(sigma_for_mape(0.13)) == pytest.approx(0.13, rel=1e-9)
    cfg = ForecastConfig(kind="noisy", mape_24h=0.13, growth=0.5)
    np.testing.assert_allclose(
        horizon_sigma(cfg, [0.0, 6.0, 24.0]), [0.0, 0.5 * sigma_for_mape(0.13), sigma_for_mape(0.13)]
    )


def test_perfect_is_truth() -> None:
    env = _env("perfect")
    env.reset(options={"day": 3})
    ep = env.episode
    h = np.arange(96) * 0.25 + 3 * 24.0
    own = lambda x: np.minimum(x, 3 * 24.0 + 23.0)  # noqa: E731
    np.testing.assert_allclose(ep.forecast_cell_g_per_kwh[:, 0], env.trace_cell.values_at(own(h + 1.0)))
    np.testing.assert_allclose(ep.forecast_cell_g_per_kwh[:, 1], env.trace_cell.values_at(own(h + 3.0)))
    np.testing.assert_allclose(ep.forecast_dc_g_per_kwh[:, 2], ep.ci_dc_g_per_kwh.mean())
    np.testing.assert_allclose(np.exp(ep.ci_features[:, 0]) * 100.0, ep.ci_cell_g_per_kwh, rtol=1e-12)


def test_noisy_reproducible_and_now_exact() -> None:
    a, b, c = _env("noisy", 0), _env("noisy", 0), _env("noisy", 1)
    for env in (a, b, c):
        env.reset(seed=5 if env is b else 0, options={"day": 3})  # the env seed does not move the forecast
    np.testing.assert_array_equal(a.episode.forecast_cell_g_per_kwh, b.episode.forecast_cell_g_per_kwh)
    assert not np.allclose(a.episode.forecast_cell_g_per_kwh, c.episode.forecast_cell_g_per_kwh)
    np.testing.assert_array_equal(a.episode.ci_cell_g_per_kwh, c.episode.ci_cell_g_per_kwh)  # truth untouched
    np.testing.assert_allclose(
        np.exp(a.episode.ci_features[:, 1:4]) * 100.0, a.episode.forecast_cell_g_per_kwh, rtol=1e-9
    )  # the observation shows the noisy forecasts


def test_noisy_mape_per_horizon() -> None:
    cfg = ForecastConfig(kind="noisy", mape_24h=0.13)
    T, n_days = 96, 400
    truth = np.full(T, 200.0)
    errs = np.array(
        [make_forecasts(cfg, truth, [truth, truth], 900.0, (0, 0, d, 0))[:, :2] / 200.0 - 1.0 for d in range(n_days)]
    )  # (days, T, 2)
    mape = np.abs(errs).mean(axis=(0, 1))
    expected = [lognormal_mape(s) for s in horizon_sigma(cfg, [1.0, 3.0])]  # 2.6 %, 4.5 %
    # AR(1)-correlated samples: ≈ n_days · T / (2 · 24 epochs) effective samples, sd of |e| ≈ 0.75 mean → ±5 %
    np.testing.assert_allclose(mape, expected, rtol=0.08)
    # the day-mean column at epoch 0 forecasts 95 epochs 24 h ahead: its error is the AR(1) mean's, far below 13 %
    day = np.array([make_forecasts(cfg, truth, [truth, truth], 900.0, (0, 0, d, 0))[0, 2] for d in range(n_days)])
    assert 0.01 < np.abs(day / 200.0 - 1.0).mean() < 0.13


def test_forecast_validation() -> None:
    with pytest.raises(ConfigError, match="forecast.kind"):
        ScenarioConfig().replace(**{"forecast.kind": "oracle"})
    with pytest.raises(ConfigError, match="forecast.mape_24h"):
        ScenarioConfig.from_dict({"forecast": {"kind": "noisy", "mape_24h": 2.0}})
