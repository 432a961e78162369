"""LLM serving profiles: energy per output token and inter-token latency as functions of the serving batch.

Decode figures are the ML.ENERGY Benchmark v3 measurements (Chung et al., NeurIPS D&B 2025; dataset
Apache-2.0) for the LM-Arena chat task with vLLM on H100 GPUs, BF16: ``energy_per_token_joules`` (GPU
energy per output token, steady state) and ``median_itl_ms`` at each batch cap ``max_num_seqs``.
Values between measured batch sizes are interpolated linearly in log(batch) — never extrapolated: the
ML.ENERGY authors warn that parametric fits have large residuals.

Prefill energy and time per prompt token are FLOP-derived (``2 · params`` FLOP per token at ~50 % MFU on
H100: 989 TFLOP/s dense BF16 at 700 W), see docs/design.md §3.4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    """

    name: str
    num_gpus: int
    batch_sizes: tuple[int, ...]
    decode_j_per_token: tuple[float, ...]
    itl_s: tuple[float, ...]
    prefill_j_per_token: float
    prefill_s_per_token: float
    ttft_overhead_s: float = 0.05

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
)
_LLAMA_70B_4XH100 = ServingProfile(
    name="llama-3.1-70b-4xh100",
    num_gpus=4,
    batch_sizes=(8, 16, 32, 64, 96, 128, 192, 256, 384, 512, 768),
    decode_j_per_token=(3.759, 2.091, 1.207, 0.7972, 0.6478, 0.5634, 0.514, 0.479, 0.4406, 0.421, 0.3896),
    itl_s=(0.01657, 0.0177, 0.02005, 0.02243, 0.02536, 0.02787, 0.0337, 0.03984, 0.05512, 0.07389, 0.1036),
    prefill_j_per_token=0.20,  # 2·70e9 FLOP / 0.7 TFLOP/J
    prefill_s_per_token=7.1e-5,  # 2·70e9 FLOP / (4 · 0.5 · 989 TFLOP/s)
)

SERVING_PROFILES: dict[str, ServingProfile] = {p.name: p for p in (_LLAMA_8B_H100, _LLAMA_70B_4XH100)}


def get_serving_profile(name: str) -> ServingProfile:
    try:
        return SERVING_PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown serving_profile {name!r}; allowed: {sorted(SERVING_PROFILES)}") from None
