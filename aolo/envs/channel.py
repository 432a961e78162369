"""Radio channel of one cell: placement, 3GPP TR 38.901 path loss, shadowing, fading, noise, rate.

Pure, vectorised numpy. Units are in the names: ``_m`` metres, ``_ghz``/``_hz`` frequency, ``_db``/``_dbm``
logarithmic, ``_w`` watts, ``_bps`` bit/s. Formulas: 3GPP TR 38.901 v17 Table 7.4.1-1 (path loss, shadow
fading σ) and Clarke/Jakes (``rho = J0(2π f_D T)``); see docs/design.md §3.2 (3GPP TR 38.901 Table 7.4.1-1).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import exp1, j0

from aolo.envs.csv_reader import read_csv
from aolo.errors import FadingTraceError  # re-exported: aolo.envs.channel.FadingTraceError

SPEED_OF_LIGHT_MPS = 299_792_458.0
THERMAL_NOISE_DBM_PER_HZ = -174.0

#: Shadow-fading standard deviation [dB] per (scenario, link state), TR 38.901 Table 7.4.1-1.
SHADOWING_SIGMA_DB = {("uma", "los"): 4.0, ("uma", "nlos"): 6.0, ("umi", "los"): 4.0, ("umi", "nlos"): 7.82}
#: Default base-station height [m] per scenario (TR 38.901 Table 7.4.1-1).
BS_HEIGHT_M = {"uma": 25.0, "umi": 10.0}
PATHLOSS_SCENARIOS = ("uma", "umi")
LINK_STATES = ("los", "nlos")


def db_to_linear(x_db: np.ndarray | float) -> np.ndarray | float:
    return 10.0 ** (np.asarray(x_db) / 10.0)


def linear_to_db(x: np.ndarray | float) -> np.ndarray | float:
    return 10.0 * np.log10(x)


def dbm_to_w(p_dbm: np.ndarray | float) -> np.ndarray | float:
    return 10.0 ** ((np.asarray(p_dbm) - 30.0) / 10.0)


def w_to_dbm(p_w: np.ndarray | float) -> np.ndarray | float:
    return 10.0 * np.log10(p_w) + 30.0


# --- path loss ---------------------------------------------------------------------------------------


def breakpoint_distance_m(carrier_ghz: float, bs_height_m: float, ue_height_m: float) -> float:
    """TR 38.901 note 1: d'_BP = 4 h'_BS h'_UT f_c / c with effective heights h' = h - 1 m."""
    return 4.0 * (bs_height_m - 1.0) * (ue_height_m - 1.0) * carrier_ghz * 1e9 / SPEED_OF_LIGHT_MPS


def pathloss_db(
    distance_2d_m: np.ndarray,
    *,
    scenario: str = "uma",
    link_state: str = "nlos",
    carrier_ghz: float = 3.5,
    bs_height_m: float | None = None,
    ue_height_m: float = 1.5,
) -> np.ndarray:
    """Path loss [dB] of TR 38.901 UMa or UMi-Street Canyon, LOS or NLOS, at 2-D distances [m]."""
    if scenario not in PATHLOSS_SCENARIOS:
        raise ValueError(f"scenario must be one of {PATHLOSS_SCENARIOS}, got {scenario!r}")
    if link_state not in LINK_STATES:
        raise ValueError(f"link_state must be one of {LINK_STATES}, got {link_state!r}")
    h_bs = BS_HEIGHT_M[scenario] if bs_height_m is None else bs_height_m
    d2 = np.asarray(distance_2d_m, dtype=np.float64)
    d3 = np.sqrt(d2**2 + (h_bs - ue_height_m) ** 2)
    log_f = np.log10(carrier_ghz)
    d_bp = breakpoint_distance_m(carrier_ghz, h_bs, ue_height_m)
    if scenario == "uma":
        pl1 = 28.0 + 22.0 * np.log10(d3) + 20.0 * log_f
        pl2 = 28.0 + 40.0 * np.log10(d3) + 20.0 * log_f - 9.0 * np.log10(d_bp**2 + (h_bs - ue_height_m) ** 2)
        los = np.where(d2 <= d_bp, pl1, pl2)
        if link_state == "los":
            return los
        nlos = 13.54 + 39.08 * np.log10(d3) + 20.0 * log_f - 0.6 * (ue_height_m - 1.5)
        return np.maximum(los, nlos)
    pl1 = 32.4 + 21.0 * np.log10(d3) + 20.0 * log_f
    pl2 = 32.4 + 40.0 * np.log10(d3) + 20.0 * log_f - 9.5 * np.log10(d_bp**2 + (h_bs - ue_height_m) ** 2)
    los = np.where(d2 <= d_bp, pl1, pl2)
    if link_state == "los":
        return los
    nlos = 35.3 * np.log10(d3) + 22.4 + 21.3 * log_f - 0.3 * (ue_height_m - 1.5)
    return np.maximum(los, nlos)


def place_users_m(rng: np.random.Generator, n: int, min_distance_m: float, radius_m: float) -> np.ndarray:
    """2-D distances of ``n`` users placed uniformly over the annulus ``[min_distance_m, radius_m]``."""
    u = rng.random(n)
    return np.sqrt(min_distance_m**2 + u * (radius_m**2 - min_distance_m**2))


# --- small-scale fading --------------------------------------------------------------------------------


def doppler_hz(speed_mps: float, carrier_ghz: float) -> float:
    return speed_mps * carrier_ghz * 1e9 / SPEED_OF_LIGHT_MPS


def fading_correlation(speed_mps: float, carrier_ghz: float, step_s: float) -> float:
    """Lag-1 correlation of the Gauss–Markov fading process, ``rho = J0(2π f_D T)`` (Clarke/Jakes)."""
    return float(j0(2.0 * np.pi * doppler_hz(speed_mps, carrier_ghz) * step_s))


def _complex_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """CN(0, 1) samples."""
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2.0)


def gauss_markov_fading(
    rng: np.random.Generator, n_users: int, n_steps: int, rho: float, rician_k_linear: float = 0.0
) -> np.ndarray:
    """Complex fading coefficients ``h`` of shape ``(n_users, n_steps)`` with ``E|h|² = 1``.

    Rayleigh when ``rician_k_linear == 0``, Rician otherwise: a fixed line-of-sight phasor of power
    ``K/(K+1)`` plus a scattered AR(1) part ``s[t+1] = rho s[t] + sqrt(1 - rho²) w[t]`` of power
    ``1/(K+1)``, started in its stationary distribution.
    """
    if not -1.0 < rho < 1.0 + 1e-12:
        raise ValueError(f"fading correlation rho must be in (-1, 1], got {rho}")
    scattered = np.empty((n_users, n_steps), dtype=np.complex128)
    noise = _complex_normal(rng, (n_users, n_steps))
    scattered[:, 0] = noise[:, 0]
    innovation = np.sqrt(max(0.0, 1.0 - rho**2))
    for t in range(1, n_steps):  # the recursion is inherently sequential in t; vectorised over users
        scattered[:, t] = rho * scattered[:, t - 1] + innovation * noise[:, t]
    k = rician_k_linear
    los_phase = np.exp(1j * rng.uniform(0.0, 2.0 * np.pi, size=(n_users, 1)))
    return np.sqrt(k / (k + 1.0)) * los_phase + np.sqrt(1.0 / (k + 1.0)) * scattered


def csi_estimate(rng: np.random.Generator, h: np.ndarray, nmse_db: float) -> np.ndarray:
    """Noisy channel estimate ``h + e`` with ``e ~ CN(0, NMSE)`` (NMSE relative to ``E|h|² = 1``)."""
    return h + np.sqrt(db_to_linear(nmse_db)) * _complex_normal(rng, h.shape)


@dataclass(frozen=True)
class FadingTrace:
    """Recorded per-user small-scale power gains ``|h|²`` (linear), shape ``(n_users, n_steps)``.

    Replayed instead of the generated Gauss–Markov process. Loaded from ``.npz`` (array ``gain`` or
    complex array ``h``) or from CSV (one row per step, one column per user, optional header).
    """

    power_gain: np.ndarray
    source: str

    def __post_init__(self) -> None:
        g = self.power_gain
        if g.ndim != 2 or g.size == 0:
            raise FadingTraceError(f"{self.source}: fading trace must be a non-empty 2-D array (users × steps)")
        bad = ~np.isfinite(g) | (g < 0)
        if bad.any():
            users, steps = np.nonzero(bad)
            raise FadingTraceError(
                f"{self.source}: {bad.sum()} fading gains are negative or not finite "
                f"(first at user {users[0]}, step {steps[0]}); expected finite |h|² >= 0"
            )

    @classmethod
    def load(cls, path: str | Path) -> FadingTrace:
        path = Path(path)
        if not path.exists():
            raise FadingTraceError(f"fading trace {path}: file not found")
        if path.suffix == ".npz":
            with np.load(path) as data:
                if "gain" in data:
                    gain = np.asarray(data["gain"], dtype=np.float64)
                elif "h" in data:
                    gain = np.abs(data["h"]) ** 2
                else:
                    raise FadingTraceError(
                        f"{path}: expected an array named 'gain' (|h|²) or 'h' (complex), found {list(data)}"
                    )
            return cls(np.atleast_2d(gain), str(path))
        if path.suffix == ".csv":
            table = read_csv(path, FadingTraceError, header=False)
            rows = table.rows[1:] if not _is_number(table.rows[0][0]) else table.rows  # optional header line
            if not rows:
                raise FadingTraceError(f"{path}: no data rows; expected one row per step, one column per user")
            table.check_width(len(rows[0]), FadingTraceError)
            try:
                gain = np.array([[float(x) for x in r] for r in rows], dtype=np.float64)
            except ValueError as e:
                raise FadingTraceError(f"{path}: every cell must be a number (|h|² per user and step): {e}") from None
            return cls(gain.T.copy(), str(path))
        raise FadingTraceError(f"{path}: fading traces must be .npz or .csv")

    @property
    def num_users(self) -> int:
        return int(self.power_gain.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.power_gain.shape[1])

    def check_fits(self, n_users: int, last_step: int, wrap: bool, cell: str = "the cell") -> None:
        """Raise a FadingTraceError unless the trace has ``n_users`` users and (unless ``wrap``) reaches step
        ``last_step`` (0-based), naming the file, what it has and what ``cell`` needs."""
        if n_users > self.num_users:
            raise FadingTraceError(
                f"{self.source}: the fading trace has {self.num_users} users (columns) but {cell} has "
                f"{n_users}; expected at least {n_users} users"
            )
        if not wrap and last_step >= self.num_steps:
            raise FadingTraceError(
                f"{self.source}: the fading trace has {self.num_steps} steps (rows) but {cell} reads up to "
                f"step {last_step} (the last epoch of its last day); give a trace of at least {last_step + 1} "
                f"steps, or set fading_trace_wrap: true on the cell to reuse it cyclically"
            )

    def window(self, n_users: int, start: int, n_steps: int, wrap: bool = False) -> np.ndarray:
        """Gains for ``n_users`` over ``n_steps`` steps from ``start`` (``wrap``: around the trace's end)."""
        self.check_fits(n_users, start + n_steps - 1, wrap)
        idx = (start + np.arange(n_steps)) % self.num_steps
        return self.power_gain[:n_users, idx]


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


# --- link budget -------------------------------------------------------------------------------------


def noise_power_w(bandwidth_hz: float | np.ndarray, noise_figure_db: float) -> np.ndarray | float:
    """Thermal noise ``-174 dBm/Hz + 10 log10(B) + NF`` in watts."""
    return dbm_to_w(THERMAL_NOISE_DBM_PER_HZ + 10.0 * np.log10(bandwidth_hz) + noise_figure_db)


#: Spectral efficiency of NR's highest MCS (256-QAM, code rate 948/1024: 7.4063 bit/s/Hz, 3GPP TS 38.214
#: Table 5.1.3.1-2): no SNR delivers more.
NR_PEAK_SPECTRAL_EFFICIENCY = 7.4063
FADING_AVERAGES = ("ergodic", "instantaneous")


def shannon_rate_bps(bandwidth_hz, power_w, channel_gain, noise_w, interference_w=0.0, max_spectral_efficiency=np.inf):
    """``R = B min(log2(1 + P g / (N + I)), η_max)``; ``channel_gain`` is the linear end-to-end power gain."""
    se = np.log2(1.0 + power_w * channel_gain / (noise_w + interference_w))
    return bandwidth_hz * np.minimum(se, max_spectral_efficiency)


def _scaled_e1(a: np.ndarray, x: np.ndarray, exp_a: np.ndarray | None) -> np.ndarray:
    """``e^{a} E1(x)`` for ``x >= a`` (``exp_a``: ``e^{a}`` if already computed). For ``x > 500`` the product would
    overflow: there ``E1(x) ≈ e^{-x}(1/x - 1/x² + 2/x³ - 6/x⁴)``, so ``e^{a} E1(x) ≈ e^{a-x}(...)``."""
    small = x <= 500.0
    if small.all():  # the usual case: no entry needs the asymptotic series
        return (np.exp(a) if exp_a is None else exp_a) * exp1(x)
    e_a = np.exp(np.where(small, a, 0.0)) if exp_a is None else exp_a  # only read where ``small``
    direct = e_a * exp1(np.where(small, x, 1.0))
    asym = np.exp(a - x) * (1.0 / x - 1.0 / x**2 + 2.0 / x**3 - 6.0 / x**4)
    return np.where(small, direct, asym)


def ergodic_spectral_efficiency(mean_snr, max_spectral_efficiency=np.inf):
    """``E[min(log2(1 + s X), η)]`` over Rayleigh fading (``X ~ Exp(1)``) at mean SNR ``s`` [bit/s/Hz].

    Closed form: ``(e^{1/s} / ln 2) · (E1(1/s) - E1(1/s + x_c))`` with ``x_c = (2^η - 1)/s`` the fade above
    which the cap binds (integration by parts of ``∫ log2(1+sx) e^{-x} dx``). ``e^{a} E1(a)`` is evaluated as
    ``scipy.special.exp1`` × ``exp`` for moderate ``a`` and by its
    asymptotic series ``1/a - 1/a² + 2/a³ - 6/a⁴`` for ``a > 500`` (SNR below -27 dB), where the product
    would overflow.
    """
    s = np.maximum(np.asarray(mean_snr, dtype=np.float64), 1e-300)
    a = 1.0 / s
    if np.isinf(max_spectral_efficiency):
        return _scaled_e1(a, a, None) / np.log(2.0)
    x_cap = a + _cap_fade(max_spectral_efficiency) * a
    if (x_cap <= 500.0).all():  # the usual case (x_cap >= a): both terms direct, sharing e^{a}
        exp_a = np.exp(a)
        return (exp_a * exp1(a) - exp_a * exp1(x_cap)) / np.log(2.0)
    exp_a = np.exp(a) if (a <= 500.0).all() else None
    head = _scaled_e1(a, a, exp_a)
    if _cap_fade(max_spectral_efficiency) < 1.0:  # a cap below 1 bit/s/Hz: the cap term is evaluated everywhere
        return (head - _scaled_e1(a, x_cap, exp_a)) / np.log(2.0)
    # Where x_cap > 500 (and x_cap >= 2a), the cap term is below e^{-249} times the first one, far under half an
    # ulp of it: the difference rounds to the first term exactly, so the asymptotic series is skipped there.
    direct = x_cap <= 500.0
    e_a = np.exp(np.where(direct, a, 0.0)) if exp_a is None else exp_a  # only read where ``direct``
    tail = np.where(direct, e_a * exp1(np.where(direct, x_cap, 1.0)), 0.0)
    return (head - tail) / np.log(2.0)


@functools.lru_cache(maxsize=8)
def _cap_fade(max_spectral_efficiency: float) -> np.float64:
    """``2^η - 1``: the fade ``x_c = (2^η - 1)/s`` above which the spectral-efficiency cap binds, per unit ``1/s``."""
    return np.expm1(max_spectral_efficiency * np.log(2.0))


def delivery_rate_bps(bandwidth_hz, power_w, channel_gain, noise_w, interference_w, radio) -> np.ndarray:
    """The rate an answer is delivered at (docs/design.md §3.2), capped at ``radio.max_spectral_efficiency``.

    ``radio.fading_average == "ergodic"`` (default): ``channel_gain`` is the mean (large-scale) gain and the
    rate is the ergodic one, the average over the Rayleigh fading seen during the airtime. Rule: at the
    default pedestrian Doppler the coherence time is ``0.423 / f_D ≈ 43 ms`` and a spoken answer's airtime
    (≥ ~0.1 s) spans several coherence times, so its rate is the fading average — a single deep fade cannot
    stretch one answer to minutes. ``"instantaneous"``: ``channel_gain`` includes this epoch's ``|h|²`` and the
    answer sees that one draw (right for airtimes shorter than a coherence time: text answers, fast replays).
    """
    eta = radio.max_spectral_efficiency
    if radio.fading_average == "ergodic":
        snr = power_w * channel_gain / (noise_w + interference_w)
        return bandwidth_hz * ergodic_spectral_efficiency(snr, eta)
    return shannon_rate_bps(bandwidth_hz, power_w, channel_gain, noise_w, interference_w, eta)


@functools.lru_cache(maxsize=8)
def _ergodic_inverse_table(max_spectral_efficiency: float) -> tuple[np.ndarray, np.ndarray]:
    """(spectral efficiency, ln mean SNR) on a fine grid of ln SNR in [-35, 60], for inverting the ergodic rate
    by interpolation (strictly increasing below the cap; grid step 1e-3 in ln SNR)."""
    ln_snr = np.arange(-35.0, 60.0, 1e-3)
    return ergodic_spectral_efficiency(np.exp(ln_snr), max_spectral_efficiency), ln_snr


def power_for_rate_w(rate_bps, bandwidth_hz, channel_gain, noise_w, interference_w, radio) -> np.ndarray:
    """Least power delivering ``rate_bps`` (inverse of :func:`delivery_rate_bps`); ``inf`` at or above the cap."""
    rate_bps = np.asarray(rate_bps, dtype=np.float64)
    se = rate_bps / bandwidth_hz
    unit = (noise_w + interference_w) / channel_gain  # power giving SNR 1
    eta = radio.max_spectral_efficiency
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if radio.fading_average == "instantaneous":
            snr = np.expm1(se * np.log(2.0))
        else:  # the ergodic SE is increasing in the mean SNR: interpolate its inverse
            table_se, table_ln_snr = _ergodic_inverse_table(float(eta))
            snr = np.exp(np.interp(se, table_se, table_ln_snr, left=-np.inf, right=np.inf))
        power = snr * unit
    reachable = se < eta * (1.0 - 1e-9)
    return np.where(reachable & np.isfinite(power), power, np.inf)
