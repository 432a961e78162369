"""The carbon-intensity trace type: :class:`CarbonTrace`, its day split and summary statistics (docs/design.md §3.1).

Days are 24-hour blocks counted from the first value of the trace; day ``d`` is held out for evaluation iff
``d % HELDOUT_EVERY == HELDOUT_EVERY - 1`` (days 6, 13, 20, ...), all others are training days. The environment
reads hour ``h`` of a day as the UTC hour of day, so a file must start at 00:00 UTC (:func:`check_start`).
Value ``i`` holds for the whole hour starting at ``start_unix_s + 3600 i`` (:meth:`CarbonTrace.values_at`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from aolo.errors import TraceError

HELDOUT_EVERY = 7
ACCOUNTINGS = ("direct", "life-cycle")
SECONDS_PER_HOUR = 3600
MAX_LISTED = 5  # how many offending rows an error message lists
VALUE_FORM = "a finite number >= 0 (gCO2eq/kWh)"
#: The plausible range of grid carbon intensity [gCO2eq/kWh] a trace file's values must lie in (default of
#: ``scenario.carbon_intensity_max_g_per_kwh``): the dirtiest grids average ≈ 700-1 100 direct and lignite plants
#: reach ≈ 1 200 life-cycle, so 2 500 leaves room for any real hour while refusing files in mg/kWh (× 1 000).
MAX_G_PER_KWH = 2500.0
#: A whole trace peaking below this [gCO2eq/kWh] looks like kg/kWh (a warning, not an error: a pure hydro or
#: nuclear zone under direct accounting can be that clean).
KG_LIKE_PEAK_G_PER_KWH = 2.5
_HOUR_TOLERANCE = 1e-6  #: hours; see CarbonTrace.values_at


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

        Value ``i`` holds for the whole hour ``[i, i + 1)``, as the source files define it (an hourly value is
        the mean over the hour its timestamp starts; sub-hourly samples are averaged the same way): no
        interpolation, so a request at :15 is priced at its own hour's intensity. Times before the start take
        the first value, times past the end the last. (A millionth of an hour of tolerance keeps an epoch at
        an exact hour in that hour despite float rounding.)
        """
        index = np.floor(np.asarray(hours, dtype=np.float64) + _HOUR_TOLERANCE).astype(np.int64)
        return self.gco2_per_kwh[np.clip(index, 0, self.n_hours - 1)]

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


def check_start(trace: CarbonTrace) -> None:
    """Raise a TraceError unless ``trace`` starts at 00:00 UTC: hours are counted from its first value and read as
    the UTC hour of day (the workload's daily profile, a solar grid's noon), so a file starting at 05:00 would
    be paired 5 h off with every other trace."""
    if trace.start_unix_s % 86_400:
        raise TraceError(
            f"{trace.source}: first timestamp {_utc(trace.start_unix_s)}; a trace must start at 00:00 UTC (its "
            f"hours are read as UTC hours of day and paired hour by hour with the other traces); drop the rows "
            f"before midnight UTC"
        )


def check_paired(grid: CarbonTrace, datacenter: CarbonTrace, cell: str) -> None:
    """Raise a TraceError unless a cell's base-station and datacenter traces start at the same UTC instant: the
    environment reads them hour by hour together (hour ``h`` of one is hour ``h`` of the other)."""
    if grid.start_unix_s != datacenter.start_unix_s:
        raise TraceError(
            f"cell {cell!r}: its grid trace {grid.source} starts {_utc(grid.start_unix_s)} but its datacenter "
            f"trace {datacenter.source} starts {_utc(datacenter.start_unix_s)}; a cell's two traces are paired "
            f"hour by hour, so they must start at the same UTC instant (use traces of the same year)"
        )


def _utc(unix_s: int) -> str:
    return datetime.fromtimestamp(unix_s, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
