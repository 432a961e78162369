"""All of an iteration's gradient updates in one learner call (SAC, SDRL, TD3; ``training.batched_updates``).

DQN's training loop (RLlib's SAC and aolo's TD3 run it) samples the env once per iteration and then, K times
(``calculate_rr_weights``: K = updates per sampled env step × env steps per iteration), samples B transitions
from the replay buffer, calls ``learner_group.update`` and aggregates its metrics. Every call pays the learner
connector pipeline's setup, the metrics reduce and the result aggregation once, for 1 gradient step.

With ``batched_updates`` on, :class:`BatchedReplayUpdates` samples the K·B transitions in one buffer call and
hands them to one ``learner_group.update(minibatch_size=B, num_total_minibatches=K)``: the learner shuffles the
train batch (``LeanStepMixin._make_batch_if_necessary``; RLlib's connector groups transitions by source episode)
and takes K gradient steps on its K slices; the targets follow after every step (``LeanSACTorchLearner._update``,
``TD3TorchLearner._update``). K·B independent uniform draws, shuffled and cut into K parts, are K independent
minibatches of B uniform draws, and no env step happens between the K updates in either loop (the buffer and
the Lagrangian multipliers are the same for all of them): the updates have the DQN loop's distribution, not its
exact draws. Uniform replay only: there are no per-update priorities to write back.

With ``training.replay_buffer: flat`` the Algorithm's replay buffer is a
:class:`~aolo.policies.flat_replay.FlatTransitionBuffer` (built by :meth:`BatchedReplayUpdates.
_create_local_replay_buffer_if_necessary`: SAC's config check admits only RLlib's episode-buffer names, so the
config keeps ``type: MultiAgentEpisodeReplayBuffer`` and the :data:`FLAT_TRANSITIONS` entry selects the flat
buffer). Its samples are train batches, handed to ``learner_group.update(batch=...)``: no episodes, no learner
connector pipeline (the Lagrangian price is applied by the buffer). Both loops serve it: one call of K·B rows
with ``batched_updates``, K calls of B rows without (DQN's own loop hands the learner episodes).
"""

from __future__ import annotations

from ray.rllib.algorithms.dqn.dqn import calculate_rr_weights
from ray.rllib.algorithms.sac import SAC
from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
from ray.rllib.utils.metrics import (
    ALL_MODULES,
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    REPLAY_BUFFER_ADD_DATA_TIMER,
    REPLAY_BUFFER_RESULTS,
    REPLAY_BUFFER_SAMPLE_TIMER,
    SYNCH_WORKER_WEIGHTS_TIMER,
    TD_ERROR_KEY,
    TIMERS,
)
from ray.rllib.utils.replay_buffers.multi_agent_episode_buffer import MultiAgentEpisodeReplayBuffer
from ray.rllib.utils.replay_buffers.prioritized_episode_buffer import PrioritizedEpisodeReplayBuffer

from aolo.envs.config import ConfigError
from aolo.policies.flat_replay import FlatTransitionBuffer

#: ``config.learners(learner_config_dict={BATCHED_UPDATES: True})`` turns the batched loop on.
BATCHED_UPDATES = "aolo_batched_updates"
#: ``replay_buffer_config[FLAT_TRANSITIONS] = {"capacity": ..., "cost_keys": [...]}``: the flat buffer's arguments.
FLAT_TRANSITIONS = "aolo_flat_transitions"


