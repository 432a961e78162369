"""``SiteEnv``: every cell a shared serving site serves, as one RLlib ``MultiAgentEnv`` (docs/design.md §10).

All user groups of all the site's cells are agents (``cell<k>_user_<i>``, ``k`` the cell's position among
the site's cells). Each epoch every cell decides its answers as a :class:`~aolo.envs.cell_env.CellEnv` would
(:meth:`~aolo.envs.cell_env.CellEnv.decide`: action decoding, mean-QoE guard, BS power budget); the site then
serves all of them together (:func:`aolo.envs.site.site_epoch`): the agents' tokens and the background set the
batch, hence every answer's energy per token and inter-token latency, and the queue's wait; each cell then
scores its answers at that batch (:meth:`~aolo.envs.cell_env.CellEnv.settle`). The radio side, the rewards and
the constraint costs are the cells' own, unchanged.

**Agents are user groups.** One request per user and epoch is far too little to load a GPU replica (≈ 0.2
tokens/s against ≈ 10 k), so an agent stands for a group of users issuing ``v_{u,t}`` requests in epoch ``t``:
``requests_per_agent`` on the day mean, shaped by ``agent_volume`` (a diurnal in the cell's local time with
day-to-day and per-epoch variation). The group's requests share the agent's representative prompt, reference
length, channel and decision; the site sees ``v · κ`` tokens from it, and its carbon reward is weighted by
``v / requests_per_agent`` so the agents' summed reward follows the site's total carbon. Its QoE is the
representative answer's (every request of the group gets it), so the mean-QoE rule, the guard and the constraint
costs are those of a cell user, unchanged.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv
from ray.tune.registry import register_env

from aolo.envs import channel
from aolo.envs.cell_env import OBS_BOUND, OBS_FEATURES, SPLITS, CellEnv, episode_day
from aolo.envs.config import ConfigError, ScenarioConfig, SiteSpec
from aolo.envs.physics import most_efficient_power_w
from aolo.envs.serving import get_serving_profile
from aolo.envs.site import (
    autoscale_replicas,
    background_csv_tok_s,
    capacity_tok_s,
    diurnal_factor,
    diurnal_shape,
    site_epoch,
    site_inference,
)

SITE_ENV_NAME = "aolo-site-v0"

#: The site's columns, appended to the cell observation (:data:`aolo.envs.cell_env.OBS_FEATURES` keep theirs).
SITE_COLUMNS = (
    "site_batch",  #: log2(last epoch's batch / 64) / 3: b = 8 ↦ -1, 512 ↦ +1 (0 before the first epoch)
    "site_utilisation",  #: last epoch's served / capacity
    "site_backlog",  #: tokens queued now / (full capacity × epoch): epochs of full capacity to drain them
    "background_last",  #: the background of the last epoch / full capacity (observed)
    "background_1h",  #: causal forecast of the background 1 h ahead / full capacity
    "background_3h",  #: the same 3 h ahead
    "request_volume",  #: this agent's requests this epoch / requests_per_agent
)
SITE_OBS_FEATURES = (*OBS_FEATURES, *SITE_COLUMNS)
#: Column of each feature of a site observation.
SITE_OBS = {name: i for i, name in enumerate(SITE_OBS_FEATURES)}
BACKGROUND_FORECAST_HOURS = (1.0, 3.0)


def cells_of_site(scenario: ScenarioConfig, site: SiteSpec) -> list[int]:
    """Indices in ``scenario.cells`` of the cells ``site`` serves."""
    return [i for i, cell in enumerate(scenario.cells) if cell.site == site.name]


def check_every_cell_on_a_site(scenario: ScenarioConfig) -> None:
    """Training and evaluation on sites run one SiteEnv per site: a cell without a site would be left out."""
    for i, cell in enumerate(scenario.cells):
        if scenario.sites and cell.site is None:
            raise ConfigError(
                f"scenario.cells.{i}.site: must name one of the sites {[s.name for s in scenario.sites]} when the "
                "scenario has sites (every cell is served by a site), got None"
            )


def site_cell_scenario(scenario: ScenarioConfig, site: SiteSpec) -> ScenarioConfig:
    """The scenario whose site cells see the site's datacenter: its carbon trace and serving profile (their
    private ``serving_batch`` set to the site's target batch, which is what a coupling-blind reference assumes)."""
    data = scenario.to_dict()
    for cell in data["cells"]:
        if cell["site"] == site.name:
            cell.update(
                datacenter_region=site.datacenter_region,
                serving_profile=site.serving_profile,
                serving_batch=site.target_batch,
            )
    return ScenarioConfig.from_dict(data)


