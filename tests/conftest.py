"""Shared test setup: a quiet, token-free local Ray; one in-process Ray per session; the shared-data switch."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

# Before anything imports Ray: no auth token files in ~/.ray, no usage-stats prompt or upload.
os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ray_session():
    """One local in-process Ray (2 CPUs, no dashboard) for every test that trains in this process.

    Reuses a Ray some other fixture already started (and then leaves shutting it down to that fixture).
    """
    import ray
    import torch

    torch.set_num_threads(1)  # 2-core machines: torch's default threads oversubscribe with Ray
    if ray.is_initialized():
        yield ray
        return
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``$AOLO_DATA_DIR`` or ``<repo>/../shared/data``; skips the test when the shared data is absent."""
    env = os.environ.get("AOLO_DATA_DIR")
    path = Path(env) if env else (REPO_ROOT.parent / "shared" / "data").resolve()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set AOLO_DATA_DIR to the folder with carbon/ traces)")
    return path


@pytest.fixture
def free_port():
    """A function returning a TCP port on 127.0.0.1 that nothing listens on right now."""

    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    return pick


@pytest.fixture
def aolo_env() -> dict[str, str]:
    """Environment for aolo/Ray/MLflow subprocesses: the repo importable, no cluster address inherited."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env