class BatchedReplayUpdates:
    """Algorithm mixin (before ``SAC`` in the bases): DQN's ``training_step`` with one learner call per
    iteration when ``learner_config_dict[BATCHED_UPDATES]`` is set, and the flat replay buffer when
    ``replay_buffer_config`` names it; DQN's own loop otherwise."""

    def _create_local_replay_buffer_if_necessary(self, config):
        flat = (config.replay_buffer_config or {}).get(FLAT_TRANSITIONS)
        if flat is None:
            return super()._create_local_replay_buffer_if_necessary(config)
        if config.n_step != 1:
            raise ConfigError(
                f"training.replay_buffer: flat stores one-step transitions and needs n_step 1, got {config.n_step!r}"
            )
        return FlatTransitionBuffer(**flat, seed=config.seed)

    def training_step(self) -> None:
        buffer = self.local_replay_buffer
        batched = self.config.learner_config_dict.get(BATCHED_UPDATES, False)
        flat = isinstance(buffer, FlatTransitionBuffer)
        if not (batched or flat):
            return super().training_step()
        prioritized = isinstance(buffer, PrioritizedEpisodeReplayBuffer) or "Prioritized" in type(buffer).__name__
        if not flat and (prioritized or not isinstance(buffer, MultiAgentEpisodeReplayBuffer)):
            raise ValueError(f"batched updates need a uniform MultiAgentEpisodeReplayBuffer, got {type(buffer)}")
        store_weight, num_updates = calculate_rr_weights(self.config)
        for _ in range(store_weight):
            with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
                episodes, env_runner_results = synchronous_parallel_sample(
                    worker_set=self.env_runner_group,
                    concat=True,
                    sample_timeout_s=self.config.sample_timeout_s,
                    _uses_new_env_runners=True,
                    _return_metrics=True,
                )
            self.metrics.aggregate(env_runner_results, key=ENV_RUNNER_RESULTS)
            with self.metrics.log_time((TIMERS, REPLAY_BUFFER_ADD_DATA_TIMER)):
                buffer.add(episodes)

        env_steps = self.metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0)
        agent_steps = self.metrics.peek((ENV_RUNNER_RESULTS, NUM_AGENT_STEPS_SAMPLED_LIFETIME), default={})
        current = sum(agent_steps.values()) if self.config.count_steps_by == "agent_steps" else env_steps
        if current < self.config.num_steps_sampled_before_learning_starts:
            return None

        batch_size = self.config.total_train_batch_size
        calls, updates_per_call = (1, num_updates) if batched else (num_updates, 1)
        for _ in range(calls):
            with self.metrics.log_time((TIMERS, REPLAY_BUFFER_SAMPLE_TIMER)):
                train_data = self._sample_train_data(buffer, updates_per_call * batch_size)
            with self.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
                learner_results = self.learner_group.update(
                    **train_data,
                    timesteps={
                        NUM_ENV_STEPS_SAMPLED_LIFETIME: env_steps,
                        NUM_AGENT_STEPS_SAMPLED_LIFETIME: agent_steps,
                    },
                    minibatch_size=batch_size,
                    num_epochs=1,
                    num_total_minibatches=updates_per_call,
                    shuffle_batch_per_epoch=False,
                )
                for result in learner_results:  # per-sample TD errors serve priorities only (none here)
                    for module_results in result.values():
                        module_results.pop(TD_ERROR_KEY, None)
                self.metrics.aggregate(learner_results, key=LEARNER_RESULTS)
        with self.metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
            self.env_runner_group.sync_weights(
                from_worker_or_learner_group=self.learner_group,
                policies=set(learner_results[0]) - {ALL_MODULES},
                global_vars=None,
                inference_only=True,
            )
        return None

    def _sample_train_data(self, buffer, num_items: int) -> dict:
        """``learner_group.update`` keyword arguments for ``num_items`` replayed transitions: a train batch from
        the flat buffer, sampled episodes (for the learner connector) from RLlib's episode buffer."""
        if isinstance(buffer, FlatTransitionBuffer):
            return {"batch": buffer.sample(num_items, n_step=self.config.n_step)}
        episodes = buffer.sample(
            num_items=num_items, n_step=self.config.n_step, gamma=self.config.gamma, sample_episodes=True
        )
        self.metrics.aggregate([buffer.get_metrics()], key=REPLAY_BUFFER_RESULTS)
        return {"episodes": episodes}


class BatchedSAC(BatchedReplayUpdates, SAC):
    """RLlib's SAC with the optional one-call-per-iteration loop (aolo's SAC and SDRL algorithm class)."""
