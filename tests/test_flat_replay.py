"""``training.replay_buffer: flat``: the flat transition buffer replays what RLlib's episode buffer replays.

Both buffers are filled from the same sampled episode chunks of the tiny scenario (12 epochs a day, 2 cells x 2
users; a rollout fragment of 5 epochs, so days are cut into chunks and the first day ends inside the third
sample) and enumerated completely: RLlib's buffer through its own ``sample`` and the SAC learner connector
pipeline (with aolo's Lagrangian piece), the flat buffer through its ``sample``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.training_data import TrainingData
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner

from aolo.envs.config import ConfigError
from aolo.platform.algorithms import MODULE_ID, TrainingSettings, build_algorithm_config, stop_algorithm
from aolo.platform.constraints import CONSTRAINTS, COST_KEYS, ConstraintSettings, CostReplayBuffer, _push_multipliers
from aolo.policies.flat_replay import FlatTransitionBuffer
from tests.tiny import SETTINGS, TINY

FRAGMENT = 5  #: epochs per env copy per sample: the 12-epoch day arrives as chunks of 5, 5, 2
ROUNDS = 4  #: samples: day 1 (12 epochs) and 8 epochs of day 2
AGENTS = 4  #: 2 cells x 2 users
MULTIPLIERS = {"qoe": 2.5, "latency": 7.0}  #: hand-set prices
COST_NAMES = [COST_KEYS[k] for k in CONSTRAINTS]
ROW = (Columns.OBS, Columns.ACTIONS, Columns.REWARDS, Columns.NEXT_OBS, Columns.TERMINATEDS, Columns.TRUNCATEDS)


class InOrder:
    """Stands in for a buffer's ``numpy`` generator: draws 0, 1, 2, ..., so sampling as many items as the buffer
    holds enumerates every stored transition once."""

    def __init__(self) -> None:
        self.drawn = 0

    def integers(self, low, high=None, size=None):
        low, high = (0, low) if high is None else (low, high)
        count = 1 if size is None else size
        values = low + (self.drawn + np.arange(count)) % (high - low)
        self.drawn += count
        return int(values[0]) if size is None else values


@pytest.fixture(scope="module")
def sampled():
    """The tiny scenario's config (Lagrangian constraints) and ROUNDS samples of episode chunks."""
    settings = TrainingSettings.from_dict({**SETTINGS.to_dict(), "rollout_fragment_length": FRAGMENT})
    config = build_algorithm_config(
        "sac", TINY, seed=0, settings=settings, constraints=ConstraintSettings("lagrangian")
    )
    runner = MultiAgentEnvRunner(config=config)
    chunks = [runner.sample() for _ in range(ROUNDS)]
    module = runner.module[MODULE_ID]
    learner = config.build_learner(spaces={MODULE_ID: (module.observation_space, module.action_space)})
    _push_multipliers(learner, MULTIPLIERS)
    runner.stop()
    return config, chunks, learner


def flat_rows(buffer: FlatTransitionBuffer) -> list[tuple]:
    """Every transition the flat buffer holds, in storage order, as hashable rows."""
    buffer.rng = InOrder()
    batch = buffer.sample(len(buffer)).policy_batches[MODULE_ID]
    return as_rows({name: np.asarray(batch[name]) for name in ROW})


def as_rows(columns: dict[str, np.ndarray]) -> list[tuple]:
    n = len(columns[Columns.REWARDS])
    return [tuple(np.concatenate([np.ravel(columns[name][i]).astype(np.float64) for name in ROW])) for i in range(n)]


def fill_flat(chunks, capacity: int = 10_000, multipliers=MULTIPLIERS) -> FlatTransitionBuffer:
    buffer = FlatTransitionBuffer(capacity, cost_keys=COST_NAMES)
    buffer.set_multipliers([multipliers[k] for k in CONSTRAINTS])
    for episodes in chunks:
        buffer.add(episodes)
    return buffer


def test_both_buffers_hold_the_same_transitions_at_the_same_price(sampled) -> None:
    config, chunks, learner = sampled
    episode_buffer = CostReplayBuffer(capacity=10_000)
    for episodes in chunks:
        episode_buffer.add(episodes)
    flat = fill_flat(chunks)
    assert len(flat) == ROUNDS * FRAGMENT * AGENTS == 80  # no transition lost or duplicated across the chunks

    episode_buffer.rng = InOrder()
    replayed = episode_buffer.sample(num_items=len(flat), n_step=1, gamma=config.gamma, sample_episodes=True)
    batch = learner._make_batch_if_necessary(TrainingData(episodes=replayed)).policy_batches[MODULE_ID]
    connector_rows = as_rows({name: batch[name].numpy() for name in ROW})
    assert len(set(connector_rows)) == 80  # the enumeration reached every stored transition once
    assert Counter(flat_rows(flat)) == Counter(connector_rows)

    # the price matters here (costs are not all zero), so equal rewards mean the costs sit on the same steps
    unpriced = fill_flat(chunks, multipliers=dict.fromkeys(CONSTRAINTS, 0.0))
    changed = [a != b for a, b in zip(flat_rows(flat), flat_rows(unpriced), strict=True)]
    assert 0 < sum(changed) < 80


