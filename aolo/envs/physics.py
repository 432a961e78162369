"""The end-to-end carbon model of one LLM answer (docs/design.md §3.4), vectorised over users and epochs.

Everything here is pure numpy on broadcastable arrays; the environment, the reference policies, the
hindsight oracle and the benchmarks all call these functions, so each fact lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aolo.envs.channel import delivery_rate_bps
from aolo.envs.config import RadioConfig, ServiceConfig
from aolo.envs.serving import ServingProfile

J_PER_KWH = 3.6e6


def qoe(kappa: np.ndarray, ref_tokens: np.ndarray, alpha: float) -> np.ndarray:
    """QoE of an answer of ``kappa`` tokens whose unconstrained length is ``ref_tokens``: ``1 - exp(-α κ / L_ref)``."""
    return 1.0 - np.exp(-alpha * kappa / ref_tokens)


def tokens_for_qoe(q: float, ref_tokens: np.ndarray, alpha: float) -> np.ndarray:
    """Smallest real ``kappa`` with ``qoe(kappa) >= q`` (inverse of :func:`qoe`)."""
    return -np.log1p(-q) * ref_tokens / alpha


@dataclass(frozen=True)
class InferenceCoefficients:
    """Per-request inference model of one cell at its serving batch, in closed form.

    ``E_I = overhead · (e_pre · L_p + e_dec · kappa)``, ``T_I = ttft + prefill_s · L_p + itl_s · kappa``,
    embodied carbon ``= g_per_gpu_s · num_gpus · T_I / batch``.

    ``decode_j_per_token`` follows ``service.prefill_accounting`` (docs/design.md §3.4). The measured ML.ENERGY
    figure is whole-window GPU energy over output tokens, so it already holds the prefill of the benchmark's
    own prompts (≈ 200 tokens): ``net`` (default) charges every prompt token once, ``e_pre · L_p`` plus
    ``e_dec(b) - e_pre · L_p,ref / L_out,ref``; ``additive`` is the pre-fix model, ``e_pre · L_p`` on top of the
    measured ``e_dec(b)``; ``measured`` drops the prompt term and keeps the measured ``e_dec(b)``. For the 8B
    profile at b = 64 and the Azure conversation median request (L_p = 1020, kappa = 129): additive
    23.46 + 15.30 = 38.76 J of GPU energy, net 23.46 + 13.80 = 37.26 J (-3.9 %), measured 15.30 J (-61 %:
    it would price a 1020-token prompt like a 200-token one).
    """

    prefill_j_per_token: float
    decode_j_per_token: float
    overhead: float  #: PUE · k_host
    ttft_overhead_s: float
    prefill_s_per_token: float
    itl_s: float
    gpu_share: float  #: num_gpus / batch: GPU-seconds per second of one request's latency
    embodied_g_per_gpu_s: float

    @classmethod
    def build(cls, profile: ServingProfile, batch: float, service: ServiceConfig) -> InferenceCoefficients:
        if service.prefill_accounting == "net":
            prefill_j, decode_j = profile.prefill_j_per_token, profile.decode_net_j_per_token(batch)
        elif service.prefill_accounting == "additive":
            prefill_j, decode_j = profile.prefill_j_per_token, profile.decode_energy_j_per_token(batch)
        elif service.prefill_accounting == "measured":
            prefill_j, decode_j = 0.0, profile.decode_energy_j_per_token(batch)
        else:
            raise ValueError(
                f"service.prefill_accounting must be one of ['additive', 'measured', 'net'], "
                f"got {service.prefill_accounting!r}"
            )
        g_per_gpu_hour = (
            profile.embodied_g_per_gpu_hour
            if service.embodied_g_per_gpu_hour is None
            else service.embodied_g_per_gpu_hour
        )
        return cls(
            prefill_j_per_token=prefill_j,
            decode_j_per_token=decode_j,
            overhead=service.pue * service.k_host,
            ttft_overhead_s=profile.ttft_overhead_s,
            prefill_s_per_token=profile.prefill_s_per_token,
            itl_s=profile.inter_token_latency_s(batch),
            gpu_share=profile.num_gpus / batch,
            embodied_g_per_gpu_s=g_per_gpu_hour / 3600.0 if service.embodied else 0.0,
        )

    def energy_j(self, prompt_tokens, kappa):
        """``E_I = PUE · k_host · (e_pre · L_p + e_dec(b) · kappa)`` [J]."""
        return self.overhead * (self.prefill_j_per_token * prompt_tokens + self.decode_j_per_token * kappa)

    def latency_s(self, prompt_tokens, kappa):
        """``T_I = ttft(L_p) + kappa · itl(b)`` [s]."""
        return self.ttft_overhead_s + self.prefill_s_per_token * prompt_tokens + self.itl_s * kappa

    def embodied_g(self, inference_latency_s):
        """Embodied carbon: GPU-seconds held by the request (latency × GPUs / batch) × embodied rate [g]."""
        return self.embodied_g_per_gpu_s * self.gpu_share * inference_latency_s


def comm_energy_j(power_w, airtime_s, users_in_cell: int, radio: RadioConfig):
    """Marginal EARTH attribution ``E_C = ((P0 - P_sleep)/U + Δp · P_u) · T_C (+ P_UE,rx · T_C)`` [J]."""
    static_share_w = (radio.earth_p0_w - radio.earth_p_sleep_w) / users_in_cell
    return (static_share_w + radio.earth_delta_p * power_w + radio.ue_receive_power_w) * airtime_s


_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


def most_efficient_power_w(
    channel_gain,
    *,
    bandwidth_hz: float,
    noise_w: float,
    interference_w: float,
    users_in_cell: int,
    radio: RadioConfig,
    iterations: int = 80,
) -> np.ndarray:
    """``P*`` [W] minimising the radio energy per delivered bit, ``comm_energy_j(P, 1 / R(P))``, in
    ``[p_min_dbm, p_max_dbm]`` for each entry of ``channel_gain`` (golden-section search in dBm, vectorised).

    The energy per bit is quasi-convex in ``P`` (affine over concave), so the search is exact; the carbon per
    token of any answer is this energy × bits per token × the cell's intensity, so ``P*`` is also its minimiser
    whatever the intensity and the answer length (the latency limit may ask for more power)."""
    lo = np.full(np.shape(channel_gain), radio.p_min_dbm, dtype=np.float64)
    hi = np.full(np.shape(channel_gain), radio.p_max_dbm, dtype=np.float64)

    def joules_per_bit(p_dbm):
        p_w = 10.0 ** ((p_dbm - 30.0) / 10.0)
        rate = delivery_rate_bps(bandwidth_hz, p_w, channel_gain, noise_w, interference_w, radio)
        return comm_energy_j(p_w, 1.0 / rate, users_in_cell, radio)

    probes = np.empty((2, *np.shape(channel_gain)))  # both probes, evaluated in one vectorised call
    a, b = probes[0, ...], probes[1, ...]  # views (also 0-d ones for a scalar gain)
    for _ in range(iterations):
        np.subtract(hi, _GOLDEN * (hi - lo), out=a)
        np.add(lo, _GOLDEN * (hi - lo), out=b)
        j_a, j_b = joules_per_bit(probes)
        left = j_a < j_b
        hi = np.where(left, b, hi)
        lo = np.where(left, lo, a)
    return 10.0 ** ((0.5 * (lo + hi) - 30.0) / 10.0)


@dataclass
class RequestOutcomes:
    """Per-request results; every field is an array over the evaluated requests."""

    rate_bps: np.ndarray
    airtime_s: np.ndarray
    latency_s: np.ndarray
    energy_inference_j: np.ndarray
    energy_comm_j: np.ndarray
    carbon_inference_g: np.ndarray  #: operational inference carbon (datacenter grid); C_I = this + embodied
    carbon_embodied_g: np.ndarray  #: embodied (GPU/server manufacturing) share of the request
    carbon_comm_g: np.ndarray  #: radio delivery carbon (cell grid)
    qoe: np.ndarray

    @property
    def carbon_total_g(self) -> np.ndarray:
        return self.carbon_inference_g + self.carbon_embodied_g + self.carbon_comm_g


def request_outcomes(
    *,
    kappa,
    prompt_tokens,
    ref_tokens,
    power_w,
    channel_gain,
    noise_w,
    interference_w,
    ci_datacenter_g_per_kwh,
    ci_cell_g_per_kwh,
    users_in_cell: int,
    bandwidth_per_user_hz: float,
    inference: InferenceCoefficients,
    radio: RadioConfig,
    service: ServiceConfig,
) -> RequestOutcomes:
    """Energy, latency, carbon and QoE of answers of ``kappa`` tokens sent at ``power_w`` (docs/design.md §3.4).

    ``channel_gain`` is the true linear power gain the delivery sees (path loss × shadowing, × |h|² when
    ``radio.fading_average == "instantaneous"``; see :func:`~aolo.envs.channel.delivery_rate_bps`).
    """
    rate = delivery_rate_bps(bandwidth_per_user_hz, power_w, channel_gain, noise_w, interference_w, radio)
    airtime = kappa * service.payload_bits_per_token / rate
    t_inf = inference.latency_s(prompt_tokens, kappa)
    e_inf = inference.energy_j(prompt_tokens, kappa)
    e_comm = comm_energy_j(power_w, airtime, users_in_cell, radio)
    return RequestOutcomes(
        rate_bps=rate,
        airtime_s=airtime,
        latency_s=t_inf + airtime,
        energy_inference_j=e_inf,
        energy_comm_j=e_comm,
        carbon_inference_g=e_inf / J_PER_KWH * ci_datacenter_g_per_kwh,
        carbon_embodied_g=inference.embodied_g(t_inf),
        carbon_comm_g=e_comm / J_PER_KWH * ci_cell_g_per_kwh,
        qoe=qoe(kappa, ref_tokens, service.qoe_alpha),
    )