def load_share_latency_cost(
    latency_s: np.ndarray, wait_s: float, t_max_s: float, agent_tokens: np.ndarray
) -> np.ndarray:
    """Each agent's latency cost of one site epoch under ``reward.site_latency_cost: load_share``.

    An answer late even without the queue's wait (``latency_s - wait_s > t_max_s``) costs its own agent 1, as
    under ``own``. The answers late only because of the wait are the site's: their count is shared by the
    epoch's agents in proportion to their tokens ``agent_tokens`` (v κ), so an agent pays the congestion its own
    load causes, and shortening its answers in a full epoch lowers its cost (under ``own`` the wait makes every
    answer late whatever its length, and one agent's 2–4 % of the load moves no one's cost). The costs sum to the
    epoch's late answers under either rule. All arrays are per agent, in the site's agent order."""
    late = latency_s > t_max_s
    queue_late = late & (latency_s - wait_s <= t_max_s)
    cost = (late & ~queue_late).astype(np.float64)
    shared = np.count_nonzero(queue_late)
    if shared:
        total_tok = float(agent_tokens.sum())
        cost += shared * (agent_tokens / total_tok if total_tok > 0 else 1.0 / len(cost))
    return cost


@dataclass
class SiteDay:
    """The exogenous site inputs of one episode, arrays over epochs ``T``."""

    day: int
    background_tok_s: np.ndarray  #: (T,) the other tenants' decode demand
    climatology_tok_s: np.ndarray  #: (T + max horizon,) the background's expected day shape (known in advance)
    volume: list[np.ndarray]  #: per cell, (U_c, T) requests of each agent per epoch


def background_forecast_tok_s(day: SiteDay, t: int, epoch_s: float) -> tuple[float, float, float]:
    """``(last, 1 h, 3 h)`` background at epoch ``t`` from what is known then: the last epoch's observed
    background and the climatology. The forecast keeps the last epoch's ratio to the climatology:
    ``F(t + h) = bg_{t-1} · clim(t + h) / clim(t - 1)`` (the climatology itself at ``t = 0``). Causal: it reads
    ``background_tok_s[:t]`` only."""
    clim = day.climatology_tok_s
    if t == 0:
        last, ratio = clim[0], 1.0
    else:
        last = day.background_tok_s[t - 1]
        ratio = last / clim[t - 1] if clim[t - 1] > 0.0 else 1.0
    f1, f3 = (ratio * clim[t + round(h * 3600.0 / epoch_s)] for h in BACKGROUND_FORECAST_HOURS)
    return last, f1, f3


@dataclass
class SiteEpisode:
    """The step inputs of a site's cells' episodes with their users concatenated (rows: the site's agents)."""

    prompt_tokens: np.ndarray  #: (U, T)
    ref_tokens: np.ndarray  #: (U, T)
    channel_gain: np.ndarray  #: (U, T)
    ci_cell_g_per_kwh: np.ndarray  #: (T, U): each user's cell's intensity
    ci_dc_g_per_kwh: np.ndarray  #: (T, U)


