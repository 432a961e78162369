"""Shared serving sites: the physics of replicas whose batch every user's answers set (docs/design.md §10).

A site runs ``r`` replicas of one serving profile. Each epoch its decode demand ``D_t`` [output tokens/s] —
the other tenants' background plus the agents' tokens — sets the operating batch ``b_t`` from the profile's
measured throughput-vs-batch curve: ``r · X(b_t) = D_t`` (ML.ENERGY v3 ``output_throughput_tokens_per_sec``,
interpolated linearly in log(batch) like ``e_dec`` and ``itl``, never extrapolated). Every token of the epoch
is served at ``e_dec(b_t)`` and ``itl(b_t)``, so one user's longer answers raise everyone's inter-token latency
and lower everyone's energy per token (8B on 1×H100: 0.455 J and 7.3 ms at b = 8, 0.070 J and 47 ms at b = 512).

* Below the smallest measured batch (``D_t < r · X(b_min)``) the replicas run at ``b_min`` part of the time: no
  point below it is measured, and the autoscaler keeps a site out of that region. Idle power is not charged.
* Above the top throughput (``D_t > r · X(b_max)``, the capacity) the excess queues as a fluid backlog carried
  to the next epoch (:func:`fluid_queue`); its mean wait adds to every answer's latency and counts against
  ``T_max``.
* Energy is attributed **proportionally to tokens**: each answer token costs the epoch's ``e_dec(b_t)``, so the
  site's decode energy is split among requests by their token counts (docs/design.md §10 discusses the
  marginal alternative ``d(D e(b(D)))/dD``, lower than the average wherever batching still pays).
* Embodied carbon stays per GPU-second: an answer holds ``num_gpus / b_t`` GPUs for its inference time, as in
  a private datacenter (:class:`aolo.envs.physics.InferenceCoefficients`).

Everything here is pure numpy on broadcastable arrays (leading axes: epochs, instances), so the environment,
the references and the bound all call the same functions. The site configuration dataclasses live in
:mod:`aolo.envs.config` (re-exported here).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from aolo.envs.config import BackgroundSpec, ConfigError, DiurnalSpec, ServiceConfig, SiteSpec
from aolo.envs.csv_reader import read_csv
from aolo.envs.physics import InferenceCoefficients
from aolo.envs.serving import ServingProfile

__all__ = [
    "BackgroundSpec",
    "DiurnalSpec",
    "MeasuredCurve",
    "QueueStep",
    "SiteEpoch",
    "SiteSpec",
    "autoscale_replicas",
    "background_csv_tok_s",
    "capacity_tok_s",
    "decode_j_per_token",
    "diurnal_factor",
    "diurnal_shape",
    "fluid_queue",
    "inter_token_latency_s",
    "measured_curve",
    "operating_batch",
    "site_epoch",
    "site_inference",
    "throughput_tok_s",
]

SECONDS_PER_DAY = 86_400.0


def _float64(values):
    """``values`` as float64: an array, or a numpy scalar where it is one number. The environment calls these
    functions on the scalars of one epoch, whose arithmetic as numpy scalars skips the ufunc machinery that 0-d
    arrays go through (the same IEEE-754 operations, so the same bits)."""
    return np.asarray(values, dtype=np.float64)[()]


def _where(condition, if_true, if_false):
    """``np.where`` on operands already evaluated, picking one directly when ``condition`` (of the operands'
    broadcast shape) is one boolean, not an array, so every operand is one number."""
    if isinstance(condition, np.ndarray):
        return np.where(condition, if_true, if_false)
    return if_true if condition else if_false


# --- the measured curves of one replica --------------------------------------------------------------


@dataclass(frozen=True)
class MeasuredCurve:
    """The measured points of one serving profile, arrays over its batch sizes (increasing)."""

    batch: np.ndarray  #: batch caps ``max_num_seqs``
    throughput_tok_s: np.ndarray  #: output tokens/s of one replica
    decode_j_per_token: np.ndarray  #: GPU energy per output token (measured, prefill of its prompts included)
    itl_s: np.ndarray  #: median inter-token latency
    log_batch: np.ndarray  #: ``log(batch)``, the abscissa every curve is interpolated on


@cache
def measured_curve(profile: ServingProfile) -> MeasuredCurve:
    """The (batch, throughput, J/token, ITL) points of ``profile``; an error if it has no throughput curve."""
    if len(profile.throughput_tok_s) != len(profile.batch_sizes):
        raise ValueError(f"serving profile {profile.name!r} has no measured throughput-vs-batch curve")
    curve = MeasuredCurve(
        batch=np.asarray(profile.batch_sizes, dtype=np.float64),
        throughput_tok_s=np.asarray(profile.throughput_tok_s, dtype=np.float64),
        decode_j_per_token=np.asarray(profile.decode_j_per_token, dtype=np.float64),
        itl_s=np.asarray(profile.itl_s, dtype=np.float64),
        log_batch=np.log(np.asarray(profile.batch_sizes, dtype=np.float64)),
    )
    if not (np.diff(curve.throughput_tok_s) > 0.0).all():  # the inverse X^-1 needs a strictly rising curve
        raise ValueError(f"serving profile {profile.name!r}: throughput must rise with the batch")
    return curve


def _on_curve(batch, profile: ServingProfile, *fields: str) -> list[np.ndarray]:
    """The curves ``fields`` of :class:`MeasuredCurve` at ``batch``, from one range check and one ``log(batch)``."""
    curve = measured_curve(profile)
    b = _float64(batch)
    if not ((b >= curve.batch[0]) & (b <= curve.batch[-1])).all():
        raise ValueError(
            f"batch outside the measured range [{curve.batch[0]:g}, {curve.batch[-1]:g}] of profile {profile.name!r}"
        )
    log_b = np.log(b)
    return [np.interp(log_b, curve.log_batch, getattr(curve, f)) for f in fields]


def throughput_tok_s(batch, profile: ServingProfile) -> np.ndarray:
    """``X(b)``: output tokens/s of one replica at batch ``b`` (linear in log b between measured points)."""
    return _on_curve(batch, profile, "throughput_tok_s")[0]


def decode_j_per_token(batch, profile: ServingProfile) -> np.ndarray:
    """``e_dec(b)``: measured GPU energy per output token at batch ``b`` [J] (vectorised
    :meth:`~aolo.envs.serving.ServingProfile.decode_energy_j_per_token`)."""
    return _on_curve(batch, profile, "decode_j_per_token")[0]


def inter_token_latency_s(batch, profile: ServingProfile) -> np.ndarray:
    """``itl(b)``: median inter-token latency at batch ``b`` [s]."""
    return _on_curve(batch, profile, "itl_s")[0]


def capacity_tok_s(replicas, profile: ServingProfile) -> np.ndarray:
    """The site's top decode rate: ``replicas · X(b_max)`` [tokens/s]."""
    return _float64(replicas) * measured_curve(profile).throughput_tok_s[-1]


