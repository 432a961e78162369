"""Constraints as constraints: PID multipliers, the learner-side reward r - λ·c, checkpointed multipliers."""

import numpy as np
import pytest
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.env.single_agent_episode import SingleAgentEpisode

from aolo.envs.cell_env import CellEnv
from aolo.envs.config import ConfigError
from aolo.platform.algorithms import TrainingSettings, build_algorithm_config, stop_algorithm
from aolo.platform.constraints import (
    ConstraintCallbacks,
    ConstraintSettings,
    LagrangianReward,
    PIDGains,
    PIDLagrangian,
    training_scenario,
)
from aolo.platform.presets import experiment_from_raw
from tests.tiny import SETTINGS, TINY

LAGRANGIAN = ConstraintSettings.from_dict({"method": "lagrangian"})


def fast(allowed_shortfall: float) -> ConstraintSettings:
    """Gains that move λ visibly within three iterations of a tiny run."""
    return ConstraintSettings.from_dict(
        {"method": "lagrangian", "qoe": {"initial": 3.0, "target": allowed_shortfall, "kp": 10.0, "ki": 20.0}}
    )


# --- PID dual ascent ----------------------------------------------------------------------------------------


def test_pid_rises_while_violated_and_falls_to_zero_when_slack():
    pid = PIDLagrangian(PIDGains(initial=1.0, target=0.0, kp=2.0, ki=0.5, kd=0.0))
    # violated by 0.2 for 3 iterations: I = 1.1, 1.2, 1.3; λ = 2·0.2 + I
    assert [round(pid.update(0.2), 9) for _ in range(3)] == [1.5, 1.6, 1.7]
    # slack by 0.4: I falls by 0.2 a step (1.1, 0.9, ...) and λ = max(0, -0.8 + I) reaches 0 and stays there
    values = [pid.update(-0.4) for _ in range(10)]
    assert values[0] == pytest.approx(0.3) and values[1] == pytest.approx(0.1)
    assert all(v == 0.0 for v in values[2:]) and pid.integral == 0.0
    assert pid.update(float("nan")) == 0.0  # no completed day: keep λ
    assert pid.update(0.1) == pytest.approx(0.25)  # violated again: rises at once (I = 0.05, P = 0.2)


def test_pid_derivative_only_on_rising_error_and_lambda_max():
    pid = PIDLagrangian(PIDGains(initial=0.0, target=0.1, kp=0.0, ki=0.0, kd=10.0), lambda_max=3.0)
    assert pid.update(0.2) == pytest.approx(1.0)  # e 0 → 0.1: K_D · 0.1
    assert pid.update(0.2) == 0.0  # e unchanged
    assert pid.update(0.15) == 0.0  # e falling: no derivative kick
    assert pid.update(1.0) == 3.0  # capped at lambda_max
    state = pid.get_state()
    other = PIDLagrangian(PIDGains(initial=5.0, target=0.1))
    other.set_state(state)
    assert other.get_state() == state


def test_settings_validation_names_field_and_range():
    with pytest.raises(ConfigError, match=r"constraints.method: must be one of \['lagrangian', 'penalty'\]"):
        ConstraintSettings.from_dict({"method": "barrier"})
    with pytest.raises(ConfigError, match=r"constraints.qoe.ki: must be a number in \[0, 10000\]"):
        ConstraintSettings.from_dict({"method": "lagrangian", "qoe": {"ki": -1.0}})
    with pytest.raises(ConfigError, match=r"constraints: unknown key\(s\) \['gain'\]"):
        ConstraintSettings.from_dict({"gain": 1})
    s = ConstraintSettings.from_dict({"method": "lagrangian", "latency": {"initial": 0.5}})
    assert s.latency.initial == 0.5 and s.latency.ki == ConstraintSettings().latency.ki  # merged over defaults
    assert experiment_from_raw({"constraints": {"method": "lagrangian"}}).constraints.lagrangian
    assert experiment_from_raw({}).constraints.method == "penalty"


def test_shipped_presets_use_lagrangian():
    from aolo.platform.presets import load_experiment

    assert load_experiment("quick").constraints.method == "lagrangian"
    assert load_experiment("paper").constraints.method == "lagrangian"
    assert load_experiment("reward_weights").constraints.method == "penalty"  # the sweep tunes the penalty weights


# --- env: carbon-only reward, cost signals ------------------------------------------------------------------


