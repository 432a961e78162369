"""Constraints as constraints: PID-Lagrangian multipliers for the mean-QoE and latency rules (docs/design.md §3.5).

Two methods, chosen by the experiment's ``constraints`` section:

* ``penalty``: the fixed reward weights of :class:`aolo.envs.config.RewardWeights` price the rules (the
  reward sweep and the ablation).
* ``lagrangian``: the env's reward is the carbon term ``-w_carbon C/C_scale`` (plus the per-answer floor
  penalty, which the QoE-space action mapping makes zero), and every agent's step info carries two cost
  signals: ``cost_qoe``, the step's increment of the day's shortfall ``max(0, t Q_min - Σ_τ Q_τ)`` plus the QoE
  the mean-QoE guard added to the answer (its day sum is ``T max(0, Q_min - mean Q)`` plus the guard's
  rescue: a shortfall the policy pays back later in the day is refunded, QoE above the rule earns nothing),
  and ``cost_latency = 1[T_t > T_max]``. The learner trains on

      r'_t = r_t - λ_qoe · cost_qoe_t - λ_latency · cost_latency_t

  formed by :class:`LagrangianReward`, a learner ConnectorV2 piece, from the stored reward and the costs in
  the sampled episodes' infos, with the learner's *current* multipliers. The replay buffer (SAC, SDRL, TD3)
  therefore never holds a stale price: a transition sampled under old multipliers is trained with the new
  ones. PPO's learner pipeline also runs on episodes, so the same piece serves all four algorithms.

The rule is per user-day (mean QoE ≥ Q_min on *every* day), so the QoE cost is the day's shortfall, not
``Q_min - Q_t``: a per-step linear cost prices only the mean over all user-days, which a policy can meet
with surplus days paying for short ones; the shortfall makes every day pay its own.

The multipliers follow PID dual ascent (Stooke, Achiam, Abbeel, ICML 2020, Alg. 2) on the violation measured
once per training iteration on the *deterministic* policy (the one evaluation deploys: ``measure_days`` training-split
days per cell or site, default one, in RLlib's evaluation step, :func:`measurement_config`)::

    e_qoe = mean_user-days max(0, Q_min + qoe_margin - own mean_day Q) - allowed
    e_lat = mean_user-days (share of answers with T > T_max) - limit
    I ← max(0, I + K_I e);   λ = min(λ_max, max(0, K_P e + I + K_D max(0, e - e_prev)))

"Own" leaves out what the mean-QoE guard added (``qoe_own_day_mean``): the guard keeps every delivered day at
``Q_min``, so the multiplier must see the policy's own days to price leaning on it. The error is the shortfall,
not the signed gap ``Q_min + qoe_margin - own mean`` (which would let surplus days pay for short ones, and
measured worse: REPORT.md §3, item 4).
``I`` starts at the initial multiplier, so training starts at the price given in the preset. The state
(``I``, ``e_prev``, ``λ``) lives in the Algorithm (the ``Lagrangian*`` subclasses below): it goes into
``Algorithm.save_to_path`` checkpoints, is restored by ``restore_from_path`` / ``from_checkpoint``, is
pushed to every learner's connector after each update and after a restore, and is reported in each
iteration's result under ``constraints`` (``train/lambda_qoe``, ``train/lambda_latency`` in MLflow).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.ppo import PPO
from ray.rllib.algorithms.sac import SAC
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.utils.replay_buffers.multi_agent_episode_buffer import MultiAgentEpisodeReplayBuffer

from aolo.envs.config import ConfigError, ScenarioConfig
from aolo.policies.flat_replay import FlatTransitionBuffer, priced_rewards, step_costs
from aolo.policies.replay_updates import BatchedSAC
from aolo.policies.td3 import TD3

METHODS = ("lagrangian", "penalty")
#: The constraint names, their info cost keys and their end-of-day info statistics.
CONSTRAINTS = ("qoe", "latency")
COST_KEYS = {"qoe": "cost_qoe", "latency": "cost_latency"}
DAY_KEYS = {"qoe": "cost_qoe_day_mean", "latency": "cost_latency_day_mean"}
#: Keys of the per-iteration ``result["constraints"]`` dict (and ``train/<key>`` in MLflow).
RESULT_KEY = "constraints"


@dataclass(frozen=True)
class PIDGains:
    """One multiplier's PID dual-ascent settings. ``target`` is the allowed mean measured violation: the mean
    shortfall of the policy's own day-mean QoE below ``Q_min + qoe_margin`` for the QoE rule, the late-answer
    share for the latency rule."""

    initial: float  #: λ at the start (also the integral's start value)
    target: float  #: the allowed day-mean cost d in e = J_c - d
    kp: float = 0.0
    ki: float = 1.0
    kd: float = 0.0

    def validate(self, path: str) -> None:
        for name, lo, hi in (
            ("initial", 0.0, 1e4),
            ("kp", 0.0, 1e4),
            ("ki", 0.0, 1e4),
            ("kd", 0.0, 1e4),
            ("target", -1.0, 1.0),
        ):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi):
                raise ConfigError(f"{path}.{name}: must be a number in [{lo:g}, {hi:g}], got {v!r}")


@dataclass(frozen=True)
class ConstraintSettings:
    """The experiment YAML's ``constraints`` section (validated; errors name the field and range)."""

    method: str = "penalty"
    #: QoE rule: start at ≈ the penalty weights' price (w_deficit / T ≈ 3 per unit of shortfall per step); a day
    #: short by 0.05 QoE moves λ up by ≈ 1.5 (P + I), a met day lowers it by K_I · target = 0.01 per iteration.
    qoe: PIDGains = field(default_factory=lambda: PIDGains(initial=3.0, target=0.0005, kp=10.0, ki=20.0, kd=0.0))
    #: latency rule: e is a share of answers (≈ 0.01), hence the larger gains.
    latency: PIDGains = field(default_factory=lambda: PIDGains(initial=2.0, target=0.001, kp=20.0, ki=50.0, kd=0.0))
    lambda_max: float = 100.0
    #: the QoE multiplier prices the deterministic policy's own shortfall below ``Q_min + qoe_margin``: held-out
    #: days are not training days, and the guard's rescue of a short day is expensive (docs/design.md §3.3)
    qoe_margin: float = 0.01
    #: run the mean-QoE guard (``service.mean_qoe_guard``) in training too. Off by default: the learner then sees
    #: what a short day really costs and the guard acts only where the policy is deployed (held-out evaluation,
    #: ``aolo evaluate``); with it on, exploration noise makes the guard rescue sampled days and the learners
    #: over-deliver (measured: REPORT.md §2)
    guard_in_training: bool = False
    #: measure the deterministic policy's constraints every k-th training iteration (k = 1: every iteration).
    #: The measurement (one deterministic training-split day per cell) costs as much as a fifth of a SAC
    #: iteration; with k > 1 each measurement's error counts for the k iterations it stands for (the integral
    #: steps k K_I e), so λ moves at the same rate per iteration and has the same fixed point (e = 0).
    measure_every: int = 1
    #: measure on this many training-split days per cell (or site) each time. The held-out rule is met or broken
    #: day by day, and one measured day per site makes the latency error as noisy as the days are different
    #: (docs/design.md §8); k days cost k times the measurement and leave the fixed point (e = 0) unchanged.
    measure_days: int = 1

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"constraints.method: must be one of {list(METHODS)}, got {self.method!r}")
        self.qoe.validate("constraints.qoe")
        self.latency.validate("constraints.latency")
        if not (isinstance(self.lambda_max, (int, float)) and 0 < self.lambda_max <= 1e6):
            raise ConfigError(f"constraints.lambda_max: must be a number in (0, 1e6], got {self.lambda_max!r}")
        if not (isinstance(self.qoe_margin, (int, float)) and 0 <= self.qoe_margin <= 0.2):
            raise ConfigError(f"constraints.qoe_margin: must be a number in [0, 0.2], got {self.qoe_margin!r}")
        if not isinstance(self.guard_in_training, bool):
            raise ConfigError(f"constraints.guard_in_training: must be true or false, got {self.guard_in_training!r}")
        every = self.measure_every
        if not (isinstance(every, int) and not isinstance(every, bool) and 1 <= every <= 100):
            raise ConfigError(f"constraints.measure_every: must be an integer in [1, 100], got {every!r}")
        days = self.measure_days
        if not (isinstance(days, int) and not isinstance(days, bool) and 1 <= days <= 20):
            raise ConfigError(f"constraints.measure_days: must be an integer in [1, 20], got {days!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ConstraintSettings:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ConfigError(f"constraints: must be a mapping with keys {sorted(cls.__dataclass_fields__)}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"constraints: unknown key(s) {unknown}; allowed: {sorted(cls.__dataclass_fields__)}")
        kwargs: dict[str, Any] = dict(data)
        defaults = cls()
        for name in CONSTRAINTS:
            if name in kwargs:
                sub = kwargs[name]
                allowed = set(PIDGains.__dataclass_fields__)
                if not isinstance(sub, dict) or set(sub) - allowed:
                    raise ConfigError(
                        f"constraints.{name}: must be a mapping with keys among {sorted(allowed)}, got {sub!r}"
                    )
                kwargs[name] = PIDGains(**{**asdict(getattr(defaults, name)), **sub})
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def lagrangian(self) -> bool:
        return self.method == "lagrangian"


