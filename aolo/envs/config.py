"""Validated scenario configuration: cells, radio, LLM service, reward weights.

Every field has a documented default (docs/design.md §3) and a validated range; a bad value raises
:class:`ConfigError` naming the field path (``cells[1].num_users``) and what is allowed. Scenarios load from
YAML or plain dicts (``ScenarioConfig.from_dict``), unknown keys are rejected with the allowed keys listed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from aolo.envs.channel import LINK_STATES, PATHLOSS_SCENARIOS
from aolo.envs.serving import SERVING_PROFILES
from aolo.errors import ConfigError  # re-exported: aolo.envs.config.ConfigError

#: Bits sent over the radio per answer token for each modality preset.
#: speech: the answer is spoken with a 24 kbit/s codec at ≈ 3 tokens/s ⇒ 8000 bit/token;
#: text: ≈ 4 UTF-8 bytes per token ⇒ 32 bit/token.
MODALITY_BITS_PER_TOKEN = {"speech": 8000.0, "text": 32.0}
ACCOUNTING_MODES = ("direct", "life-cycle")
PREFILL_ACCOUNTING = ("net", "additive", "measured")
LENGTH_ACTIONS = ("qoe", "tokens")


def _check(cond: bool, path: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{path}: {message}")


def _check_range(value: float, path: str, lo: float | None = None, hi: float | None = None, *, lo_open=False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value <= hi
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    bracket = "(" if lo_open else "["
    _check(ok, path, f"must be a number in {bracket}{lo_s}, {hi_s}], got {value!r}")


def _check_choice(value: Any, path: str, allowed) -> None:
    _check(value in allowed, path, f"must be one of {sorted(allowed)}, got {value!r}")


@dataclass(frozen=True)
class CellSpec:
    """One base station and the datacenter that serves its users' LLM requests."""

    name: str = "cell"
    grid_region: str = "synthetic:wind_coal"  #: carbon trace of the BS's grid (``synthetic:*``, ``zone:*`` or a file)
    datacenter_region: str = "synthetic:hydro"  #: carbon trace of the datacenter's grid
    num_users: int = 8
    radius_m: float = 250.0
    min_distance_m: float = 35.0
    pathloss: str = "uma"  #: TR 38.901 scenario: ``uma`` | ``umi``
    link_state: str = "nlos"  #: ``nlos`` (Rayleigh) | ``los`` (Rician)
    serving_profile: str = "llama-3.1-8b-h100"
    serving_batch: int = 64
    bs_power_budget_w: float = 20.0  #: Σ_u P_u ≤ this (EARTH macro, per carrier)
    interference_to_noise_db: float | None = None  #: neighbour-cell interference; None = none
    fading_trace: str | None = None  #: replay per-user |h|² from ``.npz``/CSV instead of generating it

    def validate(self, path: str = "cell") -> None:
        _check(isinstance(self.name, str) and self.name != "", f"{path}.name", "must be a non-empty string")
        for key in ("grid_region", "datacenter_region"):
            v = getattr(self, key)
            _check(isinstance(v, str) and v != "", f"{path}.{key}", "must be a trace spec like 'synthetic:hydro', "
                   f"'zone:DE' or a file path, got {v!r}")
        _check(isinstance(self.num_users, int) and not isinstance(self.num_users, bool) and 1 <= self.num_users <= 1024,
               f"{path}.num_users", f"must be an integer in [1, 1024], got {self.num_users!r}")
        _check_range(self.min_distance_m, f"{path}.min_distance_m", 10.0, 5000.0)
        _check_range(self.radius_m, f"{path}.radius_m", 10.0, 5000.0)
        _check(self.radius_m > self.min_distance_m, f"{path}.radius_m",
               f"must exceed min_distance_m ({self.min_distance_m:g}), got {self.radius_m:g}")
        _check_choice(self.pathloss, f"{path}.pathloss", PATHLOSS_SCENARIOS)
        _check_choice(self.link_state, f"{path}.link_state", LINK_STATES)
        _check_choice(self.serving_profile, f"{path}.serving_profile", SERVING_PROFILES)
        profile = SERVING_PROFILES[self.serving_profile]
        _check_range(self.serving_batch, f"{path}.serving_batch", profile.batch_sizes[0], profile.batch_sizes[-1])
        _check_range(self.bs_power_budget_w, f"{path}.bs_power_budget_w", 0.0, 1000.0, lo_open=True)
        if self.interference_to_noise_db is not None:
            _check_range(self.interference_to_noise_db, f"{path}.interference_to_noise_db", -50.0, 50.0)
        if self.fading_trace is not None:
            _check(Path(self.fading_trace).suffix in (".npz", ".csv"), f"{path}.fading_trace",
                   f"must be a .npz or .csv file, got {self.fading_trace!r}")