def test_env_carbon_reward_and_costs():
    carbon = TINY.replace(**{"reward.terms": "carbon"})
    envs = [CellEnv({"scenario": sc, "cell_index": 0}) for sc in (TINY, carbon)]
    for env in envs:
        env.reset(seed=5, options={"day": int(env.days["train"][0])})
    acts = {a: np.array([-1.0, -1.0], np.float32) for a in envs[0].agents}  # shortest answers: QoE < Q_min
    qoe, late, cost, added = [], [], [], []
    for _ in range(TINY.epochs_per_episode):
        (_, r_pen, *_, i_pen), (_, r_car, *_, i_car) = (env.step(acts) for env in envs)
        for a in envs[0].agents:
            info = i_car[a]
            w, sv = TINY.reward, TINY.service
            floor = w.floor * (info["qoe"] < sv.q_floor - 1e-12)
            expect = -w.carbon * info["carbon_total_g"] / w.carbon_scale_g - floor
            assert r_car[a] == pytest.approx(expect)
            assert info["cost_latency"] == float(info["latency_s"] > sv.t_max_s)
            assert i_pen[a]["qoe"] == info["qoe"]
        qoe.append(i_car["user_0"]["qoe"])
        late.append(i_car["user_0"]["cost_latency"])
        cost.append(i_car["user_0"]["cost_qoe"])
        added.append(i_car["user_0"]["qoe_guard_added"])
        t = len(qoe)
        # the step cost is the increment of the shortfall max(0, t Q_min - Σ Q) plus what the mean-QoE guard added
        shortfall = max(0.0, t * TINY.service.q_min - sum(qoe))
        assert sum(cost) == pytest.approx(shortfall + sum(added))
        # ... so its day mean is the day's violation max(0, Q_min - mean Q)
        assert i_car["user_0"]["qoe_day_mean"] == pytest.approx(np.mean(qoe))
        assert i_car["user_0"]["cost_qoe_day_mean"] == pytest.approx(max(0.0, TINY.service.q_min - np.mean(qoe)))
        assert i_car["user_0"]["cost_latency_day_mean"] == pytest.approx(np.mean(late))
    # the guard rescued the day (it met the mean-QoE rule only thanks to the guard): the day's cost is the rescue
    assert i_car["user_0"]["cost_qoe_day_mean"] == 0.0 and sum(added) > 0.1
    assert i_car["user_0"]["qoe_own_day_mean"] == pytest.approx(np.mean(qoe) - np.mean(added))
    assert i_car["user_0"]["qoe_own_day_mean"] < TINY.service.q_min


def test_qoe_cost_charges_a_shortfall_and_refunds_it_when_repaid():
    carbon = TINY.replace(**{"reward.terms": "carbon"})
    env = CellEnv({"scenario": carbon, "cell_index": 0})
    env.reset(seed=5, options={"day": int(env.days["train"][0])})
    short = {a: np.array([-1.0, 0.0], np.float32) for a in env.agents}  # target QoE Q_floor < Q_min
    long = {a: np.array([1.0, 0.0], np.float32) for a in env.agents}  # target QoE q_max > Q_min
    q_min = carbon.service.q_min
    qoe, costs = [], []
    for act in (long, short, short, long, long, long, long, long):
        info = env.step(act)[4]["user_0"]
        qoe.append(info["qoe"])
        costs.append(info["cost_qoe"])
    assert costs[0] == 0.0  # over-delivering earns nothing: the cost is never negative in total
    assert costs[2] > 0  # the surplus of step 0 no longer covers two short answers
    expected = np.diff([0.0, *(max(0.0, (t + 1) * q_min - sum(qoe[: t + 1])) for t in range(len(qoe)))])
    np.testing.assert_allclose(costs, expected, atol=1e-12)
    assert min(costs) < 0 and sum(costs) == pytest.approx(0.0, abs=1e-12)  # repaid: the shortfall is refunded


# --- learner side: r - λ·c with the current λ ---------------------------------------------------------------


def _episode(rewards, costs_qoe, costs_latency, *, artificial_last=False) -> SingleAgentEpisode:
    infos = [{"day": 0}] + [
        {"epoch": t, "cost_qoe": q, "cost_latency": c}
        for t, (q, c) in enumerate(zip(costs_qoe, costs_latency, strict=True))
    ]
    if artificial_last:  # what PPO's AddOneTsToEpisodesAndTruncate appends: reward 0, the last info repeated
        rewards, infos = [*rewards, 0.0], [*infos, infos[-1]]
    n = len(rewards)
    return SingleAgentEpisode(
        observations=[np.zeros(2, np.float32)] * (n + 1),
        infos=infos,
        actions=[np.zeros(2, np.float32)] * n,
        rewards=list(rewards),
        len_lookback_buffer=0,
    )


