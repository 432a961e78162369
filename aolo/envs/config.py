"""Validated scenario configuration: cells, radio, LLM service, reward weights.

Every field has a documented default (docs/design.md §3) and a validated range, declared next to it:
``num_users: int = bounded(8, 1, 1024, integer=True)``. :class:`Validated` walks a dataclass (nested sections,
lists of them) and collects every error in one pass with its full path, then cross-field rules (``q_floor <=
q_min``, ``p_min_dbm < p_max_dbm``) add theirs; one :class:`ConfigError` lists them all, one per line, as
``scenario.cells.1.num_users: must be an integer in [1, 1024], got 0``. Scenarios load from YAML or plain dicts
(``ScenarioConfig.from_dict``); unknown keys are reported with their path and the allowed keys.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from aolo.envs.channel import LINK_STATES, PATHLOSS_SCENARIOS
from aolo.envs.serving import SERVING_PROFILES
from aolo.envs.traces.carbon_trace import MAX_G_PER_KWH
from aolo.errors import ConfigError  # re-exported: aolo.envs.config.ConfigError

#: Bits sent over the radio per answer token for each modality preset.
#: speech: the answer is spoken with a 24 kbit/s codec at ≈ 3 tokens/s ⇒ 8000 bit/token;
#: text: ≈ 4 UTF-8 bytes per token ⇒ 32 bit/token.
MODALITY_BITS_PER_TOKEN = {"speech": 8000.0, "text": 32.0}
ACCOUNTING_MODES = ("direct", "life-cycle")
PREFILL_ACCOUNTING = ("net", "additive", "measured")
LENGTH_ACTIONS = ("qoe", "tokens")


# --- declarative validation --------------------------------------------------------------------------------

_RULE, _SECTION, _ITEMS = "aolo.rule", "aolo.section", "aolo.items"


@dataclass(frozen=True)
class Rule:
    """What one field allows: ``test(value)`` is true for a good value; ``allowed`` says what is allowed."""

    test: Callable[[Any], bool]
    allowed: str  #: e.g. ``must be a number in [0, 1]``; the error line is ``<path>: <allowed>, got <value>``
    optional: bool = False  #: None is allowed too

    def error(self, value: Any) -> str | None:
        if value is None and self.optional:
            return None
        try:
            ok = bool(self.test(value))
        except Exception:  # a value of the wrong type breaks the test: it is an error, not a crash
            ok = False
        return None if ok else f"{self.allowed}, got {value!r}"


def _field(default: Any, factory: Callable[[], Any] | None, metadata: dict[str, Any]) -> Any:
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def satisfies(
    default: Any,
    test: Callable[[Any], bool],
    allowed: str,
    *,
    optional: bool = False,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field whose values must pass ``test``; ``allowed`` (``must be ...``) names what passes."""
    return _field(default, factory, {_RULE: Rule(test, allowed, optional)})


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _g(x: float) -> str:
    return f"{x:g}"


def bounded(
    default: Any,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    integer: bool = False,
    optional: bool = False,
    noun: str | None = None,
    allowed: str | None = None,
) -> Any:
    """A numeric field in ``[lo, hi]`` (``lo_open``/``hi_open``: exclusive; None: unbounded on that side).

    The message reads ``must be a number in [lo, hi]`` (``integer``: ``must be an integer in [lo, hi]``, or
    ``>= lo`` without ``hi``); ``noun`` replaces ``a number``/``an integer`` (``""``: ``must be in (0, 1]``),
    ``allowed`` replaces the whole text.
    """

    def test(v: Any) -> bool:
        if not (is_integer(v) if integer else is_number(v)):
            return False
        if lo is not None and not (v > lo if lo_open else v >= lo):
            return False
        return hi is None or (v < hi if hi_open else v <= hi)

    if allowed is None:
        noun = ("an integer" if integer else "a number") if noun is None else noun
        prefix = f"must be {noun} " if noun else "must be "
        if integer and hi is None and lo is not None:
            allowed = f"{prefix}{'>' if lo_open else '>='} {_g(lo)}"
        elif integer and hi is None:
            allowed = prefix.rstrip()
        else:
            lo_s, hi_s = ("-inf" if lo is None else _g(lo)), ("inf" if hi is None else _g(hi))
            allowed = f"{prefix}in {'(' if lo_open else '['}{lo_s}, {hi_s}{')' if hi_open else ']'}"
    return satisfies(default, test, allowed, optional=optional)


def _listed(choices: Any) -> list[Any]:
    return sorted(choices) if isinstance(choices, (Mapping, set, frozenset)) else list(choices)


@dataclass(frozen=True)
class _ChoiceRule(Rule):
    choices: Any = ()

    def error(self, value: Any) -> str | None:
        if value is None and self.optional:
            return None
        try:
            ok = value in _listed(self.choices)
        except TypeError:  # an unhashable value tested against a dict's keys
            ok = False
        return None if ok else f"must be one of {_listed(self.choices)}, got {value!r}"


