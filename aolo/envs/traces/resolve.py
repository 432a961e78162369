"""Trace specs → traces: ``"synthetic:<archetype>"``, ``"zone:<ZONE>"`` or a file path (:func:`load_trace`)."""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

from aolo.envs.traces.carbon_trace import MAX_G_PER_KWH, CarbonTrace, check_accounting, check_start
from aolo.envs.traces.formats import load_electricity_maps_csv, load_file
from aolo.envs.traces.synthetic import ARCHETYPES, ZONE_ARCHETYPE, synthetic_trace
from aolo.errors import TraceError


def find_data_dir() -> Path | None:
    """The shared data folder: ``$AOLO_DATA_DIR`` if set, else the first existing ``../shared/data``
    relative to the repository root or the current directory, else None."""
    env = os.environ.get("AOLO_DATA_DIR")
    if env:
        if not Path(env).is_dir():
            raise TraceError(f"environment variable AOLO_DATA_DIR={env!r} is not a directory")
        return Path(env)
    repo_root = Path(__file__).resolve().parents[3]
    for base in (repo_root, Path.cwd()):
        candidate = (base / ".." / "shared" / "data").resolve()
        if candidate.is_dir():
            return candidate
    return None


@functools.lru_cache(maxsize=64)
def _load_trace_cached(spec: str, accounting: str, data_dir: str | None, max_g_per_kwh: float) -> CarbonTrace:
    check_accounting(accounting, f"trace {spec!r}")
    kind, _, arg = spec.partition(":")
    if kind == "synthetic":
        return synthetic_trace(arg, accounting=accounting)
    if kind == "zone":
        folder = f"{data_dir}/carbon" if data_dir else "the data folder (none found; set AOLO_DATA_DIR)"
        matches = sorted(Path(data_dir, "carbon").glob(f"{arg}_*_hourly.csv")) if data_dir else []
        if len(matches) > 1:
            raise TraceError(f"trace {spec!r}: several files match: {[str(m) for m in matches]}; pass one as a path")
        if matches:
            return _starting_at_midnight(load_electricity_maps_csv(matches[0], accounting, max_g_per_kwh))
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
        return _starting_at_midnight(load_file(path, accounting, max_g_per_kwh))
    raise TraceError(
        f"trace spec {spec!r} is not understood; expected 'synthetic:<archetype>' with archetype in "
        f"{sorted(ARCHETYPES)}, 'zone:<ZONE>' (e.g. zone:DE), or a .csv/.json file path"
    )


def _starting_at_midnight(trace: CarbonTrace) -> CarbonTrace:
    check_start(trace)
    return trace


def load_trace(
    spec: str, accounting: str = "direct", data_dir: str | None = None, max_g_per_kwh: float = MAX_G_PER_KWH
) -> CarbonTrace:
    """Resolve a trace spec to a (cached, read-only) :class:`CarbonTrace`.

    Specs: ``"synthetic:<archetype>"`` (year 2023, seed 0); ``"zone:<ZONE>"``, the Electricity Maps
    file ``<data_dir>/carbon/<ZONE>_*_hourly.csv`` or, when absent, the zone's synthetic archetype
    (``ZONE_ARCHETYPE``) with a warning; or a file path (``.csv``: Electricity Maps or plain format,
    told apart by the header; ``.json``: GB Carbon Intensity API). A relative path that does not
    exist is also looked up under ``data_dir``. ``data_dir`` defaults to :func:`find_data_dir`. A file's
    values must lie in ``[0, max_g_per_kwh]`` gCO2eq/kWh and it must start at 00:00 UTC (:func:`check_start`).
    """
    if data_dir is None:
        found = find_data_dir()
        data_dir = str(found) if found is not None else None
    return _load_trace_cached(spec, accounting, data_dir, float(max_g_per_kwh))