#: The reward terms each method trains with (``scenario.reward.terms``): the multipliers price the QoE-mean and
#: latency rules under ``lagrangian``, the fixed weights under ``penalty``. :func:`training_scenario` applies it.
REWARD_TERMS_BY_METHOD = {"lagrangian": "carbon", "penalty": "all"}


def check_reward_terms(terms: str, constraints: ConstraintSettings) -> None:
    """A ``scenario.reward.terms`` that contradicts ``constraints.method`` is a :class:`ConfigError` naming both
    keys (``penalty`` with ``terms: carbon`` would train with no QoE or latency cost at all)."""
    wanted = REWARD_TERMS_BY_METHOD[constraints.method]
    if terms != wanted:
        raise ConfigError(
            f"scenario.reward.terms: {terms!r} contradicts constraints.method: {constraints.method!r}, which "
            f"trains with reward.terms {wanted!r}; leave scenario.reward.terms out (constraints.method decides it)"
        )


def training_scenario(scenario: ScenarioConfig, constraints: ConstraintSettings) -> ScenarioConfig:
    """The scenario the learner trains on: the one place ``constraints`` decides the reward terms
    (:data:`REWARD_TERMS_BY_METHOD`) and where the mean-QoE guard runs (in training only with
    ``guard_in_training``; evaluation keeps the scenario's own ``service.mean_qoe_guard``).

    ``scenario.reward.terms`` left at its default ``all`` follows the method; a ``carbon`` under ``penalty`` is
    refused (:func:`check_reward_terms`)."""
    if scenario.reward.terms != "all":
        check_reward_terms(scenario.reward.terms, constraints)
    changes: dict[str, Any] = {"reward.terms": REWARD_TERMS_BY_METHOD[constraints.method]}
    if not constraints.guard_in_training:
        changes["service.mean_qoe_guard"] = False
    return scenario.replace(**changes)


