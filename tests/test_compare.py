"""``aolo compare``: table statistics and Pareto front on hand numbers; a real compare on the smoke preset."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from aolo.platform.cli import main
from aolo.platform.compare_stats import RunOutcome, format_table, reduction, reduction_interval, summarize, t_interval
from aolo.platform.plots import pareto_front

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = ("carbon.png", "carbon_vs_qoe.png", "learning_curves.png", "cell_carbon.png")


# --- statistics ------------------------------------------------------------------------------------------


def test_t_interval_on_hand_numbers():
    # mean 3, s = sqrt(2.5), t(0.975, df=4) = 2.7764451 -> 2.7764451 * 1.5811388 / sqrt(5) = 1.9632432
    mean, half = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == pytest.approx(3.0)
    assert half == pytest.approx(1.9632432, rel=1e-6)
    # two values: t(0.975, df=1) = 12.7062047, s / sqrt(n) = 1
    assert t_interval([1.0, 3.0]) == pytest.approx((2.0, 12.7062047))
    assert t_interval([0.42]) == (0.42, None)
    with pytest.raises(ValueError):
        t_interval([])


def test_reduction_is_relative_to_the_baseline():
    assert reduction(0.8, 1.0) == pytest.approx(0.2)
    assert reduction(1.25, 1.0) == pytest.approx(-0.25)


def test_reduction_interval_by_hand():
    # a = [0.8, 1.0], b = [1.0, 1.2]: s² = 0.02 each; squared relative standard errors 0.02 / (2 · 0.9²) =
    # 0.0123457 and 0.02 / (2 · 1.1²) = 0.0082645; Welch df = 0.0206102² / (0.0123457² + 0.0082645²) = 1.92453;
    # t_0.975(1.92453) = 4.46844; half-width = 4.46844 · (0.9 / 1.1) · sqrt(0.0206102) = 0.524864
    value, half = reduction_interval([0.8, 1.0], [1.0, 1.2])
    assert value == pytest.approx(1 - 0.9 / 1.1)
    assert half == pytest.approx(0.524864, rel=1e-5)
    assert reduction_interval([0.9], [1.0, 1.2]) == (pytest.approx(1 - 0.9 / 1.1), None)
    assert reduction_interval([0.9, 0.9], [1.2, 1.2]) == (pytest.approx(0.25), 0.0)
    # more seeds, less spread -> a narrower interval around the same reduction
    assert reduction_interval([0.85, 0.95] * 5, [1.05, 1.15] * 5)[1] < 0.1


def _metrics(carbon: float, qoe: float = 0.85, nj: float = 5.0) -> dict[str, float]:
    return {
        "carbon_g_per_request": carbon,
        "gap_to_bound": carbon / 0.5 - 1,
        "qoe_mean": qoe,
        "qoe_violation_rate": 0.0,
        "latency_violation_rate": 0.01,
        "actor_nj_per_decision": nj,
    }


def test_summarize_means_ci_reductions_and_failures():
    outcomes = [
        RunOutcome("sdrl", "learned", 0, _metrics(0.8, nj=2.0)),
        RunOutcome("sdrl", "learned", 1, _metrics(1.0, nj=4.0)),
        RunOutcome("sac", "learned", 0, _metrics(1.0)),
        RunOutcome("sac", "learned", 1, _metrics(1.2)),
        RunOutcome("td3", "learned", 0, _metrics(1.5)),
        RunOutcome("td3", "learned", 1, None, error="boom"),
        RunOutcome("ppo", "learned", 0, None, error="bad settings"),
        RunOutcome("hindsight", "reference", None, _metrics(0.5)),
    ]
    rows = {r.policy: r for r in summarize(outcomes)}
    sdrl = rows["sdrl"]
    assert (sdrl.n, sdrl.n_failed) == (2, 0)
    assert sdrl.carbon_mean == pytest.approx(0.9)
    assert sdrl.carbon_ci == pytest.approx(12.7062047 * 0.1, rel=1e-6)  # s = 0.1414, s / sqrt(2) = 0.1
    assert sdrl.means["actor_nj_per_decision"] == pytest.approx(3.0)
    assert sdrl.reductions["sac"] == pytest.approx(1 - 0.9 / 1.1)
    assert sdrl.reductions["td3"] == pytest.approx(1 - 0.9 / 1.5)  # td3's one successful seed
    assert sdrl.reductions["ppo"] is None  # ppo has no successful run
    assert sdrl.reduction_cis["sac"] == pytest.approx(0.524864, rel=1e-5)
    assert sdrl.reduction_cis["td3"] is None and sdrl.reduction_cis["ppo"] is None
    assert rows["sac"].reductions["sac"] is None and rows["sac"].reduction_cis["sac"] is None
    assert (rows["td3"].n, rows["td3"].n_failed, rows["td3"].carbon_ci) == (1, 1, None)
    assert rows["ppo"].carbon_mean is None and rows["ppo"].errors == ["seed 0: bad settings"]
    assert rows["hindsight"].reductions["sac"] == pytest.approx(1 - 0.5 / 1.1)

    table = format_table(list(rows.values()))
    lines = {line.split()[0]: line for line in table.splitlines()[2:-1]}
    assert "900.000 ± 1270.620 (n=2)" in lines["sdrl"] and "+18.2% ± 52.5" in lines["sdrl"]
    assert "1500.000 (n=1)" in lines["td3"] and "1 of 2 seeds FAILED" in lines["td3"]
    assert lines["ppo"].rstrip().endswith("FAILED")
    assert "reference" in lines["hindsight"]
    assert table.splitlines()[-1].startswith("vs <baseline>: carbon reduction")


def test_violation_shares_are_never_rounded_to_zero():
    """One late answer in 15 360 (SAC seed 3 on paper_models) printed as 0.000 in the first study's table."""
    from aolo.platform.console import share

    assert [share(v) for v in (0.0, 1 / 15360, 0.0017, 0.0125, None)] == ["0", "0.0065%", "0.17%", "1.25%", "-"]


