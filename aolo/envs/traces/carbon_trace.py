"""The carbon-intensity trace type: :class:`CarbonTrace`, its day split and summary statistics (docs/design.md §3.1).

Days are 24-hour blocks counted from the first value of the trace; day ``d`` is held out for evaluation iff
``d % HELDOUT_EVERY == HELDOUT_EVERY - 1`` (days 6, 13, 20, ...), all others are training days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from aolo.errors import TraceError

HELDOUT_EVERY = 7
ACCOUNTINGS = ("direct", "life-cycle")
SECONDS_PER_HOUR = 3600
MAX_LISTED = 5  # how many offending rows an error message lists
VALUE_FORM = "a finite number >= 0 (gCO2eq/kWh)"


def check_accounting(accounting: str, where: str) -> None:
    """Raise a TraceError unless ``accounting`` is one of :data:`ACCOUNTINGS`."""
    if accounting not in ACCOUNTINGS:
        raise TraceError(f"{where}: accounting {accounting!r} is unknown; expected one of {ACCOUNTINGS}")


def _autocorr(x: np.ndarray, lag: int) -> float:
    """Sample autocorrelation at ``lag`` (standard estimator: global mean, lag-0 denominator)."""
    if x.size <= lag:
        return math.nan
    dev = x - x.mean()
    denom = float(dev @ dev)
    return float(dev[:-lag] @ dev[lag:]) / denom if denom > 0.0 else math.nan


@dataclass(frozen=True, eq=False)
class CarbonTrace:
    """Hourly grid carbon intensity.

    Attributes:
        name: zone or archetype label, e.g. ``"DE"`` or ``"synthetic:wind_coal"``.
        start_unix_s: UTC timestamp (s) of the first hourly value.
        gco2_per_kwh: hourly carbon intensity, gCO2eq/kWh; value ``i`` holds for the hour starting at
            ``start_unix_s + 3600 i``. Stored as a read-only float64 array.
        source: file path the values were read from, or ``"synthetic"``.
        accounting: ``"direct"`` (operational, combustion only) or ``"life-cycle"``.
    """

    name: str
    start_unix_s: int
    gco2_per_kwh: np.ndarray
    source: str
    accounting: str = "direct"

    def __post_init__(self) -> None:
        where = f"CarbonTrace {self.name!r} ({self.source})"
        if self.accounting not in ACCOUNTINGS:
            raise TraceError(f"{where}: field 'accounting' is {self.accounting!r}; expected one of {ACCOUNTINGS}")
        values = np.array(self.gco2_per_kwh, dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise TraceError(f"{where}: field 'gco2_per_kwh' has shape {values.shape}; expected a non-empty 1-D array")
        bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0.0)))
        if bad.size:
            listed = ", ".join(f"hour {i} ({float(values[i])!r})" for i in bad[:MAX_LISTED])
            raise TraceError(f"{where}: {bad.size} invalid values in 'gco2_per_kwh' at {listed}; expected {VALUE_FORM}")
        values.flags.writeable = False
        object.__setattr__(self, "gco2_per_kwh", values)
        object.__setattr__(self, "start_unix_s", int(self.start_unix_s))

    @property
    def n_hours(self) -> int:
        """Number of hourly values."""
        return int(self.gco2_per_kwh.size)

    @property
    def n_days(self) -> int:
        """Number of whole 24-hour days covered (a trailing partial day is not counted)."""
        return self.n_hours // 24

    def values_at(self, hours: np.ndarray) -> np.ndarray:
        """Carbon intensity (gCO2eq/kWh) at ``hours`` (float hours since ``start_unix_s``).

        Linear interpolation between the hourly points (value ``i`` sits at hour ``i``); times before
        the start take the first value, times past the last point hold the last value.
        """
        grid_h = np.arange(self.n_hours, dtype=np.float64)
        return np.interp(np.asarray(hours, dtype=np.float64), grid_h, self.gco2_per_kwh)

    def train_days(self) -> np.ndarray:
        """Indices of the whole days used for training (all days that are not held out)."""
        days = np.arange(self.n_days)
        return days[days % HELDOUT_EVERY != HELDOUT_EVERY - 1]

    def heldout_days(self) -> np.ndarray:
        """Indices of the held-out evaluation days: ``d % HELDOUT_EVERY == HELDOUT_EVERY - 1``."""
        days = np.arange(self.n_days)
        return days[days % HELDOUT_EVERY == HELDOUT_EVERY - 1]

    def stats(self) -> dict[str, float]:
        """Summary statistics (the calibration targets of the synthetic archetypes).

        Keys: ``mean_gco2_per_kwh``, ``p5_gco2_per_kwh``, ``p95_gco2_per_kwh`` (linear-interpolated
        percentiles), ``daily_range_gco2_per_kwh`` (mean over whole days of max - min),
        ``lag1_autocorr`` and ``lag24_autocorr`` (hourly lags). Undefined entries are NaN.
        """
        x = self.gco2_per_kwh
        days = x[: self.n_days * 24].reshape(self.n_days, 24)
        p5, p95 = np.percentile(x, [5.0, 95.0])
        return {
            "mean_gco2_per_kwh": float(x.mean()),
            "p5_gco2_per_kwh": float(p5),
            "p95_gco2_per_kwh": float(p95),
            "daily_range_gco2_per_kwh": float(np.ptp(days, axis=1).mean()) if self.n_days else math.nan,
            "lag1_autocorr": _autocorr(x, 1),
            "lag24_autocorr": _autocorr(x, 24),
        }