class PIDLagrangian:
    """PID dual ascent on one multiplier (Stooke et al. 2020): ``update(J_c)`` returns the new λ."""

    def __init__(self, gains: PIDGains, lambda_max: float = 100.0):
        self.gains, self.lambda_max = gains, float(lambda_max)
        self.integral = float(gains.initial)
        self.prev_error = 0.0
        self.value = float(gains.initial)

    def update(self, mean_cost: float, iterations: int = 1) -> float:
        """One dual step on the measured day-mean cost ``J_c``, standing for ``iterations`` training iterations
        (the integral steps ``iterations · K_I · e``); ``nan`` (no completed day) keeps λ."""
        if not np.isfinite(mean_cost):
            return self.value
        g = self.gains
        error = float(mean_cost) - g.target
        self.integral = max(0.0, self.integral + iterations * g.ki * error)
        derivative = max(0.0, error - self.prev_error)
        self.prev_error = error
        self.value = min(self.lambda_max, max(0.0, g.kp * error + self.integral + g.kd * derivative))
        return self.value

    def get_state(self) -> dict[str, float]:
        return {"integral": self.integral, "prev_error": self.prev_error, "value": self.value}

    def set_state(self, state: dict[str, float]) -> None:
        self.integral, self.prev_error, self.value = (float(state[k]) for k in ("integral", "prev_error", "value"))


# --- learner side -------------------------------------------------------------------------------------------


