"""Hourly grid carbon-intensity traces (docs/design.md §3.1).

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

Modules, one concern each: :mod:`~aolo.envs.traces.carbon_trace` (the trace type and day split),
:mod:`~aolo.envs.traces.formats` (file loaders), :mod:`~aolo.envs.traces.synthetic` (the archetypes; their
calibration tables are the package data ``archetypes.json``), :mod:`~aolo.envs.traces.resolve` (specs).
"""

from aolo.envs.traces.carbon_trace import ACCOUNTINGS, HELDOUT_EVERY, SECONDS_PER_HOUR, CarbonTrace
from aolo.envs.traces.formats import load_electricity_maps_csv, load_plain_csv, load_uk_carbon_intensity_json
from aolo.envs.traces.resolve import find_data_dir, load_trace
from aolo.envs.traces.synthetic import (
    ARCHETYPES,
    QUANTILE_LEVELS_PCT,
    ZONE_ARCHETYPE,
    Archetype,
    ArchetypeTargets,
    synthetic_trace,
)
from aolo.errors import TraceError

__all__ = [
    "ACCOUNTINGS",
    "ARCHETYPES",
    "Archetype",
    "ArchetypeTargets",
    "CarbonTrace",
    "HELDOUT_EVERY",
    "QUANTILE_LEVELS_PCT",
    "SECONDS_PER_HOUR",
    "TraceError",
    "ZONE_ARCHETYPE",
    "find_data_dir",
    "load_electricity_maps_csv",
    "load_plain_csv",
    "load_trace",
    "load_uk_carbon_intensity_json",
    "synthetic_trace",
]
