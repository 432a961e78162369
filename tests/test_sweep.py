"""``aolo sweep``: search-space validation, the selection rule, and a real 2-trial Tune + MLflow sweep."""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from aolo.envs.config import ConfigError
from aolo.platform.cli import main
from aolo.platform.console import EXIT_INTERRUPTED, EXIT_USER_ERROR
from aolo.platform.plots import plot_sweep_tradeoff
from aolo.platform.presets import experiment_from_raw, load_experiment
from aolo.platform.results import CARBON_METRIC
from aolo.platform.sweep import (
    SelectionRule,
    TrialRow,
    apply_params,
    format_table,
    parse_sweep,
    select_trial,
    sweep_raw,
    trial_label,
)
from aolo.platform.tracking import experiment_params

SMOKE = load_experiment("smoke")


def _spec(search_space, **sections):
    return parse_sweep({"search_space": search_space, **sections}, SMOKE)


# --- search space ----------------------------------------------------------------------------------------


def test_forms_parse_and_apply():
    spec = _spec(
        {
            "scenario.reward.carbon": {"grid": [0.5, 2.0]},
            "scenario.reward.qoe": {"choice": [1.0, 3.0]},
            "scenario.reward.deficit": {"uniform": [5, 40]},
            "training.actor_lr": {"loguniform": [1e-4, 1e-3]},
            "algorithm": {"choice": ["sac", "td3"]},
            "seed": {"grid": [0, 1]},
        },
        selection={"max_qoe_violation_rate": 0.1},
        sweep={"num_samples": 2},
    )
    assert spec.keys[:2] == ("scenario.reward.carbon", "scenario.reward.qoe")
    assert [d.form for d in spec.dimensions] == ["grid", "choice", "uniform", "loguniform", "choice", "grid"]
    assert spec.selection == SelectionRule(max_qoe_violation_rate=0.1, max_latency_violation_rate=0.01)
    assert (spec.num_samples, spec.max_concurrent_trials, spec.max_failures) == (2, 1, 1)
    changed = apply_params(
        SMOKE, {"scenario.reward.carbon": 2.0, "training.actor_lr": 5e-4, "algorithm": "td3", "seed": 1}
    )
    assert changed.scenario.reward.carbon == 2.0 and changed.training.actor_lr == 5e-4
    assert changed.algorithm == "td3" and changed.scenario.reward.qoe == SMOKE.scenario.reward.qoe


@pytest.mark.parametrize(
    "key, entry, words",
    [
        (
            "scenario.reward.carbon",
            [0.5, 1.0],
            ["search_space.scenario.reward.carbon", "{grid: [v1, v2, ...]}", "{loguniform: [lo, hi]}"],
        ),
        (
            "scenario.reward.carbon",
            {"grid": [1.0], "choice": [2.0]},
            ["search_space.scenario.reward.carbon", "exactly one"],
        ),
        ("scenario.reward.carbon", {"range": [1, 2]}, ["search_space.scenario.reward.carbon", "{uniform: [lo, hi]}"]),
        ("scenario.reward.carbon", {"grid": []}, ["search_space.scenario.reward.carbon", "non-empty list"]),
        ("scenario.reward.carbon", {"uniform": [2.0, 1.0]}, ["search_space.scenario.reward.carbon", "lo < hi"]),
        ("training.actor_lr", {"loguniform": [0.0, 1e-3]}, ["search_space.training.actor_lr", "0 < lo"]),
        ("scenario.reward.carbn", {"grid": [1.0]}, ["search_space.scenario.reward.carbn", "unknown key"]),
        ("scenario.reward.carbon", {"grid": [1.0, -1.0]}, ["search_space.scenario.reward.carbon", "-1"]),
        ("training.actor_lrr", {"choice": [1e-3]}, ["search_space.training.actor_lrr", "unknown key"]),
        ("training.env_steps", {"uniform": [10, 20]}, ["search_space.training.env_steps", "integer"]),
        ("reward.carbon", {"grid": [1.0]}, ["search_space.reward.carbon", "'scenario.<field path>'"]),
        ("algorithm", {"choice": ["sac", "dqn"]}, ["search_space.algorithm", "dqn"]),
    ],
)
def test_bad_search_space_entries_name_the_key(key, entry, words):
    with pytest.raises(ConfigError) as error:
        _spec({key: entry})
    for word in words:
        assert word in str(error.value)


@pytest.mark.parametrize(
    "sections, words",
    [
        ({"selection": {"max_qoe_violation": 0.1}}, ["selection", "max_latency_violation_rate"]),
        ({"selection": {"max_qoe_violation_rate": 1.5}}, ["selection.max_qoe_violation_rate", "[0, 1]"]),
        ({"sweep": {"num_samples": 0}}, ["sweep.num_samples", ">= 1"]),
        ({"sweep": {"retries": 1}}, ["sweep", "max_failures"]),
    ],
)
def test_bad_selection_and_sweep_sections(sections, words):
    with pytest.raises(ConfigError) as error:
        _spec({"scenario.reward.carbon": {"grid": [1.0]}}, **sections)
    for word in words:
        assert word in str(error.value)