@dataclass(frozen=True)
class RadioConfig:
    """Link budget, fading and base-station power model (EARTH macro, Auer et al. 2011)."""

    carrier_ghz: float = 3.5
    bandwidth_hz: float = 20e6  #: split equally among the cell's users
    noise_figure_db: float = 7.0
    ue_height_m: float = 1.5
    ue_speed_mps: float = 0.833  #: 3 km/h pedestrian (sets the Doppler of the fading process)
    rician_k_db: float = 9.0  #: used when ``link_state == "los"``
    shadowing: bool = True
    csi_nmse_db: float = -10.0  #: error of the CSI estimate the agent sees
    p_min_dbm: float = 0.0
    p_max_dbm: float = 43.0  #: per user
    earth_p0_w: float = 130.0  #: load-independent power per transceiver
    earth_p_sleep_w: float = 75.0
    earth_delta_p: float = 4.7  #: slope of the load-dependent power
    ue_receive_power_w: float = 0.0  #: optional UE receive power charged over the airtime
    #: spectral-efficiency cap [bit/s/Hz]: NR peak, 256-QAM (``channel.NR_PEAK_SPECTRAL_EFFICIENCY``)
    max_spectral_efficiency: float = 7.4063
    #: ``ergodic``: answers see the rate averaged over the fading during their airtime (default);
    #: ``instantaneous``: one fading draw per answer (``channel.delivery_rate_bps`` states the rule)
    fading_average: str = "ergodic"

    def validate(self, path: str = "radio") -> None:
        _check_range(self.carrier_ghz, f"{path}.carrier_ghz", 0.5, 100.0)
        _check_range(self.bandwidth_hz, f"{path}.bandwidth_hz", 1e4, 1e10)
        _check_range(self.noise_figure_db, f"{path}.noise_figure_db", 0.0, 30.0)
        _check_range(self.ue_height_m, f"{path}.ue_height_m", 1.5, 22.5)
        _check_range(self.ue_speed_mps, f"{path}.ue_speed_mps", 0.0, 100.0)
        _check_range(self.rician_k_db, f"{path}.rician_k_db", -30.0, 30.0)
        _check_range(self.csi_nmse_db, f"{path}.csi_nmse_db", -100.0, 10.0)
        _check_range(self.p_min_dbm, f"{path}.p_min_dbm", -30.0, 60.0)
        _check_range(self.p_max_dbm, f"{path}.p_max_dbm", -30.0, 60.0)
        _check(self.p_min_dbm < self.p_max_dbm, f"{path}.p_min_dbm",
               f"must be below p_max_dbm ({self.p_max_dbm:g}), got {self.p_min_dbm:g}")
        _check_range(self.earth_p0_w, f"{path}.earth_p0_w", 0.0, 10_000.0)
        _check_range(self.earth_p_sleep_w, f"{path}.earth_p_sleep_w", 0.0, 10_000.0)
        _check(self.earth_p_sleep_w <= self.earth_p0_w, f"{path}.earth_p_sleep_w",
               f"must not exceed earth_p0_w ({self.earth_p0_w:g}), got {self.earth_p_sleep_w:g}")
        _check_range(self.earth_delta_p, f"{path}.earth_delta_p", 0.0, 100.0)
        _check_range(self.ue_receive_power_w, f"{path}.ue_receive_power_w", 0.0, 100.0)
        _check_range(self.max_spectral_efficiency, f"{path}.max_spectral_efficiency", 0.5, 30.0)
        _check_choice(self.fading_average, f"{path}.fading_average", ("ergodic", "instantaneous"))


