"""`ray job submit --working-dir <repo> -- python -m aolo train ...` on a real Ray head, end to end.

Everything runs as subprocesses (head, job CLI, the job's driver), so it does not matter whether this pytest
process has an in-process Ray (the ``ray_session`` fixture). The head gets its own ports, a short private
``--temp-dir`` (Unix socket paths are limited to 107 bytes) and is torn down by killing exactly the
processes that belong to it: ``ray stop`` would kill every Ray on the machine, other users' included.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

EXCLUDES = [
    ".git",
    ".pytest_cache",
    ".benchmarks",
    "bench",
    "tests",
    "aolo_runs",
    "mlruns",
    "mlartifacts",
    "*.db",
    "__pycache__",
    "*.egg-info",
    ".venv",
]
JOB_TIMEOUT_S = 480
REPO_ROOT = Path(__file__).resolve().parents[1]


def _ray_cli() -> str:
    """The ``ray`` script of this Python (``ray`` on PATH as a fallback)."""
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else "ray"


def _processes_of(temp_dir: str) -> list[int]:
    """PIDs whose command line names ``temp_dir`` (GCS, raylet, dashboard, agents, ...) and their descendants."""
    own = {os.getpid(), os.getppid()}
    cmdlines, parents = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdlines[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found = {pid for pid, cmd in cmdlines.items() if temp_dir in cmd and pid not in own}
    while True:
        children = {pid for pid, ppid in parents.items() if ppid in found and pid not in found and pid not in own}
        if not children:
            return sorted(found)
        found |= children


def _stop_head(temp_dir: str, grace_s: float = 5.0) -> None:
    pids = _processes_of(temp_dir)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
            time.sleep(0.5)
        pids = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        if not pids:
            return


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def ray_head(free_port, aolo_env):
    """A Ray head on 127.0.0.1 with the dashboard (job server) on a free port; yields the dashboard URL."""
    temp_dir = tempfile.mkdtemp(prefix="rj", dir="/tmp")
    ports = {
        flag: free_port()
        for flag in ("--port", "--dashboard-port", "--dashboard-agent-listen-port", "--ray-client-server-port")
    }
    cmd = [
        _ray_cli(),
        "start",
        "--head",
        "--node-ip-address",
        "127.0.0.1",
        "--dashboard-host",
        "127.0.0.1",
        "--num-cpus",
        "2",
        "--disable-usage-stats",
        "--temp-dir",
        temp_dir,
        *[str(x) for flag, port in ports.items() for x in (flag, port)],
    ]
    try:
        started = subprocess.run(cmd, env=aolo_env, capture_output=True, text=True, timeout=240)
        assert started.returncode == 0, f"ray start failed:\n{started.stdout}\n{started.stderr}"
        yield f"http://127.0.0.1:{ports['--dashboard-port']}"
    finally:
        _stop_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _submit(dashboard: str, submission_id: str, entrypoint: list[str], env: dict[str, str]) -> None:
    """``ray job submit --no-wait``, retried while the head's job agent is still registering."""
    cmd = [
        _ray_cli(),
        "job",
        "submit",
        "--address",
        dashboard,
        "--submission-id",
        submission_id,
        "--no-wait",
        "--working-dir",
        str(REPO_ROOT),
        "--runtime-env-json",
        json.dumps({"excludes": EXCLUDES}),
        "--",
        *entrypoint,
    ]
    deadline = time.monotonic() + 120
    while True:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
        if done.returncode == 0:
            return
        if "No available agent" not in done.stderr or time.monotonic() > deadline:
            pytest.fail(f"ray job submit failed:\n{done.stdout}\n{done.stderr[-3000:]}")
        time.sleep(3)


def test_ray_job_submit_trains_and_logs_to_mlflow(ray_head, tmp_path, aolo_env):
    out = tmp_path / "out"
    db = out / "mlruns.db"
    submission_id = f"aolo-test-{uuid.uuid4().hex[:8]}"
    _submit(
        ray_head,
        submission_id,
        [
            "python",
            "-m",
            "aolo",
            "train",
            "--preset",
            "smoke",
            "--algorithm",
            "sac",
            "--output",
            str(out),
            "--tracking-uri",
            f"sqlite:///{db}",
        ],
        aolo_env,
    )

    deadline = time.monotonic() + JOB_TIMEOUT_S
    status = "PENDING"
    while time.monotonic() < deadline:
        status = _get_json(f"{ray_head}/api/jobs/{submission_id}")["status"]
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(3)
    logs = _get_json(f"{ray_head}/api/jobs/{submission_id}/logs").get("logs", "")
    assert status == "SUCCEEDED", f"job ended {status}; driver log tail:\n{logs[-4000:]}"
    assert "iter" in logs and "eval/carbon_g_per_request" in logs  # progress lines and the metrics table

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("smoke")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["algorithm"] == "sac"
    assert run.data.metrics["eval/carbon_g_per_request"] > 0
    assert "eval/gap_to_bound" in run.data.metrics
    assert Path(run.data.tags["aolo.checkpoint"]).is_dir()
