"""``aolo report`` on a tiny hand-built comparison folder: its tables' values and its figures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from aolo.platform.cli import main
from aolo.platform.presets import load_experiment
from aolo.platform.report import report_markdown
from aolo.platform.results import bound_by_cell, cell_carbon, load_study

A, B = "coal-bs/hydro-dc", "hydro-bs/coal-dc"  # the smoke scenario's cells
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def _overall(carbon: float, **extra) -> dict:
    return {
        "cell": "all",
        "day": "",
        "carbon_g_per_request": carbon,
        "qoe_mean": 0.9,
        "carbon_inference_g": 0.75 * carbon,
        "carbon_embodied_g": 0.05 * carbon,
        "carbon_comm_g": 0.2 * carbon,
        **extra,
    }


@pytest.fixture
def study(tmp_path):
    """sdrl seeds 0 and 1, the hindsight and myopic references, on the smoke scenario's two cells."""
    preset = tmp_path / "study.yaml"
    preset.write_text(yaml.safe_dump({"base": "smoke", "compare": {"algorithms": ["sdrl", "sac"], "seeds": [0, 1]}}))
    root = tmp_path / "runs" / "smoke"
    learned = {
        "qoe_violation_rate": 0.1,
        "qoe_mean_violation_rate": 0.05,
        "qoe_shortfall": 0.001,
        "qoe_floor_violation_rate": 0.2,
        "latency_violation_rate": 0.0,
        "actor_carbon_share": 1e-9,
    }
    _write(
        root / "sdrl_seed0" / "evaluation.csv",
        [
            {"cell": A, "day": 3, "carbon_g_per_request": 0.004, "qoe_mean": 0.8},
            {"cell": A, "day": 9, "carbon_g_per_request": 0.006, "qoe_mean": 0.9},
            {"cell": B, "day": 3, "carbon_g_per_request": 0.002, "qoe_mean": 1.0},
            _overall(0.004, **learned),
        ],
    )
    _write(
        root / "sdrl_seed1" / "evaluation.csv",
        [
            {"cell": A, "day": 3, "carbon_g_per_request": 0.007, "qoe_mean": 0.7},
            {"cell": B, "day": 3, "carbon_g_per_request": 0.003, "qoe_mean": 0.9},
            _overall(0.005, **learned),
        ],
    )
    for seed, returns in ((0, (-480, -240)), (1, (-960, -480))):
        _write(
            root / f"sdrl_seed{seed}" / "history.csv",
            [{"iteration": i, "env_steps": 48 * (i + 1), "episode_return_mean": r} for i, r in enumerate(returns)],
        )
    refs = root / "compare" / "references"
    _write(
        refs / "hindsight.csv",
        [
            {"cell": A, "day": 3, "carbon_g_per_request": 0.004, "bound_g_per_request": 0.004, "qoe_mean": 0.8},
            {"cell": B, "day": 3, "carbon_g_per_request": 0.0024, "bound_g_per_request": 0.002, "qoe_mean": 0.8},
            _overall(0.0032),
        ],
    )
    _write(
        refs / "myopic.csv",
        [
            {"cell": A, "day": 3, "carbon_g_per_request": 0.005, "qoe_mean": 0.8},
            {"cell": B, "day": 3, "carbon_g_per_request": 0.003, "qoe_mean": 0.8},
            _overall(0.004),
        ],
    )
    _write(
        root / "compare" / "table.csv",
        [
            {"policy": "sdrl", "kind": "learned", "carbon_g_per_request": 0.0045, "carbon_g_per_request_ci95": 0.006},
            {
                "policy": "hindsight",
                "kind": "reference",
                "carbon_g_per_request": 0.0032,
                "carbon_g_per_request_ci95": "",
            },
        ],
    )
    sweep = tmp_path / "sweep" / "smoke" / "sweep"
    sweep.mkdir(parents=True)
    trial = {
        "params": {"scenario.reward.carbon": 1.0, "scenario.reward.qoe": 0.2},
        "metrics": {
            "carbon_g_per_request": 0.0041,
            "qoe_mean": 0.85,
            "qoe_violation_rate": 0.0,
            "latency_violation_rate": 0.0,
        },
    }
    (sweep / "selection.json").write_text(
        json.dumps(
            {
                "rule": {"max_qoe_violation_rate": 0.05, "max_latency_violation_rate": 0.01},
                "selected": {"name": "t1"},
                "trials": [
                    {"name": "t1", **trial},
                    {
                        "name": "t2",
                        "params": {"scenario.reward.carbon": 2.0, "scenario.reward.qoe": 0.05},
                        "metrics": {**trial["metrics"], "carbon_g_per_request": 0.0039, "qoe_violation_rate": 0.2},
                    },
                    {"name": "t3", "params": {}, "metrics": {}},
                ],
            }
        )
    )  # a failed trial: no row
    return preset, tmp_path


