"""The policy protocol: what any causal controller is handed each epoch and what it returns (docs/benchmark.md).

A policy is any object with::

    act(observations: Observations) -> actions     # (U, A) array, or {agent: (A,) array}, in the action space
    begin_episode(info: EpisodeInfo) -> None       # optional: called once per episode, before the first act
    name: str                                      # optional: defaults to the class name

:class:`Observations` holds one epoch of every user of the cell, column by column (:data:`OBSERVATION_COLUMNS`):
the RL agents' normalised features (:data:`~aolo.envs.cell_env.OBS_FEATURES`) and the same quantities in physical
units. :class:`EpisodeInfo` names the cell, its users and the action space, and carries the cell's known model
(:class:`CellModel`: configuration and physics, no trace, channel or request of the episode). Nothing handed to a
policy holds a reference to the environment: the future carbon, the true channel and the coming requests are out
of its reach (tests/test_protocol.py walks everything it is handed).

:class:`ProtocolRunner` plays a protocol policy in :func:`aolo.envs.rollout.run_episode` (it validates every
action and names what is wrong in a :class:`~aolo.errors.PolicyError`). The built-in causal references
(``fixed``, ``myopic``, ``forecast``) run through this same path: :class:`CausalReference` lets the controllers
of :mod:`aolo.envs.reference` plan on a :class:`CausalCell`, a stand-in for the env built only from the
observations so far, so reading the future raises ``IndexError`` instead of peeking.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from aolo.envs.cell_env import OBS_FEATURES, CellEnv
from aolo.envs.config import CellSpec, ScenarioConfig
from aolo.envs.forecast import FORECAST_COLUMNS
from aolo.envs.reference import FixedPolicy, ForecastPolicy, MyopicPolicy
from aolo.envs.workload import make_workload
from aolo.errors import PolicyError

#: Observation columns in physical units (each a (U,) float64 array; cell-wide values repeat over the users).
PHYSICAL_COLUMNS = (
    "ci_cell_g_per_kwh",  # grid carbon intensity at the base station now (exact)
    *(f"ci_cell_{c}_g_per_kwh" for c in FORECAST_COLUMNS),  # its forecasts: 1 h, 3 h ahead, the day mean
    "ci_dc_g_per_kwh",  # ... at the datacenter now (exact)
    *(f"ci_dc_{c}_g_per_kwh" for c in FORECAST_COLUMNS),
    "channel_gain_known",  # the channel power gain the base station knows: large-scale gain × CSI estimate |ĥ|²
    "power_centre_dbm",  # the power of the power action 0: P* on the known channel (docs/design.md §3.3)
    "request_prompt_tokens",  # this epoch's request: prompt length
    "request_ref_tokens",  # ... and its reference answer length L_ref
    "qoe_day_sum",  # Σ QoE of the user's answers so far today (the mean-QoE rule is per user-day)
)
#: Every column of :class:`Observations`: the RL features (normalised, float32) then the physical ones.
OBSERVATION_COLUMNS = (*OBS_FEATURES, *PHYSICAL_COLUMNS)


class Observations(Mapping[str, np.ndarray]):
    """One epoch's observation of every user of a cell: ``observations["ci_cell_g_per_kwh"]`` is a (U,) array.

    ``features`` is the (U, F) float32 matrix the RL agents see (columns :data:`~aolo.envs.cell_env.OBS_FEATURES`),
    ``agents`` the user ids in row order, ``epoch`` the index of this epoch in the day. Arrays are read-only copies.
    """

    __slots__ = ("agents", "epoch", "features", "_columns")

    def __init__(self, agents: tuple[str, ...], epoch: int, features: np.ndarray, physical: dict[str, np.ndarray]):
        self.agents, self.epoch = agents, epoch
        self.features = _read_only(np.array(features, dtype=np.float32))
        columns = {name: self.features[:, j] for j, name in enumerate(OBS_FEATURES)}
        columns.update({name: _read_only(np.array(physical[name], dtype=np.float64)) for name in PHYSICAL_COLUMNS})
        self._columns = columns

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._columns[name]
        except KeyError:
            raise KeyError(f"no observation column {name!r}; the columns are {list(self._columns)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def __repr__(self) -> str:
        return f"Observations(epoch={self.epoch}, users={len(self.agents)}, columns={len(self._columns)})"


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


class _CellPhysics:
    """A cell's configuration and physics, copied from a :class:`CellEnv` without any data of an episode; the
    methods are :class:`CellEnv`'s own (the answers the env would score)."""

    num_users = CellEnv.num_users
    length_limits = CellEnv.length_limits
    efficient_power_w = CellEnv.efficient_power_w
    request_outcomes = CellEnv.request_outcomes

    def __init__(self, env: CellEnv):
        self.scenario: ScenarioConfig = env.scenario
        self.cell: CellSpec = env.cell
        self.bandwidth_per_user_hz: float = env.bandwidth_per_user_hz
        self.noise_w: float = env.noise_w
        self.interference_w: float = env.interference_w
        self.users_in_cell = env.users_in_cell
        self.inference = env.inference  # a frozen dataclass of coefficients
        self.models = env.models  # the model pool's static profiles (docs/design.md §3.7), None without a pool
        self.workload = make_workload(env.scenario.service.workload)  # its own copy: nothing shared with the env