def test_bad_sweep_file_is_a_one_line_cli_error_before_anything_is_written(tmp_path, capsys):
    bad = tmp_path / "bad_sweep.yaml"
    bad.write_text(yaml.safe_dump({"search_space": {"scenario.reward.carbon": {"uniform": [1.0]}}}))
    out = tmp_path / "out"
    assert main(["sweep", "--preset", "smoke", "--sweep-config", str(bad), "--output", str(out)]) == EXIT_USER_ERROR
    assert capsys.readouterr().err.startswith("aolo: error: search_space.scenario.reward.carbon: {uniform: [lo, hi]}")
    assert not out.exists()


def test_missing_search_space_is_an_error():
    with pytest.raises(ConfigError, match="search_space: must be a non-empty mapping"):
        parse_sweep({}, SMOKE)


def test_sweep_file_sections_apply_on_top_of_the_preset(tmp_path):
    path = _sweep_file(tmp_path, base="quick")
    on_smoke = experiment_from_raw(sweep_raw("smoke", str(path)))
    assert on_smoke.scenario.name == "smoke" and on_smoke.training == SMOKE.training
    assert on_smoke.raw["search_space"] == {"scenario.reward.carbon": {"grid": [0.5, 2.0]}}
    alone = experiment_from_raw(sweep_raw(None, str(path)))
    assert alone.scenario.name == "quick"
    shipped = load_experiment("reward_weights")  # the shipped sweep file is a valid sweep on its own
    assert shipped.scenario.name == "quick"
    assert set(parse_sweep(shipped.raw, shipped).keys) >= {"scenario.reward.carbon", "scenario.reward.qoe"}


# --- selection rule --------------------------------------------------------------------------------------


def _row(name, carbon, qoe_viol, lat_viol, status="FINISHED"):
    metrics = (
        {}
        if carbon is None
        else {
            CARBON_METRIC: carbon,
            "qoe_violation_rate": qoe_viol,
            "latency_violation_rate": lat_viol,
            "qoe_mean": 0.85,
        }
    )
    return TrialRow(name, status, {"scenario.reward.carbon": 1.0}, metrics)


def test_selection_picks_lowest_carbon_within_thresholds():
    rule = SelectionRule(max_qoe_violation_rate=0.05, max_latency_violation_rate=0.01)
    rows = [
        _row("a", 0.0100, 0.00, 0.000),
        _row("b", 0.0050, 0.10, 0.000),  # lowest carbon, but QoE constraint violated
        _row("c", 0.0060, 0.00, 0.020),  # latency constraint violated
        _row("d", 0.0080, 0.05, 0.010),  # exactly at both thresholds: qualifies
        _row("e", 0.0090, 0.00, 0.000),
        _row("f", None, None, None, status="ERROR"),
        _row("g", math.nan, 0.0, 0.0),  # a NaN carbon never qualifies
    ]
    assert select_trial(rows, rule).name == "d"
    table = format_table(rows, rule, rows[3])
    assert "* " in table.splitlines()[4] and table.splitlines()[4].split()[1] == "d"


def test_trial_label_and_tradeoff_plot(tmp_path):
    spec = parse_sweep(
        {
            "search_space": {
                "scenario.reward.carbon": {"grid": [0.5, 2.0]},
                "scenario.reward.deficit": {"choice": [150.0]},
            }
        },
        SMOKE,
    )
    row = TrialRow(
        "t0",
        "FINISHED",
        {"scenario.reward.carbon": 0.5, "scenario.reward.deficit": 150.0},
        {CARBON_METRIC: 0.004, "qoe_mean": 0.81},
    )
    assert trial_label(row, spec) == "carbon=0.5 deficit=150"
    path = plot_sweep_tradeoff(
        [("a", 0.81, 0.004, True), ("b", 0.7, 0.003, False)],
        "a",
        tmp_path / "t.png",
        0.8,
        references={"hindsight": (0.8, 0.0035)},
    )
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_selection_when_no_trial_qualifies():
    rule = SelectionRule(max_qoe_violation_rate=0.0, max_latency_violation_rate=0.0)
    rows = [_row("a", 0.01, 0.2, 0.0), _row("b", 0.02, 0.0, 0.5), _row("c", None, None, None, status="ERROR")]
    assert select_trial(rows, rule) is None
    assert select_trial([], rule) is None


# --- a real sweep ----------------------------------------------------------------------------------------


def _sweep_file(tmp_path: Path, **extra) -> Path:
    path = tmp_path / "two_carbon_weights.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                **extra,
                "search_space": {"scenario.reward.carbon": {"grid": [0.5, 2.0]}},
                "selection": {"max_qoe_violation_rate": 1.0, "max_latency_violation_rate": 1.0},
                "sweep": {"num_samples": 1, "max_concurrent_trials": 1, "max_failures": 1},
            }
        )
    )
    return path


