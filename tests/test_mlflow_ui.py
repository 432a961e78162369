"""The MLflow UI as a trainer sees it: aolo's experiments open on the runs table, and a compare's child runs
line up column by column.

The first tests check the store aolo's tracking code writes (a parent run, learned children with
:func:`~aolo.platform.tracking.experiment_params`, reference children through ``compare._log_references``)
with hand-set metric values, in seconds. The browser test runs a real smoke ``aolo compare`` (SDRL, one seed:
about a minute on 2 cores), serves its store with ``mlflow server`` on 127.0.0.1 and drives Debian's
``chromium`` with Playwright's Python package (no ``playwright install``); it saves its screenshots in the
test's tmp dir and skips, saying why, when either is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from aolo.platform.evaluation import EvaluationResult
from aolo.platform.presets import load_experiment
from aolo.platform.tracking import (
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING_KIND,
    MODEL_TRAINING_QUERY,
    PARENT_RUN_TAG,
    Tracker,
    experiment_params,
    ui_url,
)
from tests.servers import running_mlflow_server

#: Held-out carbon per request [g] of each child run: distinct, so every row of the UI table is recognisable.
CARBON_G = {
    "sdrl-seed0": 0.00412,
    "sac-seed0": 0.00437,
    "reference-hindsight": 0.00381,
    "reference-myopic": 0.00459,
    "reference-fixed": 0.00655,
}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def build_compare_store(uri: str) -> Tracker:
    """A compare's MLflow records on the smoke preset: parent, two learned and three reference children."""
    from aolo.platform.compare import _log_references

    experiment = load_experiment("smoke")
    tracker = Tracker(uri, experiment.scenario.name)
    with tracker.mlflow_run(
        f"compare-{experiment.name}", {"preset": experiment.name}, {"aolo.command": "compare"}
    ) as parent:
        for algorithm in ("sdrl", "sac"):
            with tracker.mlflow_run(
                f"{algorithm}-seed0",
                experiment_params(experiment, algorithm, 0),
                {"aolo.command": "train"},
                parent_run_id=parent.run_id,
            ) as run:
                run.log_metrics({"eval/carbon_g_per_request": CARBON_G[f"{algorithm}-seed0"], "eval/qoe_mean": 0.9})
        evaluations = {
            name: EvaluationResult(name, {"carbon_g_per_request": CARBON_G[f"reference-{name}"], "qoe_mean": 0.9})
            for name in ("hindsight", "myopic", "fixed")
        }
        _log_references(experiment, evaluations, tracker, parent.run_id)
    return tracker


