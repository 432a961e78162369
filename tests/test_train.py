"""``aolo train`` / :func:`train_one` with real RLlib, MLflow (sqlite) and evaluation on the smoke preset."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
from pathlib import Path

import pytest
import yaml

from aolo.platform import cli
from aolo.platform.constraints import ConstraintSettings
from aolo.platform.presets import experiment_from_raw, load_experiment
from aolo.platform.tracking import Tracker, default_tracking_uri, experiment_params
from tests.tiny import EVAL_METRICS


def _client(out: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=default_tracking_uri(out))


def _runs(out: Path):
    """The runs of the ``smoke`` experiment, oldest first."""
    client = _client(out)
    experiment = client.get_experiment_by_name("smoke")
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


@pytest.fixture(scope="module")
def sac_run(ray_session, tmp_path_factory):
    """``aolo train --preset smoke --algorithm sac``, in this process; yields (output dir, stdout)."""
    out = tmp_path_factory.mktemp("train") / "out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli.main(["train", "--preset", "smoke", "--algorithm", "sac", "--output", str(out)])
    assert code == 0, stdout.getvalue()
    return out, stdout.getvalue().splitlines()


def test_train_logs_a_finished_mlflow_run(sac_run):
    out, _ = sac_run
    (run,) = _runs(out)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["algorithm"] == "sac" and params["seed"] == "0" and params["env_steps"] == "96"
    assert params["scenario"] == "smoke" and "coal-bs/hydro-dc (bs=synthetic:coal_heavy" in params["cells"]
    assert {f"reward.{w}" for w in ("carbon", "qoe", "latency", "floor", "deficit")} <= set(params)
    assert params["constraints.method"] == "penalty" and params["reward.terms"] == "all"
    assert params["service.q_min"] == "0.8" and params["forecast.kind"] == "perfect"
    assert len(params) < 60  # the meaningful settings, not RLlib's hundreds
    config = Path(_client(out).download_artifacts(run.info.run_id, "config.yaml", str(out / "artifact")))
    logged = experiment_from_raw(yaml.safe_load(config.read_text()), "smoke")
    smoke = load_experiment("smoke")
    assert (logged.scenario, logged.training, logged.constraints) == (smoke.scenario, smoke.training, smoke.constraints)
    for name in EVAL_METRICS:
        assert math.isfinite(run.data.metrics[f"eval/{name}"]), name
    assert run.data.metrics["eval/gap_to_bound"] > -1e-9  # nothing beats the hindsight bound


def test_runs_log_the_constraints_and_reward_terms_they_train_with():
    smoke = load_experiment("smoke")
    lagrangian = dataclasses.replace(smoke, constraints=ConstraintSettings.from_dict({"method": "lagrangian"}))
    penalty, lag = experiment_params(smoke, "sac", 0), experiment_params(lagrangian, "sac", 0)
    assert (penalty["constraints.method"], penalty["reward.terms"], penalty["reward.deficit"]) == (
        "penalty",
        "all",
        300,
    )
    assert "constraints.qoe.kp" not in penalty  # the multipliers' gains do nothing under penalty
    assert (lag["constraints.method"], lag["reward.terms"], lag["constraints.qoe.kp"]) == ("lagrangian", "carbon", 10.0)
    assert lag["constraints.qoe_margin"] == 0.01 and lag["constraints.guard_in_training"] is False
    assert "reward.deficit" not in lag and lag["reward.carbon"] == 1.0  # only the weights the carbon reward applies


def test_train_logs_per_iteration_metrics_at_env_steps(sac_run):
    out, lines = sac_run
    (run,) = _runs(out)
    history = _client(out).get_metric_history(run.info.run_id, "train/env_steps")
    assert [(m.step, m.value) for m in history] == [(48, 48.0), (96, 96.0)]
    assert "train/qf_loss" in run.data.metrics
    progress = [line for line in lines if " iter " in line]
    assert len(progress) == 2 and "env steps      96/96 (100%)" in progress[1] and "[sac seed 0]" in progress[1]


def test_train_writes_checkpoint_and_artifacts(sac_run):
    out, lines = sac_run
    (run,) = _runs(out)
    run_dir = out / "smoke" / "sac_seed0"
    checkpoint = Path(run.data.tags["aolo.checkpoint"])
    assert checkpoint == run_dir / "checkpoint"
    assert (checkpoint / "learner_group" / "learner" / "rl_module" / "shared").is_dir()
    assert f"checkpoint: {checkpoint}" in lines
    artifacts = {a.path for a in _client(out).list_artifacts(run.info.run_id)}
    assert {"evaluation.csv", "learning_curve.png", "history.csv", "checkpoint.txt"} <= artifacts
    with (run_dir / "evaluation.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["cell"] for r in rows] == ["coal-bs/hydro-dc", "hydro-bs/coal-dc", "all"]  # 1 held-out day per cell
    assert float(rows[-1]["carbon_g_per_request"]) == pytest.approx(run.data.metrics["eval/carbon_g_per_request"])
    assert (run_dir / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / "mlruns").exists() and (out / "mlartifacts").is_dir()  # artifacts stay in --output


def test_rllib_rejecting_the_settings_fails_the_run_and_cleans_up(ray_session, tmp_path, capfd):
    preset = tmp_path / "bad_ppo.yaml"
    preset.write_text("base: smoke\nalgorithm: ppo\ntraining: {ppo_minibatch_size: 4096}\n")
    out = tmp_path / "out"
    assert cli.main(["train", "--preset", str(preset), "--output", str(out)]) == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith("aolo: error: RLlib rejected the training settings for ppo: `minibatch_size` (4096)")
    assert len(err.splitlines()) == 1
    (run,) = _runs(out)
    assert run.info.status == "FAILED"  # the run had started: it must not stay RUNNING
    assert not (out / "smoke" / "ppo_seed0").exists()  # no half-written run directory


def test_crash_during_training_fails_the_run(ray_session, tmp_path):
    from aolo.platform.train import train_one

    def crash_after_first_iteration(line: str) -> None:
        if " iter " in line:
            raise RuntimeError("simulated crash")

    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_one(
            load_experiment("smoke"),
            "td3",
            0,
            out,
            tracking_uri=default_tracking_uri(out),
            progress=crash_after_first_iteration,
        )
    (run,) = _runs(out)
    assert run.info.status == "FAILED"
    assert not (out / "smoke" / "td3_seed0").exists()


def test_ctrl_c_saves_a_checkpoint_marks_killed_and_resume_continues(ray_session, tmp_path, capsys):
    from aolo.platform.results import read_history
    from aolo.platform.train import train_one

    def ctrl_c_after_first_iteration(line: str) -> None:
        if " iter " in line:
            raise KeyboardInterrupt

    out = tmp_path / "out"
    experiment = load_experiment("smoke")
    with pytest.raises(KeyboardInterrupt):
        train_one(
            experiment, "ppo", 0, out, tracking_uri=default_tracking_uri(out), progress=ctrl_c_after_first_iteration
        )
    run_dir = out / "smoke" / "ppo_seed0"
    (killed,) = _runs(out)
    assert killed.info.status == "KILLED"
    assert (run_dir / "checkpoint" / "rllib_checkpoint.json").is_file()
    assert [h["env_steps"] for h in read_history(run_dir / "history.csv")] == [48.0]

    assert cli.main(["train", "--preset", "smoke", "--algorithm", "ppo", "--output", str(out), "--resume"]) == 0
    assert "(resuming)" in capsys.readouterr().out
    killed, resumed = _runs(out)
    assert resumed.info.status == "FINISHED"
    assert resumed.data.tags["aolo.resumed_at_env_steps"] == "48"
    steps = [m.step for m in _client(out).get_metric_history(resumed.info.run_id, "train/env_steps")]
    assert steps == [96]  # continued from 48 env steps, not from scratch
    assert [h["env_steps"] for h in read_history(run_dir / "history.csv")] == [48.0, 96.0]


@pytest.fixture(scope="module")
def tracker(tmp_path_factory) -> Tracker:
    """A tracker on a fresh sqlite store (creating one takes seconds, so the unit tests share it)."""
    return Tracker(default_tracking_uri(tmp_path_factory.mktemp("mlflow")), "unit")


@pytest.mark.parametrize(
    "raised, status",
    [(None, "FINISHED"), (ValueError, "FAILED"), (KeyboardInterrupt, "KILLED"), (SystemExit, "KILLED")],
)
def test_mlflow_run_end_status(tracker, raised, status):
    with pytest.raises(raised) if raised else contextlib.nullcontext():
        with tracker.mlflow_run("unit", {"a": 1}, {"t": "x"}) as run:
            if raised:
                raise raised()
    got = tracker.client.get_run(run.run_id)
    assert got.info.status == status
    assert got.data.params == {"a": "1"} and got.data.tags["t"] == "x"


def test_nested_runs_get_their_parent(tracker):
    with tracker.mlflow_run("parent") as parent:
        with tracker.mlflow_run("child", nested=True) as child:
            pass
        with tracker.mlflow_run("explicit", parent_run_id=parent.run_id) as explicit:
            pass
    for run in (child, explicit):
        assert tracker.client.get_run(run.run_id).data.tags["mlflow.parentRunId"] == parent.run_id