def test_costs_come_from_the_next_info(sampled) -> None:
    _, chunks, _ = sampled
    agent_episode = chunks[0][0].agent_episodes["user_0"]  # the first 5 steps of one user's day
    infos = agent_episode.get_infos(slice(0, FRAGMENT + 1))
    rewards = agent_episode.get_rewards(slice(0, FRAGMENT))
    flat = FlatTransitionBuffer(100, cost_keys=COST_NAMES)
    flat.set_multipliers([MULTIPLIERS[k] for k in CONSTRAINTS])
    flat.add([chunks[0][0]])
    flat.rng = InOrder()
    got = np.asarray(flat.sample(len(flat)).policy_batches[MODULE_ID][Columns.REWARDS])[:FRAGMENT]  # user_0 first
    expected = [
        rewards[i]
        - MULTIPLIERS["qoe"] * infos[i + 1]["cost_qoe"]
        - MULTIPLIERS["latency"] * infos[i + 1]["cost_latency"]
        for i in range(FRAGMENT)
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_day_ends_are_terminal_and_never_linked_to_the_next_day(sampled) -> None:
    _, chunks, _ = sampled
    flat = fill_flat(chunks)
    flat.rng = InOrder()
    batch = {k: np.asarray(v) for k, v in flat.sample(len(flat)).policy_batches[MODULE_ID].items()}
    finished = [e for episodes in chunks for e in episodes if e.is_done]
    assert len(finished) == 2  # day 1 of both cells ended inside the third sample
    day_last_obs = [a.get_observations(-1) for e in finished for a in e.agent_episodes.values()]
    next_day_first_obs = [
        a.get_observations(0)
        for e in chunks[2]
        if not e.is_done and e.env_t_started == 0
        for a in e.agent_episodes.values()
    ]
    assert len(day_last_obs) == len(next_day_first_obs) == AGENTS
    terminal = batch[Columns.TERMINATEDS]
    assert terminal.sum() == AGENTS  # one terminal transition per finished user-day (RLlib: all truncated = done)
    assert sorted(map(tuple, batch[Columns.NEXT_OBS][terminal])) == sorted(map(tuple, day_last_obs))
    for obs in day_last_obs:  # no action is taken from a day's last observation ...
        assert not (batch[Columns.OBS] == obs).all(axis=1).any()
    for obs in next_day_first_obs:  # ... and no transition leads to the next day's first one
        assert not (batch[Columns.NEXT_OBS] == obs).all(axis=1).any()
        assert (batch[Columns.OBS] == obs).all(axis=1).sum() == 1


def test_continued_chunks_link_to_the_previous_chunk(sampled) -> None:
    _, chunks, _ = sampled
    flat = fill_flat(chunks)
    flat.rng = InOrder()
    batch = {k: np.asarray(v) for k, v in flat.sample(len(flat)).policy_batches[MODULE_ID].items()}
    continued = [a for e in chunks[1] for a in e.agent_episodes.values()]
    assert all(a.t_started == FRAGMENT for a in continued)
    for agent_episode in continued:  # the chunk's first observation is the previous chunk's last
        first, second = agent_episode.get_observations(0), agent_episode.get_observations(1)
        assert (batch[Columns.NEXT_OBS] == first).all(axis=1).sum() == 1  # the previous chunk's last transition
        leaving = (batch[Columns.OBS] == first).all(axis=1)
        assert leaving.sum() == 1 and (batch[Columns.NEXT_OBS][leaving] == second).all()


def test_a_full_buffer_keeps_the_newest_transitions(sampled) -> None:
    _, chunks, _ = sampled
    everything = flat_rows(fill_flat(chunks))  # storage order = arrival order (no wrap)
    small = fill_flat(chunks, capacity=30)  # grows 20 -> 30 at the second add, then overwrites the oldest
    assert len(small) == 30
    assert Counter(flat_rows(small)) == Counter(everything[-30:])


def test_refuses_n_step_and_a_second_module() -> None:
    buffer = FlatTransitionBuffer(10)
    with pytest.raises(ValueError, match="before any transition"):
        buffer.sample(4)
    with pytest.raises(ValueError, match="n_step must be 1"):
        buffer.sample(4, n_step=3)
    with pytest.raises(ValueError, match="capacity"):
        FlatTransitionBuffer(0)
    with pytest.raises(ConfigError, match="training.replay_buffer"):
        TrainingSettings(replay_buffer="flatter")


@pytest.mark.parametrize(("algo_name", "batched"), [("sac", True), ("sdrl", False), ("td3", True)])
def test_trains_with_the_flat_buffer(algo_name: str, batched: bool, ray_session) -> None:
    """Both loops serve the flat buffer: one learner call per iteration (batched) and one per update."""
    settings = TrainingSettings.from_dict({**SETTINGS.to_dict(), "replay_buffer": "flat", "batched_updates": batched})
    config = build_algorithm_config(
        algo_name, TINY, seed=0, settings=settings, constraints=ConstraintSettings("lagrangian")
    )
    algo = config.build_algo()
    try:
        assert isinstance(algo.local_replay_buffer, FlatTransitionBuffer)
        results = [algo.train() for _ in range(2)]
        buffer = algo.local_replay_buffer
        lambdas = [results[-1]["constraints"][f"lambda_{k}"] for k in CONSTRAINTS]
        np.testing.assert_array_equal(buffer.multipliers, lambdas)  # the buffer prices at the current multipliers
    finally:
        stop_algorithm(algo)
    # tiny: 24 env steps (2 cells x 12) per iteration x 0.25 updates per env step = 6 updates of 32, from the first
    assert [r["learners"][MODULE_ID]["num_module_steps_trained"] for r in results] == [6 * 32, 6 * 32]
    assert len(buffer) == 2 * 24 * 2  # 2 iterations x 24 env steps x 2 users per env step
    assert all(np.isfinite(results[-1]["learners"][MODULE_ID][k]) for k in ("qf_loss", "policy_loss"))
    with pytest.raises(ConfigError, match="n_step 1"):
        config.copy(copy_frozen=False).training(n_step=3).build_algo()