def test_pareto_front_on_hand_points():
    points = [(1.0, 0.5), (2.0, 0.9), (1.5, 0.4), (3.0, 0.9), (0.5, 0.2), (1.0, 0.5), (2.0, 0.95)]
    # (1.5, 0.4) is dominated by (1.0, 0.5); (2.0, 0.9) and (3.0, 0.9) by (2.0, 0.95); index 5 repeats index 0
    assert pareto_front(points) == [4, 0, 6]
    assert pareto_front([]) == []
    assert pareto_front([(1.0, 0.8)]) == [0]


# --- a real comparison -----------------------------------------------------------------------------------


def _preset(tmp_path: Path, algorithms: list[str]) -> Path:
    path = tmp_path / "compare_smoke.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "base": "smoke",
                "training": {"ppo_minibatch_size": 4096},  # larger than PPO's train batch: RLlib refuses, ppo fails
                "compare": {"algorithms": algorithms, "seeds": [0]},
            }
        )
    )
    return path


def _runs(db: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("smoke")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("aolo.command") == "compare" and "aolo.policy" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    return client, parent, children


@pytest.mark.ray
@pytest.mark.slow
def test_compare_on_smoke_logs_parent_children_table_and_plots(tmp_path, ray_session, capsys):
    out = tmp_path / "out"
    code = main(["compare", "--preset", str(_preset(tmp_path, ["sdrl", "sac", "ppo"])), "--output", str(out)])
    assert code == 1  # ppo failed, the others went on
    printed = capsys.readouterr().out
    assert "[compare] started sdrl seed 0" in printed and "ppo seed 0 FAILED" in printed
    assert "[compare] sdrl seed 0 finished in" in printed
    assert "iter " not in printed  # no per-iteration lines from concurrent trials
    assert "carbon mg/request (95% CI)" in printed and "(n=1)" in printed

    client, parent, children = _runs(out / "mlruns.db")
    assert parent.info.status == "FINISHED"
    assert set(children) == {
        "sdrl-seed0",
        "sac-seed0",
        "ppo-seed0",
        "reference-hindsight",
        "reference-fixed",
        "reference-myopic",
        "reference-myopic_true_csi",
        "reference-forecast",
    }
    assert children["ppo-seed0"].info.status == "FAILED"
    assert all(r.info.status == "FINISHED" for name, r in children.items() if name != "ppo-seed0")
    carbon = {name: r.data.metrics["eval/carbon_g_per_request"] for name, r in children.items() if name != "ppo-seed0"}
    assert parent.data.metrics["compare/reduction_vs_sac"] == pytest.approx(
        1 - carbon["sdrl-seed0"] / carbon["sac-seed0"]
    )
    assert "compare/reduction_vs_ppo" not in parent.data.metrics  # no successful ppo run to compare with
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"table.csv", "config.yaml", *PLOTS}

    folder = out / "smoke" / "compare"
    with (folder / "table.csv").open() as f:
        table = {row["policy"]: row for row in csv.DictReader(f)}
    assert list(table) == ["sdrl", "sac", "ppo", "hindsight", "fixed", "myopic", "myopic_true_csi", "forecast"]
    assert float(table["sdrl"]["carbon_g_per_request"]) == pytest.approx(carbon["sdrl-seed0"])
    assert float(table["fixed"]["carbon_g_per_request"]) == pytest.approx(carbon["reference-fixed"])
    assert table["sdrl"]["carbon_g_per_request_ci95"] == ""  # one seed: no interval
    assert (table["ppo"]["n"], table["ppo"]["n_failed"]) == ("0", "1") and "minibatch_size" in table["ppo"]["errors"]
    assert 0.0 <= float(table["hindsight"]["gap_to_bound"]) < 1e-3  # the played plan vs the strict bound
    # the trials evaluate without the bound (no trial waits for the references); the driver adds their gap after
    bound = children["reference-hindsight"].data.metrics["eval/bound_g_per_request"]
    for algo in ("sdrl", "sac"):
        gap = carbon[f"{algo}-seed0"] / bound - 1
        assert children[f"{algo}-seed0"].data.metrics["eval/gap_to_bound"] == pytest.approx(gap, rel=1e-12)
        assert float(table[algo]["gap_to_bound"]) == pytest.approx(gap)
        document = json.loads((out / "smoke" / f"{algo}_seed0" / "results.json").read_text())
        assert document["summary"]["gap_to_bound"] == pytest.approx(gap, rel=1e-12)
        assert document["bound"] == {"bound_g_per_request": bound, "gap_to_bound": document["summary"]["gap_to_bound"]}
        with (out / "smoke" / f"{algo}_seed0" / "evaluation.csv").open() as f:
            assert float(list(csv.DictReader(f))[-1]["gap_to_bound"]) == pytest.approx(gap, rel=1e-12)
    for name in PLOTS:
        assert (folder / name).read_bytes()[:8] == PNG_MAGIC