def _sweep_runs(db: Path):
    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("smoke")
    return client.search_runs([experiment.experiment_id], filter_string="tags.`aolo.command` = 'sweep'")


@pytest.mark.ray
@pytest.mark.slow
def test_smoke_sweep_logs_one_run_per_trial_selects_and_resumes(tmp_path, ray_session, capsys):
    sweep_file = _sweep_file(tmp_path)
    out = tmp_path / "out"
    args = ["sweep", "--preset", "smoke", "--sweep-config", str(sweep_file), "--output", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "selected smoke_" in printed and "scenario.reward.carbon" in printed

    runs = _sweep_runs(out / "mlruns.db")
    assert len(runs) == 2
    assert {float(r.data.params["reward.carbon"]) for r in runs} == {0.5, 2.0}
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.params["algorithm"] == "sac" and r.data.params["env_steps"] == "96" for r in runs)
    trained = set(experiment_params(SMOKE, "sac", 0))  # the names `aolo train` logs, no sweep-only spellings
    assert all(set(r.data.params) == trained | {"num_learners", "num_gpus_per_learner"} for r in runs)
    assert all((r.data.params["num_learners"], r.data.params["num_gpus_per_learner"]) == ("0", "0.0") for r in runs)
    assert all("train/iteration_time_s" in r.data.metrics for r in runs)  # train.iteration_metrics
    assert all(not any(k.startswith("config/") or k == "pid" for k in r.data.metrics) for r in runs)

    # the selection rule, recomputed from what MLflow holds
    rule = SelectionRule(1.0, 1.0)
    metrics = {r.info.run_id: {k.removeprefix("eval/"): v for k, v in r.data.metrics.items()} for r in runs}
    qualified = [rid for rid, m in metrics.items() if rule.qualifies(m)]
    expected = min(qualified, key=lambda rid: metrics[rid][CARBON_METRIC])
    selection = json.loads((out / "smoke" / "sweep" / "selection.json").read_text())
    assert selection["selected"]["run_id"] == expected
    assert selection["selected"]["metrics"][CARBON_METRIC] == pytest.approx(metrics[expected][CARBON_METRIC])
    assert Path(selection["selected"]["checkpoint"]).is_dir()
    assert [r.data.tags.get("aolo.sweep.selected") for r in runs if r.info.run_id == expected] == ["true"]
    assert (out / "smoke" / "sweep" / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the same sweep again without --resume would mix two sweeps: refused
    assert main(args) == EXIT_USER_ERROR
    assert "--resume" in capsys.readouterr().err

    # --resume on the finished sweep restores it: no trial lost, none re-run, same selection
    assert main(args + ["--resume"]) == 0
    assert len(_sweep_runs(out / "mlruns.db")) == 2
    resumed = json.loads((out / "smoke" / "sweep" / "selection.json").read_text())
    assert [t["status"] for t in resumed["trials"]] == ["FINISHED", "FINISHED"]
    assert resumed["selected"]["run_id"] == expected


@pytest.mark.ray
@pytest.mark.slow
def test_interrupted_sweep_resumes_from_the_trial_checkpoints(tmp_path, ray_session, capsys):
    preset = tmp_path / "longer_smoke.yaml"
    preset.write_text(yaml.safe_dump({"base": "smoke", "training": {"env_steps": 480}}))  # 10 iterations a trial
    out = tmp_path / "out"
    args = ["sweep", "--preset", str(preset), "--sweep-config", str(_sweep_file(tmp_path)), "--output", str(out)]
    tune_dir = out / "smoke" / "sweep" / "tune"

    def second_trial_results() -> list[dict]:
        files = list(tune_dir.glob("*_00001/result.json"))
        return [json.loads(line) for line in files[0].read_text().splitlines()] if files else []

    def ctrl_c_during_the_second_trial() -> None:
        deadline = time.monotonic() + 600
        while len(second_trial_results()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # Tune catches it, saves its state and returns from fit()

    threading.Thread(target=ctrl_c_during_the_second_trial, daemon=True).start()
    assert main(args) == EXIT_INTERRUPTED
    assert "continue it with the same command plus --resume" in capsys.readouterr().out
    done_before = len(second_trial_results())
    assert 2 <= done_before < 10
    assert not (out / "smoke" / "sweep" / "selection.json").exists()
    assert sorted(r.info.status for r in _sweep_runs(out / "mlruns.db")) == ["FINISHED", "KILLED"]

    assert main(args + ["--resume"]) == 0
    last = second_trial_results()[-1]
    assert last["train/env_steps"] == 480 and last["training_iteration"] == 10
    assert last["iterations_since_restore"] < 10  # continued from a checkpoint, not from scratch
    runs = _sweep_runs(out / "mlruns.db")
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]  # the same run per trial, reopened
    client = MlflowClient(f"sqlite:///{out / 'mlruns.db'}")
    for run in runs:
        steps = [m.value for m in client.get_metric_history(run.info.run_id, "train/env_steps")]
        assert sorted(set(steps)) == [48.0 * i for i in range(1, 11)]
