"""``CellEnv``: one cell (base station + its users' datacenter) as an RLlib ``MultiAgentEnv``.

Each user is an agent (``user_0 … user_{U-1}``); every epoch each user issues one LLM request and its
agent picks the answer length (``kappa``) and downlink power. docs/design.md §3 is the specification.

Layering (after mobile-env): traces and workload give the exogenous inputs, ``channel`` the radio,
``physics`` the per-request carbon model; this module only wires them into an episode and the RL API.
A whole episode's exogenous inputs (carbon intensities, channels, requests) are drawn at ``reset`` into an
:class:`Episode`, which is what the hindsight oracle optimises over.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv
from ray.tune.registry import register_env

from aolo.envs import channel
from aolo.envs.config import CellSpec, ScenarioConfig
from aolo.envs.forecast import FORECAST_HOURS, make_forecasts
from aolo.envs.models import ModelPool, decode_model, model_action
from aolo.envs.physics import (
    InferenceCoefficients,
    RequestOutcomes,
    most_efficient_power_w,
    qoe,
    request_outcomes,
    tokens_for_qoe,
)
from aolo.envs.serving import get_serving_profile
from aolo.envs.traces import CarbonTrace, load_trace
from aolo.envs.traces.carbon_trace import check_paired
from aolo.envs.workload import make_workload

ENV_NAME = "aolo-cell-v0"
SPLITS = ("train", "heldout")


def episode_day(
    options: dict, default_split: str, days: dict[str, np.ndarray], rng: np.random.Generator, where: str
) -> int:
    """The day a ``reset(options=...)`` plays: ``options['day']`` (any day of the traces of ``where``), else one
    drawn from the days of ``options['split']`` (default ``default_split``)."""
    split = options.get("split", default_split)
    if split not in SPLITS:
        raise ValueError(f"options['split'] must be one of {SPLITS}, got {split!r}")
    day = options.get("day")
    if day is None:
        return int(rng.choice(days[split]))
    if not any(day in d for d in days.values()):
        raise ValueError(f"options['day']={day!r} is not a day of the traces of {where}")
    return day


#: Observation layout (all features roughly in [-3, 3]).
OBS_FEATURES = (
    "tod_sin",
    "tod_cos",
    "episode_fraction",
    "ci_cell_now",
    "ci_cell_1h",
    "ci_cell_3h",
    "ci_cell_day_mean",
    "ci_dc_now",
    "ci_dc_1h",
    "ci_dc_3h",
    "ci_dc_day_mean",
    "qoe_running_mean_slack",
    "csi_snr_db",
    "prompt_tokens",
    "ref_tokens",
)
#: Column of each observation feature (write and read observations by name, never by number).
OBS = {name: i for i, name in enumerate(OBS_FEATURES)}
_CI_COLUMNS = slice(OBS["ci_cell_now"], OBS["ci_dc_day_mean"] + 1)  # the 8 carbon features, in ci_features order
OBS_BOUND = 10.0
_CI_REF_G_PER_KWH = 100.0  # carbon features are ln(CI / 100 g/kWh): 9 g → -2.4, 700 g → +1.9


def greatest_length_within_qoe(q, ref_tokens, alpha: float) -> np.ndarray:
    """The greatest integer answer length (≥ 1) whose QoE does not exceed ``q`` (exact in floats, like
    :func:`least_length_for_qoe`): the longest answer an action can ask for, so no chosen answer tops ``q_max``."""
    q = np.asarray(q, dtype=np.float64)
    k = np.maximum(np.floor(tokens_for_qoe(q, ref_tokens, alpha)), 1.0)
    k = np.where(qoe(k + 1.0, ref_tokens, alpha) <= q, k + 1.0, k)
    return np.where((k > 1.0) & (qoe(k, ref_tokens, alpha) > q), k - 1.0, k)


def least_length_for_qoe(q, ref_tokens, alpha: float) -> np.ndarray:
    """The least integer answer length (≥ 1) whose QoE ``1 - exp(-α κ / L_ref)`` reaches ``q`` (exact in floats:
    the real inverse is rounded up, then corrected by one token either way against :func:`qoe` itself)."""
    q = np.asarray(q, dtype=np.float64)
    k = np.maximum(np.ceil(tokens_for_qoe(q, ref_tokens, alpha)), 1.0)
    k = np.where(qoe(k, ref_tokens, alpha) < q, k + 1.0, k)
    return np.where((k > 1.0) & (qoe(k - 1.0, ref_tokens, alpha) >= q), k - 1.0, k)


@dataclass
class Episode:
    """The exogenous inputs of one episode, arrays over users ``U`` and epochs ``T``."""

    day: int
    ci_cell_g_per_kwh: np.ndarray  #: (T,) at each epoch
    ci_dc_g_per_kwh: np.ndarray  #: (T,)
    ci_features: np.ndarray  #: (T, 8) normalised carbon observation features
    large_scale_gain: np.ndarray  #: (U,) path loss × shadowing, linear
    fading_gain: np.ndarray  #: (U, T) true |h|²
    fading_gain_estimate: np.ndarray  #: (U, T) |ĥ|² seen by the agent
    prompt_tokens: np.ndarray  #: (U, T)
    ref_tokens: np.ndarray  #: (U, T)
    #: whether answers see the fading-averaged (ergodic) rate; then ``channel_gain`` leaves out ``|h|²``
    ergodic: bool = False
    #: (T, 3) forecasts the agent sees at each epoch: 1 h ahead, 3 h ahead, the day mean (FORECAST_COLUMNS)
    forecast_cell_g_per_kwh: np.ndarray | None = None
    forecast_dc_g_per_kwh: np.ndarray | None = None  #: (T, 3)
    channel_gain: np.ndarray = field(init=False)  #: (U, T) true power gain the delivery rate is computed from

    def __post_init__(self) -> None:
        fading = np.ones_like(self.fading_gain) if self.ergodic else self.fading_gain
        self.channel_gain = self.large_scale_gain[:, None] * fading


class CellEnv(MultiAgentEnv):
    """Multi-agent cell environment.

    ``config`` keys (all optional; an RLlib ``EnvContext`` also carries ``worker_index``):
        scenario: a :class:`ScenarioConfig` or its dict form (default scenario if absent).
        cell_index: pick the cell explicitly; otherwise each env copy takes ``cells[copy index % len(cells)]``,
            the copy index being runner slot · num_envs_per_env_runner + the copy's position in its runner,
            counted in construction order (:meth:`_copy_index`; RLlib's ``vector_index`` is 0 for every copy).
        num_envs_per_env_runner: used for the per-copy cell choice (set by the algorithm builders).
        split: ``"train"`` (default) draws days from the training days, ``"heldout"`` from held-out days.
        seed: base seed (default 0); each copy offsets it by its copy index.

    Observations, actions and rewards: docs/design.md §3.3–§3.5; ``OBS_FEATURES`` names the observation entries.
    ``reset(options={"day": d})`` replays a given day. Each agent's ``info`` holds the carbon breakdown,
    QoE, latency, airtime and whether the BS power budget clipped the powers.
    """

    metadata = {"render_modes": []}

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__()
        self.copy_index = self._copy_index(config or {})  # reads EnvContext attributes before the dict copy
        config = dict(config or {})
        scenario = config.get("scenario")
        self.scenario = scenario if isinstance(scenario, ScenarioConfig) else ScenarioConfig.from_dict(scenario)
        cell_index = config.get("cell_index")
        if cell_index is None:
            cell_index = self.copy_index % len(self.scenario.cells)
        if not (isinstance(cell_index, int) and 0 <= cell_index < len(self.scenario.cells)):
            raise ValueError(
                f"cell_index must be an integer in [0, {len(self.scenario.cells) - 1}], got {cell_index!r}"
            )
        self.cell_index = cell_index
        self.cell: CellSpec = self.scenario.cells[cell_index]
        self.split = config.get("split", "train")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")

        sc, radio, service = self.scenario, self.scenario.radio, self.scenario.service
        max_g = sc.carbon_intensity_max_g_per_kwh
        self.trace_cell: CarbonTrace = load_trace(self.cell.grid_region, sc.accounting, sc.data_dir, max_g)
        self.trace_dc: CarbonTrace = load_trace(self.cell.datacenter_region, sc.accounting, sc.data_dir, max_g)
        check_paired(self.trace_cell, self.trace_dc, self.cell.name)
        self.days = self._split_days()
        self.workload = make_workload(service.workload)
        self.fading_trace = self._load_fading_trace()
        self.inference = InferenceCoefficients.build(
            get_serving_profile(self.cell.serving_profile), self.cell.serving_batch, service
        )
        n = self.cell.num_users
        #: the cell's users sharing its static power (EARTH) and bandwidth: a per-user array in SiteCells
        self.users_in_cell: int | np.ndarray = n
        self.bandwidth_per_user_hz = radio.bandwidth_hz / n
        self.noise_w = float(channel.noise_power_w(self.bandwidth_per_user_hz, radio.noise_figure_db))
        inr = self.cell.interference_to_noise_db
        self.interference_w = 0.0 if inr is None else self.noise_w * float(channel.db_to_linear(inr))
        self.fading_rho = channel.fading_correlation(radio.ue_speed_mps, radio.carrier_ghz, sc.epoch_s)

        #: the models the datacenter serves when ``service.model_action`` is on (docs/design.md §3.7), else None
        self.models: ModelPool | None = (
            ModelPool.build(service, self.cell.serving_profile, self.cell.serving_batch)
            if service.model_action
            else None
        )
        #: this epoch's model choice of the policy and after the guard (None without a pool), set by decide()
        self._model_policy: np.ndarray | None = None
        self._model: np.ndarray | None = None
        self.agents = self.possible_agents = [f"user_{i}" for i in range(n)]
        self._all_ids = [*self.agents, "__all__"]
        obs_space = gym.spaces.Box(-OBS_BOUND, OBS_BOUND, (len(OBS_FEATURES),), np.float32)
        #: (answer length, power) and, with a model pool, the model: a continuous component mapped to equal bins
        #: (aolo.envs.models.decode_model) so SAC, SDRL and TD3 keep their Box action space
        self.action_dim = 2 if self.models is None else 3
        act_space = gym.spaces.Box(-1.0, 1.0, (self.action_dim,), np.float32)
        self.observation_spaces = {a: obs_space for a in self.agents}
        self.action_spaces = {a: act_space for a in self.agents}

        self._rng = self._episode_rng(int(config.get("seed", 0)))
        #: the carbon reward's unit [g]: ``reward.carbon_scale_g``, or this cell's typical request (``per_cell``)
        self.carbon_scale_g = (
            self.reference_carbon_g() if sc.reward.carbon_normalisation == "per_cell" else sc.reward.carbon_scale_g
        )
        self.episode: Episode | None = None
        self._p_star_dbm: np.ndarray | None = None
        self.t = 0
        self._qoe_sum = np.zeros(n)

    # --- helpers --------------------------------------------------------------------------------------

    #: CellEnvs built from an RLlib EnvContext in this process (see :meth:`_copy_index`)
    _rllib_copies_built = itertools.count()

    @staticmethod
    def _copy_index(config: dict[str, Any], copies_built: itertools.count | None = None) -> int:
        """This env copy's index among all copies of the training run: runner slot × copies per runner + the
        copy's position in its runner's vector env; 0 for an env aolo builds itself from a plain dict.
        ``copies_built`` counts the constructions of one env class (default: CellEnv's; a SiteEnv keeps its own).

        RLlib 2.60's ``MultiAgentEnvRunner.make_env`` hands one and the same EnvContext (``vector_index`` 0) to
        every sub-env of its vector env, so the position is counted here instead: a runner builds its
        ``num_envs_per_env_runner`` copies one after another, so any that many consecutive constructions in a
        process take every position once (reading ``vector_index`` put every copy in cell 0)."""
        worker_index = getattr(config, "worker_index", None)
        if worker_index is None:
            return 0
        num_envs = int(config.get("num_envs_per_env_runner", 1))
        runner_slot = max(int(worker_index) - 1, 0)  # 0 = local runner, 1..N = remote EnvRunners
        counter = CellEnv._rllib_copies_built if copies_built is None else copies_built
        return runner_slot * num_envs + next(counter) % num_envs

    def _load_fading_trace(self) -> channel.FadingTrace | None:
        """The cell's fading trace, checked against what the cell reads: enough users, and (unless
        ``fading_trace_wrap``) steps up to the last epoch of its last day."""
        if not self.cell.fading_trace:
            return None
        trace = channel.FadingTrace.load(self.cell.fading_trace)
        last_day = max(int(d.max()) for d in self.days.values())  # _split_days leaves none empty
        last_step = int(last_day * 86_400 / self.scenario.epoch_s) + self.scenario.epochs_per_episode - 1
        trace.check_fits(self.cell.num_users, last_step, self.cell.fading_trace_wrap, f"cell {self.cell.name!r}")
        if self.scenario.radio.fading_average == "ergodic":
            warnings.warn(
                f"cell {self.cell.name!r}: fading_trace {self.cell.fading_trace} cannot change any result: "
                f"radio.fading_average: ergodic averages the fading out (use instantaneous to replay it)",
                stacklevel=3,
            )
        return trace

    def _split_days(self) -> dict[str, np.ndarray]:
        n_days = min(self.trace_cell.n_days, self.trace_dc.n_days)
        span_days = int(np.ceil(self.scenario.epochs_per_episode * self.scenario.epoch_s / 86_400.0))
        days = {
            "train": self.trace_cell.train_days(),
            "heldout": self.trace_cell.heldout_days(),
        }
        days = {k: v[v + span_days <= n_days] for k, v in days.items()}
        for k, v in days.items():
            if len(v) == 0:
                raise ValueError(
                    f"cell {self.cell.name!r}: traces {self.cell.grid_region!r}/{self.cell.datacenter_region!r} "
                    f"cover {n_days} day(s): no {k} day fits an episode of {span_days} day(s)"
                )
        return days

    def _episode_rng(self, seed: int) -> np.random.Generator:
        """The random stream of this env copy: a function of (seed, copy index, cell index), so cells never share
        user placements, fading or requests — not even evaluation envs, which all are copy 0 — and the same
        (seed, copy, cell) always replays the same episodes (evaluation seeds with the day: one draw per
        (cell, day), identical for every policy)."""
        return np.random.default_rng([seed, self.copy_index, self.cell_index])

    @property
    def num_users(self) -> int:
        return self.cell.num_users

    def reference_carbon_g(self) -> float:
        """The carbon of this cell's typical request [g], the unit of its carbon reward under
        ``reward.carbon_normalisation: per_cell``: the workload's mean prompt and reference length, the least
        answer meeting ``q_min``, sent at the most efficient power over the path loss at the cell's median-area
        distance (no shadowing or fading), at the mean carbon intensities of the training days."""
        sv, radio, cell = self.scenario.service, self.scenario.radio, self.cell
        prompt, ref = self.workload.sample(np.random.default_rng(0), 20_000)
        prompt_mean, ref_mean = float(prompt.mean()), float(ref.mean())
        kappa = least_length_for_qoe(sv.q_min, ref_mean, sv.qoe_alpha)
        distance_m = np.sqrt(0.5 * (cell.min_distance_m**2 + cell.radius_m**2))  # half the users are closer
        pl_db = channel.pathloss_db(
            distance_m,
            scenario=cell.pathloss,
            link_state=cell.link_state,
            carrier_ghz=radio.carrier_ghz,
            ue_height_m=radio.ue_height_m,
        )
        gain = channel.db_to_linear(-pl_db)
        hours = (self.days["train"][:, None] * 24.0 + np.arange(24.0)).ravel()
        out = self.request_outcomes(
            kappa,
            self.efficient_power_w(gain),
            prompt_tokens=prompt_mean,
            ref_tokens=ref_mean,
            channel_gain=gain,
            ci_dc_g_per_kwh=float(self.trace_dc.values_at(hours).mean()),
            ci_cell_g_per_kwh=float(self.trace_cell.values_at(hours).mean()),
        )
        return float(np.asarray(out.carbon_total_g))

    def length_limits(self, ref_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The answer lengths of the actions a = -1 and a = +1 for reference lengths ``ref_tokens``.

        ``qoe`` mode: ``kappa_floor`` = the least integer length with QoE ≥ ``q_floor`` and the greatest length
        with QoE ≤ ``q_max`` capped at ``kappa_max`` (never below ``kappa_floor``: the floor wins over the cap).
        No action asks for more than ``q_max``, which the mean-QoE guard relies on (:meth:`mean_qoe_guard`).
        ``tokens`` mode: ``max(1, round(f_min L_ref))`` and ``round(f_max L_ref)``, both capped at ``kappa_max``.
        """
        sv = self.scenario.service
        ref = np.asarray(ref_tokens, dtype=np.float64)
        if sv.length_action == "tokens":
            lo = np.minimum(np.maximum(np.rint(sv.f_min * ref), 1.0), sv.kappa_max)
            return lo, np.minimum(np.maximum(np.rint(sv.f_max * ref), 1.0), sv.kappa_max)
        k_floor = least_length_for_qoe(sv.q_floor, ref, sv.qoe_alpha)
        k_top = np.maximum(
            np.minimum(greatest_length_within_qoe(sv.q_max_effective, ref, sv.qoe_alpha), sv.kappa_max), k_floor
        )
        return k_floor, k_top

    def _length_limits_now(self, ref: np.ndarray) -> np.ndarray:
        """:meth:`length_limits` of this epoch's reference lengths ``ref`` from the episode's table, recomputed
        where a caller edited the episode's lengths after reset (the tests and the references may)."""
        t = self.t
        if (ref != self._limits_ref[:, t]).any():
            self._limits_ref[:, t] = ref
            self._limits[:, :, t] = self.length_limits(ref)
        return self._limits[:, :, t]

    def _target_qoe(self, a: np.ndarray) -> np.ndarray:
        """``qoe`` mode: action → target QoE, piecewise linear, -1 ↦ q_floor, 0 ↦ q_min, +1 ↦ q_max."""
        sv = self.scenario.service
        return np.where(a < 0.0, sv.q_min + a * (sv.q_min - sv.q_floor), sv.q_min + a * (sv.q_max_effective - sv.q_min))

    def efficient_power_w(self, channel_gain) -> np.ndarray:
        """``P*`` [W]: the power minimising radio carbon per token on ``channel_gain`` in this cell
        (:func:`aolo.envs.physics.most_efficient_power_w`)."""
        return most_efficient_power_w(
            channel_gain,
            bandwidth_hz=self.bandwidth_per_user_hz,
            noise_w=self.noise_w,
            interference_w=self.interference_w,
            users_in_cell=self.users_in_cell,
            radio=self.scenario.radio,
        )

    @property
    def _efficient_dbm(self) -> np.ndarray:
        """(U, T) ``P*`` on the known gains [dBm] (:meth:`efficient_power_w`), searched at its first read in an
        episode unless already set: a site searches all its cells' users at once (``SiteCells.begin``)."""
        if self._p_star_dbm is None:
            p_star_w = self.efficient_power_w(self.search_gain)
            self._p_star_dbm = np.broadcast_to(channel.w_to_dbm(p_star_w), self.known_gain.shape)
        return self._p_star_dbm

    def _power_centre_dbm(self) -> np.ndarray:
        """The power of the action a = 0 this epoch [dBm]: ``P*`` on the channel the base station knows."""
        return self._efficient_dbm[:, self.t]

    def action_for(self, kappa: np.ndarray, power_w: np.ndarray, model=None) -> dict[str, np.ndarray]:
        """The action dict that makes the env use answer lengths ``kappa`` and powers ``power_w`` this epoch
        (the inverse of :meth:`decode_actions`; lengths outside :meth:`length_limits` are clipped to them).

        ``qoe`` mode aims at the QoE halfway between ``kappa - 1`` and ``kappa`` tokens, whose least length is
        exactly ``kappa`` — a margin far above float32 action resolution. With a model pool ``model`` (index per
        user) is required and the lengths are those of each user's model (:meth:`pool_length_action`)."""
        sv, radio = self.scenario.service, self.scenario.radio
        ref = self.episode.ref_tokens[:, self.t]
        kappa = np.asarray(kappa, dtype=np.float64)
        if self.models is not None:
            if model is None:
                raise ValueError("CellEnv.action_for: service.model_action is on, pass the model of every answer")
            a_len = self.pool_length_action(kappa, np.asarray(model), ref)
        elif sv.length_action == "tokens":
            f = kappa / ref
            a_len = 2.0 * (f - sv.f_min) / (sv.f_max - sv.f_min) - 1.0
        else:
            lo, hi = self.length_limits(ref)
            k = np.clip(np.rint(kappa), lo, hi)
            target = 0.5 * (qoe(k - 1.0, ref, sv.qoe_alpha) + qoe(k, ref, sv.qoe_alpha))
            target = np.clip(target, sv.q_floor, sv.q_max_effective)
            a_len = np.where(
                target < sv.q_min,
                (target - sv.q_min) / max(sv.q_min - sv.q_floor, 1e-12),
                (target - sv.q_min) / (sv.q_max_effective - sv.q_min),
            )
            a_len = np.where(k <= lo, -1.0, np.where(k >= hi, 1.0, a_len))
        p_dbm = channel.w_to_dbm(np.asarray(power_w, dtype=np.float64))
        if radio.power_action == "dbm":
            a_pow = 2.0 * (p_dbm - radio.p_min_dbm) / (radio.p_max_dbm - radio.p_min_dbm) - 1.0
        else:
            c = self._power_centre_dbm()
            a_pow = np.where(
                p_dbm < c,
                (p_dbm - c) / np.maximum(c - radio.p_min_dbm, 1e-9),
                (p_dbm - c) / np.maximum(radio.p_max_dbm - c, 1e-9),
            )
        columns = [a_len, a_pow] if self.models is None else [a_len, a_pow, model_action(model, self.models.size)]
        acts = np.clip(np.stack(columns, axis=1), -1.0, 1.0)
        return {a: acts[i].astype(np.float32) for i, a in enumerate(self.agents)}

    def decode_actions(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map actions in ``[-1, 1]^2`` to (``kappa`` tokens, requested power [W]) for the current epoch.

        ``qoe`` mode: the least length whose QoE meets the action's target QoE, within :meth:`length_limits`
        (so every answer has QoE ≥ ``q_floor``); ``tokens`` mode: ``round(f · L_ref)``. Power: ``efficient`` mode
        -1 ↦ ``p_min_dbm``, 0 ↦ ``P*`` on the known channel (the power of least radio carbon per token, what
        ``myopic`` sends when latency allows), +1 ↦ ``p_max_dbm``, linear in dBm on each side; ``dbm`` mode
        linear in dBm over the whole range."""
        sv, radio = self.scenario.service, self.scenario.radio
        ref = self.episode.ref_tokens[:, self.t]
        if self.models is not None:
            kappa = self.pool_lengths(np.asarray(actions[:, 0], dtype=np.float64), self.decode_model(actions), ref)
        elif sv.length_action == "tokens":
            f = sv.f_min + (actions[:, 0] + 1.0) * 0.5 * (sv.f_max - sv.f_min)
            kappa = np.minimum(np.maximum(np.rint(f * ref), 1.0), sv.kappa_max)
        else:
            lo, hi = self._length_limits_now(ref)
            target = self._target_qoe(np.asarray(actions[:, 0], dtype=np.float64))
            kappa = np.minimum(np.maximum(least_length_for_qoe(target, ref, sv.qoe_alpha), lo), hi)  # a fast clip
        a_pow = np.asarray(actions[:, 1], dtype=np.float64)
        if radio.power_action == "dbm":
            p_dbm = radio.p_min_dbm + (a_pow + 1.0) * 0.5 * (radio.p_max_dbm - radio.p_min_dbm)
        else:
            c = self._power_centre_dbm()
            p_dbm = np.where(a_pow < 0.0, c + a_pow * (c - radio.p_min_dbm), c + a_pow * (radio.p_max_dbm - c))
        return kappa, channel.dbm_to_w(p_dbm)

    # --- the model pool (service.model_action, docs/design.md §3.7) ------------------------------------------

    def decode_model(self, actions: np.ndarray) -> np.ndarray:
        """(U,) model index of each user's answer from the third action component."""
        return decode_model(actions[:, 2], self.models.size)

    def pool_lengths(self, a_len: np.ndarray, model: np.ndarray, ref_tokens) -> np.ndarray:
        """Answer lengths of length actions ``a_len`` on models ``model``: the target QoE of the single-model
        mapping scaled by the model's ceiling, ``max(q_floor, c_m · target(a))`` (so a = 0 asks every model for the
        same share of its ceiling, ``q_min``'s), then its least length within :meth:`ModelPool.length_limits` —
        every action meets the floor on every model."""
        pool, sv = self.models, self.scenario.service
        target = np.maximum(sv.q_floor, pool.ceiling[model] * self._target_qoe(a_len))
        lo, hi = pool.length_limits(ref_tokens, model)
        return np.clip(pool.least_length(target, ref_tokens, model), lo, hi)

    def pool_length_action(self, kappa: np.ndarray, model: np.ndarray, ref_tokens) -> np.ndarray:
        """The length action whose answer on model ``model`` is ``kappa`` tokens (inverse of :meth:`pool_lengths`):
        it aims at the QoE halfway between ``kappa - 1`` and ``kappa`` tokens."""
        pool, sv = self.models, self.scenario.service
        lo, hi = pool.length_limits(ref_tokens, model)
        k = np.clip(np.rint(kappa), lo, hi)
        q_mid = 0.5 * (pool.qoe(k - 1.0, ref_tokens, model) + pool.qoe(k, ref_tokens, model))
        target = np.clip(q_mid / pool.ceiling[model], sv.q_floor, sv.q_max_effective)
        a_len = np.where(
            target < sv.q_min,
            (target - sv.q_min) / max(sv.q_min - sv.q_floor, 1e-12),
            (target - sv.q_min) / (sv.q_max_effective - sv.q_min),
        )
        return np.where(k <= lo, -1.0, np.where(k >= hi, 1.0, a_len))

    def pool_mean_qoe_guard(self, kappa: np.ndarray, model: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`mean_qoe_guard` with a model pool, planned with answers at most ``r`` times the model's own length:
        ``need = T Q_min − Σ Q − (T − t − 1) max_m g_m`` with ``g_m = c_m (1 − e^{−α r})`` (:attr:`ModelPool.q_guard`,
        ``r = service.guard_length_ratio``). Where the policy's answer brings less than ``need``, it keeps its model
        if ``g_m`` reaches ``need`` (lengthened to the least length that does), else it goes to the best-rated
        model. By the induction of :meth:`mean_qoe_guard` with ``g`` for ``q_max``, ``need`` never exceeds the best
        model's ``g``: every user-day meets ``Q_min`` and no rescue is longer than ``r ρ_m L_ref``. Planned with
        ``q_max`` (1.5 ρ L_ref) a rescue of a long request runs past ``T_max`` on the 70B (22 ms a token); the
        price is that a plan catching up late with answers above ``g`` is lengthened earlier (docs/design.md §3.7)."""
        if not self.scenario.service.mean_qoe_guard:
            return kappa, model
        pool, sv, T, t = self.models, self.scenario.service, self.scenario.epochs_per_episode, self.t
        need = T * sv.q_min - self._qoe_sum - (T - t - 1) * float(pool.q_guard.max())
        if not (need > 0.0).any():
            return kappa, model
        ref = self.episode.ref_tokens[:, t]
        short = pool.qoe(kappa, ref, model) < need  # the policy's own answer does not bring what the day needs
        switch = short & (pool.q_guard[model] < need)
        guarded_model = np.where(switch, pool.best, model)
        ask = np.minimum(need, pool.q_guard[guarded_model])
        guard = np.minimum(pool.least_length(ask, ref, guarded_model), sv.kappa_max)
        return np.where(short, guard, kappa), guarded_model

    def mean_qoe_guard(self, kappa: np.ndarray) -> np.ndarray:
        """The safety layer of the per-user-day mean-QoE rule (``service.mean_qoe_guard``, docs/design.md §3.3):
        ``kappa`` lengthened to at least the least length reaching ``T Q_min - Σ_τ<t Q_τ - (T - t - 1) q_max``,
        the QoE this answer needs so that the day can still meet the rule with every later answer at ``q_max``.

        Causal (the running QoE sum is the agent's own observation) and minimal: no action asks for more than
        ``q_max`` (:meth:`length_limits`), so it never binds on a day the actions alone keep within the rule — the
        hindsight plan and the bound are untouched. Once it binds, what it asks for stays at most ``q_max``
        (induction on the epochs), which a length up to ``kappa_max`` reaches even where the action's own top
        length falls short of it (integer rounding), and at the last epoch it asks exactly for the day's
        remaining shortfall: the rule holds on every user-day unless ``kappa_max`` keeps an answer from
        ``q_max`` (reference answers over 1000 tokens)."""
        if not self.scenario.service.mean_qoe_guard:
            return kappa
        sv, T, t = self.scenario.service, self.scenario.epochs_per_episode, self.t
        need = T * sv.q_min - self._qoe_sum - (T - t - 1) * sv.q_max_effective
        if not (need > 0.0).any():  # the usual case: any answer keeps the day within reach
            return kappa
        ref = self.episode.ref_tokens[:, t]
        guard = np.minimum(
            least_length_for_qoe(np.clip(need, 0.0, sv.q_max_effective), ref, sv.qoe_alpha), sv.kappa_max
        )
        return np.where(need > 0.0, np.maximum(kappa, guard), kappa)

    # --- episode generation ---------------------------------------------------------------------------

    def _draw_episode(self, day: int) -> Episode:
        sc, radio, cell, rng = self.scenario, self.scenario.radio, self.cell, self._rng
        n, T = cell.num_users, sc.epochs_per_episode
        hours = day * 24.0 + np.arange(T) * sc.epoch_s / 3600.0
        # Every carbon value an episode reads comes from its own day(s): reads past the last hour of the
        # episode's span hold that hour's value. Otherwise the last epochs' 1 h / 3 h look-aheads would read the
        # next day, which is a held-out day for many training days.
        span_days = int(np.ceil(T * sc.epoch_s / 86_400.0))
        last_hour = day * 24.0 + span_days * 24.0 - 1.0
        own = lambda h: np.minimum(h, last_hour)  # noqa: E731
        # The "now" feature is exact; the 1 h / 3 h / day-mean features are the forecasts of ``scenario.forecast``
        # (aolo.envs.forecast: the truth if ``perfect``; a draw fixed by (forecast seed, cell, day) if ``noisy``).
        features = []
        ci_now, forecasts = {}, {}
        for i, (key, trace) in enumerate((("cell", self.trace_cell), ("dc", self.trace_dc))):
            now = trace.values_at(own(hours))
            ahead = [trace.values_at(own(hours + h)) for h in FORECAST_HOURS]
            fc = make_forecasts(sc.forecast, now, ahead, sc.epoch_s, (sc.forecast.seed, self.cell_index, int(day), i))
            features += [now, *fc.T]
            ci_now[key], forecasts[key] = now, fc
        ci_features = np.log(np.maximum(np.stack(features, axis=1), 1e-3) / _CI_REF_G_PER_KWH)

        distance_m = channel.place_users_m(rng, n, cell.min_distance_m, cell.radius_m)
        pl_db = channel.pathloss_db(
            distance_m,
            scenario=cell.pathloss,
            link_state=cell.link_state,
            carrier_ghz=radio.carrier_ghz,
            ue_height_m=radio.ue_height_m,
        )
        sigma = channel.SHADOWING_SIGMA_DB[(cell.pathloss, cell.link_state)] if radio.shadowing else 0.0
        large_scale = channel.db_to_linear(-pl_db + sigma * rng.standard_normal(n))

        if self.fading_trace is not None:
            true_gain = self.fading_trace.window(n, int(day * 86_400 / sc.epoch_s), T, cell.fading_trace_wrap)
            h = np.sqrt(true_gain).astype(np.complex128)
        else:
            k = channel.db_to_linear(radio.rician_k_db) if cell.link_state == "los" else 0.0
            h = channel.gauss_markov_fading(rng, n, T, self.fading_rho, k)
            true_gain = np.abs(h) ** 2
        estimate = np.abs(channel.csi_estimate(rng, h, radio.csi_nmse_db)) ** 2

        prompt, ref = self.workload.sample(rng, n * T)
        return Episode(
            day=int(day),
            ci_cell_g_per_kwh=ci_now["cell"],
            ci_dc_g_per_kwh=ci_now["dc"],
            ci_features=ci_features,
            large_scale_gain=large_scale,
            fading_gain=true_gain,
            fading_gain_estimate=estimate,
            prompt_tokens=prompt.reshape(n, T).astype(np.float64),
            ref_tokens=ref.reshape(n, T).astype(np.float64),
            ergodic=radio.fading_average == "ergodic",
            forecast_cell_g_per_kwh=forecasts["cell"],
            forecast_dc_g_per_kwh=forecasts["dc"],
        )

    # --- gymnasium / RLlib API ------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed, options=options)
        if seed is not None:
            self._rng = self._episode_rng(int(seed))
        options = options or {}
        day = episode_day(options, self.split, self.days, self._rng, f"cell {self.cell.name!r}")
        self.episode = self._draw_episode(day)
        self._obs_table = self._exogenous_observations(self.episode)
        ep = self.episode
        #: (U, T) the channel power gain the base station knows: large-scale gain × the CSI estimate |ĥ|²
        #: (× 1 under the ergodic rate, which averages the fading out)
        gain = ep.large_scale_gain[:, None] * (1.0 if ep.ergodic else ep.fading_gain_estimate)
        self.known_gain = np.broadcast_to(gain, ep.fading_gain_estimate.shape)
        #: the distinct known gains P* is searched on: under the ergodic rate one search per user serves the day
        self.search_gain = gain
        self._p_star_dbm = None  # searched at its first read (_efficient_dbm)
        self._begin_play()
        return self._observations(), {a: {"day": int(day), "cell": self.cell.name} for a in self.agents}

    def _begin_play(self) -> None:
        """The state of play at the episode's first epoch: the running sums, and the length limits of the
        episode's reference lengths (:meth:`_length_limits_now`)."""
        self.t = 0
        self._qoe_sum = np.zeros(self.num_users)
        self._late_count = np.zeros(self.num_users)
        self._guard_sum = np.zeros(self.num_users)
        if self.scenario.service.length_action == "qoe" and self.models is None:
            self._limits_ref = self.episode.ref_tokens.copy()
            self._limits = np.stack(self.length_limits(self._limits_ref))  # (2, U, T): kappa at a = -1, a = +1

    def _exogenous_observations(self, ep: Episode) -> np.ndarray:
        """(T, U, F) observation features known at reset; only the running-QoE column changes in play."""
        sc, n, T = self.scenario, self.num_users, self.scenario.epochs_per_episode
        tod = ((np.arange(T) * sc.epoch_s / 3600.0) % 24.0) / 24.0
        snr_db = 10.0 * np.log10(
            ep.large_scale_gain[:, None] * ep.fading_gain_estimate / (self.noise_w + self.interference_w) + 1e-30
        )  # (U, T): SNR at 1 W transmit power seen through the CSI estimate
        obs = np.empty((T, n, len(OBS_FEATURES)), dtype=np.float32)
        obs[:, :, OBS["tod_sin"]] = np.sin(2.0 * np.pi * tod)[:, None]
        obs[:, :, OBS["tod_cos"]] = np.cos(2.0 * np.pi * tod)[:, None]
        obs[:, :, OBS["episode_fraction"]] = (np.arange(T) / T)[:, None]
        obs[:, :, _CI_COLUMNS] = ep.ci_features[:, None, :]
        obs[:, :, OBS["qoe_running_mean_slack"]] = 0.0
        obs[:, :, OBS["csi_snr_db"]] = ((snr_db - 10.0) / 10.0).T
        obs[:, :, OBS["prompt_tokens"]] = (np.log(ep.prompt_tokens) - 6.5).T
        obs[:, :, OBS["ref_tokens"]] = (np.log(ep.ref_tokens) - 5.0).T
        return np.clip(obs, -OBS_BOUND, OBS_BOUND)

    def observation_table(self) -> np.ndarray:
        """(U, F) this epoch's observations, one row per agent (:data:`OBS_FEATURES` columns)."""
        t = min(self.t, self.scenario.epochs_per_episode - 1)
        obs = self._obs_table[t].copy()
        if self.t > 0:
            slack = 20.0 * (self._qoe_sum / self.t - self.scenario.service.q_min)
            obs[:, OBS["qoe_running_mean_slack"]] = np.minimum(np.maximum(slack, -OBS_BOUND), OBS_BOUND)
        return obs

    def _observations(self) -> dict[str, np.ndarray]:
        return dict(zip(self.agents, self.observation_table(), strict=True))

    def _validated_actions(self, action_dict: dict[str, Any]) -> np.ndarray:
        missing = [a for a in self.agents if a not in action_dict]
        if missing:
            raise ValueError(f"CellEnv.step: no action for agent(s) {missing}; every user acts every epoch")
        actions = np.asarray([action_dict[a] for a in self.agents], dtype=np.float64)
        if actions.shape != (self.num_users, self.action_dim):
            raise ValueError(f"CellEnv.step: each action must have shape ({self.action_dim},), got {actions.shape[1:]}")
        within = np.abs(actions) <= 1.0 + 1e-6  # False for NaN too
        if not within.all():
            bad = ~within.all(axis=1)
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"CellEnv.step: {int(bad.sum())} action(s) outside [-1, 1] or not finite, first "
                f"{self.agents[i]}={actions[i].tolist()}; actions are (answer length, power) in [-1, 1]^2 — "
                "clip them in the policy (RLlib: config.environment(clip_actions=True))"
            )
        return np.minimum(np.maximum(actions, -1.0), 1.0)  # only float rounding (|excess| ≤ 1e-6) is clipped

    def step(self, action_dict: dict[str, Any]):
        kappa_policy, kappa, power_w, power_clipped = self.decide(action_dict)
        out = self.outcomes(kappa, power_w, self.t, model=self._model)
        return self.settle(out, kappa_policy, kappa, power_w, power_clipped)

    def decide(self, action_dict: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """The first half of :meth:`step`: the epoch's (policy's lengths, guarded lengths, powers after the BS
        budget, whether the budget clipped them) from the actions. A shared site (:mod:`aolo.envs.site_env`) runs
        it on all its cells' users at once (``SiteCells``), couples their outcomes, then :meth:`settle` s them."""
        if self.episode is None:
            raise RuntimeError("CellEnv.step called before reset()")
        if self.t >= self.scenario.epochs_per_episode:
            raise RuntimeError("CellEnv.step called after the episode ended; call reset()")
        actions = self._validated_actions(action_dict)
        kappa_policy, power_w = self.decode_actions(actions)
        if self.models is None:
            model_policy = model = None
            kappa = self.mean_qoe_guard(kappa_policy)
        else:
            model_policy = self.decode_model(actions)
            kappa, model = self.pool_mean_qoe_guard(kappa_policy, model_policy)
        power_w, power_clipped = self._within_power_budget(power_w)
        self._model_policy, self._model = model_policy, model  # the pool's choice, read by settle (None: no pool)
        return kappa_policy, kappa, power_w, power_clipped

    def _within_power_budget(self, power_w: np.ndarray) -> tuple[np.ndarray, Any]:
        """The powers after the BS power budget and whether it clipped them: over budget, every user's power
        is scaled down proportionally to meet it."""
        requested_w = power_w.sum()
        power_clipped = requested_w > self.cell.bs_power_budget_w
        if power_clipped:
            power_w = power_w * (self.cell.bs_power_budget_w / requested_w)
        return power_w, bool(power_clipped)

    def settle(
        self,
        out: RequestOutcomes,
        kappa_policy: np.ndarray,
        kappa: np.ndarray,
        power_w: np.ndarray,
        power_clipped: bool,
        carbon_weight: float | np.ndarray = 1.0,
        observe: bool = True,
        info_columns: Mapping[str, np.ndarray] | None = None,
        info_shared: Mapping[str, Any] | None = None,
    ):
        """The second half of :meth:`step`: rewards, running QoE, the next observations and the infos of the
        epoch's outcomes ``out``; ``carbon_weight`` scales each agent's carbon reward (a site's request volume).
        ``observe=False`` returns ``None`` for the observations (a site builds its own from
        :meth:`observation_table`). ``info_columns`` (per-agent arrays) and ``info_shared`` (the same for every
        agent) add entries to the infos or replace the cell's own (a site's load and latency attribution)."""
        sc, t = self.scenario, self.t
        # QoE the guard added over the policy's own answer: priced like a shortfall (a day the guard had to
        # rescue is a day the policy would have missed), see cost_qoe in _infos
        if self._model is None and kappa is kappa_policy:  # the guard left the answers alone (the usual epoch)
            qoe_guard_added = np.zeros(self.num_users)
        elif self._model is None:
            qoe_guard_added = out.qoe - qoe(kappa_policy, self.episode.ref_tokens[:, t], sc.service.qoe_alpha)
        else:
            qoe_guard_added = out.qoe - self.models.qoe(kappa_policy, self.episode.ref_tokens[:, t], self._model_policy)
        rewards = self.rewards(out, carbon_weight)
        deficit_before = self._deficit()
        shortfall_before = np.maximum(0.0, t * sc.service.q_min - self._qoe_sum)
        self._qoe_sum += out.qoe
        self._guard_sum += qoe_guard_added
        self._late_count += out.latency_s > sc.service.t_max_s
        self.t += 1
        done = self.t >= sc.epochs_per_episode
        if sc.reward.terms == "all" and (sc.reward.deficit_timing == "accrued" or done):
            rewards = rewards - sc.reward.deficit * (self._deficit() - deficit_before)
        shortfall_after = np.maximum(0.0, self.t * sc.service.q_min - self._qoe_sum)
        infos = self._infos(
            out,
            kappa,
            power_w,
            power_clipped,
            t,
            shortfall_after - shortfall_before,
            qoe_guard_added,
            self._model,
            info_columns,
            info_shared,
        )
        return (
            self._observations() if observe else None,
            dict(zip(self.agents, rewards.tolist(), strict=True)),
            dict.fromkeys(self._all_ids, False),
            dict.fromkeys(self._all_ids, done),
            infos,
        )

    # --- model ----------------------------------------------------------------------------------------

    def outcomes(
        self,
        kappa: np.ndarray,
        power_w: np.ndarray,
        t: int,
        users=slice(None),
        inference: InferenceCoefficients | None = None,
        model=None,
    ) -> RequestOutcomes:
        """Per-request outcomes at epoch ``t`` for answer lengths ``kappa`` and (post-budget) powers ``power_w``
        (``inference``: a shared site's coefficients at its operating batch instead of this cell's own; ``model``:
        the serving models when the datacenter has a model pool)."""
        ep = self.episode
        return self.request_outcomes(
            kappa,
            power_w,
            prompt_tokens=ep.prompt_tokens[users, t],
            ref_tokens=ep.ref_tokens[users, t],
            channel_gain=ep.channel_gain[users, t],
            ci_dc_g_per_kwh=ep.ci_dc_g_per_kwh[t],
            ci_cell_g_per_kwh=ep.ci_cell_g_per_kwh[t],
            inference=inference,
            model=model,
        )

    def request_outcomes(
        self,
        kappa,
        power_w,
        *,
        prompt_tokens,
        ref_tokens,
        channel_gain,
        ci_dc_g_per_kwh,
        ci_cell_g_per_kwh,
        inference: InferenceCoefficients | None = None,
        model=None,
    ) -> RequestOutcomes:
        """:func:`~aolo.envs.physics.request_outcomes` in this cell (its noise, interference, bandwidth share,
        serving profile, radio and service settings) for any broadcastable request arrays: the one place the
        references and the bound evaluate candidate answers the way :meth:`step` scores them. ``inference``
        replaces the cell's private-datacenter coefficients (a shared site's, at its operating batch).

        ``model`` (model pool only; index array broadcastable with the requests): each answer's energy, latency
        and embodied share are its model's, its QoE ``Q_m`` (:class:`~aolo.envs.models.ModelPool`)."""
        if model is not None:  # a model pool is a private datacenter's (config refuses pools on sites)
            return self._pool_outcomes(
                kappa,
                power_w,
                model,
                prompt_tokens=prompt_tokens,
                ref_tokens=ref_tokens,
                channel_gain=channel_gain,
                ci_dc_g_per_kwh=ci_dc_g_per_kwh,
                ci_cell_g_per_kwh=ci_cell_g_per_kwh,
            )
        sc = self.scenario
        return request_outcomes(
            kappa=kappa,
            prompt_tokens=prompt_tokens,
            ref_tokens=ref_tokens,
            power_w=power_w,
            channel_gain=channel_gain,
            noise_w=self.noise_w,
            interference_w=self.interference_w,
            ci_datacenter_g_per_kwh=ci_dc_g_per_kwh,
            ci_cell_g_per_kwh=ci_cell_g_per_kwh,
            users_in_cell=self.users_in_cell,
            bandwidth_per_user_hz=self.bandwidth_per_user_hz,
            inference=self.inference if inference is None else inference,
            radio=sc.radio,
            service=sc.service,
        )

    def _pool_outcomes(self, kappa, power_w, model, *, ref_tokens, **requests) -> RequestOutcomes:
        sc = self.scenario
        out = request_outcomes(
            kappa=kappa,
            ref_tokens=self.models.model_ref_tokens(ref_tokens, model),
            power_w=power_w,
            channel_gain=requests["channel_gain"],
            prompt_tokens=requests["prompt_tokens"],
            noise_w=self.noise_w,
            interference_w=self.interference_w,
            ci_datacenter_g_per_kwh=requests["ci_dc_g_per_kwh"],
            ci_cell_g_per_kwh=requests["ci_cell_g_per_kwh"],
            users_in_cell=self.users_in_cell,
            bandwidth_per_user_hz=self.bandwidth_per_user_hz,
            inference=self.models.coefficients(model),
            radio=sc.radio,
            service=sc.service,
        )
        out.qoe = self.models.ceiling[np.asarray(model)] * out.qoe
        return out

    def _deficit(self) -> np.ndarray:
        """Per user, the mean-QoE shortfall the day has built so far: ``max(0, (t Q_min - Σ Q) / T)``; at the
        last epoch this is the constraint's ``max(0, Q_min - mean Q)``. The terminal timing charges only that
        last value (``D_{T-1}`` counts as 0), the accrued timing charges every increment."""
        sc = self.scenario
        if sc.reward.deficit_timing == "terminal" and self.t < sc.epochs_per_episode:
            return np.zeros(self.num_users)
        return np.maximum(0.0, (self.t * sc.service.q_min - self._qoe_sum) / sc.epochs_per_episode)

    def rewards(self, out: RequestOutcomes, carbon_weight: float | np.ndarray = 1.0) -> np.ndarray:
        """Per-step reward of each user (docs/design.md §3.5), without the end-of-episode deficit term;
        ``carbon_weight`` multiplies each user's carbon (a site agent's request volume, docs/design.md §10)."""
        w, sv = self.scenario.reward, self.scenario.service
        carbon_g = carbon_weight * out.carbon_total_g
        if w.terms == "carbon":  # the QoE-mean and latency rules are priced by learned multipliers (costs in infos)
            return -w.carbon * carbon_g / self.carbon_scale_g - w.floor * (out.qoe < sv.q_floor - 1e-12)
        return (
            -w.carbon * carbon_g / self.carbon_scale_g
            + w.qoe * (out.qoe - sv.q_min)
            - w.latency * (out.latency_s > sv.t_max_s)
            - w.floor * (out.qoe < sv.q_floor - 1e-12)
        )

    def _infos(
        self,
        out: RequestOutcomes,
        kappa,
        power_w,
        power_clipped: bool,
        t: int,
        shortfall_increment: np.ndarray,
        qoe_guard_added: np.ndarray,
        model=None,
        info_columns: Mapping[str, np.ndarray] | None = None,
        info_shared: Mapping[str, Any] | None = None,
    ) -> dict[str, dict]:
        columns = {
            "carbon_inference_g": out.carbon_inference_g,
            "carbon_embodied_g": out.carbon_embodied_g,
            "carbon_comm_g": out.carbon_comm_g,
            "carbon_total_g": out.carbon_total_g,
            "energy_inference_j": out.energy_inference_j,
            "energy_comm_j": out.energy_comm_j,
            "qoe": out.qoe,
            "latency_s": out.latency_s,
            "airtime_s": out.airtime_s,
            "rate_bps": out.rate_bps,
            "kappa": kappa,
            "power_w": power_w,
        }
        # Constraint cost signals (aolo.platform.constraints), per step and for the day so far (the day's value at
        # the last epoch). cost_qoe is the step's increment of the shortfall max(0, t Q_min - Σ Q) plus the QoE
        # the mean-QoE guard added: its day mean is the day's violation max(0, Q_min - mean Q) plus the guard's
        # rescue, so only a shortfall the policy itself does not pay back costs.
        sv = self.scenario.service
        columns["qoe_guard_added"] = qoe_guard_added
        columns["cost_qoe"] = shortfall_increment + qoe_guard_added
        columns["cost_latency"] = (out.latency_s > sv.t_max_s).astype(np.float64)
        columns["cost_qoe_day_mean"] = np.maximum(0.0, sv.q_min - self._qoe_sum / self.t)
        columns["qoe_day_mean"] = self._qoe_sum / self.t
        #: the day's mean QoE without what the guard added: what the multiplier measures
        columns["qoe_own_day_mean"] = (self._qoe_sum - self._guard_sum) / self.t
        columns["cost_latency_day_mean"] = self._late_count / self.t
        if model is not None:
            columns["model"] = np.asarray(model, dtype=np.float64)  #: index into service.model_pool
        columns.update(info_columns or {})
        rows = np.array(list(columns.values())).T.tolist()  # (U, columns); np.stack(axis=1) is 2x slower
        names = list(columns)
        infos = {}
        for a, row, common in zip(self.agents, rows, self._info_common(t, power_clipped, info_shared), strict=True):
            infos[a] = info = common.copy()  # then the columns: 1.2x faster than dict(zip(...)) then update
            info.update(zip(names, row, strict=True))
        return infos

    def _info_common(self, t: int, power_clipped: bool, shared: Mapping[str, Any] | None = None) -> list[dict]:
        """Per user, the info entries its cell shares at epoch ``t`` (then ``shared``)."""
        ep = self.episode
        common = {
            "epoch": t,
            "power_clipped": power_clipped,
            "ci_cell_g_per_kwh": float(ep.ci_cell_g_per_kwh[t]),
            "ci_dc_g_per_kwh": float(ep.ci_dc_g_per_kwh[t]),
            **(shared or {}),
        }
        return [common] * self.num_users


register_env(ENV_NAME, lambda env_context: CellEnv(env_context))
