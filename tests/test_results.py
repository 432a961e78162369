"""results.json (docs/results.schema.json): every evaluation writes one, ``aolo report --results`` reads them,
``aolo compare --extra-policy`` puts a user's policy in the table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from aolo.envs.protocol import ProtocolRunner, load_policy
from aolo.errors import ConfigError, PolicyError
from aolo.platform import cli
from aolo.platform.evaluation import evaluate
from aolo.platform.presets import load_experiment
from aolo.platform.results import (
    protocol_hash,
    read_results_json,
    results_document,
    results_rows,
    write_results_json,
)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "docs" / "results.schema.json").read_text())
SMOKE = load_experiment("smoke").scenario


@pytest.fixture(scope="module")
def bound():
    return evaluate("hindsight", SMOKE, 1)


def _validate(document):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(document, SCHEMA, format_checker=jsonschema.FormatChecker())


def test_results_json_follows_the_schema_and_reads_back_as_evaluation_rows(bound, tmp_path):
    result = evaluate(ProtocolRunner(load_policy("aolo.envs.protocol:Myopic")), SMOKE, 1, bound)
    document = results_document(
        result, SMOKE, preset="smoke", days_per_cell=1, kind="external", spec="aolo.envs.protocol:Myopic", bound=bound
    )
    _validate(document)
    assert document["policy"] == {
        "name": "myopic",
        "kind": "external",
        "spec": "aolo.envs.protocol:Myopic",
        "checkpoint": None,
    }
    assert [(e["cell"], e["day"]) for e in document["episodes"]] == [(r.cell, r.day) for r in result.records]
    assert document["bound"]["bound_g_per_request"] == bound.metrics["bound_g_per_request"]
    assert document["bound"]["gap_to_bound"] == result.metrics["gap_to_bound"] > 0.0
    path = write_results_json(document, tmp_path / "x" / "myopic.results.json")
    again = read_results_json(path)
    assert again == document  # exact floats survive the round trip
    rows = results_rows(again)
    assert (
        rows[-1]["cell"] == "all" and float(rows[-1]["carbon_g_per_request"]) == result.metrics["carbon_g_per_request"]
    )
    _validate(results_document(bound, SMOKE, preset="smoke", days_per_cell=1, kind="reference"))


def test_the_protocol_hash_changes_with_the_episodes_and_only_with_them():
    assert protocol_hash(SMOKE, 1) == protocol_hash(load_experiment("smoke").scenario, 1)
    assert protocol_hash(SMOKE, 1) != protocol_hash(SMOKE, 2)
    assert protocol_hash(SMOKE, 1) != protocol_hash(SMOKE.replace(**{"service.q_min": 0.75}), 1)


def test_a_file_of_another_format_is_a_clear_error(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"format": "something-else/2"}))
    with pytest.raises(ConfigError, match="format must be 'aolo-results/1'"):
        read_results_json(path)


def test_report_reads_results_files_from_anywhere(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    common = ["--preset", "smoke", "--tracking-uri", "none"]
    spec = "examples.external_policy:CleanHoursHeuristic"
    assert cli.main(["evaluate", *common, "--output", str(tmp_path / "mine"), "--policy", spec]) == 0
    written = tmp_path / "mine" / "smoke" / "evaluate" / "clean_hours.results.json"
    _validate(json.loads(written.read_text()))
    capsys.readouterr()
    assert cli.main(["report", "--preset", "smoke", "--output", str(tmp_path / "none"), "--results", str(written)]) == 0
    report = capsys.readouterr().out
    carbon_line = next(line for line in report.splitlines() if line.startswith("| clean_hours | 0."))
    assert "%)" in carbon_line  # with its gap to the bound of each cell

    other = tmp_path / "other"
    assert cli.main(["evaluate", *common, "--output", str(other), "--policy", spec, "--days-per-cell", "2"]) == 0
    capsys.readouterr()
    assert cli.main(["report", "--preset", "smoke", "--output", str(tmp_path / "none"), "--results", str(other)]) == 2
    assert "scored on another protocol" in capsys.readouterr().err


def test_a_broken_extra_policy_stops_compare_before_anything_is_written(tmp_path, monkeypatch):
    from aolo.platform.compare import run_compare

    monkeypatch.chdir(REPO)
    with pytest.raises(PolicyError, match="non-finite action"):
        run_compare(
            load_experiment("smoke"), tmp_path, tracking_uri=None, extra_policies=["protocol_policies:NaNAtEpoch3"]
        )
    with pytest.raises(PolicyError, match="its name 'myopic' is already a row of the table"):
        run_compare(load_experiment("smoke"), tmp_path, tracking_uri=None, extra_policies=["aolo.envs.protocol:Myopic"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.ray
def test_compare_extra_policy_is_a_row_a_child_run_and_a_results_file(tmp_path, ray_session, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(REPO)
    preset = tmp_path / "extra.yaml"  # ppo with a batch RLlib refuses: the training fails at once, the rest goes on
    preset.write_text(
        yaml.safe_dump(
            {
                "base": "smoke",
                "training": {"ppo_minibatch_size": 4096},
                "compare": {"algorithms": ["ppo"], "seeds": [0]},
            }
        )
    )
    out = tmp_path / "out"
    spec = "examples.external_policy:CleanHoursHeuristic"
    assert cli.main(["compare", "--preset", str(preset), "--output", str(out), "--extra-policy", spec]) == 1
    assert f"scoring the extra policy clean_hours ({spec})" in capsys.readouterr().out
    folder = out / "smoke" / "compare"
    with (folder / "table.csv").open() as f:
        table = {row["policy"]: row for row in csv.DictReader(f)}
    assert table["clean_hours"]["kind"] == "external" and float(table["clean_hours"]["gap_to_bound"]) > 0.0
    standalone = evaluate(ProtocolRunner(load_policy(spec)), SMOKE, 1).metrics["carbon_g_per_request"]
    assert float(table["clean_hours"]["carbon_g_per_request"]) == pytest.approx(standalone, rel=1e-12)
    document = read_results_json(folder / "references" / "clean_hours.results.json")
    assert document["policy"]["kind"] == "external" and document["policy"]["spec"] == spec
    _validate(document)
    client = MlflowClient(f"sqlite:///{out / 'mlruns.db'}")
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    child = next(r for r in runs if r.info.run_name == "external-clean_hours")
    assert child.data.params["kind"] == "external" and child.info.status == "FINISHED"
