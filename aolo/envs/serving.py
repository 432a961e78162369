"""LLM serving profiles: energy per output token and inter-token latency as functions of the serving batch.

Decode figures are the ML.ENERGY Benchmark v3 measurements (Chung et al., NeurIPS D&B 2025; dataset
Apache-2.0) for the LM-Arena chat task with vLLM on H100 GPUs, BF16: ``energy_per_token_joules`` (GPU
energy per output token, steady state) and ``median_itl_ms`` at each batch cap ``max_num_seqs``.
Values between measured batch sizes are interpolated linearly in log(batch) — never extrapolated: the
ML.ENERGY authors warn that parametric fits have large residuals.

Prefill energy and time per prompt token are FLOP-derived (``2 · params`` FLOP per token at ~50 % MFU on
H100: 989 TFLOP/s dense BF16 at 700 W), see docs/design.md §3.4.

**The measured figure already contains prefill.** ML.ENERGY's ``energy_per_token_joules`` is the GPU energy of
a steady-state window divided by the output tokens generated in it (in the data it equals ``avg_power_watts /
output_throughput_tokens_per_sec`` to 1e-16); requests keep being admitted during that window, so the prefill
of their LM-Arena prompts is inside the figure. Adding ``e_pre · L_p`` on top counted that prefill twice. The
share is ``e_pre · L_p,ref / L_out,ref`` per output token, with ``L_out,ref`` the runs' mean answer length
(``avg_output_len``: 397 tokens for 8B, 354 for 70B, ±2 % across batch sizes) and ``L_p,ref`` the mean prompt of
the LM-Arena requests (≈ 200 tokens, an estimate: the records do not publish prompt lengths; chat prompts
average ≈ 70 tokens and multi-turn requests carry their history). That is 0.023 · 200 / 397 = 0.0116 J per
output token for 8B (9.8 % of 0.1186 J at b = 64, 16.5 % of 0.0702 J at b = 512) and 0.20 · 200 / 354 = 0.113 J
for 70B (14 % at b = 64, 29 % at b = 768). :meth:`ServingProfile.decode_net_j_per_token` removes it, so the
default accounting (``service.prefill_accounting = "net"``) charges each prompt token once.

**Embodied carbon, per GPU-hour** (``H100_EMBODIED_G_PER_GPU_HOUR``): NVIDIA's HGX H100 Product Carbon
Footprint summary (cradle-to-gate, ISO-conformant, third-party reviewed; 2024) gives 1 312 kgCO2e per 8-GPU
HGX H100 baseboard, i.e. 164 kg per GPU slot; the host server (CPUs, DRAM, storage, chassis) adds
3 000 kgCO2e per 8-GPU server (EcoLogits/Boavizta), 375 kg per slot; amortised over 5 years (43 800 h):
(164 + 375) kg / 43 800 h = 12.31 g per GPU-hour. A profile holds ``num_gpus`` slots while it serves, so the
8B profile (1×H100) costs 12.31 g and the 70B profile (4×H100) 49.2 g per replica-hour, shared by the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: NVIDIA HGX H100 PCF summary: 1 312 kgCO2e per 8-GPU baseboard (cradle-to-gate).
HGX_H100_BASEBOARD_KG = 1312.0
#: Host server share (CPUs, DRAM, SSD, chassis) per 8-GPU server, EcoLogits/Boavizta.
GPU_SERVER_HOST_KG = 3000.0
#: Amortisation period of the hardware [h] (5 years).
HARDWARE_LIFETIME_H = 5 * 8760.0
#: Embodied carbon of one H100 slot of an 8-GPU server per hour of use: (164 + 375) kg / 43 800 h ≈ 12.31 g.
H100_EMBODIED_G_PER_GPU_HOUR = (HGX_H100_BASEBOARD_KG + GPU_SERVER_HOST_KG) / 8 * 1000.0 / HARDWARE_LIFETIME_H


@dataclass(frozen=True)
class ServingProfile:
    """One model on one GPU configuration.

    Attributes:
        name: registry key.
        num_gpus: GPUs serving one model replica (tensor parallel).
        batch_sizes: measured batch caps (increasing).
        decode_j_per_token: GPU energy per output token at each batch size [J].
        itl_s: median inter-token latency at each batch size [s].
        prefill_j_per_token: GPU energy per prompt token [J] (all GPUs of the replica).
        prefill_s_per_token: prefill time per prompt token [s].
        ttft_overhead_s: fixed time to first token (scheduling, network to the core) [s].
        reference_prompt_tokens: mean prompt length of the measured runs (LM-Arena chat; estimate) [tokens].
        reference_output_tokens: mean answer length of the measured runs (``avg_output_len``) [tokens].
        embodied_g_per_gpu_hour: embodied carbon of one GPU slot per hour of use [gCO2e].
        throughput_tok_s: output tokens per second of one replica at each batch size (ML.ENERGY
            ``output_throughput_tokens_per_sec``); empty where not measured. Used by shared sites
            (:mod:`aolo.envs.site`), never by a cell's private datacenter.
    """

    name: str
    num_gpus: int
    batch_sizes: tuple[int, ...]
    decode_j_per_token: tuple[float, ...]
    itl_s: tuple[float, ...]
    prefill_j_per_token: float
    prefill_s_per_token: float
    ttft_overhead_s: float = 0.05
    reference_prompt_tokens: float = 200.0
    reference_output_tokens: float = 397.0
    embodied_g_per_gpu_hour: float = H100_EMBODIED_G_PER_GPU_HOUR
    throughput_tok_s: tuple[float, ...] = ()

    def _interp(self, batch: float, values: tuple[float, ...]) -> float:
        b = np.log(np.asarray(self.batch_sizes, dtype=np.float64))
        if not self.batch_sizes[0] <= batch <= self.batch_sizes[-1]:
            raise ValueError(
                f"serving_batch={batch} is outside the measured range "
                f"[{self.batch_sizes[0]}, {self.batch_sizes[-1]}] of profile {self.name!r}"
            )
        return float(np.interp(np.log(batch), b, values))

    def decode_energy_j_per_token(self, batch: float) -> float:
        """``e_dec(b)``: GPU energy per output token at serving batch ``b`` [J]."""
        return self._interp(batch, self.decode_j_per_token)

    def measured_prefill_j_per_output_token(self) -> float:
        """Prefill energy already inside the measured ``e_dec``: ``e_pre · L_p,ref / L_out,ref`` [J]."""
        return self.prefill_j_per_token * self.reference_prompt_tokens / self.reference_output_tokens

    def decode_net_j_per_token(self, batch: float) -> float:
        """``e_dec(b)`` net of the measured runs' own prefill: ``e_dec(b) - e_pre · L_p,ref / L_out,ref`` [J]."""
        net = self.decode_energy_j_per_token(batch) - self.measured_prefill_j_per_output_token()
        if net <= 0.0:
            raise ValueError(f"profile {self.name!r}: the prefill share exceeds e_dec at batch {batch}")
        return net

    def inter_token_latency_s(self, batch: float) -> float:
        """``itl(b)``: inter-token latency at serving batch ``b`` [s]."""
        return self._interp(batch, self.itl_s)