@pytest.mark.ray
def test_compare_parent_run_fails_when_nothing_trains(tmp_path, ray_session, capsys):
    out = tmp_path / "out"
    assert main(["compare", "--preset", str(_preset(tmp_path, ["ppo"])), "--output", str(out)]) == 1
    assert "every training FAILED" in capsys.readouterr().out
    _, parent, children = _runs(out / "mlruns.db")
    assert parent.info.status == "FAILED"
    assert children["ppo-seed0"].info.status == "FAILED"
    assert children["reference-hindsight"].info.status == "FINISHED"
    assert (out / "smoke" / "compare" / "table.csv").is_file()


# --- cluster settings and progress ------------------------------------------------------------------------


def test_cluster_settings_validate_the_field_and_range():
    from aolo.envs.config import ConfigError
    from aolo.platform.compare import ClusterSettings

    with pytest.raises(ConfigError, match="max_concurrent: must be an integer >= 1"):
        ClusterSettings(max_concurrent=0)
    with pytest.raises(ConfigError, match="num_learners: must be an integer >= 0"):
        ClusterSettings(num_learners=-1)
    with pytest.raises(ConfigError, match="num_gpus_per_learner: must be a number >= 0"):
        ClusterSettings(num_gpus_per_learner=-0.5)


def test_summary_line_counts_and_eta():
    from types import SimpleNamespace

    from aolo.platform.compare import summary_line

    trials = [SimpleNamespace(status=s) for s in ("TERMINATED",) * 3 + ("RUNNING",) * 2 + ("PENDING",) * 15]
    # 17 left, mean 100 s, 2 at a time -> 17 * 100 / 2 = 850 s = 14m10s
    assert summary_line(3, 20, trials, [90.0, 100.0, 110.0]) == "3/20 done, 2 running, 15 pending, ETA 14m10s"
    assert summary_line(0, 4, trials[:0], []) == "0/4 done, 0 running, 4 pending"


def test_gpu_learners_without_a_gpu_are_a_clear_error(tmp_path, ray_session, capsys, monkeypatch):
    """No GPU in the cluster: the GPU learner path is skipped with an error naming the flag (no CPU fallback).
    The cluster is made GPU-less here, so the test runs the same on a machine with a GPU."""
    import ray

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    out = tmp_path / "out"
    code = main(
        [
            "compare",
            "--preset",
            str(_preset(tmp_path, ["sac"])),
            "--output",
            str(out),
            "--num-gpus-per-learner",
            "1",
            "--tracking-uri",
            "none",
        ]
    )
    assert code == 2  # a user error, before anything trains
    err = capsys.readouterr().err
    assert "num_gpus_per_learner" in err and "no GPU" in err and "skipped" in err


@pytest.mark.ray
@pytest.mark.slow
def test_compare_resume_does_not_retrain_finished_trials(tmp_path, ray_session, capsys):
    out = tmp_path / "out"
    args = [
        "compare",
        "--preset",
        str(_preset(tmp_path, ["sac", "td3"])),
        "--output",
        str(out),
        "--max-concurrent",
        "2",
    ]
    assert main(args) == 0
    history = {a: (out / "smoke" / f"{a}_seed0" / "history.csv").read_text() for a in ("sac", "td3")}
    assert main(args + ["--resume"]) == 0
    assert "max-concurrent" not in capsys.readouterr().err
    # both trainings had reached the budget: evaluated again, not one more iteration trained
    assert {a: (out / "smoke" / f"{a}_seed0" / "history.csv").read_text() for a in ("sac", "td3")} == history
    _, _, children = _runs_all(out / "mlruns.db")
    resumed = [r for r in children if r.data.tags.get("aolo.resumed_at_env_steps") == "96"]
    assert {r.info.run_name for r in resumed} == {"sac-seed0", "td3-seed0"}
    assert all(r.data.params["num_learners"] == "0" for r in children if r.info.run_name.endswith("seed0"))


def _runs_all(db: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("smoke")
    runs = client.search_runs([experiment.experiment_id])
    return client, runs, [r for r in runs if "mlflow.parentRunId" in r.data.tags]