def operating_batch(demand_tok_s, replicas, profile: ServingProfile) -> np.ndarray:
    """The batch ``b`` solving ``replicas · X(b) = demand`` (exact inverse of :func:`throughput_tok_s`),
    clipped to the measured range: ``b_min`` below ``replicas · X(b_min)``, ``b_max`` at or above capacity."""
    curve = measured_curve(profile)
    per_replica = _float64(demand_tok_s) / _float64(replicas)
    # clipped again: exp(log(b)) can land one ulp outside the measured range (minimum/maximum: np.clip is slow
    # on the scalars of one epoch)
    b = np.exp(np.interp(per_replica, curve.throughput_tok_s, curve.log_batch))
    return np.minimum(np.maximum(b, curve.batch[0]), curve.batch[-1])


# --- queue and autoscaling ---------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueStep:
    """One epoch of the fluid queue in front of the replicas (arrays broadcast like the inputs)."""

    served_tok_s: np.ndarray  #: mean decode rate over the epoch: ``min(D + B_0/Δ, C)``
    backlog_tok: np.ndarray  #: tokens still queued at the epoch's end (carried to the next epoch)
    wait_s: np.ndarray  #: mean queueing wait of the epoch's arrivals (FIFO)


def fluid_queue(arrival_tok_s, backlog_tok, capacity_tok_s, epoch_s: float) -> QueueStep:
    """Fluid FIFO queue over one epoch of ``epoch_s`` seconds with constant arrival rate ``D`` and service rate
    ``C``, starting with ``B_0`` tokens queued.

    The queue is ``Q(s) = max(0, B_0 + (D - C) s)``; it ends at ``B_1 = Q(Δ)`` and serves ``D Δ + B_0 - B_1``.
    An arrival at ``s`` waits ``Q(s) / C``; arrivals are uniform over the epoch, so the mean wait is the mean
    of ``Q`` over the epoch over ``C``: ``B_0 + (D - C) Δ / 2`` while the queue does not empty, else
    ``B_0² / (2 (C - D) Δ)`` (it empties at ``s_0 = B_0 / (C - D)``)."""
    d, b0, c = _float64(arrival_tok_s), _float64(backlog_tok), _float64(capacity_tok_s)
    growth = d - c
    end = b0 + growth * epoch_s
    b1 = np.maximum(end, 0.0)
    empties = end < 0.0  # then growth < 0: the queue drains to zero at s_0 = B_0 / (C - D) inside the epoch
    drain_rate = _where(empties, -growth, 1.0)
    mean_queue = _where(empties, b0 * b0 / (2.0 * drain_rate * epoch_s), b0 + growth * epoch_s / 2.0)
    wait = mean_queue / c
    served = d + (b0 - b1) / epoch_s
    return QueueStep(served_tok_s=served, backlog_tok=b1, wait_s=wait)