@dataclass(frozen=True)
class ServiceConfig:
    """The LLM service: answer-length control, QoE, latency, energy and carbon accounting."""

    modality: str = "speech"  #: ``speech`` | ``text`` (sets bits per token)
    bits_per_token: float | None = None  #: overrides the modality preset
    #: answer-length action mapping (docs/design.md §3.3): ``qoe`` = a ∈ [-1, 1] → target QoE in
    #: [q_floor, q_max] (piecewise linear, a = 0 ↦ q_min) → the least length meeting it, so no action breaks the
    #: floor; ``tokens`` = a → f ∈ [f_min, f_max] → round(f · L_ref) (the old mapping, kept for the ablation)
    length_action: str = "qoe"
    #: target QoE of a = +1 in ``qoe`` mode; None = the QoE of f_max · L_ref, ``1 - exp(-alpha f_max)``
    q_max: float | None = None
    f_min: float = 0.05  #: shortest answer as a fraction of the reference length (``tokens`` mode)
    f_max: float = 1.5
    kappa_max: int = 1500  #: hard cap on answer tokens
    qoe_alpha: float = 3.0  #: Q(kappa) = 1 - exp(-alpha kappa / L_ref)
    q_min: float = 0.8  #: per-user mean-QoE constraint over the episode
    q_floor: float = 0.3  #: every answer's QoE must reach this
    t_max_s: float = 30.0  #: latency limit per answer
    pue: float = 1.2
    k_host: float = 1.2  #: non-GPU server power on top of GPU energy
    embodied: bool = True
    #: embodied carbon per GPU-hour; None = the serving profile's figure (H100: 12.31 g, docs/design.md §3.4)
    embodied_g_per_gpu_hour: float | None = None
    #: how prompt tokens are charged (docs/design.md §3.4): ``net`` = e_pre · L_p plus the measured e_dec net of
    #: its own prefill share; ``additive`` = e_pre · L_p on top of the measured e_dec (counts the measured runs'
    #: prefill twice; the pre-fix model); ``measured`` = the measured e_dec alone (no prompt-length term)
    prefill_accounting: str = "net"
    workload: str | None = None  #: None = log-normal fit of the Azure conv trace; else a CSV trace path

    @property
    def q_max_effective(self) -> float:
        """Target QoE of the action a = +1 in ``qoe`` mode."""
        return self.q_max if self.q_max is not None else 1.0 - math.exp(-self.qoe_alpha * self.f_max)

    @property
    def payload_bits_per_token(self) -> float:
        return self.bits_per_token if self.bits_per_token is not None else MODALITY_BITS_PER_TOKEN[self.modality]

    def validate(self, path: str = "service") -> None:
        _check_choice(self.modality, f"{path}.modality", MODALITY_BITS_PER_TOKEN)
        if self.bits_per_token is not None:
            _check_range(self.bits_per_token, f"{path}.bits_per_token", 0.0, 1e7, lo_open=True)
        _check_range(self.f_min, f"{path}.f_min", 0.0, 10.0, lo_open=True)
        _check_range(self.f_max, f"{path}.f_max", 0.0, 10.0, lo_open=True)
        _check(self.f_min <= self.f_max, f"{path}.f_min", f"must not exceed f_max ({self.f_max:g}), got {self.f_min:g}")
        _check(isinstance(self.kappa_max, int) and self.kappa_max >= 1, f"{path}.kappa_max",
               f"must be an integer >= 1, got {self.kappa_max!r}")
        _check_range(self.qoe_alpha, f"{path}.qoe_alpha", 0.0, 100.0, lo_open=True)
        _check_range(self.q_min, f"{path}.q_min", 0.0, 1.0)
        _check_range(self.q_floor, f"{path}.q_floor", 0.0, 1.0)
        _check(self.q_floor <= self.q_min, f"{path}.q_floor", f"must not exceed q_min ({self.q_min:g})")
        q_best = 1.0 - math.exp(-self.qoe_alpha * self.f_max)
        _check(self.q_min < q_best, f"{path}.q_min",
               f"is unreachable: the longest answer (f_max={self.f_max:g}) gives QoE {q_best:.3f}")
        _check_choice(self.length_action, f"{path}.length_action", LENGTH_ACTIONS)
        if self.q_max is not None:
            _check_range(self.q_max, f"{path}.q_max", 0.0, 1.0)
        _check(self.q_min < self.q_max_effective < 1.0, f"{path}.q_max",
               f"must lie in (q_min={self.q_min:g}, 1), got {self.q_max_effective:g}")
        _check_range(self.t_max_s, f"{path}.t_max_s", 0.0, 3600.0, lo_open=True)
        _check_range(self.pue, f"{path}.pue", 1.0, 3.0)
        _check_range(self.k_host, f"{path}.k_host", 1.0, 3.0)
        if self.embodied_g_per_gpu_hour is not None:
            _check_range(self.embodied_g_per_gpu_hour, f"{path}.embodied_g_per_gpu_hour", 0.0, 1000.0)
        _check_choice(self.prefill_accounting, f"{path}.prefill_accounting", PREFILL_ACCOUNTING)


