"""Hourly grid carbon-intensity traces (DESIGN.md §3.1).

A :class:`CarbonTrace` is an hourly series of grid carbon intensity in gCO2(eq)/kWh that the cell
environments read at each epoch's wall-clock time (:meth:`CarbonTrace.values_at`). Traces come from

* Electricity Maps hourly CSV exports (2023 and 2024+ header vintages; direct or life-cycle column),
* the GB national Carbon Intensity API (NESO) JSON, half-hourly slots averaged to hours,
* a plain ``timestamp,gco2_per_kwh`` CSV,
* five synthetic archetypes calibrated to the Electricity Maps 2023 traces of IN-WE, DE,
  US-CAL-CISO, FR and NO (used when the real files are absent, and for seeds of unseen weather).

:func:`load_trace` resolves a config string (``"zone:DE"``, ``"synthetic:hydro"``, a file path) to a
cached trace. Every bad input raises :class:`TraceError`; its message names the file, the line
(CSV, header = line 1) or entry (JSON, 1-based), the column or field, and the expected form.

Days are 24-hour blocks counted from the first value of the trace; day ``d`` is held out for
evaluation iff ``d % HELDOUT_EVERY == HELDOUT_EVERY - 1`` (days 6, 13, 20, ...), all others are
training days.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from aolo.errors import TraceError  # re-exported: aolo.envs.traces.TraceError

HELDOUT_EVERY = 7
ACCOUNTINGS = ("direct", "life-cycle")
SECONDS_PER_HOUR = 3600
_US_PER_S = 1_000_000
_US_PER_HOUR = SECONDS_PER_HOUR * _US_PER_S
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = timedelta(microseconds=1)
_MAX_LISTED = 5  # how many offending rows an error message lists
_TIMESTAMP_FORM = "ISO-8601, e.g. '2023-01-01 00:00:00' or '2023-01-01T00:00Z' (naive = UTC)"
_VALUE_FORM = "a finite number >= 0 (gCO2eq/kWh)"


# --------------------------------------------------------------------------------------------
# The trace
# --------------------------------------------------------------------------------------------


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
            listed = ", ".join(f"hour {i} ({float(values[i])!r})" for i in bad[:_MAX_LISTED])
            raise TraceError(
                f"{where}: {bad.size} invalid values in 'gco2_per_kwh' at {listed}; expected {_VALUE_FORM}"
            )
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
        """Summary statistics with the definitions of data-notes §1.1.

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


# --------------------------------------------------------------------------------------------
# Shared parsing helpers
# --------------------------------------------------------------------------------------------


def _parse_utc_us(text: str) -> int:
    """ISO-8601 timestamp -> integer microseconds since the Unix epoch (naive means UTC).

    Raises ValueError when ``text`` is not ISO-8601.
    """
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    stamp = datetime.fromisoformat(s)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return (stamp - _EPOCH) // _ONE_US


def _format_us(t_us: int) -> str:
    return (_EPOCH + timedelta(microseconds=int(t_us))).strftime("%Y-%m-%d %H:%M:%S UTC")