def autoscale_replicas(observed_demand_tok_s, site: SiteSpec, profile: ServingProfile) -> np.ndarray:
    """Replicas for the next epoch: ``site.replicas`` when fixed; under ``autoscale``
    ``clip(ceil(observed / X(target_batch)), min_replicas, max_replicas)``, the reactive rule of production
    autoscalers (target the batch that balances energy and latency; re-planned from the demand seen so far)."""
    observed = _float64(observed_demand_tok_s)
    if site.scaling == "fixed":
        return np.full(observed.shape, site.replicas, dtype=np.int64)
    per_replica = _per_replica_target_tok_s(site.target_batch, profile)
    wanted = np.ceil(observed / per_replica - 1e-9)  # exact multiples need no extra replica
    return np.minimum(np.maximum(wanted, site.min_replicas), site.max_replicas).astype(np.int64)


@lru_cache(maxsize=16)
def _per_replica_target_tok_s(target_batch: float, profile: ServingProfile) -> float:
    """``X(target_batch)``, a constant of the site the autoscaler divides by every epoch."""
    return float(throughput_tok_s(target_batch, profile))


# --- one epoch of a site -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteEpoch:
    """What one epoch of a site did (arrays broadcast over any leading axes)."""

    replicas: np.ndarray
    demand_tok_s: np.ndarray  #: arrivals: background + the agents' tokens / epoch_s
    agent_tok_s: np.ndarray  #: the agents' share of the arrivals
    served_tok_s: np.ndarray
    batch: np.ndarray  #: the operating batch ``b_t``
    utilisation: np.ndarray  #: served / capacity, in [0, 1]
    backlog_tok: np.ndarray  #: carried to the next epoch
    wait_s: np.ndarray  #: mean queueing wait of the epoch's arrivals
    decode_j_per_token: np.ndarray  #: measured ``e_dec(b_t)`` [J] (GPU, before PUE and host overhead)
    itl_s: np.ndarray  #: ``itl(b_t)``
    gpu_energy_j: np.ndarray  #: decode GPU energy of the served tokens: ``served · Δ · e_dec(b_t)``


def site_epoch(
    agent_tokens,
    background_tok_s,
    backlog_tok,
    replicas,
    profile: ServingProfile,
    epoch_s: float,
) -> SiteEpoch:
    """One epoch of a site: ``agent_tokens`` (..., A) are the tokens each agent asks for this epoch (requests ×
    answer length), ``background_tok_s`` (...) the other tenants' demand, ``backlog_tok`` (...) the queue carried
    in. The replicas serve ``min(D + B/Δ, C)`` at the batch that rate sets (:func:`operating_batch`)."""
    agent_tok_s = np.asarray(agent_tokens, dtype=np.float64).sum(axis=-1) / epoch_s
    demand = _float64(background_tok_s) + agent_tok_s
    capacity = capacity_tok_s(replicas, profile)
    queue = fluid_queue(demand, backlog_tok, capacity, epoch_s)
    batch = operating_batch(queue.served_tok_s, replicas, profile)
    e_dec, itl = _on_curve(batch, profile, "decode_j_per_token", "itl_s")
    return SiteEpoch(
        replicas=np.asarray(replicas),
        demand_tok_s=demand,
        agent_tok_s=agent_tok_s,
        served_tok_s=queue.served_tok_s,
        batch=batch,
        utilisation=queue.served_tok_s / capacity,
        backlog_tok=queue.backlog_tok,
        wait_s=queue.wait_s,
        decode_j_per_token=e_dec,
        itl_s=itl,
        gpu_energy_j=queue.served_tok_s * epoch_s * e_dec,
    )