def test_tables_from_a_hand_built_comparison(study):
    preset, tmp_path = study
    data = load_study(load_experiment(str(preset)), tmp_path / "runs")
    assert list(data.learned) == ["sdrl"] and sorted(data.learned["sdrl"]) == [0, 1]  # sac never ran
    assert list(data.references) == ["hindsight", "myopic"]
    assert bound_by_cell(data) == pytest.approx({A: 0.004, B: 0.002})
    # sdrl per cell: seed 0 A = mean(0.004, 0.006) = 0.005, seed 1 A = 0.007 -> 0.006; B: (0.002 + 0.003) / 2
    assert cell_carbon(data)["sdrl"] == pytest.approx({A: 0.006, B: 0.0025})
    text = report_markdown(data)
    assert "| sdrl | 4.000 | 5.000 |" in text  # carbon per seed [mg]
    assert "| sdrl | 6.000 (+50.0%) | 2.500 (+25.0%) |" in text  # gap to the strict bound per cell
    assert "| hindsight | 4.000 (+0.0%) | 2.400 (+20.0%) |" in text  # its played plan against the bound
    assert "| strict lower bound | 4.000 | 2.000 |" in text
    # mean QoE per cell: sdrl A = mean(mean(0.8, 0.9), 0.7) = 0.775, B = mean(1.0, 0.9) = 0.95
    assert "| sdrl | 0.775 | 0.950 |" in text and "target Q_min = 0.80" in text
    assert "| sdrl | 0.900 | 0.1000 | 0.0500 | 0.0010 | 0.2000 | 0.0000 |" in text
    assert "| myopic | 0.900 | - | - | - | - | - |" in text  # references did not record the rates here
    # carbon split: 75 / 5 / 20 % of (1 - 1e-9), the actor 1e-9 of the total; total mean(4, 5) mg
    assert "| sdrl | 75.00% | 5.00% | 20.00% | 1.0e-07% | 4.500 |" in text
    assert "| myopic | 75.00% | 5.00% | 20.00% | 0.0e+00% | 4.000 |" in text


def test_aolo_report_cli_writes_tables_and_figures(study, capsys):
    preset, tmp_path = study
    figures, md = tmp_path / "figures", tmp_path / "tables.md"
    code = main(
        [
            "report",
            "--preset",
            str(preset),
            "--output",
            str(tmp_path / "runs"),
            "--sweep",
            str(tmp_path / "sweep"),
            "--figures",
            str(figures),
            "--markdown",
            str(md),
        ]
    )
    assert code == 0, capsys.readouterr()
    text = md.read_text()
    assert "| 2 | 0.05 | 3.900 | 0.850 | 0.200 | 0.0000 |  |" in text  # sweep trials, lowest carbon first
    assert "| 1 | 0.2 | 4.100 | 0.850 | 0.000 | 0.0000 | **selected** |" in text
    assert text.index("| 2 | 0.05 |") < text.index("| 1 | 0.2 |")
    for name in ("carbon.png", "carbon_vs_qoe.png", "learning_curves.png", "cell_carbon.png"):
        assert (figures / name).read_bytes()[:8] == PNG_MAGIC, name
    assert not (figures / "tradeoff.png").exists()  # the sweep folder has no tradeoff.png to copy


def test_aolo_report_help_and_a_missing_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--sweep" in out and "--figures" in out and "aolo compare" in out
    assert main(["report", "--preset", "smoke", "--output", str(tmp_path / "nothing")]) == 2
    assert "no comparison of scenario 'smoke'" in capsys.readouterr().err