def _check_values(values: np.ndarray, raw: Sequence[object], locate: Callable[[int], str], where: str) -> None:
    """Raise a TraceError listing how many and which values are NaN, missing or negative."""
    bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0.0)))
    if bad.size:
        listed = ", ".join(f"{locate(int(i))} ({raw[i]!r})" for i in bad[:_MAX_LISTED])
        more = f" and {bad.size - _MAX_LISTED} more" if bad.size > _MAX_LISTED else ""
        raise TraceError(f"{where}: {bad.size} invalid values: {listed}{more}; expected {_VALUE_FORM}")


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _regular_to_hourly(
    times_us: np.ndarray, values: np.ndarray, locate: Callable[[int], str], where: str
) -> tuple[int, np.ndarray]:
    """Check that samples are strictly increasing and regularly spaced; average them to hours.

    The sampling step is the most common spacing and must divide one hour (hourly, 30 min, 5 min,
    ...); each hourly value is the mean of the ``3600 s / step`` samples starting at it, counted from
    the first timestamp. Returns (start_unix_s, hourly values).
    """
    steps_us = np.diff(times_us)
    backwards = np.flatnonzero(steps_us <= 0)
    if backwards.size:
        i = int(backwards[0])
        kind = "duplicate" if steps_us[i] == 0 else "non-increasing"
        raise TraceError(
            f"{where}: {kind} timestamps: {locate(i)} ({_format_us(times_us[i])}) then "
            f"{locate(i + 1)} ({_format_us(times_us[i + 1])}); expected strictly increasing times"
        )
    if steps_us.size == 0:
        return int(times_us[0] // _US_PER_S), values
    uniq, counts = np.unique(steps_us, return_counts=True)
    step_us = int(uniq[np.argmax(counts)])
    if _US_PER_HOUR % step_us:
        raise TraceError(
            f"{where}: samples are {step_us / _US_PER_S:g} s apart; expected hourly or a regular "
            "sub-hourly step that divides 3600 s (e.g. 1800, 900, 300 s)"
        )
    irregular = np.flatnonzero(steps_us != step_us)
    if irregular.size:
        listed = ", ".join(
            f"{locate(int(i))} ({_format_us(times_us[i])}) -> {locate(int(i) + 1)} "
            f"({_format_us(times_us[i + 1])})"
            for i in irregular[:_MAX_LISTED]
        )
        raise TraceError(
            f"{where}: {irregular.size} gaps or irregular steps: {listed}; expected a sample every "
            f"{step_us / _US_PER_S:g} s"
        )
    per_hour = _US_PER_HOUR // step_us
    if values.size % per_hour:
        raise TraceError(
            f"{where}: {values.size} samples at {step_us / _US_PER_S:g} s do not fill whole hours "
            f"(expected a multiple of {per_hour})"
        )
    return int(times_us[0] // _US_PER_S), values.reshape(-1, per_hour).mean(axis=1)


def _read_csv(path: Path) -> tuple[list[str], list[int], list[list[str]]]:
    """Read a UTF-8 (optionally BOM-prefixed) CSV with LF or CRLF line ends.

    Returns (header, line number of each data row, data rows); blank rows are skipped.
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            lines: list[int] = []
            rows: list[list[str]] = []
            for row in reader:
                if any(cell.strip() for cell in row):
                    lines.append(reader.line_num)
                    rows.append(row)
    except FileNotFoundError:
        raise TraceError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise TraceError(f"{path}: byte {exc.start} is not valid UTF-8; expected a UTF-8 text file") from None
    except csv.Error as exc:
        raise TraceError(f"{path}: malformed CSV ({exc}); expected comma-separated values") from None
    if header is None or not any(cell.strip() for cell in header):
        raise TraceError(f"{path}: empty file; expected a header line followed by data rows")
    if not rows:
        raise TraceError(f"{path}: no data rows after the header (line 1); expected at least one row")
    return [cell.strip() for cell in header], lines, rows


def _find_column(header: list[str], matches: Callable[[str], bool]) -> int | None:
    return next((i for i, name in enumerate(header) if matches(name.lower())), None)


def _csv_columns(
    path: Path, header: list[str], lines: list[int], rows: list[list[str]], time_col: int, value_col: int
) -> tuple[np.ndarray, np.ndarray, Callable[[int], str]]:
    """Parse the timestamp and value columns of CSV rows into (times_us, values, locate)."""
    width = max(time_col, value_col) + 1

    def locate(i: int) -> str:
        return f"line {lines[i]}"

    times_us = np.empty(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        if len(row) < width:
            raise TraceError(
                f"{path}: {locate(i)} has {len(row)} fields; expected at least {width} (header has {len(header)})"
            )
        try:
            times_us[i] = _parse_utc_us(row[time_col])
        except ValueError:
            raise TraceError(
                f"{path}: {locate(i)}, column {header[time_col]!r}: cannot parse timestamp "
                f"{row[time_col]!r}; expected {_TIMESTAMP_FORM}"
            ) from None
    raw = [row[value_col] for row in rows]
    values = np.array([_to_float(text) for text in raw], dtype=np.float64)
    _check_values(values, raw, locate, f"{path}, column {header[value_col]!r}")
    return times_us, values, locate


def _check_accounting(accounting: str, where: str) -> None:
    if accounting not in ACCOUNTINGS:
        raise TraceError(f"{where}: accounting {accounting!r} is unknown; expected one of {ACCOUNTINGS}")


# --------------------------------------------------------------------------------------------
# File loaders
# --------------------------------------------------------------------------------------------


def _is_direct_column(name: str) -> bool:
    return "carbon intensity" in name and "direct" in name


def _is_lca_column(name: str) -> bool:
    return "carbon intensity" in name and ("life cycle" in name or "lifecycle" in name or "lca" in name)


def _is_electricity_maps_header(header: list[str]) -> bool:
    return any(_is_direct_column(n.lower()) or _is_lca_column(n.lower()) for n in header)


def load_electricity_maps_csv(path: str | os.PathLike[str], accounting: str = "direct") -> CarbonTrace:
    """Load an Electricity Maps hourly (or regular sub-hourly) CSV export.

    Accepts the 2023 header (``Carbon Intensity gCO₂eq/kWh (direct)`` / ``(LCA)``, ``Zone Id``) and
    the 2024+ one (``Carbon intensity gCO₂eq/kWh (direct)`` / ``(Life cycle)``, ``Zone id``); column
    names match case-insensitively. ``accounting`` picks the direct or the life-cycle column. The
    trace is named after the ``Zone Id`` of the first row (else the file name).
    """
    file = Path(path)
    _check_accounting(accounting, str(file))
    return _electricity_maps_trace(file, *_read_csv(file), accounting)


def _electricity_maps_trace(
    file: Path, header: list[str], lines: list[int], rows: list[list[str]], accounting: str
) -> CarbonTrace:
    time_col = _find_column(header, lambda n: n.startswith("datetime"))
    value_col = _find_column(header, _is_direct_column if accounting == "direct" else _is_lca_column)
    if time_col is None or value_col is None:
        wanted = "'Carbon Intensity gCO₂eq/kWh (direct)'" if accounting == "direct" else (
            "'Carbon Intensity gCO₂eq/kWh (LCA)' or '... (Life cycle)'"
        )
        raise TraceError(
            f"{file}: line 1 (header): missing column(s); expected 'Datetime (UTC)' and {wanted} "
            f"(case-insensitive) for accounting={accounting!r}; found {header}"
        )
    times_us, values, locate = _csv_columns(file, header, lines, rows, time_col, value_col)
    start_unix_s, hourly = _regular_to_hourly(times_us, values, locate, str(file))
    zone_col = _find_column(header, lambda n: n == "zone id")
    name = rows[0][zone_col].strip() if zone_col is not None and len(rows[0]) > zone_col else ""
    return CarbonTrace(name or file.stem, start_unix_s, hourly, str(file), accounting)


def load_plain_csv(path: str | os.PathLike[str], accounting: str = "direct") -> CarbonTrace:
    """Load a CSV with header ``timestamp,gco2_per_kwh`` (extra columns ignored).

    Timestamps are ISO-8601 (naive = UTC), hourly or a regular sub-hourly step that divides one hour
    (averaged to hours). ``accounting`` declares what the values are; the file cannot say.
    """
    file = Path(path)
    _check_accounting(accounting, str(file))
    return _plain_trace(file, *_read_csv(file), accounting)


def _plain_trace(
    file: Path, header: list[str], lines: list[int], rows: list[list[str]], accounting: str
) -> CarbonTrace:
    time_col = _find_column(header, lambda n: n == "timestamp")
    value_col = _find_column(header, lambda n: n == "gco2_per_kwh")
    if time_col is None or value_col is None:
        raise TraceError(
            f"{file}: line 1 (header): missing column(s); expected 'timestamp' and 'gco2_per_kwh'; found {header}"
        )
    times_us, values, locate = _csv_columns(file, header, lines, rows, time_col, value_col)
    start_unix_s, hourly = _regular_to_hourly(times_us, values, locate, str(file))
    return CarbonTrace(file.stem, start_unix_s, hourly, str(file), accounting)


def load_uk_carbon_intensity_json(path: str | os.PathLike[str], field: str = "actual") -> CarbonTrace:
    """Load a GB national Carbon Intensity API (NESO) response and average its half-hours to hours.

    Format: ``{"data": [{"from": "2023-01-01T00:00Z", "to": ..., "intensity": {"forecast": 146,
    "actual": 140, "index": "low"}}, ...]}``. ``field`` picks ``"actual"`` (every slot must have one)
    or ``"forecast"``. The API counts generation-related CO2 only, so the trace is ``"direct"``.
    """
    file = Path(path)
    if field not in ("actual", "forecast"):
        raise TraceError(f"{file}: field {field!r} is unknown; expected 'actual' or 'forecast'")
    try:
        with file.open(encoding="utf-8-sig") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        raise TraceError(f"{file}: file not found") from None
    except UnicodeDecodeError as exc:
        raise TraceError(f"{file}: byte {exc.start} is not valid UTF-8; expected a UTF-8 JSON file") from None
    except json.JSONDecodeError as exc:
        raise TraceError(f"{file}: line {exc.lineno}, column {exc.colno}: invalid JSON ({exc.msg})") from None
    slots = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(slots, list) or not slots:
        raise TraceError(f"{file}: expected a JSON object with a non-empty list 'data' of half-hour slots")

    def locate(i: int) -> str:
        return f"entry {i + 1}"

    times_us = np.empty(len(slots), dtype=np.int64)
    values = np.empty(len(slots), dtype=np.float64)
    nulls: list[int] = []
    for i, slot in enumerate(slots):
        intensity = slot.get("intensity") if isinstance(slot, dict) else None
        stamp = slot.get("from") if isinstance(slot, dict) else None
        if not isinstance(intensity, dict) or not isinstance(stamp, str):
            raise TraceError(
                f"{file}: {locate(i)} of 'data': expected an object with 'from' (string) and 'intensity' (object)"
            )
        try:
            times_us[i] = _parse_utc_us(stamp)
        except ValueError:
            raise TraceError(
                f"{file}: {locate(i)}, field 'from': cannot parse timestamp {stamp!r}; expected {_TIMESTAMP_FORM}"
            ) from None
        value = intensity.get(field)
        if value is None:
            nulls.append(i)
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        values[i] = float(value) if is_number else math.nan
    if nulls:
        listed = ", ".join(f"{locate(i)} (from {slots[i]['from']})" for i in nulls[:_MAX_LISTED])
        hint = "; load with field='forecast' to use the forecast" if field == "actual" else ""
        raise TraceError(
            f"{file}: {len(nulls)} of {len(slots)} slots have a null or missing 'intensity.{field}': "
            f"{listed}; expected a number{hint}"
        )
    raw = [slot["intensity"][field] for slot in slots]
    _check_values(values, raw, locate, f"{file}, field 'intensity.{field}'")
    start_unix_s, hourly = _regular_to_hourly(times_us, values, locate, str(file))
    return CarbonTrace("GB", start_unix_s, hourly, str(file), "direct")


# --------------------------------------------------------------------------------------------
# Synthetic archetypes
# --------------------------------------------------------------------------------------------

# Probability levels (%) of the embedded marginal quantile tables.
QUANTILE_LEVELS_PCT = (
    0.0, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0,
    55.0, 60.0, 65.0, 70.0, 75.0, 80.0, 85.0, 90.0, 95.0, 97.5, 99.0, 99.5, 100.0,
)  # fmt: skip


@dataclass(frozen=True)
class ArchetypeTargets:
    """Statistics of the real trace an archetype is calibrated to (definitions as CarbonTrace.stats)."""

    mean_gco2_per_kwh: float
    p5_gco2_per_kwh: float
    p95_gco2_per_kwh: float
    daily_range_gco2_per_kwh: float
    lag1_autocorr: float
    lag24_autocorr: float
    lca_mean_gco2_per_kwh: float


@dataclass(frozen=True)
class Archetype:
    """A synthetic grid: a latent Gaussian process mapped onto a real trace's marginal distribution.

    Latent (normal-score units): ``z_t = diurnal_z[UTC hour] + seasonal(t) + slow_std * S_t +
    fast_std * F_t``, where ``seasonal`` interpolates ``seasonal_z`` (mid-month anchors) cyclically
    and ``S``, ``F`` are independent unit-variance critically damped second-order Gauss-Markov
    processes with time constants ``slow_tau_h`` (weather, days) and ``fast_tau_h`` (hours). The
    year's values are the ranks of ``z`` mapped through the quantile table, so each realisation has
    the calibration trace's distribution exactly (up to the table's resolution) while its timing
    (diurnal shape, seasons, persistence) is random.
    """

    name: str
    zone: str
    description: str
    targets: ArchetypeTargets
    diurnal_z: tuple[float, ...]
    seasonal_z: tuple[float, ...]
    quantiles_direct_gco2_per_kwh: tuple[float, ...]
    quantiles_lca_gco2_per_kwh: tuple[float, ...]
    slow_std: float
    slow_tau_h: float
    fast_std: float
    fast_tau_h: float

    def __post_init__(self) -> None:
        for field, size in (
            ("diurnal_z", 24),
            ("seasonal_z", 12),
            ("quantiles_direct_gco2_per_kwh", len(QUANTILE_LEVELS_PCT)),
            ("quantiles_lca_gco2_per_kwh", len(QUANTILE_LEVELS_PCT)),
        ):
            if len(getattr(self, field)) != size:
                raise TraceError(f"archetype {self.name!r}: field {field!r} needs {size} values")
        for field in ("quantiles_direct_gco2_per_kwh", "quantiles_lca_gco2_per_kwh"):
            q = np.asarray(getattr(self, field))
            if q[0] < 0.0 or np.any(np.diff(q) < 0.0):
                raise TraceError(f"archetype {self.name!r}: field {field!r} must be non-negative and non-decreasing")
        if min(self.slow_std, self.fast_std) < 0.0 or min(self.slow_tau_h, self.fast_tau_h) <= 0.0:
            raise TraceError(f"archetype {self.name!r}: AR standard deviations must be >= 0 and time constants > 0")


# Diurnal/seasonal profiles, quantile tables and targets derived from Electricity Maps 2023 hourly
# data (ODbL 1.0, attribution "Electricity Maps"; files and commits in shared/data/SOURCES.md).
# diurnal_z / seasonal_z: mean normal score of each UTC hour / calendar month (centred);
# quantiles: percentiles of the direct and life-cycle columns at QUANTILE_LEVELS_PCT;
# slow/fast std and tau: least-squares fit of the simulated daily range and autocorrelations (lags
# 1, 3, 12, 24, 72, 168 h) to the real trace's, residuals of 16 seeds pooled (so that single
# realisations, not only their average, stay close to the targets).
ARCHETYPES: dict[str, Archetype] = {
    arch.name: arch
    for arch in (
        Archetype(
            name="coal_heavy",
            zone="IN-WE",
            description="coal-dominated, flat (Western India; Electricity Maps estimates, not measured)",
            targets=ArchetypeTargets(mean_gco2_per_kwh=691.5, p5_gco2_per_kwh=647.2, p95_gco2_per_kwh=719.1,
                                     daily_range_gco2_per_kwh=28.09, lag1_autocorr=0.976, lag24_autocorr=0.953,
                                     lca_mean_gco2_per_kwh=749.6),
            diurnal_z=(0.532, 0.547, 0.458, 0.393, 0.350, 0.302, -0.194, -0.483, -0.499, -0.561, -0.655, -0.694,
                       -0.466, -0.135, -0.177, -0.242, -0.232, -0.222, -0.010, 0.387, 0.386, 0.377, 0.388, 0.450),
            seasonal_z=(0.618, 0.061, 0.963, 1.028, 0.289, 0.055, -0.812, -1.623, -0.934, -0.317, 0.285, 0.388),
            quantiles_direct_gco2_per_kwh=(618.3, 629.7, 633.7, 639.5, 647.2, 659.1, 667.4, 674.1, 679.7, 684.5,
                                           688.5, 691.6, 694.2, 696.4, 698.6, 700.9, 702.9, 704.9, 706.9, 709.3,
                                           711.8, 714.6, 719.1, 722.5, 725.1, 726.4, 729.7),
            quantiles_lca_gco2_per_kwh=(673.1, 686.1, 689.6, 696.0, 703.8, 716.2, 724.5, 731.5, 737.7, 742.5,
                                        746.6, 749.7, 752.3, 754.7, 756.8, 759.0, 761.2, 763.2, 765.2, 767.6,
                                        770.6, 773.4, 778.1, 781.6, 784.5, 785.8, 789.3),
            slow_std=0.01757, slow_tau_h=245.2, fast_std=0.3888, fast_tau_h=30.01,
        ),
        Archetype(
            name="wind_coal",
            zone="DE",
            description="coal + wind + solar, most volatile (Germany)",
            targets=ArchetypeTargets(mean_gco2_per_kwh=329.3, p5_gco2_per_kwh=138.9, p95_gco2_per_kwh=579.4,
                                     daily_range_gco2_per_kwh=181.8, lag1_autocorr=0.986, lag24_autocorr=0.710,
                                     lca_mean_gco2_per_kwh=395.1),
            diurnal_z=(0.124, 0.114, 0.119, 0.149, 0.180, 0.177, 0.111, -0.051, -0.266, -0.465, -0.577, -0.616,
                       -0.581, -0.467, -0.272, -0.015, 0.219, 0.354, 0.396, 0.375, 0.335, 0.292, 0.215, 0.151),
            seasonal_z=(0.411, 0.689, 0.122, 0.127, -0.384, -0.289, -0.608, -0.167, 0.105, -0.074, 0.143, -0.075),
            quantiles_direct_gco2_per_kwh=(91.78, 110.9, 116.8, 127.5, 138.9, 159.3, 179.5, 199.6, 218.2, 237.5,
                                           254.8, 271.1, 289.5, 309.1, 330.1, 352.7, 376.3, 401.2, 428.4, 460.9,
                                           494.1, 529.6, 579.4, 607.2, 630.7, 641.1, 684.4),
            quantiles_lca_gco2_per_kwh=(135.5, 156.9, 164.9, 177.7, 189.3, 212.5, 233.7, 255.6, 275.9, 296.1,
                                        314.4, 332.6, 352.9, 374.9, 397.0, 420.7, 446.5, 472.6, 502.3, 535.8,
                                        571.5, 610.8, 662.3, 692.1, 719.3, 730.2, 778.9),
            slow_std=0.3607, slow_tau_h=109.5, fast_std=0.6331, fast_tau_h=15.51,
        ),
        Archetype(
            name="solar_duck",
            zone="US-CAL-CISO",
            description="gas + solar duck curve, minimum near 20 UTC (California ISO)",
            targets=ArchetypeTargets(mean_gco2_per_kwh=193.5, p5_gco2_per_kwh=88.82, p95_gco2_per_kwh=286.6,
                                     daily_range_gco2_per_kwh=119.7, lag1_autocorr=0.958, lag24_autocorr=0.933,
                                     lca_mean_gco2_per_kwh=261.2),
            diurnal_z=(-0.237, 0.213, 0.485, 0.538, 0.547, 0.580, 0.593, 0.601, 0.588, 0.592, 0.603, 0.611,
                       0.645, 0.554, 0.180, -0.334, -0.686, -0.827, -0.861, -0.896, -0.933, -0.964, -0.915, -0.677),
            seasonal_z=(0.402, 0.296, -0.084, -0.608, -1.223, -0.880, -0.071, 0.193, -0.091, 0.767, 0.571, 0.728),
            quantiles_direct_gco2_per_kwh=(54.89, 69.64, 73.33, 80.66, 88.82, 102.9, 117.9, 129.7, 141.0, 151.4,
                                           162.2, 173.8, 185.3, 199.2, 211.0, 222.2, 231.2, 239.7, 246.7, 253.5,
                                           261.9, 272.9, 286.6, 297.9, 307.8, 314.5, 330.8),
            quantiles_lca_gco2_per_kwh=(93.97, 112.6, 117.7, 125.8, 135.6, 152.0, 169.9, 184.8, 198.3, 210.8,
                                        223.9, 237.8, 251.5, 268.2, 281.7, 294.2, 305.0, 315.6, 324.4, 333.5,
                                        343.4, 357.5, 374.2, 388.9, 401.5, 409.2, 429.4),
            slow_std=0.3291, slow_tau_h=14.59, fast_std=0.07845, fast_tau_h=0.5021,
        ),
        Archetype(
            name="nuclear",
            zone="FR",
            description="nuclear baseload, fossil peaks in winter evenings (France)",
            targets=ArchetypeTargets(mean_gco2_per_kwh=30.43, p5_gco2_per_kwh=7.979, p95_gco2_per_kwh=78.12,
                                     daily_range_gco2_per_kwh=19.47, lag1_autocorr=0.988, lag24_autocorr=0.862,
                                     lca_mean_gco2_per_kwh=49.37),
            diurnal_z=(-0.029, -0.081, -0.124, -0.115, -0.013, 0.079, 0.123, 0.084, -0.005, -0.129, -0.190, -0.277,
                       -0.331, -0.346, -0.323, -0.179, 0.085, 0.309, 0.381, 0.328, 0.278, 0.265, 0.180, 0.028),
            seasonal_z=(0.813, 1.306, 0.843, 0.024, -0.724, -0.172, -0.285, -0.259, -0.738, -0.814, 0.046, -0.040),
            quantiles_direct_gco2_per_kwh=(3.54, 5.466, 5.846, 6.59, 7.979, 10.3, 12.31, 13.71, 15.29, 17.09,
                                           19.05, 21.07, 22.97, 24.9, 26.69, 28.61, 30.85, 34.02, 37.9, 42.69,
                                           50.39, 62.17, 78.12, 87.36, 96.64, 102.2, 126.8),
            quantiles_lca_gco2_per_kwh=(15.17, 17.62, 18.31, 19.97, 22.08, 25.29, 27.23, 28.97, 30.94, 33.16,
                                        35.44, 37.67, 40.12, 42.45, 44.95, 47.31, 50.04, 54.19, 58.89, 64.88,
                                        74.15, 88.3, 106.7, 116.9, 129.7, 137.1, 167.4),
            slow_std=0.2979, slow_tau_h=34.73, fast_std=0.3462, fast_tau_h=11.65,
        ),
        Archetype(
            name="hydro",
            zone="NO",
            description="hydro, very low with import-driven spikes (Norway)",
            targets=ArchetypeTargets(mean_gco2_per_kwh=9.28, p5_gco2_per_kwh=1.8, p95_gco2_per_kwh=27.1,
                                     daily_range_gco2_per_kwh=11.15, lag1_autocorr=0.949, lag24_autocorr=0.554,
                                     lca_mean_gco2_per_kwh=34.12),
            diurnal_z=(0.189, 0.238, 0.260, 0.226, 0.087, -0.100, -0.224, -0.165, -0.042, 0.066, 0.240, 0.347,
                       0.374, 0.270, 0.052, -0.146, -0.334, -0.404, -0.333, -0.300, -0.248, -0.136, -0.015, 0.097),
            seasonal_z=(0.409, -0.186, 0.165, 0.267, -0.997, -1.277, -0.248, 0.269, 0.293, 0.061, 0.339, 0.905),
            quantiles_direct_gco2_per_kwh=(0.7, 1.178, 1.28, 1.55, 1.8, 2.68, 3.657, 5.11, 5.43, 5.7,
                                           5.97, 6.23, 6.5, 6.76, 7.07, 7.45, 7.9, 8.523, 9.522, 11.85,
                                           15.95, 21.24, 27.1, 30.94, 35.75, 39.3, 47.7),
            quantiles_lca_gco2_per_kwh=(22.95, 23.64, 23.97, 24.75, 25.37, 26.69, 28.09, 28.98, 29.47, 29.87,
                                        30.23, 30.56, 30.96, 31.4, 31.81, 32.24, 32.77, 33.4, 34.47, 37.07,
                                        41.99, 47.51, 54.49, 59.42, 64.4, 68.68, 78.76),
            slow_std=0.3234, slow_tau_h=43.63, fast_std=0.4242, fast_tau_h=4.358,
        ),
    )
}

ZONE_ARCHETYPE: dict[str, str] = {arch.zone: arch.name for arch in ARCHETYPES.values()}


def _gauss_markov2(white: np.ndarray, tau_h: float, burn_in: int) -> np.ndarray:
    """Unit-variance critically damped AR(2) (double pole ``exp(-1/tau_h)``), hourly, burn-in dropped."""
    phi = math.exp(-1.0 / tau_h)
    gain = math.sqrt((1.0 - phi**2) ** 3 / (1.0 + phi**2))
    return lfilter([gain], [1.0, -2.0 * phi, phi**2], white)[burn_in:]


def _synthesize(arch: Archetype, n_hours: int, rng: np.random.Generator, accounting: str) -> np.ndarray:
    """Hourly values of one realisation of ``arch`` starting at 00:00 UTC on 1 January."""
    hours = np.arange(n_hours)
    burn_in = int(20 * max(arch.slow_tau_h, arch.fast_tau_h))
    white = rng.standard_normal((2, n_hours + burn_in))
    month_pos = hours * (12.0 / n_hours) - 0.5  # 0 = mid-January
    latent = (
        np.asarray(arch.diurnal_z)[hours % 24]
        + np.interp(month_pos, np.arange(12.0), np.asarray(arch.seasonal_z), period=12.0)
        + arch.slow_std * _gauss_markov2(white[0], arch.slow_tau_h, burn_in)
        + arch.fast_std * _gauss_markov2(white[1], arch.fast_tau_h, burn_in)
    )
    quantile_levels = (np.argsort(np.argsort(latent)) + 0.5) * (100.0 / n_hours)
    table = arch.quantiles_direct_gco2_per_kwh if accounting == "direct" else arch.quantiles_lca_gco2_per_kwh
    return np.interp(quantile_levels, QUANTILE_LEVELS_PCT, table)


def synthetic_trace(archetype: str, year: int = 2023, seed: int = 0, accounting: str = "direct") -> CarbonTrace:
    """One year (8760 or 8784 h from 00:00 UTC, 1 January ``year``) of a synthetic archetype.

    Deterministic for (archetype, year, seed); the direct and life-cycle traces of the same triple
    share their timing. See :class:`Archetype` for the model and ``ARCHETYPES`` for the names.
    """
    if archetype not in ARCHETYPES:
        raise TraceError(f"synthetic archetype {archetype!r} is unknown; expected one of {sorted(ARCHETYPES)}")
    _check_accounting(accounting, f"synthetic:{archetype}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TraceError(f"synthetic:{archetype}: seed {seed!r} is invalid; expected an integer >= 0")
    if not 1 <= year <= 9998:
        raise TraceError(f"synthetic:{archetype}: year {year!r} is invalid; expected 1 .. 9998")
    start = datetime(year, 1, 1, tzinfo=timezone.utc)
    n_hours = (datetime(year + 1, 1, 1, tzinfo=timezone.utc) - start) // timedelta(hours=1)
    rng = np.random.default_rng([int(seed), int(year), zlib.crc32(archetype.encode())])
    values = _synthesize(ARCHETYPES[archetype], n_hours, rng, accounting)
    return CarbonTrace(f"synthetic:{archetype}", int(start.timestamp()), values, "synthetic", accounting)


# --------------------------------------------------------------------------------------------
# Config-string resolution
# --------------------------------------------------------------------------------------------


def find_data_dir() -> Path | None:
    """The shared data folder: ``$AOLO_DATA_DIR`` if set, else the first existing ``../shared/data``
    relative to the repository root or the current directory, else None."""
    env = os.environ.get("AOLO_DATA_DIR")
    if env:
        if not Path(env).is_dir():
            raise TraceError(f"environment variable AOLO_DATA_DIR={env!r} is not a directory")
        return Path(env)
    repo_root = Path(__file__).resolve().parents[2]
    for base in (repo_root, Path.cwd()):
        candidate = (base / ".." / "shared" / "data").resolve()
        if candidate.is_dir():
            return candidate
    return None


def _load_file(path: Path, accounting: str) -> CarbonTrace:
    """Load a trace file, choosing the parser by suffix and (for CSV) by header."""
    if path.suffix.lower() == ".json":
        if accounting != "direct":
            raise TraceError(
                f"{path}: the GB Carbon Intensity API gives direct intensity only; got accounting={accounting!r}"
            )
        return load_uk_carbon_intensity_json(path)
    header, lines, rows = _read_csv(path)
    if _is_electricity_maps_header(header):
        return _electricity_maps_trace(path, header, lines, rows, accounting)
    if {"timestamp", "gco2_per_kwh"} <= {name.lower() for name in header}:
        return _plain_trace(path, header, lines, rows, accounting)
    raise TraceError(
        f"{path}: line 1 (header): unrecognised CSV format; expected an Electricity Maps export "
        f"('Datetime (UTC)', 'Carbon Intensity gCO₂eq/kWh (direct)', ...) or 'timestamp,gco2_per_kwh'; found {header}"
    )


@functools.lru_cache(maxsize=64)
def _load_trace_cached(spec: str, accounting: str, data_dir: str | None) -> CarbonTrace:
    _check_accounting(accounting, f"trace {spec!r}")
    kind, _, arg = spec.partition(":")
    if kind == "synthetic":
        return synthetic_trace(arg, accounting=accounting)
    if kind == "zone":
        folder = f"{data_dir}/carbon" if data_dir else "the data folder (none found; set AOLO_DATA_DIR)"
        matches = sorted(Path(data_dir, "carbon").glob(f"{arg}_*_hourly.csv")) if data_dir else []
        if len(matches) > 1:
            raise TraceError(f"trace {spec!r}: several files match: {[str(m) for m in matches]}; pass one as a path")
        if matches:
            return load_electricity_maps_csv(matches[0], accounting)
        if arg not in ZONE_ARCHETYPE:
            raise TraceError(
                f"trace {spec!r}: no file {arg}_*_hourly.csv in {folder} and no synthetic stand-in; "
                f"expected one of the zones {sorted(ZONE_ARCHETYPE)}"
            )
        warnings.warn(
            f"trace {spec!r}: no Electricity Maps file in {folder}; using the synthetic archetype "
            f"'{ZONE_ARCHETYPE[arg]}' calibrated to {arg} 2023 instead",
            stacklevel=3,
        )
        return synthetic_trace(ZONE_ARCHETYPE[arg], accounting=accounting)
    path = Path(spec)
    if path.suffix.lower() in (".csv", ".json"):
        if not path.is_file() and data_dir and not path.is_absolute() and Path(data_dir, spec).is_file():
            path = Path(data_dir, spec)
        return _load_file(path, accounting)
    raise TraceError(
        f"trace spec {spec!r} is not understood; expected 'synthetic:<archetype>' with archetype in "
        f"{sorted(ARCHETYPES)}, 'zone:<ZONE>' (e.g. zone:DE), or a .csv/.json file path"
    )


def load_trace(spec: str, accounting: str = "direct", data_dir: str | None = None) -> CarbonTrace:
    """Resolve a trace spec to a (cached, read-only) :class:`CarbonTrace`.

    Specs: ``"synthetic:<archetype>"`` (year 2023, seed 0); ``"zone:<ZONE>"``, the Electricity Maps
    file ``<data_dir>/carbon/<ZONE>_*_hourly.csv`` or, when absent, the zone's synthetic archetype
    (``ZONE_ARCHETYPE``) with a warning; or a file path (``.csv``: Electricity Maps or plain format,
    told apart by the header; ``.json``: GB Carbon Intensity API). A relative path that does not
    exist is also looked up under ``data_dir``. ``data_dir`` defaults to :func:`find_data_dir`.
    """
    if data_dir is None:
        found = find_data_dir()
        data_dir = str(found) if found is not None else None
    return _load_trace_cached(spec, accounting, data_dir)