class CellModel(_CellPhysics):
    """The cell's known model: its configuration and physics, without any data of an episode.

    What a controller may plan with (docs/benchmark.md): the scenario and cell settings, the bandwidth share,
    noise and interference, the serving profile's energy and latency (``inference``), the workload's distribution
    (``workload``), and :class:`CellEnv`'s ``length_limits``, ``efficient_power_w`` and ``request_outcomes`` (the
    latter evaluates candidate answers on the caller's inputs, e.g. ``channel_gain_known``).
    """

    def action_for(self, observations: Observations, kappa, power_w) -> np.ndarray:
        """(U, 2) actions that make the env play answer lengths ``kappa`` and powers ``power_w`` [W] this epoch
        (:meth:`CellEnv.action_for`; lengths outside :meth:`length_limits` are clipped to them)."""
        actions = CausalCell(self, [observations]).action_for(kappa, power_w)
        return np.stack([actions[a] for a in observations.agents])


@dataclass(frozen=True)
class EpisodeInfo:
    """What a policy learns at the start of an episode (``begin_episode``); not the day, not the traces."""

    cell: str  #: the cell's name
    cell_index: int
    agents: tuple[str, ...]  #: user ids, the row order of observations and actions
    epochs: int  #: epochs (decisions) in the episode
    epoch_s: float
    action_space: gym.spaces.Box  #: each user's action space
    model: CellModel


class CausalCell(_CellPhysics):
    """A stand-in for :class:`CellEnv` built from the observations of epochs ``0 … t`` only: the reference
    controllers of :mod:`aolo.envs.reference` plan on it as on the env. Its ``episode`` arrays end at the present,
    so a controller that reads a later epoch gets an ``IndexError``; there is no true channel (``channel_gain``)."""

    action_for = CellEnv.action_for

    def __init__(self, model: _CellPhysics, history: list[Observations]):
        vars(self).update(vars(model))  # the static configuration and physics
        self.agents = list(history[-1].agents)
        self.t = len(history) - 1  #: index of the present in ``history``
        column = lambda name: np.stack([o[name] for o in history], axis=-1)  # noqa: E731  (U, t + 1)
        per_cell = lambda name: column(name)[0]  # noqa: E731  (t + 1,)
        self.episode = ObservedEpisode(
            ref_tokens=column("request_ref_tokens"),
            prompt_tokens=column("request_prompt_tokens"),
            ci_cell_g_per_kwh=per_cell("ci_cell_g_per_kwh"),
            ci_dc_g_per_kwh=per_cell("ci_dc_g_per_kwh"),
            forecast_cell_g_per_kwh=np.stack([per_cell(f"ci_cell_{c}_g_per_kwh") for c in FORECAST_COLUMNS], axis=1),
            forecast_dc_g_per_kwh=np.stack([per_cell(f"ci_dc_{c}_g_per_kwh") for c in FORECAST_COLUMNS], axis=1),
        )
        self.known_gain = column("channel_gain_known")
        self._qoe_sum = np.array(history[-1]["qoe_day_sum"])  # the running QoE ForecastPolicy reads
        self._power_centre = history[-1]["power_centre_dbm"]

    def _power_centre_dbm(self) -> np.ndarray:
        return self._power_centre


