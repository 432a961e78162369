"""Which model answers: a pool of serving profiles, each with its own QoE curve (docs/design.md §3.7).

With ``service.model_action: true`` every answer is served by one model of ``service.model_pool`` (default
Llama-3.1-8B on 1×H100 and Llama-3.1-70B on 4×H100, :mod:`aolo.envs.serving`), picked per user and epoch by a
third action component. Model ``m`` answers a request of reference length ``L_ref`` with QoE

    Q_m(κ) = c_m · (1 − exp(−α κ / (ρ_m L_ref)))

- ``ρ_m`` (reference length): the model's mean answer length over the cell's own profile's on the same prompts
  (ML.ENERGY v3, LM-Arena chat: 354 tokens for 70B, 397 for 8B ⇒ ρ_70B = 0.892 in an 8B cell); the workload's
  ``L_ref`` is the cell's serving profile's unconstrained answer, so with one model nothing changes.
- ``c_m`` (quality ceiling, :func:`quality_ceiling`): the model's pairwise-preference win probability against
  the pool's best-rated model, over the 1/2 of a tie, from Chatbot Arena Elo ratings (:data:`ARENA_ELO`):
  ``c_m = 2 / (1 + 10^((E_best − E_m)/s))``, ``s = service.elo_scale`` (400, the Elo convention). The best model
  has ``c = 1``; Llama-3.1-8B (Elo 1168) against 70B (1249) keeps ``c = 0.771``.

Energy, latency and embodied carbon of model ``m`` are its own profile's (:class:`InferenceCoefficients` at the
cell's serving batch): the 70B replica holds 4 GPUs, so its embodied share and its ITL follow. Everything here
is per datacenter and profile, so a site (several datacenters) builds one :class:`ModelPool` per site.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from aolo.envs.physics import InferenceCoefficients, tokens_for_qoe
from aolo.envs.serving import SERVING_PROFILES, ServingProfile

#: Chatbot Arena (LMSYS) Elo of the serving profiles' models, leaderboard of 5 September 2024 (1.8 M+ votes):
#: Llama-3.1-70B-Instruct 1249, Llama-3.1-8B-Instruct 1168 (docs/design.md §3.7 cites the source).
ARENA_ELO: dict[str, float] = {"llama-3.1-8b-h100": 1168.0, "llama-3.1-70b-4xh100": 1249.0}
ELO_SCALE = 400.0


def win_probability(elo_difference: float, scale: float = ELO_SCALE) -> float:
    """Probability that a model rated ``elo_difference`` points above its opponent is preferred (Elo model)."""
    return 1.0 / (1.0 + 10.0 ** (-elo_difference / scale))


def quality_ceiling(elo: float, best_elo: float, scale: float = ELO_SCALE) -> float:
    """``c_m``: the model's win probability against the pool's best-rated model over that of a tie (1/2), so the
    best model has 1 and a model ``d`` points below ``2 / (1 + 10^(d/scale))`` (81 points: 0.771)."""
    return win_probability(elo - best_elo, scale) / win_probability(0.0, scale)


def pool_elo(service) -> dict[str, float]:
    """Elo of each pool model: ``service.model_elo`` where given, else :data:`ARENA_ELO`."""
    given = dict(service.model_elo or {})
    return {name: float(given.get(name, ARENA_ELO.get(name, math.nan))) for name in service.model_pool}


def pool_ceilings(service) -> dict[str, float]:
    """``c_m`` of every pool model (nan for a model with no Elo)."""
    elo = pool_elo(service)
    best = max(elo.values())
    return {name: quality_ceiling(e, best, service.elo_scale) for name, e in elo.items()}


def decode_model(a, num_models: int) -> np.ndarray:
    """Model index of a model action ``a ∈ [-1, 1]``: ``M`` equal bins, ``min(⌊(a + 1) M / 2⌋, M − 1)``
    (two models: ``a < 0`` ↦ 0, ``a ≥ 0`` ↦ 1)."""
    a = np.asarray(a, dtype=np.float64)
    return np.minimum(np.floor((a + 1.0) * 0.5 * num_models), num_models - 1).astype(np.int64)


def model_action(model, num_models: int) -> np.ndarray:
    """The centre of model ``model``'s bin: the inverse of :func:`decode_model`."""
    return -1.0 + (2.0 * np.asarray(model, dtype=np.float64) + 1.0) / num_models