class SiteCells:
    """All users of a site's cells as one set stepping together: :class:`~aolo.envs.cell_env.CellEnv`'s own step
    methods (decide, outcomes, settle and what they call), run once on the concatenated users with each cell's
    scalars — bandwidth share, noise, interference, size, carbon scale, intensities — as per-user arrays, and the
    BS power budget applied per cell. Every formula is elementwise, so each user's numbers are those of its cell
    stepped alone.

    :meth:`begin` joins the cells' fresh episodes; the cells' user arrays (prompt and reference lengths, channel,
    running sums) then become views of the joint ones, so an edit to a cell's episode after reset is the site's,
    and the cells (which the references read) follow play; :class:`SiteEnv` keeps their epoch ``t``."""

    decide = CellEnv.decide
    _validated_actions = CellEnv._validated_actions
    decode_actions = CellEnv.decode_actions
    length_limits = CellEnv.length_limits
    _length_limits_now = CellEnv._length_limits_now
    _target_qoe = CellEnv._target_qoe
    _power_centre_dbm = CellEnv._power_centre_dbm
    mean_qoe_guard = CellEnv.mean_qoe_guard
    outcomes = CellEnv.outcomes
    request_outcomes = CellEnv.request_outcomes
    settle = CellEnv.settle
    rewards = CellEnv.rewards
    _deficit = CellEnv._deficit
    _infos = CellEnv._infos
    observation_table = CellEnv.observation_table
    _begin_play = CellEnv._begin_play

    def __init__(self, cells: list[CellEnv], agents: list[str]):
        self.cells, self.agents = cells, agents
        self._all_ids = [*agents, "__all__"]
        self.scenario, self.inference = cells[0].scenario, cells[0].inference
        self.models = None  # config refuses model pools on sites
        self._model_policy = self._model = None
        self.action_dim = 2
        self.sizes = [c.num_users for c in cells]
        self.num_users = sum(self.sizes)
        bounds = np.cumsum([0, *self.sizes])
        self.rows = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        per_user = lambda values: np.repeat(np.asarray(values), self.sizes)  # noqa: E731
        self.bandwidth_per_user_hz = per_user([c.bandwidth_per_user_hz for c in cells])
        self.noise_w = per_user([c.noise_w for c in cells])
        self.interference_w = per_user([c.interference_w for c in cells])
        self.users_in_cell = per_user([c.users_in_cell for c in cells])
        self.carbon_scale_g = per_user([c.carbon_scale_g for c in cells])
        self._budget_w = [c.cell.bs_power_budget_w for c in cells]
        self.episode: SiteEpisode | None = None
        self.t = 0

    def begin(self) -> None:
        """Join the cells' episodes (just reset) and start the site's play."""
        cells, T = self.cells, self.scenario.epochs_per_episode

        def users(name: str) -> np.ndarray:  # (U, T)
            return np.concatenate([getattr(c.episode, name) for c in cells])

        def per_cell(name: str) -> np.ndarray:  # (T, U): each user's cell's value
            ci = [
                np.repeat(getattr(c.episode, name)[:T, None], n, axis=1) for c, n in zip(cells, self.sizes, strict=True)
            ]
            return np.concatenate(ci, axis=1)

        self.episode = ep = SiteEpisode(
            prompt_tokens=users("prompt_tokens"),
            ref_tokens=users("ref_tokens"),
            channel_gain=users("channel_gain"),
            ci_cell_g_per_kwh=per_cell("ci_cell_g_per_kwh"),
            ci_dc_g_per_kwh=per_cell("ci_dc_g_per_kwh"),
        )
        # P* of every user of the site in one search (each with its cell's radio parameters), set on the cells
        gain = np.concatenate([c.search_gain for c in cells])  # (U, 1) under the ergodic rate, else (U, T)
        column = lambda values: values.reshape(-1, 1)  # noqa: E731  per user, broadcast over the epochs
        p_star_dbm = channel.w_to_dbm(
            most_efficient_power_w(
                gain,
                bandwidth_hz=column(self.bandwidth_per_user_hz),
                noise_w=column(self.noise_w),
                interference_w=column(self.interference_w),
                users_in_cell=column(self.users_in_cell),
                radio=self.scenario.radio,
            )
        )
        self._efficient_dbm = np.broadcast_to(p_star_dbm, (self.num_users, T))
        for cell, rows in zip(cells, self.rows, strict=True):
            cell._p_star_dbm = np.broadcast_to(p_star_dbm[rows], cell.known_gain.shape)
        self._obs_table = np.concatenate([c._obs_table for c in cells], axis=1)
        self._begin_play()
        for cell, rows in zip(cells, self.rows, strict=True):
            cell.episode.prompt_tokens = ep.prompt_tokens[rows]
            cell.episode.ref_tokens = ep.ref_tokens[rows]
            cell.episode.channel_gain = ep.channel_gain[rows]
            cell._qoe_sum, cell._late_count = self._qoe_sum[rows], self._late_count[rows]
            cell._guard_sum = self._guard_sum[rows]

    def _within_power_budget(self, power_w: np.ndarray) -> tuple[np.ndarray, list[bool]]:
        """Each cell's BS power budget on its users' powers (:meth:`CellEnv._within_power_budget`), and per cell
        whether it clipped them."""
        requested_w = [power_w[rows].sum() for rows in self.rows]
        clipped = [bool(r > b) for r, b in zip(requested_w, self._budget_w, strict=True)]
        if any(clipped):
            scale = [b / r if c else 1.0 for r, b, c in zip(requested_w, self._budget_w, clipped, strict=True)]
            power_w = power_w * np.repeat(scale, self.sizes)
        return power_w, clipped

    def _info_common(self, t: int, power_clipped: list[bool], shared: Mapping[str, Any] | None = None) -> list[dict]:
        """Per user, the info entries its cell shares at epoch ``t`` (:meth:`CellEnv._info_common` of each cell)."""
        commons: list[dict] = []
        for cell, clipped in zip(self.cells, power_clipped, strict=True):
            commons += cell._info_common(t, clipped, shared)
        return commons