# ML.ENERGY v3, lm-arena-chat, H100, vLLM, BF16 (values rounded to 4 significant digits).
_LLAMA_8B_H100 = ServingProfile(
    name="llama-3.1-8b-h100",
    num_gpus=1,
    batch_sizes=(8, 16, 32, 64, 96, 128, 192, 256, 384, 512),
    decode_j_per_token=(0.4548, 0.2627, 0.1651, 0.1186, 0.1029, 0.0951, 0.0837, 0.0766, 0.0742, 0.0702),
    itl_s=(0.00732, 0.00791, 0.00891, 0.0115, 0.01408, 0.01648, 0.02091, 0.02613, 0.0377, 0.04741),
    prefill_j_per_token=0.023,  # 2·8e9 FLOP / 0.7 TFLOP/J
    prefill_s_per_token=3.2e-5,  # 2·8e9 FLOP / (0.5 · 989 TFLOP/s)
    reference_output_tokens=397.0,  # mean avg_output_len of the 10 H100 runs (389–405)
    throughput_tok_s=(1070, 1954, 3391, 5147, 6260, 7037, 8223, 9010, 9248, 9806),
)
_LLAMA_70B_4XH100 = ServingProfile(
    name="llama-3.1-70b-4xh100",
    num_gpus=4,
    batch_sizes=(8, 16, 32, 64, 96, 128, 192, 256, 384, 512, 768),
    decode_j_per_token=(3.759, 2.091, 1.207, 0.7972, 0.6478, 0.5634, 0.514, 0.479, 0.4406, 0.421, 0.3896),
    itl_s=(0.01657, 0.0177, 0.02005, 0.02243, 0.02536, 0.02787, 0.0337, 0.03984, 0.05512, 0.07389, 0.1036),
    prefill_j_per_token=0.20,  # 2·70e9 FLOP / 0.7 TFLOP/J
    prefill_s_per_token=7.1e-5,  # 2·70e9 FLOP / (4 · 0.5 · 989 TFLOP/s)
    reference_output_tokens=354.0,  # mean avg_output_len of the 11 H100 runs (349–364)
    throughput_tok_s=(469.7, 862.6, 1487, 2511, 3244, 3876, 4461, 4915, 5319, 5921, 6507),
)

SERVING_PROFILES: dict[str, ServingProfile] = {p.name: p for p in (_LLAMA_8B_H100, _LLAMA_70B_4XH100)}


def get_serving_profile(name: str) -> ServingProfile:
    try:
        return SERVING_PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown serving_profile {name!r}; allowed: {sorted(SERVING_PROFILES)}") from None