@dataclass(frozen=True)
class ModelPool:
    """The models one datacenter serves, their QoE curves and inference coefficients (arrays over models)."""

    names: tuple[str, ...]
    ceiling: np.ndarray  #: (M,) c_m
    length_ratio: np.ndarray  #: (M,) ρ_m
    inference: tuple[InferenceCoefficients, ...]
    alpha: float
    q_floor: float
    q_top: np.ndarray  #: (M,) highest QoE an action asks of each model: c_m · q_max
    #: (M,) what the mean-QoE guard plans every later answer at and asks at most: ``c_m (1 − e^{−α r})``, the QoE of
    #: ``r = service.guard_length_ratio`` times the model's own answer ``ρ_m L_ref``
    q_guard: np.ndarray
    kappa_max: float

    @classmethod
    def build(cls, service, cell_profile: str, serving_batch: float) -> ModelPool:
        profiles: list[ServingProfile] = [SERVING_PROFILES[n] for n in service.model_pool]
        base = SERVING_PROFILES[cell_profile].reference_output_tokens
        ceiling = np.array(list(pool_ceilings(service).values()))
        return cls(
            names=tuple(service.model_pool),
            ceiling=ceiling,
            length_ratio=np.array([p.reference_output_tokens / base for p in profiles]),
            inference=tuple(InferenceCoefficients.build(p, serving_batch, service) for p in profiles),
            alpha=service.qoe_alpha,
            q_floor=service.q_floor,
            q_top=ceiling * service.q_max_effective,
            q_guard=ceiling * (1.0 - math.exp(-service.qoe_alpha * service.guard_length_ratio)),
            kappa_max=float(service.kappa_max),
        )

    @property
    def size(self) -> int:
        return len(self.names)

    @property
    def best(self) -> int:
        """Index of the best-rated model (highest ceiling; the first of equals)."""
        return int(np.argmax(self.ceiling))

    def coefficients(self, model) -> InferenceCoefficients:
        """Inference coefficients of the models ``model`` (an index array): every field an array shaped like it,
        so :meth:`InferenceCoefficients.energy_j` and friends broadcast over users and candidates."""
        model = np.asarray(model)
        columns = {
            f.name: np.array([getattr(c, f.name) for c in self.inference]) for f in fields(InferenceCoefficients)
        }
        return InferenceCoefficients(**{name: column[model] for name, column in columns.items()})

    def model_ref_tokens(self, ref_tokens, model) -> np.ndarray:
        """``ρ_m L_ref``: the model's own unconstrained answer length."""
        return self.length_ratio[np.asarray(model)] * ref_tokens

    def qoe(self, kappa, ref_tokens, model) -> np.ndarray:
        """``Q_m(κ) = c_m (1 − exp(−α κ / (ρ_m L_ref)))``."""
        model = np.asarray(model)
        return self.ceiling[model] * (1.0 - np.exp(-self.alpha * kappa / self.model_ref_tokens(ref_tokens, model)))

    def least_length(self, q, ref_tokens, model) -> np.ndarray:
        """Least integer length (≥ 1) with ``Q_m(κ) ≥ q`` for ``q`` below ``c_m`` (exact: the real inverse rounded
        up, then corrected by one token either way against :meth:`qoe` itself)."""
        model = np.asarray(model)
        q = np.asarray(q, dtype=np.float64)
        ref_m = self.model_ref_tokens(ref_tokens, model)
        k = np.maximum(np.ceil(tokens_for_qoe(q / self.ceiling[model], ref_m, self.alpha)), 1.0)
        k = np.where(self.qoe(k, ref_tokens, model) < q, k + 1.0, k)
        return np.where((k > 1.0) & (self.qoe(k - 1.0, ref_tokens, model) >= q), k - 1.0, k)

    def greatest_length(self, q, ref_tokens, model) -> np.ndarray:
        """Greatest integer length (≥ 1) with ``Q_m(κ) ≤ q`` (exact, like :meth:`least_length`)."""
        model = np.asarray(model)
        q = np.asarray(q, dtype=np.float64)
        ref_m = self.model_ref_tokens(ref_tokens, model)
        k = np.maximum(np.floor(tokens_for_qoe(q / self.ceiling[model], ref_m, self.alpha)), 1.0)
        k = np.where(self.qoe(k + 1.0, ref_tokens, model) <= q, k + 1.0, k)
        return np.where((k > 1.0) & (self.qoe(k, ref_tokens, model) > q), k - 1.0, k)

    def length_limits(self, ref_tokens, model) -> tuple[np.ndarray, np.ndarray]:
        """Lengths of the length actions −1 and +1 on model ``model``: the least length meeting ``q_floor`` and
        the greatest with QoE ≤ ``c_m q_max``, capped at ``kappa_max`` but never below the floor's length."""
        k_floor = self.least_length(self.q_floor, ref_tokens, model)
        top = np.minimum(self.greatest_length(self.q_top[np.asarray(model)], ref_tokens, model), self.kappa_max)
        return k_floor, np.maximum(top, k_floor)