class SiteEnv(MultiAgentEnv):
    """Multi-agent environment of one shared serving site and all the cells it serves.

    ``config`` keys (all optional, like :class:`~aolo.envs.cell_env.CellEnv`'s): ``scenario`` (must list
    ``sites``), ``site_index`` (else ``copy index % len(sites)``), ``num_envs_per_env_runner``, ``split``,
    ``seed``. Observations: :data:`SITE_OBS_FEATURES`; actions, rewards, infos: a cell user's, plus the site's
    state in each info (``site_batch``, ``site_utilisation``, ``site_backlog_tok``, ``site_wait_s``,
    ``site_replicas``, ``request_volume``). ``reset(options={"day": d})`` replays a day.
    """

    metadata = {"render_modes": []}
    _rllib_copies_built = itertools.count()

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__()
        self.copy_index = CellEnv._copy_index(config or {}, SiteEnv._rllib_copies_built)
        config = dict(config or {})
        scenario = config.get("scenario")
        scenario = scenario if isinstance(scenario, ScenarioConfig) else ScenarioConfig.from_dict(scenario)
        if not scenario.sites:
            raise ConfigError("scenario.sites: a SiteEnv needs at least one site, got none")
        site_index = config.get("site_index")
        if site_index is None:
            site_index = self.copy_index % len(scenario.sites)
        if not (isinstance(site_index, int) and 0 <= site_index < len(scenario.sites)):
            raise ValueError(f"site_index must be an integer in [0, {len(scenario.sites) - 1}], got {site_index!r}")
        self.site_index, self.site = site_index, scenario.sites[site_index]
        self.cell_indices = cells_of_site(scenario, self.site)
        if not self.cell_indices:
            raise ConfigError(
                f"scenario.sites.{site_index}: site {self.site.name!r} serves no cell; name it in cells.*.site"
            )
        self.scenario = site_cell_scenario(scenario, self.site)
        self.profile = get_serving_profile(self.site.serving_profile)
        self.split = config.get("split", "train")
        self.seed = int(config.get("seed", 0))
        self.cells = [
            CellEnv({"scenario": self.scenario, "cell_index": i, "split": self.split, "seed": self.seed})
            for i in self.cell_indices
        ]
        for cell in self.cells:  # the copies of one site draw different episodes, like CellEnv copies do
            cell.copy_index = self.copy_index
            cell._rng = cell._episode_rng(self.seed)
        self.days = {k: self._common_days(k) for k in SPLITS}

        sc = self.scenario
        self.epoch_s, self.T = sc.epoch_s, sc.epochs_per_episode
        #: the site's top decode rate with every replica it may run [tokens/s]: the observation's unit of load
        top_replicas = self.site.replicas if self.site.scaling == "fixed" else self.site.max_replicas
        self.full_capacity_tok_s = float(capacity_tok_s(top_replicas, self.profile))
        bg = self.site.background
        where = f"scenario.sites.{site_index}.background.csv"
        self._background_table = background_csv_tok_s(bg.csv, self.epoch_s, where) if bg.kind == "csv" else None

        # ids by the cell's position in the site, so sites of equal shape share one agent set (RLlib's vector env
        # takes its spaces from its first sub-env)
        self.agent_ids = [[f"cell{k}_user_{u}" for u in range(c.num_users)] for k, c in enumerate(self.cells)]
        self.agents = self.possible_agents = [a for ids in self.agent_ids for a in ids]
        self._all_ids = [*self.agents, "__all__"]
        self.users = SiteCells(self.cells, self.agents)
        obs_space = gym.spaces.Box(-OBS_BOUND, OBS_BOUND, (len(SITE_OBS_FEATURES),), np.float32)
        act_space = self.cells[0].action_spaces["user_0"]
        self.observation_spaces = {a: obs_space for a in self.agents}
        self.action_spaces = {a: act_space for a in self.agents}
        self._rng = np.random.default_rng([self.seed, self.copy_index, 1_000_000 + site_index])
        self.site_day: SiteDay | None = None
        self.t = 0

    def _common_days(self, split: str) -> np.ndarray:
        days = self.cells[0].days[split]
        for cell in self.cells[1:]:
            days = np.intersect1d(days, cell.days[split])
        if len(days) == 0:
            raise ValueError(f"site {self.site.name!r}: its cells' traces share no {split} day")
        return days

    # --- the site's day -------------------------------------------------------------------------------

    def _draw_site_day(self, day: int) -> SiteDay:
        """Background and request volumes of ``day``: a function of (seed, site, day) only, so every policy
        evaluated on a day meets the same load (like the forecast errors)."""
        site, T = self.site, self.T
        rng = np.random.default_rng([self.seed, self.site_index, int(day), 17])
        horizon = max(round(h * 3600.0 / self.epoch_s) for h in BACKGROUND_FORECAST_HOURS)
        hours = day * 24.0 + np.arange(T + horizon) * self.epoch_s / 3600.0
        bg = site.background
        if bg.kind == "diurnal":
            climatology = bg.mean_tok_s * diurnal_shape(hours, site.utc_offset_h, bg.diurnal)
            background = bg.mean_tok_s * diurnal_factor(rng, hours[:T], site.utc_offset_h, bg.diurnal)
        elif bg.kind == "csv":
            table = self._background_table * bg.csv_scale
            per_day = table.shape[1]
            epochs = day * per_day + np.arange(T + horizon)
            climatology = table.mean(axis=0)[epochs % per_day]
            background = table.ravel()[epochs[:T] % table.size]
        else:
            climatology, background = np.zeros(T + horizon), np.zeros(T)
        volume = [
            site.requests_per_agent
            * diurnal_factor(rng, hours[:T], cell.cell.utc_offset_h, site.agent_volume, size=(cell.num_users,))
            for cell in self.cells
        ]
        return SiteDay(int(day), background, climatology, volume)

    # --- gymnasium / RLlib API ------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed, options=options)
        if seed is not None:
            self.seed = int(seed)
            self._rng = np.random.default_rng([self.seed, self.copy_index, 1_000_000 + self.site_index])
        options = dict(options or {})
        day = episode_day(options, self.split, self.days, self._rng, f"site {self.site.name!r}")
        infos = {}
        for cell, ids in zip(self.cells, self.agent_ids, strict=True):
            _, cell_infos = cell.reset(seed=seed, options={"day": day, "split": options.get("split", self.split)})
            infos.update({a: {**cell_infos[f"user_{u}"], "site": self.site.name} for u, a in enumerate(ids)})
        self.site_day = self._draw_site_day(day)
        self._volume = np.concatenate(self.site_day.volume)  # (U, T) in the agents' order
        self.users.begin()
        self.t = 0
        self.backlog_tok = 0.0
        self.replicas = self.site.replicas  # the first epoch's; then re-planned from the demand seen
        self._last_batch, self._last_utilisation = None, 0.0
        #: the site's day so far, one list per :class:`SiteEpochLog` field
        self.history: dict[str, list[float]] = {f.name: [] for f in dataclasses.fields(SiteEpochLog)}
        return self._observations(), infos

    def _site_columns(self) -> np.ndarray:
        """The columns every agent of the site shares at the current epoch (the site's part of SITE_COLUMNS)."""
        cap = self.full_capacity_tok_s
        t = min(self.t, self.T - 1)  # after the last step the observation is never acted on
        last, f1, f3 = background_forecast_tok_s(self.site_day, t, self.epoch_s)
        batch = 0.0 if self._last_batch is None else np.log2(self._last_batch / 64.0) / 3.0
        return np.array(
            [batch, self._last_utilisation, self.backlog_tok / (cap * self.epoch_s), last / cap, f1 / cap, f3 / cap]
        )

    def _observations(self) -> dict[str, np.ndarray]:
        t = min(self.t, self.T - 1)
        table = np.empty((len(self.agents), len(SITE_OBS_FEATURES)), dtype=np.float32)
        table[:, : len(OBS_FEATURES)] = self.users.observation_table()
        table[:, len(OBS_FEATURES) : -1] = self._site_columns()
        table[:, SITE_OBS["request_volume"]] = self._volume[:, t] / self.site.requests_per_agent
        np.minimum(np.maximum(table, -OBS_BOUND, out=table), OBS_BOUND, out=table)
        return dict(zip(self.agents, table, strict=True))

    def step(self, action_dict: dict[str, Any]):
        if self.site_day is None:
            raise RuntimeError("SiteEnv.step called before reset()")
        missing = [a for a in self.agents if a not in action_dict]
        if missing:
            raise ValueError(f"SiteEnv.step: no action for agent(s) {missing}; every agent acts every epoch")
        t, users = self.t, self.users
        kappa_policy, kappa, power_w, clipped = users.decide(action_dict)
        volume = self._volume[:, t]
        agent_tokens = volume * kappa
        epoch = site_epoch(
            agent_tokens,
            self.site_day.background_tok_s[t],
            self.backlog_tok,
            self.replicas,
            self.profile,
            self.epoch_s,
        )
        inference = site_inference(float(epoch.batch), self.profile, self.scenario.service, epoch)
        wait_s = float(epoch.wait_s)
        out = users.outcomes(kappa, power_w, t, inference=inference)
        out.latency_s = out.latency_s + wait_s  # a fresh outcome: the answers also waited in the site's queue
        site_info = {
            "site_batch": float(epoch.batch),
            "site_utilisation": float(epoch.utilisation),
            "site_backlog_tok": float(epoch.backlog_tok),
            "site_wait_s": wait_s,
            "site_replicas": int(self.replicas),
        }
        agent_info = {"request_volume": volume}
        load_share = self.scenario.reward.site_latency_cost == "load_share"
        if load_share:  # the cost the latency multiplier prices (docs/design.md §10)
            t_max_s = self.scenario.service.t_max_s
            agent_info["cost_latency"] = cost = load_share_latency_cost(out.latency_s, wait_s, t_max_s, agent_tokens)
        _, rewards, terminateds, truncateds, infos = users.settle(
            out,
            kappa_policy,
            kappa,
            power_w,
            clipped,
            carbon_weight=volume / self.site.requests_per_agent,
            observe=False,
            info_columns=agent_info,
            info_shared=site_info,
        )
        for cell in self.cells:  # the cells' epoch, which the references read
            cell.t = users.t
        if load_share and self.scenario.reward.terms == "all":  # the penalty's w_latency term moves the same way
            own = out.latency_s > t_max_s
            for a, shift in zip(self.agents, (self.scenario.reward.latency * (own - cost)).tolist(), strict=True):
                rewards[a] += shift
        self._log(epoch)
        self.backlog_tok = float(epoch.backlog_tok)
        self._last_batch, self._last_utilisation = float(epoch.batch), float(epoch.utilisation)
        observed = float(epoch.demand_tok_s) + self.backlog_tok / self.epoch_s  # what the next epoch must serve
        self.replicas = int(autoscale_replicas(observed, self.site, self.profile))
        self.t += 1
        return self._observations(), rewards, terminateds, truncateds, infos

    def _log(self, epoch) -> None:
        row = SiteEpochLog(
            replicas=float(epoch.replicas),
            background_tok_s=float(self.site_day.background_tok_s[self.t]),
            agent_tok_s=float(epoch.agent_tok_s),
            served_tok_s=float(epoch.served_tok_s),
            batch=float(epoch.batch),
            utilisation=float(epoch.utilisation),
            backlog_tok=float(epoch.backlog_tok),
            wait_s=float(epoch.wait_s),
            gpu_energy_j=float(epoch.gpu_energy_j),
        )
        for k, v in vars(row).items():  # every field a float (dataclasses.asdict would deep-copy them)
            self.history[k].append(v)


@dataclass
class SiteEpochLog:
    """One epoch of a site as the env logs it (``SiteEnv.history``: a list per field over the day)."""

    replicas: float
    background_tok_s: float
    agent_tok_s: float
    served_tok_s: float
    batch: float
    utilisation: float
    backlog_tok: float
    wait_s: float
    gpu_energy_j: float


register_env(SITE_ENV_NAME, lambda env_context: SiteEnv(env_context))