class LagrangianReward(ConnectorV2):
    """Learner connector piece: writes ``r - Σ_k λ_k cost_k`` into the batch's rewards with the current λ.

    Runs first in the learner pipeline (RLlib's default ``AddColumnsFromEpisodesToTrainBatch`` then keeps the
    rewards it finds). Step ``i``'s costs are in the info returned with observation ``i+1`` (``infos[i+1]``).
    PPO appends an artificial last step (``AddOneTsToEpisodesAndTruncate``: reward 0, the last info repeated);
    it is recognised by its info repeating the previous step's ``epoch`` and gets no cost. The rule and the
    price are :func:`~aolo.policies.flat_replay.step_costs` and :func:`~aolo.policies.flat_replay.priced_rewards`,
    which the flat replay buffer (``training.replay_buffer: flat``) applies itself, without this connector.
    """

    def __init__(self, input_observation_space=None, input_action_space=None, **kwargs):
        super().__init__(input_observation_space, input_action_space, **kwargs)
        self.multipliers: dict[str, float] = dict.fromkeys(CONSTRAINTS, 0.0)

    def set_multipliers(self, multipliers: dict[str, float]) -> None:
        self.multipliers = {k: float(multipliers[k]) for k in CONSTRAINTS}

    def __call__(self, *, rl_module, batch, episodes, explore=None, shared_data=None, metrics=None, **kwargs):
        if Columns.REWARDS in batch:
            return batch
        for sa_episode in self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False):
            n = len(sa_episode)
            self.add_n_batch_items(
                batch,
                Columns.REWARDS,
                items_to_add=self.lagrangian_rewards(sa_episode),
                num_items=n,
                single_agent_episode=sa_episode,
            )
        return batch

    def lagrangian_rewards(self, sa_episode) -> np.ndarray:
        n = len(sa_episode)
        costs = step_costs(sa_episode.get_infos(slice(0, n + 1)), [COST_KEYS[k] for k in CONSTRAINTS])
        return priced_rewards(sa_episode.get_rewards(slice(0, n)), costs, [self.multipliers[k] for k in CONSTRAINTS])


class CostReplayBuffer(MultiAgentEpisodeReplayBuffer):
    """RLlib's multi-agent episode replay buffer, sampling the infos too (RLlib's DQN/SAC loop samples with
    ``include_infos=False``, which would drop the cost signals). One-step transitions (``n_step = 1``, aolo's
    setting) carry ``[info_t, info_{t+1}]``; the step's costs are in ``info_{t+1}``."""

    def sample(self, *args, **kwargs):
        kwargs["include_infos"] = True
        return super().sample(*args, **kwargs)


def _push_multipliers(learner, multipliers: dict[str, float]) -> None:
    for piece in getattr(learner._learner_connector, "connectors", []):
        if isinstance(piece, LagrangianReward):
            piece.set_multipliers(multipliers)


def learner_connector(input_observation_space, input_action_space) -> LagrangianReward:
    """``config.learners(learner_connector=...)``: the piece, built in each learner."""
    return LagrangianReward(input_observation_space, input_action_space)


# --- env-runner side: the completed days' costs -------------------------------------------------------------


class ConstraintCallbacks(RLlibCallback):
    """Logs, for every completed episode, the sums of its user-days' measured violations and the number of
    user-days (``reduce="sum"``: the iteration's totals reach the algorithm's result): the QoE shortfall
    ``max(0, Q_min + qoe_margin - own mean Q)`` (without the guard's additions) and the late-answer share."""

    def on_episode_end(self, *, episode, env_runner=None, metrics_logger=None, **kwargs) -> None:
        infos = episode.get_infos(-1)
        if not infos or metrics_logger is None or env_runner is None:
            return
        days = [info for info in infos.values() if isinstance(info, dict) and "qoe_day_mean" in info]
        if not days:
            return
        env_config = env_runner.config.env_config
        q_min = float(env_config["scenario"]["service"]["q_min"])
        margin = float(env_config.get("constraints", {}).get("qoe_margin", 0.0))
        shortfall = sum(max(0.0, q_min + margin - d["qoe_own_day_mean"]) for d in days)
        metrics_logger.log_value("aolo_user_days", float(len(days)), reduce="sum")
        metrics_logger.log_value(f"aolo_{DAY_KEYS['qoe']}_sum", shortfall, reduce="sum")
        metrics_logger.log_value(
            f"aolo_{DAY_KEYS['latency']}_sum", float(sum(d[DAY_KEYS["latency"]] for d in days)), reduce="sum"
        )