def one_of(default: Any, choices: Any, *, optional: bool = False) -> Any:
    """A field whose value must be one of ``choices`` (a tuple keeps its order; a dict or set is sorted).

    ``choices`` is read when validating, so entries registered later (e.g. serving profiles) are allowed."""
    return field(default=default, metadata={_RULE: _ChoiceRule(bool, "", optional, choices)})


def text(default: Any, allowed: str = "must be a non-empty string", *, optional: bool = False) -> Any:
    """A field holding a non-empty string."""
    return satisfies(default, lambda v: isinstance(v, str) and v != "", allowed, optional=optional)


def section(cls: type) -> Any:
    """A nested dataclass section (validated with its own rules, errors under ``<path>.<name>``)."""
    return field(default_factory=cls, metadata={_SECTION: cls})


def items(default: tuple[Any, ...], cls: type, allowed: str) -> Any:
    """A non-empty list of ``cls`` sections (errors under ``<path>.<name>.<index>``); ``allowed`` for a bad list."""
    return field(default=default, metadata={_ITEMS: (cls, allowed)})


class Validated:
    """Mixin for a frozen dataclass whose fields carry their rules (:func:`bounded`, :func:`one_of`, ...).

    :meth:`validation_errors` checks every field, recurses into sections and lists of sections, then adds the
    cross-field rules of :meth:`_cross_checks`; :meth:`validate` raises them all as one :class:`ConfigError`.
    """

    _path = "config"  #: the path of a top-level instance (``scenario``, ``training``, ``radio``)

    def _cross_checks(self, bad: set[str]) -> Iterator[tuple[str, str]]:
        """Rules between fields: ``(field name, message)`` pairs; ``bad`` holds the fields that already failed."""
        return iter(())

    def validation_errors(self, path: str | None = None) -> list[str]:
        """Every error of this instance, each ``<path>.<field>: <what is allowed>, got <value>``."""
        path = self._path if path is None else path
        errors: list[str] = []
        bad: set[str] = set()
        for f in fields(self):  # type: ignore[arg-type]
            value, where = getattr(self, f.name), f"{path}.{f.name}"
            found: list[str] = []
            if _RULE in f.metadata:
                message = f.metadata[_RULE].error(value)
                found = [f"{where}: {message}"] if message else []
            elif _SECTION in f.metadata:
                found = _section_errors(f.metadata[_SECTION], value, where)
            elif _ITEMS in f.metadata:
                cls, allowed = f.metadata[_ITEMS]
                if isinstance(value, (list, tuple)):
                    found = [e for i, item in enumerate(value) for e in _section_errors(cls, item, f"{where}.{i}")]
                else:
                    found = [f"{where}: {allowed}, got {value!r}"]
            if found:
                errors += found
                bad.add(f.name)
        errors += [f"{path}.{name}: {message}" for name, message in self._cross_checks(bad)]
        return errors

    def validate(self, path: str | None = None) -> None:
        """Raise one :class:`ConfigError` listing every error, or return."""
        errors = self.validation_errors(path)
        if errors:
            raise ConfigError(errors=errors)

    @classmethod
    def _kwargs(cls, data: Any, path: str, errors: list[str]) -> dict[str, Any]:
        """Keyword arguments for ``cls`` from a mapping; a non-mapping or unknown keys add errors (with the
        allowed keys), nested sections and lists of sections are built, their own errors collected too."""
        allowed = sorted(f.name for f in fields(cls))  # type: ignore[arg-type]
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            errors.append(f"{path}: must be a mapping with keys among {allowed}, got {data!r}")
            return {}
        unknown = sorted((k for k in data if k not in allowed), key=str)
        if unknown:
            errors.append(f"{path}: unknown key(s) {unknown}; allowed: {allowed}")
        out: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name not in data:
                continue
            value, where = data[f.name], f"{path}.{f.name}"
            if _SECTION in f.metadata:
                sub = f.metadata[_SECTION]
                if not isinstance(value, sub):
                    value = sub(**sub._kwargs(value, where, errors))
            elif _ITEMS in f.metadata:
                sub, what = f.metadata[_ITEMS]
                if not (isinstance(value, (list, tuple)) and len(value) > 0):
                    errors.append(f"{where}: {what}, got {value!r}")
                    continue
                value = tuple(
                    v if isinstance(v, sub) else sub(**sub._kwargs(v, f"{where}.{i}", errors))
                    for i, v in enumerate(value)
                )
            out[f.name] = value
        return out

    @classmethod
    def from_mapping(cls, data: Any, path: str | None = None) -> Any:
        """An instance from a mapping, or one :class:`ConfigError` with every structural and value error."""
        path = cls._path if path is None else path
        errors: list[str] = []
        kwargs = cls._kwargs(data, path, errors)
        try:
            obj = cls(**kwargs)
            obj.validate(path)  # (a no-op for classes that validate themselves on construction)
        except ConfigError as e:
            errors += e.errors
        if errors:
            raise ConfigError(errors=errors)
        return obj


