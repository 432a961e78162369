"""Shared serving sites (docs/design.md §10): the batch, the queue, the coupling, the background, bad configs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aolo.envs.cell_env import CellEnv
from aolo.envs.config import DiurnalSpec, ScenarioConfig, ServiceConfig
from aolo.envs.physics import InferenceCoefficients
from aolo.envs.serving import get_serving_profile
from aolo.envs.site import (
    autoscale_replicas,
    background_csv_tok_s,
    capacity_tok_s,
    diurnal_shape,
    fluid_queue,
    operating_batch,
    site_epoch,
    site_inference,
    throughput_tok_s,
)
from aolo.envs.site_env import (
    SITE_OBS,
    SITE_OBS_FEATURES,
    SiteDay,
    SiteEnv,
    background_forecast_tok_s,
    check_every_cell_on_a_site,
    load_share_latency_cost,
)
from aolo.errors import ConfigError

P8 = get_serving_profile(
    "llama-3.1-8b-h100"
)  # X(b): 8 → 1070, 64 → 5147, 96 → 6260, 128 → 7037, 192 → 8223, 512 → 9806


def site_scenario(**site) -> dict:
    quiet = {"day_sigma": 0.0, "epoch_sigma": 0.0}
    spec = {"name": "s", "scaling": "fixed", "replicas": 1, "requests_per_agent": 1000.0}
    spec.update(site)
    spec.setdefault("agent_volume", quiet)
    spec.setdefault("background", {"kind": "none"})
    return {
        "sites": [spec],
        "cells": [
            {"name": "a", "site": "s", "num_users": 2, "grid_region": "synthetic:hydro"},
            {"name": "b", "site": "s", "num_users": 2, "grid_region": "synthetic:coal_heavy"},
        ],
    }


# --- the operating batch -----------------------------------------------------------------------------


def test_batch_solves_replicas_times_throughput_at_hand_points() -> None:
    # 2 replicas at 2 · X(64) = 10 294 tok/s run at batch 64 exactly
    assert operating_batch(2 * 5147.0, 2, P8) == pytest.approx(64.0, rel=1e-12)
    # halfway between X(64) and X(96) per replica: log-linear interpolation gives b = sqrt(64 · 96) = 78.38
    assert operating_batch(2 * (5147.0 + 6260.0) / 2, 2, P8) == pytest.approx(math.sqrt(64 * 96), rel=1e-12)
    # below 2 · X(8) the replicas run at the smallest measured batch; at and above capacity at the largest
    np.testing.assert_allclose(operating_batch([100.0, 2 * 9806.0, 1e9], 2, P8), [8.0, 512.0, 512.0])
    demand = np.array([5000.0, 12_345.0, 25_000.0, 39_000.0])
    batch = operating_batch(demand, 4, P8)
    np.testing.assert_allclose(4 * throughput_tok_s(batch, P8), demand, rtol=1e-12)
    assert capacity_tok_s(3, P8) == pytest.approx(3 * 9806.0)


def test_autoscaler_targets_the_batch_within_its_limits() -> None:
    site = ScenarioConfig.from_dict(site_scenario(scaling="autoscale", min_replicas=2, max_replicas=4)).sites[0]
    # target batch 256: X = 9010 tok/s per replica; 20 000 tok/s → ceil(2.22) = 3; 1 tok/s → min 2; 1e6 → max 4
    np.testing.assert_array_equal(autoscale_replicas([20_000.0, 1.0, 1e6, 2 * 9010.0], site, P8), [3, 2, 4, 2])


# --- the queue -----------------------------------------------------------------------------------------


def test_backlog_carries_and_its_wait_is_the_fluid_mean_by_hand() -> None:
    # epoch 1: 12 000 tok/s into one replica (capacity 9806) for 900 s: 2194 · 900 = 1 974 600 tokens left queued;
    # the queue grows linearly from 0, so an arrival waits on average (2194 · 900 / 2) / 9806 = 100.683 s
    first = site_epoch(np.array([12_000.0 * 900.0]), 0.0, 0.0, 1, P8, 900.0)
    assert first.backlog_tok == pytest.approx(1_974_600.0)
    assert first.wait_s == pytest.approx(987_300.0 / 9806.0)
    assert first.batch == pytest.approx(512.0) and first.utilisation == pytest.approx(1.0)
    # epoch 2: 5000 tok/s; the backlog drains at 4806 tok/s and empties at 410.9 s < 900 s: mean queue
    # B0² / (2 · 4806 · 900) = 450 706.6 tokens → 45.96 s; served 5000 + 1 974 600 / 900 = 7194 tok/s
    second = site_epoch(np.array([5000.0 * 900.0]), 0.0, first.backlog_tok, 1, P8, 900.0)
    assert second.backlog_tok == 0.0
    assert second.wait_s == pytest.approx(1_974_600.0**2 / (2 * 4806.0 * 900.0) / 9806.0)
    assert second.served_tok_s == pytest.approx(7194.0)
    hand_batch = math.exp(math.log(128) + (7194.0 - 7037.0) / (8223.0 - 7037.0) * math.log(192 / 128))
    assert second.batch == pytest.approx(hand_batch, rel=1e-9)
    # a queue that stays non-empty: mean B0 + (D - C) Δ / 2
    q = fluid_queue(9000.0, 1e6, 9806.0, 900.0)
    assert q.wait_s == pytest.approx((1e6 - 806.0 * 450.0) / 9806.0)
    assert q.backlog_tok == pytest.approx(1e6 - 806.0 * 900.0)


def test_site_inference_is_the_cell_model_at_the_operating_batch() -> None:
    for accounting in ("net", "additive", "measured"):
        service = ServiceConfig(prefill_accounting=accounting)
        for b in (8.0, 78.4, 512.0):
            ref, got = InferenceCoefficients.build(P8, b, service), site_inference(b, P8, service)
            for name in ("prefill_j_per_token", "decode_j_per_token", "itl_s", "gpu_share", "embodied_g_per_gpu_s"):
                assert float(getattr(got, name)) == pytest.approx(getattr(ref, name), rel=1e-12), (accounting, b, name)


# --- the coupling in the env ---------------------------------------------------------------------------


def _step(env: SiteEnv, actions: dict) -> tuple:
    return env.step({a: np.asarray(actions.get(a, [0.0, 0.0]), np.float32) for a in env.agents})


def test_one_users_longer_answer_raises_another_users_itl_in_the_same_epoch() -> None:
    env = SiteEnv({"scenario": site_scenario(replicas=2, requests_per_agent=20_000.0)})
    env.reset(seed=3, options={"day": 0})
    _, _, _, _, base = _step(env, {})
    env.reset(seed=3, options={"day": 0})
    _, _, _, _, longer = _step(env, {"cell0_user_0": [1.0, 0.0]})
    other = "cell1_user_1"  # another cell's user, same answer and channel in both runs
    assert longer[other]["kappa"] == base[other]["kappa"]
    assert longer[other]["airtime_s"] == base[other]["airtime_s"]
    assert longer["cell0_user_0"]["kappa"] > base["cell0_user_0"]["kappa"]
    assert longer[other]["site_batch"] > base[other]["site_batch"]
    assert longer[other]["latency_s"] > base[other]["latency_s"]  # a larger batch: a longer inter-token latency
    assert longer[other]["energy_inference_j"] < base[other]["energy_inference_j"]  # and less energy per token


def test_an_overloaded_site_queues_and_the_wait_counts_in_the_latency() -> None:
    env = SiteEnv({"scenario": site_scenario(replicas=1, background={"kind": "diurnal", "mean_tok_s": 30_000.0})})
    env.reset(seed=0, options={"day": 0})
    obs, _, _, _, info = _step(env, {})
    first = info["cell0_user_0"]
    assert first["site_backlog_tok"] > 0.0 and first["site_wait_s"] > 0.0
    # the wait is added on top of the inference and radio time: rebuild the latency without it
    cell = env.cells[0]
    inference = site_inference(first["site_batch"], env.profile, env.scenario.service)
    out = cell.outcomes(np.array([first["kappa"]]), np.array([first["power_w"]]), 0, users=[0], inference=inference)
    assert first["latency_s"] == pytest.approx(float(out.latency_s[0]) + first["site_wait_s"])
    # the backlog is carried: the agents see it, and the next epoch starts with it
    assert obs["cell0_user_0"][SITE_OBS["site_backlog"]] > 0.0
    _, _, _, _, info = _step(env, {})
    assert env.history["backlog_tok"][1] > env.history["backlog_tok"][0]
    assert info["cell0_user_0"]["site_wait_s"] > first["site_wait_s"]


def test_load_share_latency_cost_by_hand() -> None:
    # T_max 30 s, a 20 s wait: agent 0 is on time; 1 and 2 are late only because of the wait; 3 is late even
    # without it (55 - 20 > 30). The two queue-late answers are shared by tokens 100 : 300 : 0 : 600.
    latency_s, tokens = np.array([10.0, 40.0, 35.0, 55.0]), np.array([100.0, 300.0, 0.0, 600.0])
    cost = load_share_latency_cost(latency_s, 20.0, 30.0, tokens)
    np.testing.assert_allclose(cost, [0.2, 0.6, 0.0, 1.0 + 1.2], rtol=1e-12)
    assert cost.sum() == pytest.approx(3.0)  # the epoch's late answers, whoever pays
    # without a wait every late answer is its own agent's, as under ``own``
    np.testing.assert_array_equal(load_share_latency_cost(latency_s, 0.0, 30.0, tokens), [0.0, 1.0, 1.0, 1.0])


@pytest.mark.parametrize("terms", ["carbon", "all"])
def test_load_share_moves_the_queue_lateness_onto_the_long_answers(terms: str) -> None:
    busy = {"replicas": 1, "background": {"kind": "diurnal", "mean_tok_s": 30_000.0}}
    envs = {}
    for rule in ("own", "load_share"):
        scenario = ScenarioConfig.from_dict(
            {**site_scenario(**busy), "reward": {"terms": terms, "site_latency_cost": rule}}
        )
        envs[rule] = SiteEnv({"scenario": scenario})
        envs[rule].reset(seed=0, options={"day": 0})
    actions = {"cell0_user_0": [1.0, 1.0], "cell1_user_1": [-1.0, 1.0]}  # the longest and the shortest answer
    for _ in range(3):  # the queue builds up: answers wait more each epoch
        steps = {rule: _step(env, actions) for rule, env in envs.items()}
    _, r_own, _, _, own = steps["own"]
    _, r_share, _, _, share = steps["load_share"]
    agents = envs["own"].agents
    late = np.array([own[a]["cost_latency"] for a in agents])
    cost = np.array([share[a]["cost_latency"] for a in agents])
    assert late.sum() >= 2 and own["cell0_user_0"]["site_wait_s"] > 0  # a congested epoch, the same in both envs
    assert [share[a]["latency_s"] for a in agents] == [own[a]["latency_s"] for a in agents]
    assert cost.sum() == pytest.approx(late.sum())
    tokens = np.array([own[a]["kappa"] * own[a]["request_volume"] for a in agents])
    latency_s, wait_s = np.array([own[a]["latency_s"] for a in agents]), own[agents[0]]["site_wait_s"]
    expected = load_share_latency_cost(latency_s, wait_s, envs["own"].scenario.service.t_max_s, tokens)
    np.testing.assert_allclose(cost, expected, rtol=1e-12)
    assert share["cell0_user_0"]["cost_latency"] > share["cell1_user_1"]["cost_latency"]  # the longer answer pays more
    weight = envs["own"].scenario.reward.latency if terms == "all" else 0.0
    for a, late_a, cost_a in zip(agents, late, cost, strict=True):
        assert r_share[a] == pytest.approx(r_own[a] + weight * (late_a - cost_a), abs=1e-9)


def test_site_env_api_and_episode() -> None:
    from ray.rllib.utils.pre_checks.env import check_multiagent_environments

    env = SiteEnv({"scenario": site_scenario(scaling="autoscale", background={"mean_tok_s": 5000.0})})
    check_multiagent_environments(env)
    obs, infos = env.reset(seed=1)
    assert env.agents == ["cell0_user_0", "cell0_user_1", "cell1_user_0", "cell1_user_1"]
    assert all(obs[a].shape == (len(SITE_OBS_FEATURES),) and env.observation_spaces[a].contains(obs[a]) for a in obs)
    for _ in range(env.T):
        obs, rewards, terminateds, truncateds, infos = _step(env, {})
        assert set(rewards) == set(env.agents)
    assert truncateds["__all__"] and not terminateds["__all__"]
    h = {k: np.asarray(v) for k, v in env.history.items()}
    assert len(h["batch"]) == env.T
    # the autoscaler re-plans each epoch from the demand it saw in the last one (and what is still queued)
    seen = h["background_tok_s"] + h["agent_tok_s"] + h["backlog_tok"] / env.epoch_s
    np.testing.assert_array_equal(h["replicas"][1:], autoscale_replicas(seen[:-1], env.site, env.profile))
    assert h["replicas"][0] == env.site.replicas and len(set(h["replicas"])) > 1


def test_the_sites_joint_step_is_each_cell_stepped_alone() -> None:
    """SiteCells steps all the site's users at once with per-user cell parameters; each user's numbers must be
    those of its cell stepped alone (CellEnv's decide, outcomes at the site's batch, settle), bit for bit: cells
    of different sizes, an interfered cell, the BS budget clipping some epochs and the mean-QoE guard binding."""
    data = site_scenario(scaling="autoscale", background={"kind": "diurnal", "mean_tok_s": 5000.0})
    data["cells"][0]["num_users"] = 3
    data["cells"][1].update(num_users=5, interference_to_noise_db=3.0)
    data["reward"] = {"site_latency_cost": "own"}
    env = SiteEnv({"scenario": data})
    env.reset(seed=5)
    alone = [CellEnv({"scenario": env.scenario, "cell_index": i, "seed": 5}) for i in env.cell_indices]
    for cell in alone:
        cell.reset(seed=5, options={"day": env.site_day.day})
    rng = np.random.default_rng(0)
    clipped = guarded = 0
    for t in range(env.T):
        actions = rng.uniform(-1.0, 1.0, (len(env.agents), 2)).astype(np.float32)
        actions[:, 0] = -1.0 if t % 3 else actions[:, 0]  # short answers: the guard binds late in the day
        _, rewards, _, _, infos = env.step(dict(zip(env.agents, actions, strict=True)))
        first = infos[env.agents[0]]
        inference = site_inference(first["site_batch"], env.profile, env.scenario.service)
        rows = np.split(actions, np.cumsum(env.users.sizes)[:-1])
        for cell, ids, acts, volume in zip(alone, env.agent_ids, rows, env.site_day.volume, strict=True):
            kappa_policy, kappa, power_w, clip = cell.decide(dict(zip(cell.agents, acts, strict=True)))
            out = cell.outcomes(kappa, power_w, t, inference=inference)
            out.latency_s = out.latency_s + first["site_wait_s"]
            weight = volume[:, t] / env.site.requests_per_agent
            _, r, _, _, info = cell.settle(out, kappa_policy, kappa, power_w, clip, weight, observe=False)
            for user, a in zip(cell.agents, ids, strict=True):
                assert rewards[a] == r[user]
                assert {k: v for k, v in infos[a].items() if k in info[user]} == info[user]
            clipped += clip
            guarded += sum(i["qoe_guard_added"] > 0.0 for i in info.values())
        assert [c.t for c in env.cells] == [t + 1] * len(env.cells)
        np.testing.assert_array_equal(np.concatenate([c._qoe_sum for c in env.cells]), env.users._qoe_sum)
    assert clipped > 0 and guarded > 0


# --- the background --------------------------------------------------------------------------------------


def test_background_forecast_is_causal() -> None:
    rng = np.random.default_rng(0)
    day = SiteDay(0, rng.uniform(1e3, 2e4, 96), rng.uniform(1e3, 2e4, 96 + 12), [])
    for t in (0, 1, 40, 95):
        before = background_forecast_tok_s(day, t, 900.0)
        changed = SiteDay(0, day.background_tok_s.copy(), day.climatology_tok_s, [])
        changed.background_tok_s[t:] *= 3.0  # the future (and the present, not yet observed)
        np.testing.assert_array_equal(background_forecast_tok_s(changed, t, 900.0), before)
    # the forecast keeps the last epoch's ratio to the climatology
    f = background_forecast_tok_s(day, 10, 900.0)
    ratio = day.background_tok_s[9] / day.climatology_tok_s[9]
    np.testing.assert_allclose(
        f, [day.background_tok_s[9], ratio * day.climatology_tok_s[14], ratio * day.climatology_tok_s[22]]
    )


def test_diurnal_follows_local_time_while_carbon_stays_utc() -> None:
    spec = DiurnalSpec(peak_to_trough=3.0, peak_hour_local=14.0)
    hours_utc = np.arange(96) * 0.25
    shape = diurnal_shape(hours_utc, 5.5, spec)  # IN-WE is UTC+5:30: the 14:00 local peak is at 08:30 UTC
    assert hours_utc[np.argmax(shape)] == 8.5
    assert shape.max() / shape.min() == pytest.approx(3.0) and shape.mean() == pytest.approx(1.0)
    quiet = {"day_sigma": 0.0, "epoch_sigma": 0.0, "peak_hour_local": 14.0}
    env = SiteEnv({"scenario": site_scenario(utc_offset_h=-8.0, background={"mean_tok_s": 1000.0, "diurnal": quiet})})
    env.reset(seed=0, options={"day": 3})
    assert np.argmax(env.site_day.background_tok_s) == 22 * 4  # 14:00 PST = 22:00 UTC
    # the cells' carbon stays on the UTC trace: the site cells read the datacenter trace of their own CellEnv
    np.testing.assert_array_equal(env.cells[0].episode.ci_dc_g_per_kwh, env.cells[1].episode.ci_dc_g_per_kwh)


def _write(path, rows: list[str]) -> str:
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def test_azure_csv_background_is_aggregated_per_epoch(tmp_path) -> None:
    rows = [
        "2024-05-09 23:50:00.1234567,10,999",  # the partial first day is dropped
        "2024-05-10 00:01:00.5,10,100",
        "2024-05-10 00:14:59,10,200",
        "2024-05-10 12:00:00+00:00,10,450",
        "2024-05-11 00:10:00,10,999",  # the partial last day is dropped
    ]
    table = background_csv_tok_s(_write(tmp_path / "bg.csv", rows), 900.0)
    assert table.shape == (1, 96)
    assert table[0, 0] == pytest.approx(300.0 / 900.0)
    assert table[0, 48] == pytest.approx(450.0 / 900.0)
    assert table.sum() == pytest.approx(750.0 / 900.0)


# --- bad configurations ------------------------------------------------------------------------------------


def test_bad_site_configs_name_the_field(tmp_path) -> None:
    bad = site_scenario()
    bad["cells"][1]["site"] = "nowhere"
    with pytest.raises(ConfigError) as e:
        ScenarioConfig.from_dict(bad)
    assert str(e.value) == "scenario.cells.1.site: must name one of the sites ['s'], got 'nowhere'"
    with pytest.raises(ConfigError) as e:
        ScenarioConfig.from_dict(site_scenario(replicas=0))
    assert str(e.value) == "scenario.sites.0.replicas: must be an integer in [1, 100000], got 0"
    with pytest.raises(ConfigError) as e:
        ScenarioConfig.from_dict(site_scenario(min_replicas=5, max_replicas=2))
    assert "scenario.sites.0.min_replicas: must not exceed max_replicas (2), got 5" in str(e.value)
    with pytest.raises(ConfigError) as e:
        ScenarioConfig.from_dict({**site_scenario(), "reward": {"site_latency_cost": "everyone"}})
    assert str(e.value) == "scenario.reward.site_latency_cost: must be one of ['own', 'load_share'], got 'everyone'"
    mixed = site_scenario()
    del mixed["cells"][1]["site"]  # a private cell next to a site: training and evaluation would leave it out
    with pytest.raises(ConfigError, match=r"^scenario.cells.1.site: must name one of the sites \['s'\] when"):
        check_every_cell_on_a_site(ScenarioConfig.from_dict(mixed))
    path = _write(tmp_path / "bad.csv", ["2024-05-10 00:01:00,1,2", "10/05/2024 00:02,1,2", "yesterday,1,2"])
    with pytest.raises(ConfigError) as e:
        SiteEnv({"scenario": site_scenario(background={"kind": "csv", "csv": path})})
    message = str(e.value)
    assert message.startswith("scenario.sites.0.background.csv: ")
    assert "2 timestamp(s)" in message and "line 3 ('10/05/2024 00:02')" in message and "line 4" in message
    short = _write(tmp_path / "short.csv", ["2024-05-10 00:01:00,1,2", "2024-05-10 05:00:00,1,2"])
    with pytest.raises(ConfigError, match=r"scenario.sites.0.background.csv: .* at least one whole UTC day"):
        SiteEnv({"scenario": site_scenario(background={"kind": "csv", "csv": short})})


def test_scenarios_without_sites_serialise_as_before() -> None:
    d = ScenarioConfig().to_dict()
    assert "sites" not in d
    assert ScenarioConfig.from_dict(d) == ScenarioConfig()
    with_site = ScenarioConfig.from_dict(site_scenario())
    assert ScenarioConfig.from_dict(with_site.to_dict()) == with_site


# --- per-cell carbon normalisation (issue 18, item 7) ---------------------------------------------------------


def test_per_cell_normalisation_divides_each_cells_carbon_by_its_typical_request() -> None:
    from aolo.envs.cell_env import CellEnv
    from aolo.envs.reference import make_reference_policy
    from aolo.envs.rollout import run_episode

    base = ScenarioConfig().replace(**{"reward.terms": "carbon"})  # coal-bs/hydro-dc and hydro-bs/coal-dc
    per_cell = base.replace(**{"reward.carbon_normalisation": "per_cell"})
    scales = []
    for c in range(2):
        env_global = CellEnv({"scenario": base, "cell_index": c})
        env_cell = CellEnv({"scenario": per_cell, "cell_index": c})
        assert env_global.carbon_scale_g == base.reward.carbon_scale_g  # the default is unchanged
        glob = run_episode(env_global, make_reference_policy("myopic"), day=3, seed=3)
        norm = run_episode(env_cell, make_reference_policy("myopic"), day=3, seed=3)
        np.testing.assert_array_equal(glob.fields["carbon_total_g"], norm.fields["carbon_total_g"])
        np.testing.assert_allclose(norm.rewards, glob.rewards * 0.005 / env_cell.carbon_scale_g, rtol=1e-12)
        # the unit is a typical request of the cell: within 2x of myopic's mean carbon per request on a day
        assert 0.5 < env_cell.carbon_scale_g / glob.fields["carbon_total_g"].mean() < 2.0
        scales.append(env_cell.carbon_scale_g)
    assert scales[1] / scales[0] > 10.0  # the coal datacenter's requests are an order of magnitude dirtier


# --- site metrics and the site-load figure ---------------------------------------------------------------------


def test_site_metrics_and_load_figure(tmp_path) -> None:
    from aolo.envs.reference import make_reference_policy
    from aolo.envs.site_rollout import PerCellPolicy, run_site_episode, summarize_sites
    from aolo.platform.plots import write_study_figures
    from aolo.platform.results import StudyData, site_load

    env = SiteEnv({"scenario": site_scenario(scaling="autoscale", background={"mean_tok_s": 8000.0})})
    records = run_site_episode(env, PerCellPolicy(lambda: make_reference_policy("myopic"), "myopic"), day=2, seed=2)
    assert [r.cell for r in records] == ["a", "b"] and records[0].fields["qoe"].shape == (2, env.T)
    m = summarize_sites(records, 0.8, 0.3, 30.0)
    h = {k: np.asarray(v) for k, v in env.history.items()}
    assert m["site/s/utilisation_mean"] == pytest.approx(h["utilisation"].mean())
    assert m["site/s/batch_mean"] == pytest.approx(h["batch"].mean())
    assert m["site/s/utilisation_h05"] == pytest.approx(h["utilisation"][20:24].mean())  # epochs 20-23 = 05:00 UTC
    volume = np.concatenate([r.extra["volume"].ravel() for r in records])
    carbon = np.concatenate([r.fields["carbon_total_g"].ravel() for r in records])
    assert m["carbon_g_per_request"] == pytest.approx((volume * carbon).sum() / volume.sum())  # per request served
    assert m["carbon_g_per_representative_request"] == pytest.approx(carbon.mean())
    assert m["requests"] == pytest.approx(volume.sum())
    row = {"cell": "all", **{k: str(v) for k, v in m.items()}}
    data = StudyData(cells=["a", "b"], q_min=0.8, learned={}, references={"myopic": [row]}, sites=["s"])
    utilisation, ci = site_load(data)
    np.testing.assert_allclose(utilisation["myopic"]["s"][5], h["utilisation"][20:24].mean())
    assert len(ci["s"]) == 24
    assert (tmp_path / "site_load.png") in write_study_figures(data, tmp_path)
