"""Which model answers (docs/design.md §3.7): per-model QoE and energy by hand, the action mapping, the floor and
the mean-QoE guard with two models, invalid pools, causal references and the joint-choice evaluation."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from aolo.envs.cell_env import CellEnv
from aolo.envs.config import ConfigError, ScenarioConfig
from aolo.envs.model_reference import solve_hindsight_models
from aolo.envs.models import ARENA_ELO, decode_model, quality_ceiling, win_probability
from aolo.envs.reference import make_reference_policy
from aolo.envs.serving import SERVING_PROFILES

SMALL, LARGE = "llama-3.1-8b-h100", "llama-3.1-70b-4xh100"
#: c_8B by hand: 2 / (1 + 10^((1249 - 1168)/400)), Chatbot Arena Elo of 5 Sep 2024
C_SMALL = 2.0 / (1.0 + 10.0 ** (81.0 / 400.0))


def _env(epochs: int = 96, **service) -> CellEnv:
    scenario = ScenarioConfig().replace(
        **{
            "service.model_action": True,
            "epochs_per_episode": epochs,
            **{f"service.{k}": v for k, v in service.items()},
        }
    )
    env = CellEnv({"scenario": scenario, "cell_index": 0})
    env.reset(options={"day": 3}, seed=3)
    return env


def test_ceiling_from_arena_elo_by_hand() -> None:
    assert ARENA_ELO == {SMALL: 1168.0, LARGE: 1249.0}
    assert win_probability(-81.0) == pytest.approx(1.0 / (1.0 + 10.0**0.2025), rel=1e-12)
    assert quality_ceiling(1168.0, 1249.0) == pytest.approx(C_SMALL, rel=1e-12)
    assert C_SMALL == pytest.approx(0.771, abs=5e-4)
    assert quality_ceiling(1249.0, 1249.0) == 1.0
    env = _env()
    np.testing.assert_allclose(env.models.ceiling, [C_SMALL, 1.0], rtol=1e-12)
    np.testing.assert_allclose(env.models.length_ratio, [1.0, 354.0 / 397.0], rtol=1e-12)
    assert env.models.best == 1
    assert env.action_spaces["user_0"].shape == (3,)


def test_worked_example_per_model_by_hand() -> None:
    """docs/design.md §3.6's request (L_p 1000, kappa 200, L_ref 250, b = 64) on each model of the pool."""
    env = _env()
    out = {
        m: env.request_outcomes(
            np.array([200.0]),
            np.array([2.0]),
            prompt_tokens=np.array([1000.0]),
            ref_tokens=np.array([250.0]),
            channel_gain=np.array([10 ** (-121.23 / 10)]),
            ci_dc_g_per_kwh=9.0,
            ci_cell_g_per_kwh=700.0,
            model=np.array([m]),
        )
        for m in (0, 1)
    }
    g_per_gpu_s = 539_000.0 / 43_800.0 / 3600.0  # H100 slot, docs/design.md §3.4
    # 8B: the single-model example's energy; QoE scaled by its ceiling
    e_small = 1.44 * (0.023 * 1000 + (0.1186 - 0.023 * 200 / 397) * 200)
    t_small = 0.05 + 3.2e-5 * 1000 + 200 * 0.0115
    assert e_small == pytest.approx(63.94, abs=0.01)
    assert out[0].energy_inference_j[0] == pytest.approx(e_small, rel=1e-9)
    assert out[0].latency_s[0] - out[0].airtime_s[0] == pytest.approx(t_small, rel=1e-9)
    assert out[0].carbon_embodied_g[0] == pytest.approx(g_per_gpu_s * 1 / 64 * t_small, rel=1e-6)
    assert out[0].qoe[0] == pytest.approx(C_SMALL * (1 - math.exp(-3 * 200 / 250)), rel=1e-12)
    assert out[0].qoe[0] == pytest.approx(0.7010, abs=5e-4)
    # 70B: 4 GPUs, its own e_pre (0.20 J), e_dec net (0.7972 - 0.20 * 200/354 J), ITL 22.43 ms, ρ = 354/397
    e_large = 1.44 * (0.20 * 1000 + (0.7972 - 0.20 * 200 / 354) * 200)
    t_large = 0.05 + 7.1e-5 * 1000 + 200 * 0.02243
    assert e_large == pytest.approx(485.05, abs=0.01)
    assert out[1].energy_inference_j[0] == pytest.approx(e_large, rel=1e-9)
    assert out[1].latency_s[0] - out[1].airtime_s[0] == pytest.approx(t_large, rel=1e-9)
    assert out[1].carbon_embodied_g[0] == pytest.approx(g_per_gpu_s * 4 / 64 * t_large, rel=1e-6)
    assert out[1].qoe[0] == pytest.approx(1 - math.exp(-3 * 200 / (250 * 354 / 397)), rel=1e-12)
    assert out[1].qoe[0] == pytest.approx(0.9322, abs=5e-4)
    assert out[1].carbon_inference_g[0] == pytest.approx(e_large / 3.6e6 * 9.0, rel=1e-9)
    np.testing.assert_allclose(out[0].energy_comm_j, out[1].energy_comm_j)  # the radio does not see the model


