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

    ``E_I = e0_j + e1_j_per_token · kappa``, ``T_I = t0_s + itl_s · kappa``, embodied carbon
    ``= g_per_gpu_s · num_gpus · T_I / batch``.
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
    def build(cls, profile: ServingProfile, batch: float, service: ServiceConfig) -> "InferenceCoefficients":
        return cls(
            prefill_j_per_token=profile.prefill_j_per_token,
            decode_j_per_token=profile.decode_energy_j_per_token(batch),
            overhead=service.pue * service.k_host,
            ttft_overhead_s=profile.ttft_overhead_s,
            prefill_s_per_token=profile.prefill_s_per_token,
            itl_s=profile.inter_token_latency_s(batch),
            gpu_share=profile.num_gpus / batch,
            embodied_g_per_gpu_s=service.embodied_g_per_gpu_hour / 3600.0 if service.embodied else 0.0,
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


@dataclass
class RequestOutcomes:
    """Per-request results; every field is an array over the evaluated requests."""

    rate_bps: np.ndarray
    airtime_s: np.ndarray
    latency_s: np.ndarray
    energy_inference_j: np.ndarray
    energy_comm_j: np.ndarray
    carbon_inference_g: np.ndarray  #: operational inference carbon (datacenter grid)
    carbon_embodied_g: np.ndarray
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