def test_learner_reward_uses_current_multipliers():
    ep = _episode([-1.0, -2.0, -0.5], [0.1, -0.2, 0.3], [0.0, 1.0, 0.0])
    piece = LagrangianReward()
    piece.set_multipliers({"qoe": 2.0, "latency": 5.0})  # the multipliers when the transitions were sampled
    np.testing.assert_allclose(piece.lagrangian_rewards(ep), [-1.2, -6.6, -1.1], rtol=1e-6)
    piece.set_multipliers({"qoe": 10.0, "latency": 0.0})  # later: the same stored transitions, the new price
    np.testing.assert_allclose(piece.lagrangian_rewards(ep), [-2.0, 0.0, -3.5], rtol=1e-6)
    batch = piece(rl_module=None, batch={}, episodes=[ep])
    np.testing.assert_allclose(np.ravel(next(iter(batch["rewards"].values()))), [-2.0, 0.0, -3.5], rtol=1e-6)
    # PPO's artificial bootstrap step gets no cost
    ppo_ep = _episode([-1.0], [0.1], [1.0], artificial_last=True)
    np.testing.assert_allclose(piece.lagrangian_rewards(ppo_ep), [-2.0, 0.0], rtol=1e-6)


# --- one real RLlib run per family --------------------------------------------------------------------------


@pytest.mark.parametrize(("algo", "q_min", "allowed"), [("sac", 0.98, 0.0), ("ppo", 0.35, 0.1)])
def test_lagrangian_training_logs_pushes_and_restores_multipliers(
    ray_session, tmp_path, monkeypatch, algo, q_min, allowed
):
    priced = []  # (transitions, of which carried costs) per call of the learner piece: the costs reach the learner
    original = LagrangianReward.lagrangian_rewards

    def recording(self, sa_episode):
        out = original(self, sa_episode)
        infos = sa_episode.get_infos(slice(0, len(sa_episode) + 1))
        priced.append((len(sa_episode), sum("cost_qoe" in i for i in infos[1:])))
        return out

    monkeypatch.setattr(LagrangianReward, "lagrangian_rewards", recording)
    # Q_min + margin = 0.985 is above the highest QoE the action can ask for, so every day falls short: λ_qoe must
    # rise every iteration; Q_min = 0.35 is (all but) met on every day: λ_qoe must fall to 0
    scenario = TINY.replace(**{"service.q_min": q_min})
    settings = fast(allowed)
    # RLlib's episode buffer and learner connector, where LagrangianReward prices the costs (the default flat
    # buffer prices them itself: tests/test_flat_replay.py)
    episode_replay = TrainingSettings.from_dict({**SETTINGS.to_dict(), "replay_buffer": "episode"})
    algo_ = build_algorithm_config(algo, scenario, seed=0, settings=episode_replay, constraints=settings).build_algo()
    try:
        # every cell is sampled, in training and in the constraint measurement (RLlib hands all sub-envs one context)
        def cells(runner):
            return sorted(env.unwrapped.cell_index for env in runner.env.unwrapped.envs)

        assert cells(algo_.env_runner) == [0, 1]
        assert cells(algo_.eval_env_runner_group.local_env_runner) == [0, 1]
        lambdas = []
        for _ in range(3):
            result = algo_.train()
            stats = result["constraints"]
            assert stats["user_days"] == 4.0  # 2 cells × 2 users, one day each
            assert (stats["cost_qoe_day_mean"] > allowed) == (q_min > 0.5)
            lambdas.append(stats["lambda_qoe"])
        if q_min > 0.5:
            assert lambdas[0] > settings.qoe.initial and np.all(np.diff(lambdas) > 0)
        else:
            assert lambdas[0] < settings.qoe.initial and lambdas[-1] == 0.0
        assert priced and all(costs >= n - 1 >= 0 or costs == n for n, costs in priced)  # PPO: +1 bootstrap step
        assert sum(c for _, c in priced) > 0
        learner = algo_.learner_group._learner
        pieces = [p for p in learner._learner_connector.connectors if isinstance(p, LagrangianReward)]
        assert len(pieces) == 1 and pieces[0].multipliers == algo_.multipliers()
        if algo == "sac":  # the replay buffer keeps the infos the learner reads the costs from
            sample = algo_.local_replay_buffer.sample(num_items=4)
            infos = [sa.get_infos(-1) for sa in sample]  # one SingleAgentEpisode per sampled transition
            assert infos and all("cost_qoe" in i for i in infos)
        saved = algo_.multipliers()
        algo_.save_to_path(tmp_path)
    finally:
        stop_algorithm(algo_)
    restored = Algorithm.from_checkpoint(tmp_path)
    try:
        assert restored.multipliers() == saved
        assert restored.aolo_pid["qoe"].get_state() == algo_.aolo_pid["qoe"].get_state()
        piece = [
            p for p in restored.learner_group._learner._learner_connector.connectors if isinstance(p, LagrangianReward)
        ][0]
        assert piece.multipliers == saved
    finally:
        stop_algorithm(restored)


