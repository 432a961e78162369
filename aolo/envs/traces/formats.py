"""Carbon-trace file formats: Electricity Maps CSV exports, plain ``timestamp,gco2_per_kwh`` CSV, and the GB
Carbon Intensity API (NESO) JSON; :func:`load_file` picks the parser by suffix and CSV header.

Every bad input raises :class:`TraceError` naming the file, the line (CSV, header = line 1) or entry (JSON,
1-based), the column or field, and the expected form; values outside the plausible range
``[0, max_g_per_kwh]`` (:data:`~aolo.envs.traces.carbon_trace.MAX_G_PER_KWH` by default) are refused the same
way. Sub-hourly samples (a regular step dividing one hour) are averaged to hours.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from aolo.envs.csv_reader import CsvTable, read_csv, reading
from aolo.envs.traces.carbon_trace import (
    KG_LIKE_PEAK_G_PER_KWH,
    MAX_G_PER_KWH,
    MAX_LISTED,
    SECONDS_PER_HOUR,
    VALUE_FORM,
    CarbonTrace,
    check_accounting,
)
from aolo.errors import TraceError

_US_PER_S = 1_000_000
_US_PER_HOUR = SECONDS_PER_HOUR * _US_PER_S
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = timedelta(microseconds=1)
_TIMESTAMP_FORM = "ISO-8601, e.g. '2023-01-01 00:00:00' or '2023-01-01T00:00Z' (naive = UTC)"


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


def _check_values(
    values: np.ndarray, raw: Sequence[object], locate: Callable[[int], str], where: str, max_g_per_kwh: float
) -> None:
    """Raise a TraceError listing how many and which values are NaN, missing, negative or above ``max_g_per_kwh``
    (saying so when the values look like another unit); warn when the whole trace looks like kg/kWh."""
    bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0.0)))
    if bad.size:
        listed = ", ".join(f"{locate(int(i))} ({raw[i]!r})" for i in bad[:MAX_LISTED])
        more = f" and {bad.size - MAX_LISTED} more" if bad.size > MAX_LISTED else ""
        raise TraceError(f"{where}: {bad.size} invalid values: {listed}{more}; expected {VALUE_FORM}")
    high = np.flatnonzero(values > max_g_per_kwh)
    if high.size:
        listed = ", ".join(f"{locate(int(i))} ({raw[i]!r})" for i in high[:MAX_LISTED])
        more = f" and {high.size - MAX_LISTED} more" if high.size > MAX_LISTED else ""
        unit = " (the values look like mg/kWh or another unit)" if np.median(values) > max_g_per_kwh else ""
        raise TraceError(
            f"{where}: {high.size} values above the plausible range{unit}: {listed}{more}; expected gCO2eq/kWh "
            f"in [0, {max_g_per_kwh:g}] (scenario.carbon_intensity_max_g_per_kwh raises the limit)"
        )
    if values.max() < KG_LIKE_PEAK_G_PER_KWH:
        warnings.warn(
            f"{where}: every value is below {KG_LIKE_PEAK_G_PER_KWH:g} (peak {values.max():g}): the trace looks like "
            f"kgCO2eq/kWh; aolo reads gCO2eq/kWh (multiply by 1000 if so)",
            stacklevel=2,
        )


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
            f"{locate(int(i))} ({_format_us(times_us[i])}) -> {locate(int(i) + 1)} ({_format_us(times_us[i + 1])})"
            for i in irregular[:MAX_LISTED]
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


def _csv_columns(
    table: CsvTable, time_col: int, value_col: int, max_g_per_kwh: float
) -> tuple[np.ndarray, np.ndarray, Callable[[int], str]]:
    """Parse the timestamp and value columns of CSV rows into (times_us, values, locate)."""
    path, header, rows = table.path, table.header, table.rows
    table.check_width(max(time_col, value_col) + 1, TraceError)

    def locate(i: int) -> str:
        return f"line {table.lines[i]}"

    times_us = np.empty(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        try:
            times_us[i] = _parse_utc_us(row[time_col])
        except ValueError:
            raise TraceError(
                f"{path}: {locate(i)}, column {header[time_col]!r}: cannot parse timestamp "
                f"{row[time_col]!r}; expected {_TIMESTAMP_FORM}"
            ) from None
    raw = [row[value_col] for row in rows]
    values = np.array([_to_float(text) for text in raw], dtype=np.float64)
    _check_values(values, raw, locate, f"{path}, column {header[value_col]!r}", max_g_per_kwh)
    return times_us, values, locate


def _is_direct_column(name: str) -> bool:
    return "carbon intensity" in name and "direct" in name


def _is_lca_column(name: str) -> bool:
    return "carbon intensity" in name and ("life cycle" in name or "lifecycle" in name or "lca" in name)


def _is_electricity_maps_header(header: list[str]) -> bool:
    return any(_is_direct_column(n.lower()) or _is_lca_column(n.lower()) for n in header)


def load_electricity_maps_csv(
    path: str | os.PathLike[str], accounting: str = "direct", max_g_per_kwh: float = MAX_G_PER_KWH
) -> CarbonTrace:
    """Load an Electricity Maps hourly (or regular sub-hourly) CSV export.

    Accepts the 2023 header (``Carbon Intensity gCO₂eq/kWh (direct)`` / ``(LCA)``, ``Zone Id``) and
    the 2024+ one (``Carbon intensity gCO₂eq/kWh (direct)`` / ``(Life cycle)``, ``Zone id``); column
    names match case-insensitively. ``accounting`` picks the direct or the life-cycle column. The
    trace is named after the ``Zone Id`` of the first row (else the file name).
    """
    file = Path(path)
    check_accounting(accounting, str(file))
    return _electricity_maps_trace(read_csv(file, TraceError), accounting, max_g_per_kwh)


def _electricity_maps_trace(table: CsvTable, accounting: str, max_g_per_kwh: float) -> CarbonTrace:
    file, header, rows = table.path, table.header, table.rows
    time_col = table.column(lambda n: n.startswith("datetime"))
    value_col = table.column(_is_direct_column if accounting == "direct" else _is_lca_column)
    if time_col is None or value_col is None:
        wanted = (
            "'Carbon Intensity gCO₂eq/kWh (direct)'"
            if accounting == "direct"
            else ("'Carbon Intensity gCO₂eq/kWh (LCA)' or '... (Life cycle)'")
        )
        raise TraceError(
            f"{file}: line 1 (header): missing column(s); expected 'Datetime (UTC)' and {wanted} "
            f"(case-insensitive) for accounting={accounting!r}; found {header}"
        )
    times_us, values, locate = _csv_columns(table, time_col, value_col, max_g_per_kwh)
    start_unix_s, hourly = _regular_to_hourly(times_us, values, locate, str(file))
    zone_col = table.column(lambda n: n == "zone id")
    name = rows[0][zone_col].strip() if zone_col is not None and len(rows[0]) > zone_col else ""
    return CarbonTrace(name or file.stem, start_unix_s, hourly, str(file), accounting)


def load_plain_csv(
    path: str | os.PathLike[str], accounting: str = "direct", max_g_per_kwh: float = MAX_G_PER_KWH
) -> CarbonTrace:
    """Load a CSV with header ``timestamp,gco2_per_kwh`` (extra columns ignored).

    Timestamps are ISO-8601 (naive = UTC), hourly or a regular sub-hourly step that divides one hour
    (averaged to hours). ``accounting`` declares what the values are; the file cannot say.
    """
    file = Path(path)
    check_accounting(accounting, str(file))
    return _plain_trace(read_csv(file, TraceError), accounting, max_g_per_kwh)


def _plain_trace(table: CsvTable, accounting: str, max_g_per_kwh: float) -> CarbonTrace:
    file, header = table.path, table.header
    time_col = table.column(lambda n: n == "timestamp")
    value_col = table.column(lambda n: n == "gco2_per_kwh")
    if time_col is None or value_col is None:
        raise TraceError(
            f"{file}: line 1 (header): missing column(s); expected 'timestamp' and 'gco2_per_kwh'; found {header}"
        )
    times_us, values, locate = _csv_columns(table, time_col, value_col, max_g_per_kwh)
    start_unix_s, hourly = _regular_to_hourly(times_us, values, locate, str(file))
    return CarbonTrace(file.stem, start_unix_s, hourly, str(file), accounting)


def load_uk_carbon_intensity_json(
    path: str | os.PathLike[str], field: str = "actual", max_g_per_kwh: float = MAX_G_PER_KWH
) -> CarbonTrace:
    """Load a GB national Carbon Intensity API (NESO) response and average its half-hours to hours.

    Format: ``{"data": [{"from": "2023-01-01T00:00Z", "to": ..., "intensity": {"forecast": 146,
    "actual": 140, "index": "low"}}, ...]}``. ``field`` picks ``"actual"`` (every slot must have one)
    or ``"forecast"``. The API counts generation-related CO2 only, so the trace is ``"direct"``.
    """
    file = Path(path)
    if field not in ("actual", "forecast"):
        raise TraceError(f"{file}: field {field!r} is unknown; expected 'actual' or 'forecast'")
    try:
        with reading(file, TraceError, "JSON"), file.open(encoding="utf-8-sig") as fh:
            doc = json.load(fh)
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
        values[i] = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    if nulls:
        listed = ", ".join(f"{locate(i)} (from {slots[i]['from']})" for i in nulls[:MAX_LISTED])
        hint = "; load with field='forecast' to use the forecast" if field == "actual" else ""
        raise TraceError(
            f"{file}: {len(nulls)} of {len(slots)} slots have a null or missing 'intensity.{field}': "
            f"{listed}; expected a number{hint}"
        )
    raw = [slot["intensity"][field] for slot in slots]
    _check_values(values, raw, locate, f"{file}, field 'intensity.{field}'", max_g_per_kwh)
    start_unix_s, hourly = _regular_to_hourly(times_us, values, locate, str(file))
    return CarbonTrace("GB", start_unix_s, hourly, str(file), "direct")


def load_file(path: Path, accounting: str, max_g_per_kwh: float = MAX_G_PER_KWH) -> CarbonTrace:
    """Load a trace file, choosing the parser by suffix and (for CSV) by header; values above ``max_g_per_kwh``
    are refused."""
    if path.suffix.lower() == ".json":
        if accounting != "direct":
            raise TraceError(
                f"{path}: the GB Carbon Intensity API gives direct intensity only; got accounting={accounting!r}"
            )
        return load_uk_carbon_intensity_json(path, max_g_per_kwh=max_g_per_kwh)
    table = read_csv(path, TraceError)
    header = table.header
    if _is_electricity_maps_header(header):
        return _electricity_maps_trace(table, accounting, max_g_per_kwh)
    if {"timestamp", "gco2_per_kwh"} <= {name.lower() for name in header}:
        return _plain_trace(table, accounting, max_g_per_kwh)
    raise TraceError(
        f"{path}: line 1 (header): unrecognised CSV format; expected an Electricity Maps export "
        f"('Datetime (UTC)', 'Carbon Intensity gCO₂eq/kWh (direct)', ...) or 'timestamp,gco2_per_kwh'; found {header}"
    )