FORECAST_KINDS = ("perfect", "noisy")


@dataclass(frozen=True)
class ForecastConfig:
    """Carbon-intensity forecasts in the observation (docs/design.md §3.3; model in :mod:`aolo.envs.forecast`).

    ``noisy``: multiplicative log-normal error, σ(h) = σ_24 (h / 24)^growth with σ_24 set by ``mape_24h``
    (CarbonX, arXiv 2510.01521: day-ahead MAPE 15.8 % zero-shot, 9.6 % on benchmark grids), AR(1) over epochs
    with ``correlation_hours``; the draw is a function of (``seed``, cell, day)."""

    kind: str = "perfect"  #: ``perfect`` | ``noisy``
    mape_24h: float = 0.13  #: mean absolute percentage error of a 24 h-ahead forecast
    growth: float = 0.5  #: σ grows as (horizon / 24 h)^growth
    correlation_hours: float = 6.0  #: AR(1) correlation time of the error over epochs
    seed: int = 0

    def validate(self, path: str = "forecast") -> None:
        _check_choice(self.kind, f"{path}.kind", FORECAST_KINDS)
        _check_range(self.mape_24h, f"{path}.mape_24h", 0.0, 1.0)
        _check_range(self.growth, f"{path}.growth", 0.0, 3.0)
        _check_range(self.correlation_hours, f"{path}.correlation_hours", 0.0, 1000.0, lo_open=True)
        _check(isinstance(self.seed, int) and not isinstance(self.seed, bool), f"{path}.seed",
               f"must be an integer, got {self.seed!r}")


DEFICIT_TIMINGS = ("terminal", "accrued")
REWARD_TERMS = ("all", "carbon")


@dataclass(frozen=True)
class RewardWeights:
    """``r = -w_carbon (C_I + C_C)/C_scale + w_qoe (Q - Q_min) - w_latency 1[T > T_max] - w_floor 1[Q < Q_floor]``,
    plus ``- w_deficit max(0, Q_min - mean Q)`` at the last epoch (docs/design.md §3.5).

    ``deficit_timing = "accrued"`` pays that same deficit term as it builds up: each epoch is charged
    ``w_deficit (D_{t+1} - D_t)`` with ``D_t = max(0, (t Q_min - Σ_{τ<t} Q_τ) / T)`` (a refund when the user pays
    a shortfall back). The terms telescope to the terminal penalty, so every episode's undiscounted return is
    unchanged; the learner just sees the constraint at the step that moves it instead of up to 95 steps later.
    """

    carbon: float = 1.0
    qoe: float = 0.2  #: small: over-delivering QoE beyond Q_min should not pay for itself
    latency: float = 2.0
    floor: float = 1.0
    deficit: float = 300.0  #: ≈ 3 per unit of QoE per epoch over 96 epochs: keeps the mean-QoE constraint binding
    carbon_scale_g: float = 0.005  #: a typical per-request carbon (≈ 0.5–15 mg)
    deficit_timing: str = "terminal"  #: ``terminal`` (docs/design.md §3.5) | ``accrued`` (same return, dense)
    #: ``all``: the penalty reward above; ``carbon``: only ``-w_carbon C/C_scale - w_floor 1[Q < Q_floor]``, the
    #: QoE-mean and latency rules left to learned multipliers (``constraints.method: lagrangian``, which sets it)
    terms: str = "all"

    def validate(self, path: str = "reward") -> None:
        _check(self.terms in REWARD_TERMS, f"{path}.terms", f"must be one of {list(REWARD_TERMS)}, got {self.terms!r}")
        _check(self.deficit_timing in DEFICIT_TIMINGS, f"{path}.deficit_timing",
               f"must be one of {list(DEFICIT_TIMINGS)}, got {self.deficit_timing!r}")
        for f in ("carbon", "qoe", "latency", "floor", "deficit"):
            _check_range(getattr(self, f), f"{path}.{f}", 0.0, 1e6)
        _check_range(self.carbon_scale_g, f"{path}.carbon_scale_g", 0.0, 1e6, lo_open=True)