def test_the_guard_acts_at_deployment_not_in_training_by_default():
    for constraints, in_training in ((LAGRANGIAN, False), (ConstraintSettings(), False)):
        config = build_algorithm_config("sac", TINY, settings=SETTINGS, constraints=constraints)
        assert config.env_config["scenario"]["service"]["mean_qoe_guard"] is in_training
    on = ConstraintSettings.from_dict({"method": "lagrangian", "guard_in_training": True})
    config = build_algorithm_config("sac", TINY, settings=SETTINGS, constraints=on)
    assert config.env_config["scenario"]["service"]["mean_qoe_guard"] is True
    assert TINY.service.mean_qoe_guard is True  # the scenario (evaluation) keeps it
    with pytest.raises(ConfigError, match="constraints.guard_in_training"):
        ConstraintSettings.from_dict({"method": "lagrangian", "guard_in_training": "yes"})


def test_penalty_method_keeps_the_old_config():
    from ray.rllib.algorithms.sac import SAC

    from aolo.platform.constraints import LagrangianTD3
    from aolo.policies.replay_updates import BatchedSAC

    config = build_algorithm_config("sac", TINY, settings=SETTINGS)
    assert config.algo_class is BatchedSAC  # the flat buffer's loop, not a Lagrangian subclass
    rllib_loop = TrainingSettings.from_dict(
        {**SETTINGS.to_dict(), "replay_buffer": "episode", "batched_updates": False}
    )
    assert build_algorithm_config("sac", TINY, settings=rllib_loop).algo_class is SAC  # RLlib's own class
    assert config.env_config["scenario"]["reward"]["terms"] == "all"
    assert config.callbacks_class is not ConstraintCallbacks and config.evaluation_interval is None
    lag = build_algorithm_config("td3", TINY, settings=SETTINGS, constraints=LAGRANGIAN)
    assert lag.algo_class is LagrangianTD3 and lag.env_config["scenario"]["reward"]["terms"] == "carbon"


def test_the_method_decides_the_reward_terms_and_a_contradiction_is_refused():
    carbon = TINY.replace(**{"reward.terms": "carbon"})
    assert training_scenario(TINY, LAGRANGIAN).reward.terms == "carbon"
    assert training_scenario(carbon, LAGRANGIAN).reward.terms == "carbon"
    assert training_scenario(TINY, ConstraintSettings()).reward.terms == "all"
    # penalty with the carbon-only reward would train with no QoE or latency cost at all
    with pytest.raises(ConfigError, match=r"scenario.reward.terms: 'carbon' contradicts constraints.method: 'penalty'"):
        build_algorithm_config("sac", carbon, settings=SETTINGS)
    with pytest.raises(ConfigError, match=r"scenario.reward.terms: 'carbon' contradicts constraints.method: 'penalty'"):
        experiment_from_raw({"scenario": {"reward": {"terms": "carbon"}}, "constraints": {"method": "penalty"}})
    with pytest.raises(ConfigError, match=r"scenario.reward.terms: 'all' contradicts constraints.method: 'lagrangian'"):
        experiment_from_raw({"scenario": {"reward": {"terms": "all"}}, "constraints": {"method": "lagrangian"}})
    agreeing = {"scenario": {"reward": {"terms": "carbon"}}, "constraints": {"method": "lagrangian"}}
    assert experiment_from_raw(agreeing).constraints.lagrangian


def test_action_at_bound_rate():
    from aolo.envs.rollout import RECORDED_FIELDS, EpisodeRecord, summarize

    fields = {f: np.ones((2, 2)) for f in RECORDED_FIELDS}
    actions = np.array([[[1.0, 0.995], [-0.99, 0.0]], [[0.5, -1.0], [0.98, -0.2]]])  # 4 of 8 within 1 % of ±1
    rec = EpisodeRecord("c", 0, fields, np.zeros((2, 2)), np.zeros(2, bool), {"actions": actions})
    assert summarize([rec], 0.8, 0.3, 30.0)["action_at_bound_rate"] == pytest.approx(0.5)
    bare = EpisodeRecord("c", 0, fields, np.zeros((2, 2)), np.zeros(2, bool))
    assert np.isnan(summarize([bare], 0.8, 0.3, 30.0)["action_at_bound_rate"])
