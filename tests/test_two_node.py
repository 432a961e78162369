"""``aolo compare`` on a two-node Ray cluster on this machine; the second node is killed mid-run.

A head and a second node (1 CPU each, ``ray.cluster_utils.Cluster``) run a smoke compare of two 1-CPU trials,
so one trial is placed on each node. Once the second node's trial has saved a checkpoint, that node is removed
(killed, not drained): the compare still finishes, Tune restarts the lost trial (``FailureConfig``) on the head,
it continues from its checkpoint, and the table has every row. The cluster runs in a subprocess so that it
never meets the in-process Ray of the other tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

BUDGET = 240  # 5 iterations of 48 env steps on the smoke scenario


@pytest.mark.ray
@pytest.mark.slow
def test_compare_spreads_over_two_nodes_and_survives_losing_one(tmp_path, aolo_env):
    proc = subprocess.run(
        [sys.executable, __file__, str(tmp_path)], env=aolo_env, capture_output=True, text=True, timeout=170
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    head, second = report["head"], report["second"]
    outcomes = {o["policy"]: o for o in report["outcomes"]}
    assert set(outcomes) == {"sac", "td3"} and all(o["metrics"] for o in outcomes.values())
    assert {n for o in outcomes.values() for n in o["node_ids"]} == {head, second}  # placed on both nodes
    lost = next(o for o in outcomes.values() if o["node_ids"][0] == second)
    assert lost["attempts"] == 2 and lost["node_ids"] == [second, head]  # restarted, on the surviving node
    assert {"hindsight", "fixed", "myopic"} <= set(report["references"])
    assert report["table"] == ["sac", "td3", *report["references"]]  # every row
    # nothing written before the kill was lost: the restart continued the saved history, to the budget
    before, after = report["history_before_kill"], report["history_after"]
    assert before and after[: len(before)] == before
    assert after[-1] >= BUDGET and after == sorted(set(after))
    assert "lost its worker or node: restarting" in report["printed"]


def _scenario(tmp: Path) -> None:
    """Run in a subprocess: the cluster, the compare, the kill; writes ``report.json``."""
    import csv
    import dataclasses

    import ray
    from ray.cluster_utils import Cluster

    from aolo.platform.compare import ClusterSettings, run_compare
    from aolo.platform.compare_stats import table_records
    from aolo.platform.presets import load_experiment
    from aolo.platform.results import run_directory

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    second = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    smoke = load_experiment("smoke")
    experiment = dataclasses.replace(
        smoke, algorithms=("sac", "td3"), seeds=(0,), training=dataclasses.replace(smoke.training, env_steps=BUDGET)
    )
    out = tmp / "out"
    markers = out / experiment.scenario.name / "compare" / "attempts"
    seen: dict[str, list[float]] = {}

    def history(algorithm: str) -> list[float]:
        path = run_directory(out, experiment.scenario, algorithm, 0) / "history.csv"
        if not path.is_file():
            return []
        with path.open() as f:
            return [float(row["env_steps"]) for row in csv.DictReader(f)]

    def kill_second_node_after_its_first_checkpoint() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for marker in markers.glob("*_seed0") if markers.is_dir() else []:
                if second.node_id in marker.read_text():
                    rows = history(marker.name.removesuffix("_seed0"))
                    if rows:
                        seen["history"] = rows
                        cluster.remove_node(second, allow_graceful=False)
                        return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_second_node_after_its_first_checkpoint, daemon=True)
    killer.start()
    printed: list[str] = []
    result = run_compare(
        experiment,
        out,
        tracking_uri=None,
        progress=printed.append,
        cluster=ClusterSettings(max_failures=2, checkpoint_every_s=0.0, summary_every_s=5.0),
    )
    killer.join(timeout=1)
    lost = next((o.policy for o in result.outcomes if o.attempts > 1), None)
    report = {
        "head": cluster.head_node.node_id,
        "second": second.node_id,
        "printed": "\n".join(printed),
        "outcomes": [
            {"policy": o.policy, "metrics": o.metrics, "node_ids": list(o.node_ids), "attempts": o.attempts}
            for o in result.outcomes
            if o.kind == "learned"
        ],
        "table": [r["policy"] for r in table_records(result.rows)],
        "references": [o.policy for o in result.outcomes if o.kind == "reference"],
        "history_before_kill": seen.get("history", []),
        "history_after": history(lost) if lost else [],
    }
    (tmp / "report.json").write_text(json.dumps(report, default=str))
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    _scenario(Path(sys.argv[1]))
