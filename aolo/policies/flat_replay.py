"""A replay buffer for parameter-shared agents: one-step transitions in flat arrays (``training.replay_buffer: flat``).

Every user of every cell acts with the same policy, so a replayed transition needs no episode around it: the
learner trains on rows ``(o_t, a_t, r_t, o_{t+1}, terminated_t)`` drawn uniformly over all agents' steps.
RLlib's ``MultiAgentEpisodeReplayBuffer`` keeps the sampled episodes, builds one ``SingleAgentEpisode`` per
drawn transition and the learner connector pipeline then turns those episodes back into columns (≈ 28 % of a
quick SAC iteration, BENCHMARKS.md issue 22). :class:`FlatTransitionBuffer` stores the columns once, at
``add``, and ``sample`` returns the train batch by index: a ``MultiAgentBatch`` that ``Learner.update(batch=)``
takes without a connector pipeline. The rows are those the episode buffer yields (tests/test_flat_replay.py):

* **Chunks.** An EnvRunner cuts an unfinished episode at the end of its rollout fragment; the next chunk keeps
  the episode's id and starts with the observation the previous chunk ended on. A chunk of ``n`` steps holds
  ``n + 1`` observations, so its ``n`` transitions are ``(o_i, a_i, r_i, o_{i+1})`` and the first transition of
  a continued chunk starts from the previous chunk's last observation: nothing is duplicated or lost, and no
  state is kept between ``add`` calls.
* **Terminals.** A transition is terminated/truncated when it is the last step of a finished episode that RLlib
  marks so. RLlib's ``MultiAgentEpisode`` declares an episode whose agents are all truncated *terminated*
  (``multi_agent_episode.py``, "Case 2"), so a day's last transition is terminal in both buffers: the critics
  do not bootstrap across a day end, and no transition links a day's last observation to the next day's first.
  A terminated transition is not also truncated (``SingleAgentEpisode.concat_episode``'s rule for an episode
  that arrived in chunks; RLlib leaves both flags set on a one-chunk episode). No loss reads ``truncateds``.
* **Costs.** Step ``i``'s constraint costs are in the info returned with ``o_{i+1}`` (:func:`step_costs`, the
  rule :class:`aolo.platform.constraints.LagrangianReward` applies); they are stored next to the reward and
  priced at ``sample`` with the multipliers of the moment (:func:`priced_rewards`), so no stored price goes
  stale, as with the learner connector.

One-step transitions only (``n_step = 1``, aolo's setting) and uniform replay (no priorities). The contents are
not checkpointed, like RLlib's episode buffers on the new API stack (``Algorithm.get_state`` leaves the replay
buffer out): a restored run refills its buffer from new samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from ray.rllib.core.columns import Columns
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch

#: The columns stored per transition, besides the constraint costs.
STORED = (Columns.OBS, Columns.NEXT_OBS, Columns.ACTIONS, Columns.REWARDS, Columns.TERMINATEDS, Columns.TRUNCATEDS)


def step_costs(infos: Sequence[Any], cost_keys: Sequence[str]) -> np.ndarray:
    """The ``(n, K)`` costs of the ``n`` steps whose infos are ``infos[0..n]``: step ``i``'s are in
    ``infos[i + 1]`` (0 where a key is missing). A step whose info is not a dict or repeats the previous
    info's ``epoch`` (PPO's artificial bootstrap step, ``AddOneTsToEpisodesAndTruncate``) has no cost."""
    n = len(infos) - 1
    costs = np.zeros((n, len(cost_keys)))
    epochs = [info.get("epoch", -1) if isinstance(info, dict) else -1 for info in infos]
    for i in range(n):
        info = infos[i + 1]
        if isinstance(info, dict) and epochs[i + 1] != epochs[i]:
            costs[i] = [float(info.get(key, 0.0)) for key in cost_keys]
    return costs


def priced_rewards(rewards: np.ndarray, costs: np.ndarray, multipliers: Sequence[float]) -> np.ndarray:
    """``r - Σ_k λ_k c_k`` as float32, the price summed constraint by constraint in float64 (so a reward
    priced here equals, bit for bit, the same reward priced one step at a time)."""
    penalty = np.zeros(len(rewards))
    for k, multiplier in enumerate(multipliers):
        penalty += float(multiplier) * costs[:, k]
    return (np.asarray(rewards, dtype=np.float64) - penalty).astype(np.float32)


class FlatTransitionBuffer:
    """Uniform replay of all agents' one-step transitions for one shared module.

    ``capacity`` counts agent transitions; the arrays are allocated at the first ``add`` (when the observation
    and action shapes are known), double as they fill, and once ``capacity`` is reached the oldest transitions
    are overwritten. ``cost_keys`` name the info entries stored as constraint costs (none: rewards as the env
    gave them); ``set_multipliers`` sets the price ``sample`` applies to them (zero until set).
    """

    def __init__(self, capacity: int, cost_keys: Iterable[str] = (), seed: int | None = None) -> None:
        if not (isinstance(capacity, int) and capacity >= 1):
            raise ValueError(f"FlatTransitionBuffer: capacity must be a positive integer, got {capacity!r}")
        self.capacity = capacity
        self.cost_keys = tuple(cost_keys)
        self.multipliers = np.zeros(len(self.cost_keys))
        self.rng = np.random.default_rng(seed)
        self.module_id: str | None = None
        self._columns: dict[str, np.ndarray] = {}
        self._size = 0  # transitions held
        self._next = 0  # row the next transition goes to

    def __len__(self) -> int:
        return self._size

    def set_multipliers(self, multipliers: Sequence[float]) -> None:
        """The Lagrangian multipliers, one per cost key, in ``cost_keys`` order."""
        values = np.asarray(multipliers, dtype=np.float64)
        if values.shape != self.multipliers.shape:
            raise ValueError(f"FlatTransitionBuffer: {len(self.cost_keys)} multipliers expected, got {len(values)}")
        self.multipliers = values

    def add(self, episodes: Iterable[Any]) -> None:
        """Stores every agent's transitions of the sampled ``MultiAgentEpisode`` chunks."""
        for episode in episodes:
            for agent_id, agent_episode in episode.agent_episodes.items():
                self._check_module(episode.module_for(agent_id))
                n = len(agent_episode)
                if n == 0:  # a chunk that holds only its first observation: its steps come with the next chunk
                    continue
                observations = np.asarray(agent_episode.get_observations(slice(0, n + 1)))
                last = np.zeros(n, dtype=bool)
                last[-1] = True
                self._write(
                    {
                        Columns.OBS: observations[:-1],
                        Columns.NEXT_OBS: observations[1:],
                        Columns.ACTIONS: np.asarray(agent_episode.get_actions(slice(0, n))),
                        Columns.REWARDS: np.asarray(agent_episode.get_rewards(slice(0, n)), dtype=np.float64),
                        Columns.TERMINATEDS: last & agent_episode.is_terminated,
                        Columns.TRUNCATEDS: last & (agent_episode.is_truncated and not agent_episode.is_terminated),
                        "costs": step_costs(agent_episode.get_infos(slice(0, n + 1)), self.cost_keys),
                    }
                )

    def sample(self, num_items: int, n_step: int = 1) -> MultiAgentBatch:
        """A train batch of ``num_items`` transitions drawn uniformly with replacement, rewards priced with the
        current multipliers; ``weights`` and ``n_step`` as RLlib's episode buffers give them (all ones)."""
        if n_step != 1:
            raise ValueError(f"FlatTransitionBuffer stores one-step transitions: n_step must be 1, got {n_step!r}")
        if self._size == 0 or self.module_id is None:
            raise ValueError("FlatTransitionBuffer: sample() before any transition was added")
        index = self.rng.integers(0, self._size, size=num_items)
        columns = self._columns
        batch = {name: columns[name][index] for name in STORED}
        batch[Columns.REWARDS] = priced_rewards(batch[Columns.REWARDS], columns["costs"][index], self.multipliers)
        batch["weights"] = np.ones(num_items, dtype=np.float32)
        batch["n_step"] = np.ones(num_items, dtype=np.int64)
        return MultiAgentBatch({self.module_id: SampleBatch(batch)}, env_steps=num_items)

    def _check_module(self, module_id: str) -> None:
        if self.module_id is None:
            self.module_id = module_id
        elif module_id != self.module_id:
            raise ValueError(
                f"FlatTransitionBuffer holds one shared module's transitions ({self.module_id!r}), got an agent "
                f"mapped to {module_id!r}; use the episode buffer (training.replay_buffer: episode)"
            )

    def _write(self, rows: dict[str, np.ndarray]) -> None:
        n = len(rows[Columns.REWARDS])
        if n > self.capacity:  # only the newest `capacity` rows survive
            rows, n = {name: values[-self.capacity :] for name, values in rows.items()}, self.capacity
        if not self._columns:
            self._columns = {name: np.empty((n, *values.shape[1:]), values.dtype) for name, values in rows.items()}
        allocated = len(self._columns[Columns.REWARDS])
        if self._size + n > allocated and allocated < self.capacity:
            # below capacity nothing was overwritten yet: rows 0.._size-1 hold the transitions in arrival order
            size = min(self.capacity, max(2 * allocated, self._size + n))
            for name, values in self._columns.items():
                grown = np.empty((size, *values.shape[1:]), values.dtype)
                grown[: self._size] = values[: self._size]
                self._columns[name] = grown
            allocated, self._next = size, self._size
        rows_at = (self._next + np.arange(n)) % allocated
        for name, values in rows.items():
            self._columns[name][rows_at] = values
        self._next = int((self._next + n) % allocated)
        self._size = min(self._size + n, allocated)
