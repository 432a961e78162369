"""``aolo train`` against a real MLflow tracking server, read back over the REST API with plain urllib."""

from __future__ import annotations

import contextlib
import io
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from aolo.platform import cli
from tests.servers import running_mlflow_server

pytestmark = pytest.mark.slow


def _get(base: str, path: str, **query) -> dict:
    url = f"{base}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _post(base: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{base}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def mlflow_server(tmp_path, free_port, aolo_env):
    """``mlflow server`` on 127.0.0.1 (sqlite store, local artifact root); yields its URL once healthy."""
    with running_mlflow_server(
        f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "artifacts", free_port(), aolo_env, tmp_path / "server.log"
    ) as base:
        yield base


def test_train_logs_to_a_tracking_server(ray_session, mlflow_server, tmp_path):
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli.main(
            [
                "train",
                "--preset",
                "smoke",
                "--algorithm",
                "sac",
                "--output",
                str(tmp_path / "out"),
                "--tracking-uri",
                mlflow_server,
            ]
        )
    assert code == 0, stdout.getvalue()
    assert not (tmp_path / "out" / "mlruns.db").exists()  # everything went to the server

    experiment = _get(mlflow_server, "/api/2.0/mlflow/experiments/get-by-name", experiment_name="smoke")["experiment"]
    runs = _post(mlflow_server, "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment["experiment_id"]]})[
        "runs"
    ]
    assert len(runs) == 1
    run = runs[0]
    assert run["info"]["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert params["algorithm"] == "sac" and params["env_steps"] == "96"
    assert metrics["train/env_steps"] == 96
    assert metrics["eval/carbon_g_per_request"] > 0 and "eval/gap_to_bound" in metrics
    assert (
        f"{mlflow_server}/#/experiments/{experiment['experiment_id']}/runs/{run['info']['run_id']}" in stdout.getvalue()
    )  # the printed link opens the run in the UI

    history = _get(
        mlflow_server,
        "/api/2.0/mlflow/metrics/get-history",
        run_id=run["info"]["run_id"],
        metric_key="train/episode_return_mean",
    )["metrics"]
    assert [int(m["step"]) for m in history] == [48, 96]  # step = env steps (JSON int64s are strings)
    artifacts = _get(mlflow_server, "/api/2.0/mlflow/artifacts/list", run_id=run["info"]["run_id"]).get("files", [])
    assert {"evaluation.csv", "learning_curve.png"} <= {a["path"] for a in artifacts}
