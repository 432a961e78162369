"""Carbon-intensity forecasts seen by the agent and the causal references (docs/design.md §3.3, forecasts).

``perfect``: the forecasts are the truth. ``noisy``: a forecast of horizon ``h`` hours is the truth times a
log-normal error, ``F = CI(t + h) · exp(σ(h) ε)``, with ``σ(h) = σ_24 (h / 24)^growth`` (≈ 0 now, growing with
the horizon) and ``ε`` a unit-variance AR(1) process over the epochs (correlation time ``correlation_hours``),
so errors persist as real forecast errors do. ``σ_24`` is set so the 24 h (day-ahead) MAPE equals
``mape_24h``: for ``Z ~ N(0, 1)``, ``E|e^{σZ} - 1| = e^{σ²/2} (2Φ(σ) - 1)``.

Calibration: CarbonX (arXiv 2510.01521) reports a day-ahead carbon-intensity MAPE of 15.8 % zero-shot over
214 grids and 9.6 % on the benchmark grids; the default ``mape_24h = 0.13`` sits between them.

Every value comes from the episode's own day (the look-aheads hold the day's last hourly value, see
``CellEnv._draw_episode``), and the error draw is a function of ``(seed, cell, day)`` only: every env copy
and every policy sees the same forecast of a given day. The hindsight oracle reads the truth.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from aolo.envs.config import ForecastConfig

#: forecast columns of ``Episode.forecast_*_g_per_kwh``: 1 h ahead, 3 h ahead, the day-mean forecast
FORECAST_COLUMNS = ("1h", "3h", "day_mean")
FORECAST_HOURS = (1.0, 3.0)


def lognormal_mape(sigma: float) -> float:
    """``E|exp(σ Z) - 1|`` for ``Z ~ N(0, 1)``."""
    return math.exp(0.5 * sigma * sigma) * (2.0 * float(ndtr(sigma)) - 1.0)


def sigma_for_mape(mape: float) -> float:
    """The log-error standard deviation whose MAPE is ``mape`` (bisection; MAPE increases with σ)."""
    lo, hi = 0.0, 3.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if lognormal_mape(mid) < mape else (lo, mid)
    return 0.5 * (lo + hi)


def horizon_sigma(cfg: ForecastConfig, hours) -> np.ndarray:
    """``σ(h)`` of the log error of a forecast ``hours`` ahead."""
    return sigma_for_mape(cfg.mape_24h) * (np.asarray(hours, dtype=np.float64) / 24.0) ** cfg.growth


def ar1_noise(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    """A stationary unit-variance AR(1) sequence of length ``n``."""
    eps = rng.standard_normal(n)
    out = np.empty(n)
    out[0] = eps[0]
    scale = math.sqrt(max(1.0 - rho * rho, 0.0))
    for i in range(1, n):
        out[i] = rho * out[i - 1] + scale * eps[i]
    return out


def make_forecasts(
    cfg: ForecastConfig, now: np.ndarray, ahead: list[np.ndarray], epoch_s: float, seed_key: tuple[int, ...]
) -> np.ndarray:
    """(T, 3) forecasts [g/kWh]: ``ahead`` = the true values 1 h and 3 h ahead (T,) each, ``now`` the truth.

    The day-mean column at epoch ``t`` averages the observed past (``now[:t + 1]``) and a day-ahead forecast
    (horizon 24 h) of the remaining epochs. ``seed_key`` (e.g. ``(seed, cell, day, index)``) fixes the draw."""
    T = len(now)
    truths = [*ahead, now]
    if cfg.kind == "perfect":
        profile = now
        cols = list(ahead)
    else:
        rng = np.random.default_rng(list(seed_key))
        rho = math.exp(-epoch_s / (3600.0 * cfg.correlation_hours))
        sig = horizon_sigma(cfg, [*FORECAST_HOURS, 24.0])
        noisy = [x * np.exp(s * ar1_noise(rng, T, rho)) for x, s in zip(truths, sig, strict=True)]
        cols, profile = noisy[:2], noisy[2]
    past = np.cumsum(now)
    future = np.cumsum(profile[::-1])[::-1]  # Σ_{s ≥ t} profile_s
    rest = np.append(future[1:], 0.0)  # Σ_{s > t}
    day_mean = (past + rest) / T
    return np.stack([*cols, day_mean], axis=1)