def measurement_config(config, num_cells: int, every: int = 1, days: int = 1):
    """Measure the constraints where they must hold: on the deterministic policy (``explore=False``, the policy
    evaluation deploys), ``days`` training-split days per cell (or site) after every ``every``-th iteration, in the
    algorithm's process.

    The exploring policy's days are not that measurement: the sampled days can meet the rule while the deployed
    policy breaks it (measured: docs/design.md §8), so a multiplier driven by them prices the wrong policy."""
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    return config.evaluation(
        evaluation_interval=every,
        evaluation_duration=num_cells * days,
        evaluation_duration_unit="episodes",
        evaluation_num_env_runners=0,
        evaluation_config=AlgorithmConfig.overrides(explore=False),
    )


# --- algorithm side -----------------------------------------------------------------------------------------


class _LagrangianMixin:
    """Holds the PID state of both multipliers; updates them after every iteration; checkpoints them."""

    def setup(self, config) -> None:
        super().setup(config)
        settings = ConstraintSettings.from_dict(config.env_config.get("constraints"))
        self.aolo_pid = {k: PIDLagrangian(getattr(settings, k), settings.lambda_max) for k in CONSTRAINTS}
        self.aolo_measure_every = settings.measure_every
        buffer = getattr(self, "local_replay_buffer", None)
        if buffer is not None and not isinstance(buffer, FlatTransitionBuffer):
            # SAC's config check accepts only RLlib's buffer names: swap the class here
            if type(buffer) is not MultiAgentEpisodeReplayBuffer:
                raise ConfigError(
                    f"constraints.method: lagrangian needs MultiAgentEpisodeReplayBuffer or training.replay_buffer: "
                    f"flat, got {type(buffer).__name__}"
                )
            buffer.__class__ = CostReplayBuffer
        self._aolo_push()

    def multipliers(self) -> dict[str, float]:
        return {k: pid.value for k, pid in self.aolo_pid.items()}

    def _aolo_push(self) -> None:
        m = self.multipliers()
        self.learner_group.foreach_learner(lambda learner: _push_multipliers(learner, m))
        buffer = getattr(self, "local_replay_buffer", None)
        if isinstance(buffer, FlatTransitionBuffer):  # it prices the rewards it samples (no learner connector)
            buffer.set_multipliers([m[k] for k in CONSTRAINTS])

    def step(self) -> dict:
        # RLlib evaluates (measures) when (iteration + 1) % evaluation_interval == 0; `iteration` counts up after
        measured = (self.iteration + 1) % self.aolo_measure_every == 0
        result = super().step()
        runners = result.get("evaluation", {}).get("env_runners", {}) if measured else {}
        days = float(runners.get("aolo_user_days", 0.0) or 0.0)
        stats: dict[str, float] = {"user_days": days}
        for k, pid in self.aolo_pid.items():
            mean = float(runners.get(f"aolo_{DAY_KEYS[k]}_sum", np.nan)) / days if days > 0 else np.nan
            stats[f"cost_{k}_day_mean"] = mean
            stats[f"lambda_{k}"] = pid.update(mean, iterations=self.aolo_measure_every)
        self._aolo_push()
        result[RESULT_KEY] = stats
        return result

    def get_state(self, components=None, *, not_components=None, **kwargs):
        state = super().get_state(components, not_components=not_components, **kwargs)
        state["aolo_lagrangian"] = {k: pid.get_state() for k, pid in self.aolo_pid.items()}
        return state

    def set_state(self, state) -> None:
        super().set_state(state)
        saved = state.get("aolo_lagrangian")
        if saved:
            for k, pid in self.aolo_pid.items():
                pid.set_state(saved[k])
            self._aolo_push()


class LagrangianPPO(_LagrangianMixin, PPO):
    pass


class LagrangianSAC(_LagrangianMixin, BatchedSAC):
    pass


class LagrangianTD3(_LagrangianMixin, TD3):
    pass


def lagrangian_algo_class(base: type[Algorithm]) -> type[Algorithm]:
    """The ``Lagrangian*`` subclass of ``base`` (module-level classes, so checkpoints unpickle them)."""
    classes = {PPO: LagrangianPPO, SAC: LagrangianSAC, BatchedSAC: LagrangianSAC, TD3: LagrangianTD3}
    if base not in classes:
        raise ConfigError(f"constraints.method: lagrangian is not wired for {base.__name__}")
    return classes[base]