def site_inference(
    batch, profile: ServingProfile, service: ServiceConfig, epoch: SiteEpoch | None = None
) -> InferenceCoefficients:
    """:class:`~aolo.envs.physics.InferenceCoefficients` at the operating batch ``batch`` (array-valued where
    ``batch`` is an array), with the accounting of ``service`` — exactly
    ``InferenceCoefficients.build(profile, b, service)`` for each scalar ``b``. Per request:
    ``E_I = PUE k_host (e_pre L_p + e_dec(b) κ)``, ``T_I = ttft + prefill L_p + itl(b) κ`` (add the queue's
    ``wait_s`` for the answer's latency), embodied ``g/GPU-s · num_gpus / b · T_I``. ``epoch``: the
    :class:`SiteEpoch` whose batch ``batch`` is, to reuse its ``e_dec(b)`` and ``itl(b)``."""
    b = _float64(batch)
    if epoch is None:
        e_dec, itl = _on_curve(b, profile, "decode_j_per_token", "itl_s")
    else:
        e_dec, itl = epoch.decode_j_per_token, epoch.itl_s
    if service.prefill_accounting == "net":
        prefill_j, decode_j = profile.prefill_j_per_token, e_dec - profile.measured_prefill_j_per_output_token()
    elif service.prefill_accounting == "additive":
        prefill_j, decode_j = profile.prefill_j_per_token, e_dec
    else:  # "measured" (validated by ServiceConfig)
        prefill_j, decode_j = 0.0, e_dec
    g_per_gpu_hour = (
        profile.embodied_g_per_gpu_hour if service.embodied_g_per_gpu_hour is None else service.embodied_g_per_gpu_hour
    )
    return InferenceCoefficients(
        prefill_j_per_token=prefill_j,
        decode_j_per_token=decode_j,
        overhead=service.pue * service.k_host,
        ttft_overhead_s=profile.ttft_overhead_s,
        prefill_s_per_token=profile.prefill_s_per_token,
        itl_s=itl,
        gpu_share=profile.num_gpus / b,
        embodied_g_per_gpu_s=g_per_gpu_hour / 3600.0 if service.embodied else 0.0,
    )


# --- load over the day -------------------------------------------------------------------------------


def diurnal_shape(hours_utc, utc_offset_h: float, spec: DiurnalSpec) -> np.ndarray:
    """The noiseless day shape, mean 1 over a day: ``1 + a cos(2π (h_utc + offset - peak_hour) / 24)``,
    ``a = (r - 1) / (r + 1)`` so the peak is ``r = peak_to_trough`` times the trough."""
    a = (spec.peak_to_trough - 1.0) / (spec.peak_to_trough + 1.0)
    local = np.asarray(hours_utc, dtype=np.float64) + utc_offset_h
    return 1.0 + a * np.cos(2.0 * np.pi * (local - spec.peak_hour_local) / 24.0)


def diurnal_factor(
    rng: np.random.Generator, hours_utc, utc_offset_h: float, spec: DiurnalSpec, size: tuple[int, ...] = ()
) -> np.ndarray:
    """:func:`diurnal_shape` times log-normal day and epoch variation (each of mean 1), shape ``size + (T,)``:
    ``exp(σ_d z_d - σ_d²/2) · exp(σ_e z_t - σ_e²/2)`` with one ``z_d`` per leading index and one ``z_t`` per entry."""
    shape = diurnal_shape(hours_utc, utc_offset_h, spec)
    z_day = rng.standard_normal(size + (1,))
    z_epoch = rng.standard_normal(size + shape.shape)
    sd, se = spec.day_sigma, spec.epoch_sigma
    return shape * np.exp(sd * z_day - 0.5 * sd * sd) * np.exp(se * z_epoch - 0.5 * se * se)