@dataclass(frozen=True)
class ObservedEpisode:
    """The observed part of an episode up to the present (the fields of :class:`~aolo.envs.cell_env.Episode` a
    causal controller may read)."""

    ref_tokens: np.ndarray  #: (U, t + 1)
    prompt_tokens: np.ndarray  #: (U, t + 1)
    ci_cell_g_per_kwh: np.ndarray  #: (t + 1,)
    ci_dc_g_per_kwh: np.ndarray  #: (t + 1,)
    forecast_cell_g_per_kwh: np.ndarray  #: (t + 1, 3)
    forecast_dc_g_per_kwh: np.ndarray  #: (t + 1, 3)


class CausalReference:
    """A causal controller of :mod:`aolo.envs.reference` as a protocol policy: it keeps the episode's observations
    and plans on a :class:`CausalCell` of them."""

    def __init__(self, controller: Any):
        self.controller, self.name = controller, controller.name
        self._model: CellModel | None = None
        self._history: list[Observations] = []

    def begin_episode(self, info: EpisodeInfo) -> None:
        self._model, self._history = info.model, []

    def act(self, observations: Observations) -> dict[str, np.ndarray]:
        self._history.append(observations)
        cell = CausalCell(self._model, self._history)
        if cell.t == 0:
            self.controller.begin_episode(cell)
        return self.controller.act(cell, observations.features)


class Fixed(CausalReference):
    """``fixed`` through the protocol (``--policy aolo.envs.protocol:Fixed``)."""

    def __init__(self) -> None:
        super().__init__(FixedPolicy())


class Myopic(CausalReference):
    """``myopic`` through the protocol (``--policy aolo.envs.protocol:Myopic``)."""

    def __init__(self) -> None:
        super().__init__(MyopicPolicy())


class Forecast(CausalReference):
    """``forecast`` through the protocol (``--policy aolo.envs.protocol:Forecast``)."""

    def __init__(self) -> None:
        super().__init__(ForecastPolicy())


#: the built-in references that are causal, each as its protocol policy
CAUSAL_REFERENCES = {"fixed": Fixed, "myopic": Myopic, "forecast": Forecast}


class Policy(Protocol):
    """The protocol (``begin_episode`` and ``name`` are optional)."""

    def act(self, observations: Observations) -> Any: ...