def test_model_action_covers_both_models() -> None:
    a = np.array([-1.0, -0.5, -1e-9, 0.0, 0.3, 1.0])
    np.testing.assert_array_equal(decode_model(a, 2), [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(decode_model(np.linspace(-1, 1, 7), 3), [0, 0, 1, 1, 2, 2, 2])


def test_action_for_inverts_decode_on_both_models() -> None:
    env, rng = _env(), np.random.default_rng(1)
    ref = env.episode.ref_tokens[:, 0]
    for _ in range(50):
        model = rng.integers(0, 2, env.num_users)
        lo, hi = env.models.length_limits(ref, model)
        kappa = np.floor(lo + rng.random(env.num_users) * (hi - lo + 1))
        power = rng.uniform(0.01, 10.0, env.num_users)
        acts = env.action_for(kappa, power, model)
        actions = np.stack([acts[a] for a in env.agents]).astype(np.float64)
        np.testing.assert_array_equal(env.decode_model(actions), model)
        got_kappa, got_power = env.decode_actions(actions)
        np.testing.assert_array_equal(got_kappa, kappa)
        np.testing.assert_allclose(got_power, power, rtol=1e-5)


def test_floor_unbreakable_on_every_model_hypothesis() -> None:
    hyp = pytest.importorskip("hypothesis")
    st = hyp.strategies
    env = _env()
    sv = env.scenario.service

    @hyp.settings(max_examples=300, deadline=None)
    @hyp.given(
        a=st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3),
        ref=st.integers(1, 5000),
    )
    def check(a, ref):
        env.episode.ref_tokens[:, 0] = float(ref)
        actions = np.tile(np.asarray(a, dtype=np.float64), (env.num_users, 1))
        kappa, _ = env.decode_actions(actions)
        model = env.decode_model(actions)
        q = env.models.qoe(kappa, env.episode.ref_tokens[:, 0], model)
        assert (q >= sv.q_floor).all()
        assert (q <= env.models.q_top[model] + 1e-12).all() or (kappa == env.models.length_limits(ref, model)[0]).all()
        assert (kappa == np.rint(kappa)).all() and (kappa >= 1).all()

    check()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_guard_completes_every_user_day_with_two_models(seed: int) -> None:
    """Random actions over (length, power, model), most on the small model's shortest answer: with the guard every
    user-day meets Q_min on a short day, every answer meets the floor; without it days miss."""
    rng = np.random.default_rng(seed)
    T = 12
    acts = rng.uniform(-1, 1, (T, 8, 3))
    low = rng.random((T, 8)) < 0.8
    acts[low, 0], acts[low, 2] = -1.0, -1.0
    means = {}
    for guard in (True, False):
        env = _env(epochs=T, mean_qoe_guard=guard)
        env.episode.ref_tokens[:] = np.minimum(env.episode.ref_tokens, 900.0)  # kappa_max never binds
        for t in range(T):
            ref = env.episode.ref_tokens[:, t]
            policy_kappa, _ = env.decode_actions(acts[t])
            _, _, _, _, infos = env.step(dict(zip(env.agents, acts[t].astype(np.float32), strict=True)))
            assert all(infos[a]["qoe"] >= env.scenario.service.q_floor for a in env.agents)
            # a rescue is never longer than guard_length_ratio (1.2) times the model's own answer ρ_m L_ref
            kappa = np.array([infos[a]["kappa"] for a in env.agents])
            model = np.array([infos[a]["model"] for a in env.agents], dtype=int)
            rescued = kappa != policy_kappa
            guard_length = np.ceil(1.2 * env.models.model_ref_tokens(ref, model))
            assert (kappa[rescued] <= guard_length[rescued]).all()
        means[guard] = np.array([infos[a]["qoe_day_mean"] for a in env.agents])
    assert (means[True] >= 0.8 - 1e-12).all()
    assert (means[False] < 0.8).any()


def test_guard_plans_at_the_guard_length_and_keeps_long_requests_in_time() -> None:
    """The pool guard plans every later answer at g_m = c_m (1 - e^{-α r}), r = guard_length_ratio = 1.2, not at
    c_m q_max: it binds earlier in this hand example, and the last-epoch rescue of the longest default request
    stays within T_max on the 70B where a rescue planned at q_max does not."""
    env = _env()
    sv, T, pool = env.scenario.service, env.scenario.epochs_per_episode, env.models
    g_best = 1.0 - math.exp(-3.0 * 1.2)  # 0.97268
    np.testing.assert_allclose(pool.q_guard, [C_SMALL * g_best, g_best], rtol=1e-12)
    env.episode.ref_tokens[:, :] = 100.0
    shortest = np.full(env.num_users, 12.0)  # 8B: 0.771 (1 - e^{-0.36}) = 0.2331
    assert pool.qoe(12.0, 100.0, 0) == pytest.approx(0.2331, abs=1e-4)
    # at T - 2 with the day 1.22 short: planned at q_max (0.98889) for the last answer this one needs 0.2311, which
    # the shortest answer brings; planned at g (0.97268) it needs 0.2473: lengthened to 13 tokens, kept on the 8B
    env.t = T - 2
    env._qoe_sum = np.full(env.num_users, T * sv.q_min - 1.22)
    kappa, model = env.pool_mean_qoe_guard(shortest, np.zeros(env.num_users, dtype=int))
    np.testing.assert_array_equal(model, 0)
    np.testing.assert_array_equal(kappa, math.ceil(-math.log(1 - (1.22 - g_best) / C_SMALL) * 100 / 3))
    assert kappa[0] == 13
    # an answer that already brings what the day needs is left alone, model included
    long_8b = np.full(env.num_users, 40.0)
    kappa, model = env.pool_mean_qoe_guard(long_8b, np.zeros(env.num_users, dtype=int))
    np.testing.assert_array_equal(kappa, 40.0)
    np.testing.assert_array_equal(model, 0)

    # the last answer of the workload's longest request (L_ref = 1000) must bring g: the 70B at
    # ceil(1.2 · 354/397 · 1000) = 1071 tokens at most, 24 s of decode: in time at 2 W
    env.episode.ref_tokens[:, :] = 1000.0
    env.t = T - 1
    env._qoe_sum = np.full(env.num_users, T * sv.q_min - g_best)
    kappa, model = env.pool_mean_qoe_guard(shortest, np.zeros(env.num_users, dtype=int))
    np.testing.assert_array_equal(model, 1)
    assert (kappa <= 1071).all()
    out = env.outcomes(kappa, np.full(env.num_users, 2.0), T - 1, model=model)
    assert (out.latency_s <= sv.t_max_s).all() and (out.qoe >= g_best - 1e-12).all()
    # planned at q_max the same rescue needs 1.5 · 891.7 = 1338 tokens: 30.0 s of decode alone, past T_max
    long_kappa = pool.least_length(pool.q_top[1], 1000.0, 1)
    assert long_kappa * pool.inference[1].itl_s > sv.t_max_s


@pytest.mark.parametrize(
    "service, field, text",
    [
        ({"model_pool": ["llama-3.1-8b-h100", "gpt-5"]}, "scenario.service.model_pool", "serving profiles among"),
        ({"model_pool": []}, "scenario.service.model_pool", "non-empty list"),
        ({"model_elo": {SMALL: 600.0}}, "scenario.service.model_pool", "cannot reach q_floor"),
        ({"length_action": "tokens"}, "scenario.service.length_action", "must be 'qoe'"),
        # 1 - e^{-3 r} must exceed q_min = 0.8 (r > 0.536) and not exceed q_max = 0.989 (r <= 1.5)
        ({"guard_length_ratio": 0.5}, "scenario.service.guard_length_ratio", "must lie in (0.536, 1.500]"),
        ({"guard_length_ratio": 1.6}, "scenario.service.guard_length_ratio", "must lie in (0.536, 1.500]"),
    ],
    ids=[
        "unknown-profile",
        "empty-pool",
        "ceiling-below-floor",
        "token-lengths",
        "guard-below-qmin",
        "guard-above-top",
    ],
)
def test_invalid_pools_give_one_clear_error(service, field, text) -> None:
    data = {"service": {"model_action": True, **service}}
    with pytest.raises(ConfigError) as err:
        ScenarioConfig.from_dict(data)
    assert len(err.value.errors) == 1, err.value.errors
    assert err.value.errors[0].startswith(field) and text in err.value.errors[0]


def test_ceiling_below_floor_names_the_model_and_is_ignored_without_the_model_action() -> None:
    with pytest.raises(ConfigError, match=r"'llama-3.1-8b-h100' has quality ceiling 0\.0"):
        ScenarioConfig.from_dict({"service": {"model_action": True, "model_elo": {SMALL: 600.0}}})
    ScenarioConfig.from_dict({"service": {"model_action": False, "model_elo": {SMALL: 600.0}}})


def test_fixed_large_needs_a_model_pool() -> None:
    env = CellEnv({"scenario": ScenarioConfig(), "cell_index": 0})
    env.reset(options={"day": 3})
    with pytest.raises(ValueError, match="model_action: true"):
        make_reference_policy("fixed_large").begin_episode(env)


@pytest.mark.parametrize("name", ["forecast", "myopic"])
def test_model_references_are_causal(name: str) -> None:
    from test_causal_references import _perturb_future

    env = _env(epochs=24)
    policy = make_reference_policy(name)
    obs, _ = env.reset(options={"day": 3})
    policy.begin_episode(env)
    for t in range(24):
        if t in (0, 7, 16):
            twin, twin_policy = copy.deepcopy(env), copy.deepcopy(policy)
            _perturb_future(twin, t)
            a, b = policy.act(env, obs), twin_policy.act(twin, obs)
            for agent in env.agents:
                np.testing.assert_array_equal(a[agent], b[agent])
        obs, *_ = env.step(policy.act(env, obs))


def test_references_on_a_short_day_order_and_reductions() -> None:
    from aolo.platform.evaluation import evaluate_references

    scenario = ScenarioConfig().replace(**{"service.model_action": True, "epochs_per_episode": 24})
    results = evaluate_references(scenario, 1)
    assert {"fixed_large", "fixed", "myopic", "forecast", "hindsight"} <= set(results)
    carbon = {k: r.metrics["carbon_g_per_request"] for k, r in results.items()}
    bound = results["hindsight"].metrics["bound_g_per_request"]
    assert bound <= carbon["hindsight"] <= min(carbon["forecast"], carbon["myopic"])
    assert carbon["myopic"] < carbon["fixed_large"]
    assert results["fixed_large"].metrics["reduction_vs_fixed_large"] == 0.0
    for r in results.values():
        assert r.metrics["reduction_vs_fixed_large"] == pytest.approx(
            1 - r.metrics["carbon_g_per_request"] / carbon["fixed_large"]
        )
        assert r.metrics[f"model_share_{SMALL}"] + r.metrics[f"model_share_{LARGE}"] == pytest.approx(1.0)
    for name in ("hindsight", "forecast", "myopic", "fixed_large"):
        assert results[name].metrics["qoe_violation_rate"] == 0.0
        assert results[name].metrics["latency_violation_rate"] == 0.0
    assert results["fixed_large"].metrics[f"model_share_{LARGE}"] == 1.0
    assert results["myopic"].metrics[f"model_share_{LARGE}"] == 1.0  # c_8B q_max < Q_min: 8B never meets it alone
    assert 0.0 < results["hindsight"].metrics[f"model_share_{SMALL}"] < 1.0


def test_hindsight_plan_meets_the_rule_and_sits_above_its_bound() -> None:
    env = _env(epochs=24)
    plan = solve_hindsight_models(env)
    assert plan.feasible.all()
    assert plan.dual_bound_g <= float(plan.carbon_g.sum())
    assert float(plan.carbon_g.sum()) <= plan.dual_bound_g * 1.02
    assert set(np.unique(plan.model)) == {0, 1}


def test_hindsight_plan_stays_ahead_of_the_guard(monkeypatch) -> None:
    """Played through the env, the hindsight plan is never rewritten by the mean-QoE guard; on this day the plain
    λ plan (without the raise of early answers) catches up late with answers above g and the guard rewrites it."""
    import aolo.envs.model_reference as model_reference
    from aolo.envs.rollout import run_episode

    def guard_added(policy_env: CellEnv) -> np.ndarray:
        record = run_episode(policy_env, make_reference_policy("hindsight"), day=3, seed=3)
        assert (record.fields["qoe"].mean(axis=1) >= 0.8 - 1e-9).all()
        return record.fields["qoe_guard_added"]

    assert (guard_added(_env(epochs=24)) == 0.0).all()
    monkeypatch.setattr(model_reference, "_keep_ahead_of_guard", lambda carbon, q, idx, line: idx)
    assert (guard_added(_env(epochs=24)) > 0.0).any()


def test_keep_ahead_of_guard_and_polish_by_hand() -> None:
    """T = 3, Q_min = 0.8, g = 0.95: the line is (0.5, 1.45, 2.4). The plan (0.45, 0.97, 0.99) is behind at
    epoch 0 by 0.05: the cheapest raise per QoE still missing is epoch 0's 0.52 (0.2 g / 0.05 = 4 against 1 g / 0.05
    = 20). The polish then lowers epoch 2 to 0.92 (saves 0.1 g, spends 0.07 of the 0.10 surplus); lowering epoch 1
    to 0.93 would put the running sum after epoch 1 at 1.45, below the line: not allowed."""
    from aolo.envs.model_reference import _keep_ahead_of_guard, _spend_slack

    inf = np.inf
    carbon = np.array([[[1.0, 1.2, 2.0], [1.5, 2.0, inf], [0.1, 0.2, inf]]])
    q = np.array([[[0.45, 0.52, 0.6], [0.93, 0.97, 0.0], [0.92, 0.99, 0.0]]])
    line = np.array([0.5 + 1e-9, 1.45 + 1e-9, 2.4])
    ahead = _keep_ahead_of_guard(carbon, q, np.array([[0, 1, 1]]), line)
    np.testing.assert_array_equal(ahead, [[1, 1, 1]])
    np.testing.assert_array_equal(_spend_slack(carbon, q, ahead, line), [[1, 1, 0]])


def test_reference_lengths_follow_the_measured_distributions(shared_data_dir) -> None:
    """ρ_70B = 354/397 (the profiles' avg_output_len) agrees with the ML.ENERGY output-length histograms of the
    two models on the same LM-Arena prompts to 0.5 %."""
    means = {}
    for name, model in ((SMALL, "8B"), (LARGE, "70B")):
        path = shared_data_dir / "llm_energy" / f"meta-llama__Llama-3.1-{model}-Instruct__lm-arena-chat.json"
        hist = json.loads(path.read_text())["output_length_distribution"]
        edges, counts = np.array(hist["bins"]), np.array(hist["counts"], dtype=float)
        means[name] = float((0.5 * (edges[1:] + edges[:-1]) * counts).sum() / counts.sum())
    ratio = SERVING_PROFILES[LARGE].reference_output_tokens / SERVING_PROFILES[SMALL].reference_output_tokens
    assert means[LARGE] / means[SMALL] == pytest.approx(ratio, rel=5e-3)


def test_model_presets_are_their_base_plus_the_model_action() -> None:
    from aolo.platform.presets import load_experiment

    for preset, base, seeds in (("quick_models", "quick", 1), ("paper_models", "paper", 5)):
        experiment, reference = load_experiment(preset), load_experiment(base)
        assert experiment.scenario.service.model_action and not reference.scenario.service.model_action
        assert experiment.scenario.replace(**{"name": base, "service.model_action": False}) == reference.scenario
        assert experiment.training == reference.training and experiment.constraints == reference.constraints
        assert len(experiment.seeds) == seeds
    assert load_experiment("quick_models").algorithms == ("sdrl", "sac")


def test_evaluate_fixed_large_without_a_model_pool_is_one_clear_error(tmp_path, capfd) -> None:
    from aolo.platform import cli

    out = tmp_path / "out"
    assert cli.main(["evaluate", "--preset", "smoke", "--policy", "fixed_large", "--output", str(out)]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs a model pool" in err[0] and "model_action: false" in err[0]
    assert not out.exists()


def test_reduction_vs_fixed_large_in_compare_with_an_exact_baseline_interval() -> None:
    from aolo.platform.compare_stats import BASELINES, MODEL_BASELINES, RunOutcome, reduction_interval, summarize

    # the reference is one deterministic value: the interval is mean(values)'s alone, t(0.975, df=1) = 12.7062047,
    # s / sqrt(2) = 0.1, over the baseline's 2.0 -> 0.63531
    value, half = reduction_interval([0.8, 1.0], [2.0], baseline_exact=True)
    assert value == pytest.approx(0.55) and half == pytest.approx(12.7062047 * 0.1 / 2.0, rel=1e-6)
    assert reduction_interval([0.8, 1.0], [2.0]) == (pytest.approx(0.55), None)  # a learned one-seed baseline
    metrics = lambda c: {"carbon_g_per_request": c, "qoe_mean": 0.8}  # noqa: E731
    outcomes = [
        RunOutcome("sdrl", "learned", 0, metrics(0.8)),
        RunOutcome("sdrl", "learned", 1, metrics(1.0)),
        RunOutcome("fixed_large", "reference", None, metrics(2.0)),
        RunOutcome("forecast", "reference", None, metrics(1.0)),
    ]
    rows = {r.policy: r for r in summarize(outcomes, BASELINES + MODEL_BASELINES)}
    assert rows["sdrl"].reductions["fixed_large"] == pytest.approx(0.55)
    assert rows["sdrl"].reduction_cis["fixed_large"] == pytest.approx(0.63531, abs=1e-5)
    assert rows["forecast"].reductions["fixed_large"] == pytest.approx(0.5)
    assert rows["fixed_large"].reductions["fixed_large"] is None
    assert list(rows["sdrl"].reductions) == ["fixed_large"]  # no learned baseline trained here


def test_a_pool_without_the_cells_profile_serves_fixed_on_its_first_model() -> None:
    env = _env(model_pool=[LARGE])
    np.testing.assert_allclose(env.models.ceiling, [1.0])  # alone in the pool: the best-rated model
    np.testing.assert_allclose(env.models.length_ratio, [354.0 / 397.0])  # lengths still relative to the cell's 8B
    action = make_reference_policy("fixed").act(env)
    assert all(env.decode_model(np.stack([action[a] for a in env.agents]).astype(np.float64)) == 0)


def test_model_share_by_hour_and_its_plot(tmp_path) -> None:
    from aolo.envs.rollout import EpisodeRecord
    from aolo.platform.plots import plot_model_share
    from aolo.platform.results import model_share_by_hour

    model = np.zeros((2, 8))  # 2 users, 8 epochs of 3 h
    model[0, 1] = model[1, 1] = model[0, 7] = 1.0
    record = EpisodeRecord("c", 0, {"model": model}, np.zeros((2, 8)), np.zeros(8, dtype=bool))
    share = model_share_by_hour([record], 1, 3 * 3600.0)["c"]
    assert share[3] == 1.0 and share[21] == 0.5 and share[0] == 0.0
    assert np.isnan(share[1])  # no epoch starts in hour 1
    path = plot_model_share({"hindsight": {"c": share}, "forecast": {"c": share}}, LARGE, tmp_path / "s.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_study_model_share_from_the_evaluation_rows(tmp_path) -> None:
    """Each per-episode row carries the best model's share by UTC hour; the compare averages a cell's episodes,
    then the policy's runs, and draws model_share.png."""
    from types import SimpleNamespace

    from aolo.envs.rollout import run_episode
    from aolo.platform.plots import write_study_figures
    from aolo.platform.results import StudyData, evaluation_rows, model_share

    env = _env(epochs=8)  # 8 epochs of 15 min: hours 0 and 1 of the day
    record = run_episode(env, make_reference_policy("forecast"), day=3, seed=3)
    row = evaluation_rows(SimpleNamespace(policy="forecast", records=[record], metrics={}), env.scenario)[0]
    on_large = record.fields["model"] == 1
    assert row[f"model_share_{LARGE}_h00"] == pytest.approx(on_large[:, :4].mean())
    assert row[f"model_share_{LARGE}_h01"] == pytest.approx(on_large[:, 4:].mean())
    assert math.isnan(row[f"model_share_{LARGE}_h02"])

    def run(*hour0: float) -> list[dict[str, str]]:  # a run's rows as load_study reads them: text, plus "all"
        rows = [{"cell": "c", "day": str(d), f"model_share_{LARGE}_h00": str(v)} for d, v in enumerate(hour0)]
        return [*rows, {"cell": "all", "day": ""}]

    data = StudyData(cells=["c"], q_min=0.8, learned={"sac": {0: run(0.5, 1.0), 1: run(0.0, 0.0)}}, references={})
    model, shares = model_share(data)  # hours 1-23 have no column here: nan
    assert model == LARGE
    assert shares["sac"]["c"][0] == pytest.approx((0.75 + 0.0) / 2)  # a run's episodes, then the runs
    assert math.isnan(shares["sac"]["c"][1])
    assert (tmp_path / "model_share.png") in write_study_figures(data, tmp_path)
