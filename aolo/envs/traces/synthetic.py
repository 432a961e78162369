"""Synthetic grid archetypes: a latent Gaussian process mapped onto a real trace's marginal distribution.

Five archetypes (:data:`ARCHETYPES`) are calibrated to the Electricity Maps 2023 hourly carbon-intensity traces
of IN-WE, DE, US-CAL-CISO, FR and NO (ODbL 1.0, attribution "Electricity Maps"); they stand in for the real
files when those are absent and give seeds of unseen weather. The calibration tables (diurnal and seasonal
profiles, quantile tables, Gauss-Markov fits, target statistics) are package data, ``archetypes.json`` next to
this module; its ``about`` entry says how each table was derived.
"""

from __future__ import annotations

import importlib.resources
import json
import math
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from scipy.signal import lfilter

from aolo.envs.traces.carbon_trace import CarbonTrace, check_accounting
from aolo.errors import TraceError


def _read_calibration() -> dict[str, Any]:
    text = importlib.resources.files(__package__).joinpath("archetypes.json").read_text(encoding="utf-8")
    return json.loads(text)


_CALIBRATION = _read_calibration()

#: Probability levels (%) of the archetypes' marginal quantile tables.
QUANTILE_LEVELS_PCT: tuple[float, ...] = tuple(_CALIBRATION["quantile_levels_pct"])


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


def _archetype(entry: dict[str, Any]) -> Archetype:
    """An :class:`Archetype` from one ``archetypes.json`` entry (lists become tuples)."""
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items() if k != "targets"}
    return Archetype(targets=ArchetypeTargets(**entry["targets"]), **fields)


ARCHETYPES: dict[str, Archetype] = {arch.name: arch for arch in map(_archetype, _CALIBRATION["archetypes"])}

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
    check_accounting(accounting, f"synthetic:{archetype}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TraceError(f"synthetic:{archetype}: seed {seed!r} is invalid; expected an integer >= 0")
    if not 1 <= year <= 9998:
        raise TraceError(f"synthetic:{archetype}: year {year!r} is invalid; expected 1 .. 9998")
    start = datetime(year, 1, 1, tzinfo=timezone.utc)
    n_hours = (datetime(year + 1, 1, 1, tzinfo=timezone.utc) - start) // timedelta(hours=1)
    rng = np.random.default_rng([int(seed), int(year), zlib.crc32(archetype.encode())])
    values = _synthesize(ARCHETYPES[archetype], n_hours, rng, accounting)
    return CarbonTrace(f"synthetic:{archetype}", int(start.timestamp()), values, "synthetic", accounting)