def _section_errors(cls: type[Validated], value: Any, path: str) -> list[str]:
    if not isinstance(value, cls):
        return [f"{path}: must be a {cls.__name__} (a mapping of its fields), got {value!r}"]
    return value.validation_errors(path)


_TRACE_SPEC = "must be a trace spec like 'synthetic:hydro', 'zone:DE' or a file path"


def _check(cond: bool, path: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{path}: {message}")


@dataclass(frozen=True)
class CellSpec(Validated):
    """One base station and the datacenter that serves its users' LLM requests."""

    _path = "cell"

    name: str = text("cell")
    #: carbon trace of the BS's grid (``synthetic:*``, ``zone:*`` or a file)
    grid_region: str = text("synthetic:wind_coal", _TRACE_SPEC)
    datacenter_region: str = text("synthetic:hydro", _TRACE_SPEC)  #: carbon trace of the datacenter's grid
    num_users: int = bounded(8, 1, 1024, integer=True)
    radius_m: float = bounded(250.0, 10.0, 5000.0)
    min_distance_m: float = bounded(35.0, 10.0, 5000.0)
    pathloss: str = one_of("uma", PATHLOSS_SCENARIOS)  #: TR 38.901 scenario: ``uma`` | ``umi``
    link_state: str = one_of("nlos", LINK_STATES)  #: ``nlos`` (Rayleigh) | ``los`` (Rician)
    serving_profile: str = one_of("llama-3.1-8b-h100", SERVING_PROFILES)
    serving_batch: int = bounded(64)  #: within the serving profile's measured batch sizes (a cross-field rule)
    bs_power_budget_w: float = bounded(20.0, 0.0, 1000.0, lo_open=True)  #: Σ_u P_u ≤ this (EARTH macro, per carrier)
    #: neighbour-cell interference; None = none
    interference_to_noise_db: float | None = bounded(None, -50.0, 50.0, optional=True)
    #: replay per-user |h|² from ``.npz``/CSV instead of generating it
    fading_trace: str | None = satisfies(
        None, lambda v: Path(v).suffix in (".npz", ".csv"), "must be a .npz or .csv file", optional=True
    )
    #: reuse a fading trace shorter than the days the scenario reads cyclically (otherwise that is an error)
    fading_trace_wrap: bool = satisfies(False, lambda v: isinstance(v, bool), "true or false")
    #: the shared serving site (``scenario.sites``) serving this cell's users; None = a private, uncapacitated
    #: datacenter at ``serving_batch`` (then ``datacenter_region`` and ``serving_profile`` are this cell's own;
    #: with a site, the site's are used)
    site: str | None = text(None, "must be the name of a site of scenario.sites", optional=True)
    #: the cell's local time = UTC + this [h]: its users' diurnal request volume follows local time (carbon traces
    #: stay in UTC); read only with a site
    utc_offset_h: float = bounded(0.0, -12.0, 14.0)

    def _cross_checks(self, bad: set[str]) -> Iterator[tuple[str, str]]:
        if not bad & {"radius_m", "min_distance_m"} and not self.radius_m > self.min_distance_m:
            yield "radius_m", f"must exceed min_distance_m ({self.min_distance_m:g}), got {self.radius_m:g}"
        if not bad & {"serving_profile", "serving_batch"}:
            sizes = SERVING_PROFILES[self.serving_profile].batch_sizes
            if not sizes[0] <= self.serving_batch <= sizes[-1]:
                yield (
                    "serving_batch",
                    (
                        f"must be a number in [{sizes[0]:g}, {sizes[-1]:g}] (the measured batch sizes "
                        f"of {self.serving_profile}), got {self.serving_batch!r}"
                    ),
                )


@dataclass(frozen=True)
class RadioConfig(Validated):
    """Link budget, fading and base-station power model (EARTH macro, Auer et al. 2011)."""

    _path = "radio"

    carrier_ghz: float = bounded(3.5, 0.5, 100.0)
    bandwidth_hz: float = bounded(20e6, 1e4, 1e10)  #: split equally among the cell's users
    noise_figure_db: float = bounded(7.0, 0.0, 30.0)
    ue_height_m: float = bounded(1.5, 1.5, 22.5)
    #: 3 km/h pedestrian (sets the Doppler of the fading process)
    ue_speed_mps: float = bounded(0.833, 0.0, 100.0)
    rician_k_db: float = bounded(9.0, -30.0, 30.0)  #: used when ``link_state == "los"``
    shadowing: bool = True
    csi_nmse_db: float = bounded(-10.0, -100.0, 10.0)  #: error of the CSI estimate the agent sees
    p_min_dbm: float = bounded(0.0, -30.0, 60.0)  #: below p_max_dbm
    p_max_dbm: float = bounded(43.0, -30.0, 60.0)  #: per user
    #: power action mapping (docs/design.md §3.3): ``efficient`` = a ∈ [-1, 1] → dBm, piecewise linear, -1 ↦
    #: p_min_dbm, 0 ↦ the most efficient power P* on the estimated channel, +1 ↦ p_max_dbm; ``dbm`` = linear
    #: over [p_min_dbm, p_max_dbm] (the old mapping, kept for the ablation)
    power_action: str = one_of("efficient", ("efficient", "dbm"))
    earth_p0_w: float = bounded(130.0, 0.0, 10_000.0)  #: load-independent power per transceiver
    earth_p_sleep_w: float = bounded(75.0, 0.0, 10_000.0)  #: at most earth_p0_w
    earth_delta_p: float = bounded(4.7, 0.0, 100.0)  #: slope of the load-dependent power
    #: optional UE receive power charged over the airtime
    ue_receive_power_w: float = bounded(0.0, 0.0, 100.0)
    #: spectral-efficiency cap [bit/s/Hz]: NR peak, 256-QAM (``channel.NR_PEAK_SPECTRAL_EFFICIENCY``)
    max_spectral_efficiency: float = bounded(7.4063, 0.5, 30.0)
    #: ``ergodic``: answers see the rate averaged over the fading during their airtime (default);
    #: ``instantaneous``: one fading draw per answer (``channel.delivery_rate_bps`` states the rule)
    fading_average: str = one_of("ergodic", ("ergodic", "instantaneous"))

    def _cross_checks(self, bad: set[str]) -> Iterator[tuple[str, str]]:
        if not bad & {"p_min_dbm", "p_max_dbm"} and not self.p_min_dbm < self.p_max_dbm:
            yield "p_min_dbm", f"must be below p_max_dbm ({self.p_max_dbm:g}), got {self.p_min_dbm:g}"
        if not bad & {"earth_p0_w", "earth_p_sleep_w"} and not self.earth_p_sleep_w <= self.earth_p0_w:
            yield "earth_p_sleep_w", f"must not exceed earth_p0_w ({self.earth_p0_w:g}), got {self.earth_p_sleep_w:g}"


@dataclass(frozen=True)
class ServiceConfig(Validated):
    """The LLM service: answer-length control, QoE, latency, energy and carbon accounting."""

    _path = "service"

    modality: str = one_of("speech", MODALITY_BITS_PER_TOKEN)  #: ``speech`` | ``text`` (sets bits per token)
    #: overrides the modality preset
    bits_per_token: float | None = bounded(None, 0.0, 1e7, lo_open=True, optional=True)
    #: answer-length action mapping (docs/design.md §3.3): ``qoe`` = a ∈ [-1, 1] → target QoE in
    #: [q_floor, q_max] (piecewise linear, a = 0 ↦ q_min) → the least length meeting it, so no action breaks the
    #: floor; ``tokens`` = a → f ∈ [f_min, f_max] → round(f · L_ref) (the old mapping, kept for the ablation)
    length_action: str = one_of("qoe", LENGTH_ACTIONS)
    #: target QoE of a = +1 in ``qoe`` mode; None = the QoE of f_max · L_ref, ``1 - exp(-alpha f_max)``
    q_max: float | None = bounded(None, 0.0, 1.0, optional=True)
    #: shortest answer as a fraction of the reference length (``tokens`` mode)
    f_min: float = bounded(0.05, 0.0, 10.0, lo_open=True)
    f_max: float = bounded(1.5, 0.0, 10.0, lo_open=True)
    kappa_max: int = bounded(1500, 1, integer=True)  #: hard cap on answer tokens
    #: the mean-QoE safety layer (docs/design.md §3.3): an answer is lengthened where the user's day could
    #: otherwise no longer meet q_min with every later answer at q_max; never binds on a plan that meets the rule
    mean_qoe_guard: bool = satisfies(True, lambda v: isinstance(v, bool), "true or false")
    #: with a model pool the guard plans every later answer at, and asks at most, the QoE of this multiple of the
    #: model's own answer length, ``c_m (1 - exp(-alpha r))``: 1.2 keeps the rescue of the longest default request
    #: within t_max on the 70B, where q_max (1.5) does not (docs/design.md §3.7); one model: the guard plans at q_max
    guard_length_ratio: float = bounded(1.2, 0.0, 10.0, lo_open=True)
    qoe_alpha: float = bounded(3.0, 0.0, 100.0, lo_open=True)  #: Q(kappa) = 1 - exp(-alpha kappa / L_ref)
    q_min: float = bounded(0.8, 0.0, 1.0)  #: per-user mean-QoE constraint over the episode
    q_floor: float = bounded(0.3, 0.0, 1.0)  #: every answer's QoE must reach this
    t_max_s: float = bounded(30.0, 0.0, 3600.0, lo_open=True)  #: latency limit per answer
    pue: float = bounded(1.2, 1.0, 3.0)
    k_host: float = bounded(1.2, 1.0, 3.0)  #: non-GPU server power on top of GPU energy
    embodied: bool = True
    #: embodied carbon per GPU-hour; None = the serving profile's figure (H100: 12.31 g, docs/design.md §3.4)
    embodied_g_per_gpu_hour: float | None = bounded(None, 0.0, 1000.0, optional=True)
    #: how prompt tokens are charged (docs/design.md §3.4): ``net`` = e_pre · L_p plus the measured e_dec net of
    #: its own prefill share; ``additive`` = e_pre · L_p on top of the measured e_dec (counts the measured runs'
    #: prefill twice; the pre-fix model); ``measured`` = the measured e_dec alone (no prompt-length term)
    prefill_accounting: str = one_of("net", PREFILL_ACCOUNTING)
    workload: str | None = None  #: None = log-normal fit of the Azure conv trace; else a CSV trace path
    #: which model answers (docs/design.md §3.7): a third action component picks one of ``model_pool`` per
    #: user-epoch, each model with its own QoE curve, energy, latency and embodied share; false = the cell's
    #: ``serving_profile`` answers everything (today's model)
    model_action: bool = satisfies(False, lambda v: isinstance(v, bool), "true or false")
    #: serving profiles the datacenter serves when ``model_action`` is on (registry keys of aolo.envs.serving)
    model_pool: tuple[str, ...] = satisfies(
        ("llama-3.1-8b-h100", "llama-3.1-70b-4xh100"),
        lambda v: (
            isinstance(v, (list, tuple))
            and len(v) > 0
            and all(n in SERVING_PROFILES for n in v)
            and len(set(v)) == len(v)
        ),
        f"must be a non-empty list of distinct serving profiles among {sorted(SERVING_PROFILES)}",
    )
    #: Elo rating per pool model (overrides the Chatbot Arena figures of aolo.envs.models.ARENA_ELO); None = those
    model_elo: dict[str, float] | None = satisfies(
        None,
        lambda v: isinstance(v, Mapping) and all(isinstance(k, str) and is_number(e) for k, e in v.items()),
        "must be a mapping of serving profile -> Elo rating",
        optional=True,
    )
    #: Elo points per factor 10 in the odds of being preferred (400: the Elo convention, Chatbot Arena's too)
    elo_scale: float = bounded(400.0, 0.0, 1e5, lo_open=True)

    def __post_init__(self) -> None:
        if isinstance(self.model_pool, list):  # YAML gives lists: one type, so equal scenarios compare equal
            object.__setattr__(self, "model_pool", tuple(self.model_pool))

    @property
    def q_max_effective(self) -> float:
        """Target QoE of the action a = +1 in ``qoe`` mode."""
        return self.q_max if self.q_max is not None else 1.0 - math.exp(-self.qoe_alpha * self.f_max)

    @property
    def payload_bits_per_token(self) -> float:
        return self.bits_per_token if self.bits_per_token is not None else MODALITY_BITS_PER_TOKEN[self.modality]

    def _cross_checks(self, bad: set[str]) -> Iterator[tuple[str, str]]:
        if not bad & {"f_min", "f_max"} and not self.f_min <= self.f_max:
            yield "f_min", f"must not exceed f_max ({self.f_max:g}), got {self.f_min:g}"
        if not bad & {"q_floor", "q_min"} and not self.q_floor <= self.q_min:
            yield "q_floor", f"must not exceed q_min ({self.q_min:g}), got {self.q_floor:g}"
        if bad & {"q_min", "qoe_alpha", "f_max"}:
            return
        q_best = 1.0 - math.exp(-self.qoe_alpha * self.f_max)
        if not self.q_min < q_best:
            yield (
                "q_min",
                (
                    f"is unreachable: the longest answer (f_max={self.f_max:g}) gives QoE {q_best:.3f}, "
                    f"got {self.q_min:g}"
                ),
            )
        elif "q_max" not in bad and not self.q_min < self.q_max_effective < 1.0:
            yield "q_max", f"must lie in (q_min={self.q_min:g}, 1), got {self.q_max_effective:g}"
        if self.model_action and not bad & {"model_pool", "model_elo", "elo_scale", "q_floor", "q_max"}:
            yield from self._model_pool_checks()
        if self.model_action and "guard_length_ratio" not in bad and "q_max" not in bad:
            q_guard = 1.0 - math.exp(-self.qoe_alpha * self.guard_length_ratio)
            if not self.q_min < q_guard <= self.q_max_effective + 1e-12:
                top = -math.log(1.0 - self.q_max_effective) / self.qoe_alpha
                low = -math.log(1.0 - self.q_min) / self.qoe_alpha
                yield (
                    "guard_length_ratio",
                    (
                        f"must lie in ({low:.3f}, {top:.3f}]: the guard's planned answer (QoE {q_guard:.3f} of the "
                        f"ceiling) must exceed q_min={self.q_min:g} and not exceed q_max={self.q_max_effective:.3f}, "
                        f"got {self.guard_length_ratio:g}"
                    ),
                )

    def _model_pool_checks(self) -> Iterator[tuple[str, str]]:
        """Every pool model needs an Elo rating, and its best answer must reach ``q_floor`` (docs/design.md §3.7)."""
        from aolo.envs.models import pool_ceilings, pool_elo

        if self.length_action != "qoe":
            yield "length_action", f"must be 'qoe' with model_action (per-model QoE curves), got {self.length_action!r}"
        elo = pool_elo(self)
        unrated = [name for name, e in elo.items() if math.isnan(e)]
        if unrated:
            yield (
                "model_elo",
                f"must give an Elo rating for pool model(s) {unrated} (no published figure), got {self.model_elo!r}",
            )
            return
        for name, ceiling in pool_ceilings(self).items():
            if not ceiling * self.q_max_effective >= self.q_floor:
                yield (
                    "model_pool",
                    (
                        f"model {name!r} has quality ceiling {ceiling:.3f} (Elo {elo[name]:g} vs the pool's best "
                        f"{max(elo.values()):g}): its best answer (QoE {ceiling * self.q_max_effective:.3f}) cannot "
                        f"reach q_floor={self.q_floor:g}; drop it from the pool or lower q_floor"
                    ),
                )


FORECAST_KINDS = ("perfect", "noisy")


@dataclass(frozen=True)
class ForecastConfig(Validated):
    """Carbon-intensity forecasts in the observation (docs/design.md §3.3; model in :mod:`aolo.envs.forecast`).

    ``noisy``: multiplicative log-normal error, σ(h) = σ_24 (h / 24)^growth with σ_24 set by ``mape_24h``
    (CarbonX, arXiv 2510.01521: day-ahead MAPE 15.8 % zero-shot, 9.6 % on benchmark grids), AR(1) over epochs
    with ``correlation_hours``; the draw is a function of (``seed``, cell, day)."""

    _path = "forecast"

    kind: str = one_of("perfect", FORECAST_KINDS)  #: ``perfect`` | ``noisy``
    mape_24h: float = bounded(0.13, 0.0, 1.0)  #: mean absolute percentage error of a 24 h-ahead forecast
    growth: float = bounded(0.5, 0.0, 3.0)  #: σ grows as (horizon / 24 h)^growth
    #: AR(1) correlation time of the error over epochs
    correlation_hours: float = bounded(6.0, 0.0, 1000.0, lo_open=True)
    seed: int = bounded(0, integer=True)


DEFICIT_TIMINGS = ("terminal", "accrued")
REWARD_TERMS = ("all", "carbon")
SITE_LATENCY_COSTS = ("own", "load_share")


@dataclass(frozen=True)
class RewardWeights(Validated):
    """``r = -w_carbon (C_I + C_C)/C_scale + w_qoe (Q - Q_min) - w_latency 1[T > T_max] - w_floor 1[Q < Q_floor]``,
    plus ``- w_deficit max(0, Q_min - mean Q)`` at the last epoch (docs/design.md §3.5).

    ``deficit_timing = "accrued"`` pays that same deficit term as it builds up: each epoch is charged
    ``w_deficit (D_{t+1} - D_t)`` with ``D_t = max(0, (t Q_min - Σ_{τ<t} Q_τ) / T)`` (a refund when the user pays
    a shortfall back). The terms telescope to the terminal penalty, so every episode's undiscounted return is
    unchanged; the learner just sees the constraint at the step that moves it instead of up to 95 steps later.
    """

    _path = "reward"

    carbon: float = bounded(1.0, 0.0, 1e6)
    qoe: float = bounded(0.2, 0.0, 1e6)  #: small: over-delivering QoE beyond Q_min should not pay for itself
    latency: float = bounded(2.0, 0.0, 1e6)
    floor: float = bounded(1.0, 0.0, 1e6)
    #: ≈ 3 per unit of QoE per epoch over 96 epochs: keeps the mean-QoE constraint binding
    deficit: float = bounded(300.0, 0.0, 1e6)
    carbon_scale_g: float = bounded(0.005, 0.0, 1e6, lo_open=True)  #: a typical per-request carbon (≈ 0.5–15 mg)
    #: ``global``: every cell's carbon is divided by ``carbon_scale_g``; ``per_cell``: by the cell's own typical
    #: request carbon (``CellEnv.reference_carbon_g``; cells differ up to 25×, so one scale makes the small cells'
    #: carbon look negligible next to the QoE terms and they over-deliver QoE, issue 10); a site's cells use the
    #: site's datacenter
    carbon_normalisation: str = one_of("global", ("global", "per_cell"))
    #: who pays for a late answer on a shared site (docs/design.md §10, "Learning on sites"): ``own``, the agent
    #: whose answer is late; ``load_share``, the agents of the site's epoch in proportion to their tokens for the
    #: answers that were late only because of the site's queue (an answer late even without the wait stays its
    #: own). The epoch's total is unchanged. Ignored by cells with a private datacenter
    site_latency_cost: str = one_of("own", SITE_LATENCY_COSTS)
    #: ``terminal`` (docs/design.md §3.5) | ``accrued`` (same return, dense)
    deficit_timing: str = one_of("terminal", DEFICIT_TIMINGS)
    #: ``all``: the penalty reward above; ``carbon``: only ``-w_carbon C/C_scale - w_floor 1[Q < Q_floor]``, the
    #: QoE-mean and latency rules left to learned multipliers (``constraints.method: lagrangian``, which sets it)
    terms: str = one_of("all", REWARD_TERMS)


BACKGROUND_KINDS = ("diurnal", "csv", "none")
SITE_SCALING = ("fixed", "autoscale")


@dataclass(frozen=True)
class DiurnalSpec(Validated):
    """A daily load shape in local time with random variation (docs/design.md §10; ``site.diurnal_factor``).

    ``factor(h) = exp(σ_day z_day + σ_epoch z_t) · (1 + a cos(2π (h_local - peak_hour_local) / 24))`` with
    ``a = (r - 1) / (r + 1)``, so the noiseless peak is ``r = peak_to_trough`` times the trough and the day mean is 1.
    The default ratio 2.5 is an estimate from the published one-week Azure LLM inference trace 2024 and BurstGPT
    (arXiv 2401.17644) daily cycles; replace it with a measured trace (``background.kind: csv``) where available."""

    _path = "diurnal"

    peak_to_trough: float = bounded(2.5, 1.0, 100.0)
    peak_hour_local: float = bounded(14.0, 0.0, 24.0, hi_open=True)  #: local hour of the daily peak
    day_sigma: float = bounded(0.1, 0.0, 2.0)  #: log-normal σ of the day's level (day-to-day variation)
    epoch_sigma: float = bounded(0.05, 0.0, 2.0)  #: log-normal σ per epoch (independent draws)


@dataclass(frozen=True)
class BackgroundSpec(Validated):
    """The site's other tenants' decode demand [output tokens/s], which the agents do not control.

    ``diurnal``: ``mean_tok_s`` × :class:`DiurnalSpec` in the site's local time; ``csv``: arrivals in the Azure LLM
    inference trace format (``TIMESTAMP,ContextTokens,GeneratedTokens``, UTC), generated tokens summed per epoch
    over the epoch's length and multiplied by ``csv_scale``; the trace must cover whole days, day ``d`` of an
    episode reads trace day ``d mod days``; ``none``: no other tenants."""

    _path = "background"

    kind: str = one_of("diurnal", BACKGROUND_KINDS)
    mean_tok_s: float = bounded(20_000.0, 0.0, 1e9)  #: day-mean decode demand (``diurnal``)
    diurnal: DiurnalSpec = section(DiurnalSpec)
    csv: str | None = text(None, "must be a CSV file path (Azure LLM trace format)", optional=True)
    csv_scale: float = bounded(1.0, 0.0, 1e6, lo_open=True)  #: a fleet-wide trace scaled to this site

    def _cross_checks(self, bad: set[str]) -> Iterator[tuple[str, str]]:
        if self.kind == "csv" and self.csv is None and "csv" not in bad:
            yield "csv", "must be a CSV file path when kind is 'csv', got None"


@dataclass(frozen=True)
class SiteSpec(Validated):
    """A shared serving site: replicas of one model whose batch, energy per token and latency every user sets.

    docs/design.md §10 is the model; :mod:`aolo.envs.site` the physics. ``scaling: fixed`` runs ``replicas``
    replicas all day; ``autoscale`` re-plans each epoch ``ceil(observed demand / X(target_batch))`` replicas
    within ``[min_replicas, max_replicas]`` from the last epoch's demand (starting at ``replicas``)."""

    _path = "site"

    name: str = text("site")
    datacenter_region: str = text("synthetic:hydro", _TRACE_SPEC)  #: carbon trace of the site's grid
    serving_profile: str = one_of("llama-3.1-8b-h100", SERVING_PROFILES)
    utc_offset_h: float = bounded(0.0, -12.0, 14.0)  #: local time = UTC + this [h] (the background's diurnal)
    scaling: str = one_of("autoscale", SITE_SCALING)
    replicas: int = bounded(2, 1, 100_000, integer=True)  #: fixed count, or the first epoch's under autoscale
    min_replicas: int = bounded(1, 1, 100_000, integer=True)
    max_replicas: int = bounded(8, 1, 100_000, integer=True)
    target_batch: float = bounded(256.0)  #: within the profile's measured batch sizes (a cross-field rule)
    #: mean requests one agent (a user group) issues per epoch over the day; its day shape is ``agent_volume``
    requests_per_agent: float = bounded(1.0, 0.0, 1e6, lo_open=True)
    agent_volume: DiurnalSpec = section(DiurnalSpec)  #: in each cell's local time (``cells.*.utc_offset_h``)
    background: BackgroundSpec = section(BackgroundSpec)

    def _cross_checks(self, bad: set[str]) -> Iterator[tuple[str, str]]:
        if not bad & {"min_replicas", "max_replicas"} and not self.min_replicas <= self.max_replicas:
            yield "min_replicas", f"must not exceed max_replicas ({self.max_replicas}), got {self.min_replicas}"
        if "serving_profile" in bad:
            return
        profile = SERVING_PROFILES[self.serving_profile]
        if not profile.throughput_tok_s:
            yield "serving_profile", f"has no measured throughput-vs-batch curve, got {self.serving_profile!r}"
        sizes = profile.batch_sizes
        if "target_batch" not in bad and not sizes[0] <= self.target_batch <= sizes[-1]:
            yield (
                "target_batch",
                f"must be a number in [{sizes[0]:g}, {sizes[-1]:g}] (the measured batch sizes of "
                f"{self.serving_profile}), got {self.target_batch!r}",
            )


@dataclass(frozen=True)
class ScenarioConfig(Validated):
    """A multi-cell scenario: the cell list plus shared radio, service and reward settings."""

    _path = "scenario"

    name: str = text("default")
    cells: tuple[CellSpec, ...] = items(
        (
            CellSpec(name="coal-bs/hydro-dc", grid_region="synthetic:coal_heavy", datacenter_region="synthetic:hydro"),
            CellSpec(name="hydro-bs/coal-dc", grid_region="synthetic:hydro", datacenter_region="synthetic:coal_heavy"),
        ),
        CellSpec,
        "must be a non-empty list of cells",
    )
    radio: RadioConfig = section(RadioConfig)
    service: ServiceConfig = section(ServiceConfig)
    reward: RewardWeights = section(RewardWeights)
    forecast: ForecastConfig = section(ForecastConfig)
    #: shared serving sites (docs/design.md §10); cells name theirs with ``site``. Empty: every cell private
    sites: tuple[SiteSpec, ...] = items((), SiteSpec, "must be a non-empty list of sites (or left out)")
    epoch_s: float = bounded(900.0, 0.001, 86_400.0)
    epochs_per_episode: int = bounded(96, 1, integer=True)
    accounting: str = one_of("direct", ACCOUNTING_MODES)  #: carbon-intensity accounting: ``direct`` | ``life-cycle``
    data_dir: str | None = None  #: where ``zone:*`` traces are looked up (default: $AOLO_DATA_DIR, ../shared/data)
    #: trace files with a value above this [gCO2eq/kWh] are refused (the plausible range, MAX_G_PER_KWH)
    carbon_intensity_max_g_per_kwh: float = bounded(MAX_G_PER_KWH, 0.0, 1e5, lo_open=True)

    def __post_init__(self) -> None:
        self.validate()

    def _cross_checks(self, bad: set[str]) -> Iterator[tuple[str, str]]:
        if not isinstance(self.cells, (list, tuple)):
            return
        if len(self.cells) < 1:
            yield "cells", "must list at least one cell, got []"
            return
        names = [getattr(c, "name", None) for c in self.cells]
        if any(names.count(n) > 1 for n in names):
            yield "cells", f"cell names must be unique, got {names}"
        if isinstance(self.service, ServiceConfig) and self.service.model_action and "service" not in bad:
            for i, cell in enumerate(self.cells):
                for name in self.service.model_pool:
                    sizes = SERVING_PROFILES[name].batch_sizes
                    if not sizes[0] <= cell.serving_batch <= sizes[-1]:
                        yield (
                            f"cells.{i}.serving_batch",
                            f"must be a number in [{sizes[0]:g}, {sizes[-1]:g}] (the measured batch sizes of pool "
                            f"model {name}), got {cell.serving_batch!r}",
                        )
        if not isinstance(self.sites, (list, tuple)):
            return
        site_names = [getattr(s, "name", None) for s in self.sites]
        if any(site_names.count(n) > 1 for n in site_names):
            yield "sites", f"site names must be unique, got {site_names}"
        for i, cell in enumerate(self.cells):
            site = getattr(cell, "site", None)
            if site is not None and site not in site_names:
                yield f"cells.{i}.site", f"must name one of the sites {site_names}, got {site!r}"
        if self.sites and isinstance(self.service, ServiceConfig) and self.service.model_action:
            yield "service.model_action", "must be false with scenario.sites (a site serves one model), got true"

    # --- (de)serialisation ---------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ScenarioConfig:
        """A validated scenario from a mapping; one :class:`ConfigError` lists every unknown key and bad value."""
        return cls.from_mapping(data, "scenario")

    @classmethod
    def from_yaml(cls, path: str | Path) -> ScenarioConfig:
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
        if not d["sites"]:  # no sites: the dict of a site-less scenario reads back (an empty list is an error)
            del d["sites"]
        return d

    def replace(self, **changes: Any) -> ScenarioConfig:
        """A copy with top-level fields or dotted nested fields replaced, e.g. ``{"reward.carbon": 2.0}``."""
        data = self.to_dict()
        errors: list[str] = []
        for key, value in changes.items():
            target = data
            *parents, leaf = key.split(".")
            for p in parents:
                if not (isinstance(target, dict) and p in target):
                    errors.append(f"scenario.{key}: unknown section {p!r}")
                    break
                target = target[p]
            else:
                if isinstance(target, dict) and leaf in target:
                    target[leaf] = value
                else:
                    allowed = sorted(target) if isinstance(target, dict) else []
                    errors.append(f"scenario.{key}: unknown key; allowed: {allowed}")
        if errors:
            raise ConfigError(errors=errors)
        return ScenarioConfig.from_dict(data)