class ProtocolRunner:
    """Plays a protocol policy on a :class:`CellEnv` for :func:`aolo.envs.rollout.run_episode`: builds what the
    policy is handed from the env, and checks what it returns."""

    def __init__(self, policy: Policy, name: str | None = None):
        self.policy = policy
        self.name = name or policy_name(policy)
        self._models: dict[int, CellModel] = {}

    def begin_episode(self, env: CellEnv) -> None:
        model = self._models.get(id(env))
        if model is None or model.cell is not env.cell:
            model = self._models[id(env)] = CellModel(env)
        self._where = f"cell {env.cell.name!r}, day {env.episode.day}"
        begin = getattr(self.policy, "begin_episode", None)
        if begin is not None:
            space = env.action_spaces[env.agents[0]]
            sc = env.scenario
            begin(
                EpisodeInfo(
                    env.cell.name, env.cell_index, tuple(env.agents), sc.epochs_per_episode, sc.epoch_s, space, model
                )
            )

    def act(self, env: CellEnv, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        actions = self.policy.act(observe(env, obs))
        return self.validated(actions, env)

    def validated(self, actions: Any, env: CellEnv) -> dict[str, np.ndarray]:
        """``actions`` as the env's action dict, or a :class:`PolicyError` saying what is wrong with them."""
        agents, space = env.agents, env.action_spaces[env.agents[0]]
        expected = (len(agents), *space.shape)
        where = f"policy {self.name!r} at {self._where}, epoch {env.t}"
        if isinstance(actions, Mapping):
            missing = [a for a in agents if a not in actions]
            if missing:
                raise PolicyError(f"{where}: act() returned no action for {missing}; it must cover {list(agents)}")
            actions = [actions[a] for a in agents]
        try:
            array = np.asarray(actions, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise PolicyError(f"{where}: act() must return a {expected} array of numbers: {e}") from None
        if array.shape != expected:
            raise PolicyError(
                f"{where}: act() returned shape {array.shape}; expected {expected} (one row of {space.shape} per user "
                f"{agents[0]} … {agents[-1]}) or a dict agent -> {space.shape}"
            )
        if not np.isfinite(array).all():
            i, j = np.argwhere(~np.isfinite(array))[0]
            raise PolicyError(f"{where}: act() returned a non-finite action ({agents[i]}[{j}] = {array[i, j]})")
        low, high = np.broadcast_to(space.low, expected), np.broadcast_to(space.high, expected)
        outside = (array < low - 1e-6) | (array > high + 1e-6)
        if outside.any():
            i, j = np.argwhere(outside)[0]
            raise PolicyError(
                f"{where}: act() returned {agents[i]}[{j}] = {array[i, j]:g}, outside the action space "
                f"[{low[i, j]:g}, {high[i, j]:g}]; clip in the policy"
            )
        return dict(zip(agents, array, strict=True))


def observe(env: CellEnv, obs: dict[str, np.ndarray]) -> Observations:
    """What a policy is handed at the env's current epoch: copies of this epoch's values, nothing else."""
    ep, t, n = env.episode, env.t, env.num_users
    physical = {"ci_cell_g_per_kwh": ep.ci_cell_g_per_kwh[t], "ci_dc_g_per_kwh": ep.ci_dc_g_per_kwh[t]}
    for j, c in enumerate(FORECAST_COLUMNS):
        physical[f"ci_cell_{c}_g_per_kwh"] = ep.forecast_cell_g_per_kwh[t, j]
        physical[f"ci_dc_{c}_g_per_kwh"] = ep.forecast_dc_g_per_kwh[t, j]
    physical = {k: np.full(n, v) for k, v in physical.items()}
    physical["channel_gain_known"] = env.known_gain[:, t]
    physical["power_centre_dbm"] = env._power_centre_dbm()
    physical["request_prompt_tokens"] = ep.prompt_tokens[:, t]
    physical["request_ref_tokens"] = ep.ref_tokens[:, t]
    physical["qoe_day_sum"] = env._qoe_sum
    features = np.stack([obs[a] for a in env.agents])
    return Observations(tuple(env.agents), t, features, physical)


def policy_name(policy: Any) -> str:
    """``policy.name`` if it has one, else its class name."""
    name = getattr(policy, "name", None)
    return name if isinstance(name, str) and name else type(policy).__name__


def load_policy(spec: str) -> Any:
    """The policy a ``package.module:Name`` spec names: ``Name`` instantiated without arguments if it is a class,
    else the object itself. The module is looked up from the current directory first (as ``python -m`` does, also
    under the ``aolo`` console script). Every failure is one :class:`PolicyError` naming what is wrong."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise PolicyError(f"policy spec {spec!r}: expected package.module:Name (e.g. examples.external_policy:Greedy)")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is not None and module_name.startswith(e.name):
            raise PolicyError(
                f"policy spec {spec!r}: no module named {e.name!r} (looked in {cwd} and sys.path)"
            ) from None
        raise PolicyError(f"policy spec {spec!r}: importing {module_name!r} failed: {e}") from e
    except Exception as e:  # the user's module raised while importing
        raise PolicyError(f"policy spec {spec!r}: importing {module_name!r} raised {type(e).__name__}: {e}") from e
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise PolicyError(f"policy spec {spec!r}: module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if isinstance(target, type):
        try:
            target = target()
        except Exception as e:
            raise PolicyError(f"policy spec {spec!r}: {attribute}() raised {type(e).__name__}: {e}") from e
    if not callable(getattr(target, "act", None)):
        raise PolicyError(
            f"policy spec {spec!r}: {attribute} has no act(observations) method; a policy needs act and may have "
            "begin_episode(info) and name (docs/benchmark.md)"
        )
    begin = getattr(target, "begin_episode", None)
    if begin is not None and not callable(begin):
        raise PolicyError(f"policy spec {spec!r}: {attribute}.begin_episode is not callable")
    return target