_AZURE_TIME_COLUMN = "timestamp"
_AZURE_OUTPUT_COLUMNS = ("generatedtokens", "output_tokens", "completion_tokens")


def _parse_timestamps(cells: list[str], lines: list[int], where: str) -> np.ndarray:
    """UTC timestamps as float seconds since the epoch; ``...Z`` and ``...+00:00`` suffixes allowed."""
    text = [c.strip().removesuffix("Z").removesuffix("+00:00") for c in cells]
    try:
        return np.array(text, dtype="datetime64[us]").astype(np.int64) / 1e6
    except ValueError:
        pass
    bad = []
    for i, t in enumerate(text):
        try:
            np.datetime64(t, "us")
        except ValueError:
            bad.append(i)
    listed = ", ".join(f"line {lines[i]} ({cells[i]!r})" for i in bad[:5])
    raise ConfigError(
        f"{where}: {len(bad)} timestamp(s) that are not UTC date-times: {listed}; expected "
        "YYYY-MM-DD HH:MM:SS[.fraction] (Azure LLM inference trace format)"
    )


@lru_cache(maxsize=8)
def _background_csv_cached(path: str, mtime: float, epoch_s: float, where: str) -> np.ndarray:
    try:  # the reader's own errors (malformed CSV, no rows) also name the field
        table = read_csv(path, ConfigError)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    header = [h.strip().lower() for h in table.header]
    if _AZURE_TIME_COLUMN not in header:
        raise ConfigError(f"{where}: {path}: no TIMESTAMP column; found {table.header}")
    out_col = next((header.index(c) for c in _AZURE_OUTPUT_COLUMNS if c in header), None)
    if out_col is None:
        raise ConfigError(f"{where}: {path}: no GeneratedTokens column; found {table.header}")
    time_col = header.index(_AZURE_TIME_COLUMN)
    short = next(
        (line for line, row in zip(table.lines, table.rows, strict=True) if len(row) <= max(time_col, out_col)), None
    )
    if short is not None:
        raise ConfigError(f"{where}: {path}: line {short} has too few fields; expected {len(table.header)}")
    seconds = _parse_timestamps([r[time_col] for r in table.rows], table.lines, f"{where}: {path}")
    try:
        tokens = np.array([float(r[out_col]) for r in table.rows])
    except ValueError:
        tokens = np.array([np.nan])
    if not (np.isfinite(tokens) & (tokens >= 0.0)).all():
        raise ConfigError(f"{where}: {path}: GeneratedTokens must be numbers >= 0")
    first_day = math.ceil(seconds.min() / SECONDS_PER_DAY)  # the first whole UTC day in the trace
    n_days = math.floor(seconds.max() / SECONDS_PER_DAY) - first_day
    if n_days < 1:
        span_h = (seconds.max() - seconds.min()) / 3600.0
        raise ConfigError(
            f"{where}: {path} must cover at least one whole UTC day (00:00 to 24:00) of arrivals; "
            f"its {span_h:.2f} h do not"
        )
    epochs_per_day = round(SECONDS_PER_DAY / epoch_s)
    index = np.floor((seconds - first_day * SECONDS_PER_DAY) / epoch_s).astype(np.int64)
    keep = (index >= 0) & (index < n_days * epochs_per_day)
    per_epoch = np.bincount(index[keep], weights=tokens[keep], minlength=n_days * epochs_per_day)
    return (per_epoch / epoch_s).reshape(n_days, epochs_per_day)


def background_csv_tok_s(path: str | os.PathLike[str], epoch_s: float, where: str = "background.csv") -> np.ndarray:
    """(days, epochs per day) decode demand [tokens/s] of an Azure-format trace: the generated tokens of the
    requests arriving in each epoch over the epoch's length, for each whole UTC day the trace covers (the partial
    first and last days are dropped). Bad input raises one :class:`ConfigError` naming ``where``."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{where}: no such file {str(file)!r}; expected a CSV in the Azure LLM trace format")
    if not math.isclose(SECONDS_PER_DAY / epoch_s, round(SECONDS_PER_DAY / epoch_s)):
        raise ConfigError(f"{where}: a CSV background needs epochs that divide a day, got epoch_s={epoch_s:g}")
    return _background_csv_cached(str(file), file.stat().st_mtime, float(epoch_s), where)