@dataclass(frozen=True)
class ScenarioConfig:
    """A multi-cell scenario: the cell list plus shared radio, service and reward settings."""

    name: str = "default"
    cells: tuple[CellSpec, ...] = (
        CellSpec(name="coal-bs/hydro-dc", grid_region="synthetic:coal_heavy", datacenter_region="synthetic:hydro"),
        CellSpec(name="hydro-bs/coal-dc", grid_region="synthetic:hydro", datacenter_region="synthetic:coal_heavy"),
    )
    radio: RadioConfig = field(default_factory=RadioConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    reward: RewardWeights = field(default_factory=RewardWeights)
    forecast: ForecastConfig = field(default_factory=ForecastConfig)
    epoch_s: float = 900.0
    epochs_per_episode: int = 96
    accounting: str = "direct"  #: carbon-intensity accounting: ``direct`` | ``life-cycle``
    data_dir: str | None = None  #: where ``zone:*`` traces are looked up (default: $AOLO_DATA_DIR, ../shared/data)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _check(isinstance(self.name, str) and self.name != "", "name", "must be a non-empty string")
        _check(len(self.cells) >= 1, "cells", "must list at least one cell")
        names = [c.name for c in self.cells]
        _check(len(set(names)) == len(names), "cells", f"cell names must be unique, got {names}")
        for i, cell in enumerate(self.cells):
            cell.validate(f"cells[{i}]")
        self.radio.validate()
        self.service.validate()
        self.reward.validate()
        self.forecast.validate()
        _check_range(self.epoch_s, "epoch_s", 0.001, 86_400.0)
        _check(isinstance(self.epochs_per_episode, int) and self.epochs_per_episode >= 1, "epochs_per_episode",
               f"must be an integer >= 1, got {self.epochs_per_episode!r}")
        _check_choice(self.accounting, "accounting", ACCOUNTING_MODES)

    # --- (de)serialisation ---------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "ScenarioConfig":
        data = dict(data or {})
        kwargs = _pick(cls, data, "scenario", nested={"radio": RadioConfig, "service": ServiceConfig,
                                                      "reward": RewardWeights, "forecast": ForecastConfig})
        if "cells" in data:
            cells = data["cells"]
            _check(isinstance(cells, (list, tuple)) and len(cells) > 0, "cells", "must be a non-empty list of cells")
            kwargs["cells"] = tuple(
                c if isinstance(c, CellSpec) else CellSpec(**_pick(CellSpec, c, f"cells[{i}]"))
                for i, c in enumerate(cells)
            )
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "ScenarioConfig":
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: scenario file not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        _check(isinstance(data, dict), str(path), "must contain a mapping of scenario keys")
        return cls.from_dict(data.get("scenario", data))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["cells"] = [dict(c) for c in d["cells"]]
        return d

    def replace(self, **changes: Any) -> "ScenarioConfig":
        """A copy with top-level fields or dotted nested fields replaced, e.g. ``{"reward.carbon": 2.0}``."""
        data = self.to_dict()
        for key, value in changes.items():
            target = data
            *parents, leaf = key.split(".")
            for p in parents:
                _check(isinstance(target, dict) and p in target, key, f"unknown section {p!r}")
                target = target[p]
            _check(isinstance(target, dict) and leaf in target, key,
                   f"unknown key; allowed: {sorted(target) if isinstance(target, dict) else []}")
            target[leaf] = value
        return ScenarioConfig.from_dict(data)


def _pick(cls, data: Any, path: str, nested: dict[str, type] | None = None) -> dict[str, Any]:
    """Keyword arguments for dataclass ``cls`` from ``data``, rejecting unknown keys; builds nested sections."""
    _check(isinstance(data, dict), path, f"must be a mapping, got {type(data).__name__}")
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - allowed)
    _check(not unknown, path, f"unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if nested and key in nested:
            sub = nested[key]
            out[key] = value if isinstance(value, sub) else sub(**_pick(sub, value or {}, key))
        elif key != "cells":
            out[key] = value
    return out
