"""The ``aolo`` command line: help texts, one-line errors that leave nothing behind, ``evaluate`` + MLflow."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from aolo.platform import cli
from tests.tiny import EVAL_METRICS

COMMANDS = tuple(cli.COMMANDS)  # every subcommand: train, evaluate, sweep, compare, report


def _aolo(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aolo", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_top_level_help_lists_commands_and_examples(aolo_env, tmp_path):
    done = _aolo("--help", env=aolo_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s+\S", done.stdout, re.M), f"{command} missing from --help"
    assert "examples:" in done.stdout and "ray job submit" in done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_subcommand_help(command, aolo_env, tmp_path):
    done = _aolo(command, "--help", env=aolo_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: aolo {command}")
    for flag in ("--preset", "--output", "--tracking-uri"):
        assert flag in done.stdout
    if cli.COMMANDS[command].training_flags:  # not evaluate, report
        for flag in ("--seed", "--num-env-runners", "--resume"):
            assert flag in done.stdout
    assert "examples:" in done.stdout
    assert not list(tmp_path.iterdir()), "--help wrote files"


def test_train_help_names_every_algorithm(aolo_env, tmp_path):
    from aolo.platform.algorithms import ALGORITHMS

    done = _aolo("train", "--help", env=aolo_env, cwd=tmp_path)
    for algorithm in ALGORITHMS:
        assert algorithm in done.stdout


def test_error_in_a_real_process_is_one_line_without_traceback(aolo_env, tmp_path):
    out = tmp_path / "out"
    done = _aolo("train", "--preset", "no_such_preset", "--output", str(out), env=aolo_env, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("aolo: error: unknown preset 'no_such_preset'")
    assert "Traceback" not in done.stderr
    assert not out.exists()


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _cell_preset(tmp: Path, **cell: str) -> str:
    """A one-cell preset on top of ``smoke`` whose cell has the given fields (e.g. a missing trace file)."""
    fields = {
        "name": "c0",
        "grid_region": "synthetic:hydro",
        "datacenter_region": "synthetic:hydro",
        "num_users": 2,
        **cell,
    }
    flow = ", ".join(f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {v}" for k, v in fields.items())
    return _write(tmp / "cell.yaml", f"base: smoke\nscenario: {{cells: [{{{flow}}}]}}\n")


ERROR_CASES = {
    "unknown preset": (lambda tmp, port: ["train", "--preset", "nope"], "unknown preset 'nope'"),
    "malformed yaml": (
        lambda tmp, port: ["train", "--preset", _write(tmp / "bad.yaml", "training: [1, 2\n")],
        "not valid YAML",
    ),
    "unknown yaml key": (
        lambda tmp, port: ["train", "--preset", _write(tmp / "typo.yaml", "base: smoke\ntrainig: {}\n")],
        "unknown key(s) ['trainig']",
    ),
    "unknown scenario key": (
        lambda tmp, port: ["train", "--preset", _write(tmp / "sc.yaml", "base: smoke\nscenario: {epochs: 3}\n")],
        "unknown key(s) ['epochs']",
    ),
    "bad value": (
        lambda tmp, port: ["train", "--preset", _write(tmp / "val.yaml", "base: smoke\ntraining: {env_steps: 0}\n")],
        "training.env_steps",
    ),
    "unknown algorithm": (lambda tmp, port: ["train", "--preset", "smoke", "--algorithm", "dqn"], "'dqn'"),
    "missing carbon trace": (
        lambda tmp, port: ["train", "--preset", _cell_preset(tmp, grid_region=str(tmp / "no.csv"))],
        "no.csv",
    ),
    "missing fading trace": (
        lambda tmp, port: ["train", "--preset", _cell_preset(tmp, fading_trace=str(tmp / "no.npz"))],
        "no.npz: file not found",
    ),
    "nothing to resume": (lambda tmp, port: ["train", "--preset", "smoke", "--resume"], "nothing to resume"),
    "missing checkpoint": (
        lambda tmp, port: ["evaluate", "--preset", "smoke", "--checkpoint", str(tmp / "nope")],
        "does not exist",
    ),
    "unreachable server": (
        lambda tmp, port: ["train", "--preset", "smoke", "--tracking-uri", f"http://127.0.0.1:{port}"],
        "is unreachable",
    ),
    "sqlite under a file": (
        lambda tmp, port: [
            "evaluate",
            "--preset",
            "smoke",
            "--policy",
            "fixed",
            "--tracking-uri",
            f"sqlite:///{_write(tmp / 'f.txt', 'x')}/mlruns.db",
        ],
        "cannot create the store",
    ),
}


def test_every_user_error_is_one_aolo_error_importable_where_it_was():
    from aolo import errors
    from aolo.envs.channel import FadingTraceError
    from aolo.envs.config import ConfigError
    from aolo.envs.traces import TraceError
    from aolo.envs.workload import WorkloadError
    from aolo.platform.evaluation import CheckpointError
    from aolo.platform.tracking import TrackingError

    for cls in (ConfigError, TraceError, WorkloadError, FadingTraceError, CheckpointError, TrackingError):
        assert issubclass(cls, errors.AoloError) and cls is getattr(errors, cls.__name__)
    assert issubclass(FadingTraceError, ValueError) and issubclass(CheckpointError, FileNotFoundError)
    # the CLI catches AoloError without loading numpy, Ray or torch: aolo.errors imports nothing
    code = "import sys, aolo.errors; print(sorted(m for m in sys.modules if m.startswith(('numpy', 'ray', 'torch'))))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.stdout.strip() == "[]", done.stderr


@pytest.mark.parametrize("case", ERROR_CASES)
def test_user_errors_are_one_line_exit_2_and_leave_nothing_behind(case, tmp_path, free_port, capfd):
    make_args, expected = ERROR_CASES[case]
    out = tmp_path / "out"
    port = free_port()  # nothing listens there
    args = make_args(tmp_path, port)
    before = sorted(tmp_path.rglob("*"))
    assert cli.main([*args, "--output", str(out)]) == 2
    captured = capfd.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aolo: error: "), captured.err
    assert expected in lines[0]
    if case == "unreachable server":
        assert f"http://127.0.0.1:{port}" in lines[0]
    assert "Traceback" not in captured.err
    assert not out.exists(), "an output directory was created"
    assert sorted(tmp_path.rglob("*")) == before, "files were written"


def test_evaluate_offers_every_reference_policy():
    from aolo.envs.reference import REFERENCE_POLICIES
    from aolo.platform.commands.evaluate import REFERENCE_POLICY_NAMES

    assert REFERENCE_POLICY_NAMES == REFERENCE_POLICIES


def test_evaluate_reference_policy_logs_the_printed_metrics(tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    out = tmp_path / "out"
    assert cli.main(["evaluate", "--preset", "smoke", "--policy", "myopic", "--output", str(out)]) == 0
    printed_lines = capsys.readouterr().out.splitlines()
    header = next(line for line in printed_lines if line.startswith("metric"))
    assert header.split()[1:3] == ["myopic", "hindsight"]
    printed = {
        parts[0]: float(parts[1])
        for parts in (line.split() for line in printed_lines)
        if parts and parts[0].startswith("eval/")
    }
    for name in EVAL_METRICS:
        assert f"eval/{name}" in printed, f"eval/{name} not printed"

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlruns.db'}")
    experiment = client.get_experiment_by_name("smoke")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["policy"] == "myopic"
    assert run.data.params["reward.carbon"] == "1.0"
    for name, value in printed.items():
        assert run.data.metrics[name] == pytest.approx(value, rel=1e-5, abs=1e-12)
    assert printed["eval/gap_to_bound"] > 0  # myopic is causal: it cannot beat the hindsight bound
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert "myopic.csv" in artifacts
    assert (out / "smoke" / "evaluate" / "myopic.csv").is_file()


def test_every_configuration_error_is_reported_on_its_own_line(tmp_path, capfd):
    preset = tmp_path / "broken.yaml"
    preset.write_text("base: smoke\nscenario:\n  service: {q_min: 1.5}\ntraining: {gamma: 2.0}\n")
    out = tmp_path / "out"
    assert cli.main(["train", "--preset", str(preset), "--output", str(out)]) == 2
    lines = capfd.readouterr().err.strip().splitlines()
    assert lines[0] == "aolo: error: 2 configuration errors:"
    assert len(lines) == 3 and any("scenario.service.q_min" in x for x in lines[1:])
    assert any("training.gamma" in x for x in lines[1:])
    assert not out.exists()