def test_experiment_is_model_training_and_children_share_policy_and_kind(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    tracker = build_compare_store(uri)
    client = tracker.client
    experiment = client.get_experiment(tracker.experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND == "custom_model_development"

    runs = {r.info.run_name: r for r in client.search_runs([tracker.experiment_id])}
    assert set(runs) == {"compare-smoke", *CARBON_G}  # run names unchanged
    parent_id = runs["compare-smoke"].info.run_id
    expected = {
        "sdrl-seed0": ("sdrl", "learned"),
        "sac-seed0": ("sac", "learned"),
        "reference-hindsight": ("hindsight", "reference"),
        "reference-myopic": ("myopic", "reference"),
        "reference-fixed": ("fixed", "reference"),
    }
    for name, (policy, kind) in expected.items():
        run = runs[name]
        assert run.data.tags[PARENT_RUN_TAG] == parent_id
        assert (run.data.params["policy"], run.data.params["kind"]) == (policy, kind), name
        assert run.data.metrics["eval/carbon_g_per_request"] == pytest.approx(CARBON_G[name])
    # learned and reference children share every comparison column except the training settings
    common = set(runs["sdrl-seed0"].data.params) & set(runs["reference-fixed"].data.params)
    assert {"policy", "kind", "preset", "scenario", "cells", "evaluation.days_per_cell"} <= common


def test_an_existing_experiment_without_a_kind_gets_one_and_links_open_the_runs(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    experiment_id = MlflowClient(uri).create_experiment("smoke")  # as an older aolo (or a person) made it
    assert EXPERIMENT_KIND_TAG not in MlflowClient(uri).get_experiment(experiment_id).tags
    tracker = Tracker(uri, "smoke")
    assert tracker.experiment_id == experiment_id
    assert MlflowClient(uri).get_experiment(experiment_id).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
    assert ui_url("http://h:5000/", "7") == "http://h:5000/#/experiments/7/runs?workflowType=machine_learning"
    assert ui_url("http://h:5000", "7", "abc") == "http://h:5000/#/experiments/7/runs/abc?workflowType=machine_learning"
    assert "http://127.0.0.1:5000/#/experiments/" in tracker.run_url("abc")  # local store: command, then the page


@pytest.fixture
def smoke_compare_store(tmp_path, ray_session):
    """The MLflow store of a real smoke ``aolo compare`` of SDRL (seed 0) and the reference policies."""
    from aolo.platform.cli import main

    preset = tmp_path / "ui_smoke.yaml"
    preset.write_text(yaml.safe_dump({"base": "smoke", "compare": {"algorithms": ["sdrl"], "seeds": [0]}}))
    out = tmp_path / "out"
    assert main(["compare", "--preset", str(preset), "--output", str(out)]) == 0
    return out / "mlruns.db"


@pytest.fixture
def mlflow_ui(smoke_compare_store, tmp_path, free_port, aolo_env):
    """``mlflow server`` on 127.0.0.1 over the smoke compare's store; yields ``(base URL, tracker)`` once healthy."""
    db = smoke_compare_store
    tracker = Tracker(f"sqlite:///{db}", "smoke")
    with running_mlflow_server(
        f"sqlite:///{db}", tmp_path / "mlartifacts", free_port(), aolo_env, tmp_path / "server.log", timeout_s=120
    ) as base:
        yield base, tracker


@pytest.fixture
def browser():
    """Headless Debian chromium driven by Playwright; skips with the reason when either is missing."""
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright's Python package is not installed (pip install playwright; .ci/run installs it)",
    )
    executable = _chromium()
    if executable is None:
        pytest.skip("no chromium browser found (apt-get install chromium; .ci/run installs it where it can)")
    with sync_api.sync_playwright() as playwright:
        try:
            instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        except Exception as e:  # e.g. a chromium too old for this Playwright
            pytest.skip(f"chromium at {executable} does not start under Playwright: {str(e).splitlines()[0]}")
        yield instance
        instance.close()


@pytest.mark.ray
@pytest.mark.slow
def test_ui_opens_on_the_runs_table_and_compares_the_children(browser, mlflow_ui, tmp_path):
    base, tracker = mlflow_ui  # `browser` first: no browser, no minute of training
    runs = tracker.client.search_runs([tracker.experiment_id])
    parent = next(r for r in runs if PARENT_RUN_TAG not in r.data.tags)
    parent_name = parent.info.run_name  # compare-<preset name>
    children = {r.info.run_name: r for r in runs if r.data.tags.get(PARENT_RUN_TAG) == parent.info.run_id}
    assert {"sdrl-seed0", "reference-hindsight", "reference-myopic", "reference-fixed"} <= set(children)
    page = browser.new_page(viewport={"width": 1280, "height": 560})
    page.set_default_timeout(30_000)

    # the link aolo prints opens the experiment on its runs, not on MLflow 3's GenAI overview
    page.goto(ui_url(base, tracker.experiment_id), wait_until="load")
    parent_cell = page.locator("[role=gridcell]", has_text=parent_name).first
    parent_cell.wait_for()
    assert f"/experiments/{tracker.experiment_id}/runs" in page.url
    assert "Token Usage" not in page.inner_text("body")

    # show the carbon, policy and kind columns, expand the parent: every child is listed with its carbon
    page.get_by_role("button", name="Columns").click()
    for column in (
        "Dataset",
        "Source",
        "Models",  # shown by default and empty for aolo's runs: hidden
        "eval/carbon_g_per_request",
        "policy",
        "kind",
    ):
        tree_node = page.locator(".du-bois-light-tree-treenode", has=page.get_by_text(column, exact=True)).last
        tree_node.locator(".du-bois-light-tree-checkbox").click()
    page.keyboard.press("Escape")
    if page.get_by_role("button", name="Close").count():  # MLflow's assistant side panel: room for the table
        page.get_by_role("button", name="Close").first.click()
    parent_cell.locator("button").first.click()  # the expander of the parent run's children
    page.locator("[role=gridcell]", has_text="reference-hindsight").first.wait_for()
    page.wait_for_timeout(500)
    page.screenshot(path=str(tmp_path / "runs.png"))
    table = _table_rows(page, [parent_name, *children])
    assert parent_name in table
    for name, run in children.items():
        assert name in table, f"child run {name} missing from the runs table: {sorted(table)}"
        carbon = run.data.metrics["eval/carbon_g_per_request"]
        shown = [float(x) for x in re.findall(r"\d+\.\d+(?:e-?\d+)?", table[name])]
        assert any(abs(x - carbon) <= 0.01 * carbon for x in shown), f"{name}: carbon {carbon} not in {table[name]!r}"
        assert f"| {run.data.params['policy']} |" in table[name] and f"| {run.data.params['kind']} |" in table[name]

    # the compare-runs page of the child runs: one column per run, the policy/kind params side by side
    ids = ",".join(f'"{r.info.run_id}"' for r in children.values())
    page.set_viewport_size({"width": 1280, "height": 1400})
    page.goto(
        f'{base}/#/compare-runs?runs=[{ids}]&experiments=["{tracker.experiment_id}"]&{MODEL_TRAINING_QUERY}',
        wait_until="load",
    )
    page.get_by_text("reference-hindsight").first.wait_for()
    page.get_by_text("policy", exact=True).first.wait_for()  # the params table below the plots
    page.wait_for_timeout(1000)  # the parallel-coordinates plot draws after the data arrives
    text = page.inner_text("body")
    page.screenshot(path=str(tmp_path / "compare.png"))
    assert f"Comparing {len(children)} Runs" in text
    for name in children:
        assert name in text
    for value in ("policy", "kind", "learned", "reference", "hindsight", "sdrl", "eval/carbon_g_per_request"):
        assert value in text, f"{value!r} not on the compare-runs page"
    assert (tmp_path / "runs.png").stat().st_size > 10_000 and (tmp_path / "compare.png").stat().st_size > 10_000


def _table_rows(page, names) -> dict[str, str]:
    """Run name -> the text of its row in the runs table (pinned name column and scrolled columns joined)."""
    rows: dict[str, str] = {}
    for row in page.locator(".ag-row").all():
        index = row.get_attribute("row-index")
        rows.setdefault(index, "")
        rows[index] += " | " + row.inner_text().replace("\n", " | ")
    named = {}
    for text in rows.values():
        name = next((n for n in names if f"| {n} |" in f"{text} |"), None)
        if name is not None:
            named[name] = text
    return named
