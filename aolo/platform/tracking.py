"""MLflow tracking for aolo: where runs go, one experiment per scenario, runs that always end cleanly.

* :func:`default_tracking_uri` — the local sqlite store ``<output>/mlruns.db`` (MLflow 3 refuses the plain
  file store), with artifacts next to it in ``<output>/mlartifacts``.
* :func:`check_tracking_uri` — fails fast, before anything is written, with a message naming the URI:
  an MLflow server that does not answer, or a sqlite file whose folder cannot be created.
* :func:`resolve_tracking_uri` — what a command's ``--tracking-uri`` / ``--output`` mean: that URI, ``none``
  (tracking off) or the local store, checked.
* :class:`Tracker` — one MLflow experiment per scenario name, tagged as a model-training experiment
  (:data:`EXPERIMENT_KIND_TAG`) so MLflow 3's UI opens it on the runs table rather than the GenAI overview;
  :meth:`Tracker.mlflow_run` opens a run that ends ``FINISHED`` on success, ``FAILED`` on an exception and
  ``KILLED`` on Ctrl-C / SIGTERM, never ``RUNNING``.
* :func:`experiment_params` — the few params worth comparing runs by (policy and kind, algorithm, scenario,
  cells and their grid regions, service targets, forecast kind, the reward terms and constraint settings the run
  trained with, seed, env-step budget, key training settings), not RLlib's hundreds; the whole validated
  experiment goes to the run as ``config.yaml`` (:func:`log_experiment_config`). Every run, learned or
  reference, carries ``policy`` and ``kind`` (:func:`policy_params`), so any two runs line up column by column
  in MLflow's compare view.

Everything goes through an explicit :class:`~mlflow.tracking.MlflowClient` (no global "active run"), so
runs of several algorithms, nested under a parent run, can be logged from one process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from aolo.errors import TrackingError  # re-exported: aolo.platform.tracking.TrackingError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from aolo.envs.config import ScenarioConfig
    from aolo.platform.constraints import ConstraintSettings
    from aolo.platform.presets import Experiment

#: Tag MLflow uses to nest a run under its parent in the UI.
PARENT_RUN_TAG = "mlflow.parentRunId"
#: Experiment tag MLflow 3 reads to pick the experiment's landing page (``genai_development`` opens the GenAI
#: overview of traces; ``custom_model_development`` opens the runs table). Set on experiments aolo creates,
#: and on ones it finds without a kind.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
#: ``service.<field>`` params of every run: the targets the metrics are judged against, the action mapping, the guard
SERVICE_PARAMS = ("q_min", "q_floor", "t_max_s", "length_action", "mean_qoe_guard")
_BATCH = 100  # MLflow accepts at most 100 params / 1000 metrics per log_batch call


def default_tracking_uri(output_dir: str | Path) -> str:
    """``sqlite:///<absolute output dir>/mlruns.db``: the local store used when no ``--tracking-uri`` is given."""
    return f"sqlite:///{Path(output_dir).expanduser().resolve() / 'mlruns.db'}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (``sqlite:////abs/x.db`` is absolute), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :]).expanduser()


def check_tracking_uri(uri: str, timeout_s: float = 5.0) -> None:
    """Raise :class:`TrackingError` naming ``uri`` and what to fix if runs cannot be logged there.

    Writes nothing: an ``http(s)`` server must answer ``/health`` (or the experiments-search API) within
    ``timeout_s``; a sqlite file's folder must exist or be creatable. Other SQLAlchemy schemes
    (``postgresql://``, ``mysql://``) and ``databricks`` are passed to MLflow as they are.
    """
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        _check_server(uri.rstrip("/"), timeout_s)
    elif scheme == "sqlite":
        path = sqlite_path(uri)
        if path is None or path.name in ("", ":memory:"):
            raise TrackingError(f"tracking URI {uri!r}: give a database file, e.g. sqlite:////abs/path/mlruns.db")
        if path.exists() and not path.is_file():
            raise TrackingError(f"tracking URI {uri!r}: {path} exists and is not a file")
        folder = path.resolve().parent
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise TrackingError(
                f"tracking URI {uri!r}: cannot create the store in {folder} "
                f"({existing} is not a writable folder); pass another --output or --tracking-uri"
            )
    elif scheme in ("", "file"):
        raise TrackingError(
            f"tracking URI {uri!r}: MLflow 3 refuses the plain file store; use "
            f"sqlite:////abs/path/mlruns.db or an MLflow server http://host:port"
        )


def resolve_tracking_uri(tracking_uri: str | None, output_dir: str | Path) -> str | None:
    """``--tracking-uri`` (``none``: None, tracking off) or else the local store in ``--output``; checked with
    :func:`check_tracking_uri` before anything is written."""
    uri = tracking_uri or default_tracking_uri(output_dir)
    if uri.lower() == "none":
        return None
    check_tracking_uri(uri)
    return uri


def _check_server(base: str, timeout_s: float) -> None:
    reasons = []
    for path in ("/health", "/api/2.0/mlflow/experiments/search?max_results=1"):
        try:
            with urllib.request.urlopen(base + path, timeout=timeout_s) as response:
                if response.status == 200:
                    return
                reasons.append(f"{path} answered HTTP {response.status}")
        except urllib.error.HTTPError as e:  # the server is up but this endpoint is not what we expect
            reasons.append(f"{path} answered HTTP {e.code}")
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise TrackingError(
                f"MLflow tracking server {base} is unreachable ({reason}); start it "
                f"(mlflow server --host ... --port ...) or pass another --tracking-uri"
            ) from None
    raise TrackingError(f"{base} does not answer like an MLflow tracking server ({'; '.join(reasons)})")


def experiment_params(experiment: Experiment, algorithm: str, seed: int) -> dict[str, Any]:
    """The params every training run logs (``train``, ``compare`` children, ``sweep`` trials, under the same
    names): what differs between runs a person wants to compare, as the run really trained: the reward terms
    ``constraints.method`` applied (:func:`~aolo.platform.constraints.training_scenario`), the constraint
    settings (:func:`constraint_params`), the service targets and forecast kind (:func:`scenario_params`)."""
    from aolo.platform.constraints import training_scenario

    scenario, training = experiment.scenario, experiment.training
    params: dict[str, Any] = {
        **policy_params(algorithm, "learned"),
        "algorithm": algorithm,
        "seed": seed,
        "preset": experiment.name,
        **scenario_params(scenario),
        **constraint_params(experiment.constraints),
        "env_steps": training.env_steps,
        "evaluation.days_per_cell": experiment.days_per_cell if experiment.days_per_cell is not None else "all",
    }
    params["reward.terms"] = terms = training_scenario(scenario, experiment.constraints).reward.terms
    if terms == "carbon":  # the weights of the QoE-mean and latency terms do not act: the multipliers price them
        for weight in ("qoe", "latency", "deficit", "deficit_timing"):
            del params[f"reward.{weight}"]
    keys = ["rollout_fragment_length", "gamma", "hidden"]
    if algorithm == "ppo":
        keys += ["ppo_lr", "ppo_epochs", "ppo_minibatch_size"]
    else:
        keys += ["updates_per_env_step", "train_batch_size", "learning_starts", "actor_lr", "critic_lr", "critic"]
        keys += ["critic_activation"] if training.critic == "mlp" else []
        keys += ["replay_buffer", "batched_updates"]
    if algorithm in ("sac", "sdrl"):
        keys += ["initial_alpha", "alpha_lr"]
    if algorithm == "sdrl" and training.popsan:
        keys.append("popsan")
    params.update({f"training.{k}": getattr(training, k) for k in keys})
    return params


def constraint_params(constraints: ConstraintSettings) -> dict[str, Any]:
    """``constraints.method`` and ``constraints.guard_in_training``; under ``lagrangian`` also the multipliers'
    settings (``constraints.qoe.kp``, ``constraints.qoe_margin``, ``constraints.lambda_max``, ...), which do
    nothing under ``penalty``."""
    params: dict[str, Any] = {
        "constraints.method": constraints.method,
        "constraints.guard_in_training": constraints.guard_in_training,
    }
    if constraints.lagrangian:
        for key, value in constraints.to_dict().items():
            if isinstance(value, dict):
                params.update({f"constraints.{key}.{k}": v for k, v in value.items()})
            elif key not in ("method", "guard_in_training"):
                params[f"constraints.{key}"] = value
    return params


#: the ``kind`` param of a run: a trained algorithm, a built-in reference, a user's policy object (aolo.envs.protocol)
POLICY_KINDS = ("learned", "reference", "external")


def policy_params(policy: str, kind: str) -> dict[str, str]:
    """``policy`` (sdrl, sac, td3, ppo, hindsight, myopic, fixed, ...) and ``kind`` (``learned`` for a trained
    algorithm, ``reference`` for a rule-based or oracle policy, ``external`` for a policy object loaded with
    ``--policy package.module:Name``): the two params every child run of a compare has."""
    if kind not in POLICY_KINDS:
        raise ValueError(f"kind: must be one of {POLICY_KINDS}, got {kind!r}")
    return {"policy": policy, "kind": kind}


def scenario_params(scenario: ScenarioConfig) -> dict[str, Any]:
    """Scenario name, cells with their BS/datacenter grid regions and users, episode shape, the service's QoE and
    latency targets, the forecast kind, reward weights (``reward.terms``: the scenario's; a training run logs the
    terms its constraints method applied, :func:`experiment_params`)."""
    cells = "; ".join(
        f"{c.name} (bs={c.grid_region}, dc={c.datacenter_region}, users={c.num_users})" for c in scenario.cells
    )
    return {
        "scenario": scenario.name,
        "cells": cells,
        "num_cells": len(scenario.cells),
        "epoch_s": scenario.epoch_s,
        "epochs_per_episode": scenario.epochs_per_episode,
        "modality": scenario.service.modality,
        **{f"service.{k}": getattr(scenario.service, k) for k in SERVICE_PARAMS},
        "forecast.kind": scenario.forecast.kind,
        **({"forecast.mape_24h": scenario.forecast.mape_24h} if scenario.forecast.kind == "noisy" else {}),
        **{f"reward.{k}": v for k, v in dataclasses.asdict(scenario.reward).items()},
        **_site_params(scenario),
    }


def log_experiment_config(run: TrackedRun, experiment: Experiment) -> None:
    """The experiment the run used, as a loadable preset (:func:`~aolo.platform.presets.experiment_config`), as
    the run's ``config.yaml`` artifact."""
    import yaml

    from aolo.platform.presets import experiment_config

    run.log_text(yaml.safe_dump(experiment_config(experiment), sort_keys=False), "config.yaml")


def _site_params(scenario) -> dict[str, Any]:
    """The shared serving sites (docs/design.md §10), if any, and which cells each serves."""
    if not scenario.sites:
        return {}
    sites = "; ".join(
        f"{s.name} (dc={s.datacenter_region}, {s.serving_profile}, {s.scaling} "
        f"{s.replicas if s.scaling == 'fixed' else f'{s.min_replicas}-{s.max_replicas}'} replicas, "
        f"cells={[c.name for c in scenario.cells if c.site == s.name]})"
        for s in scenario.sites
    )
    return {"sites": sites, "num_sites": len(scenario.sites)}


@dataclass
class TrackedRun:
    """An open MLflow run (or, with ``client`` None, a no-op stand-in when tracking is off)."""

    client: MlflowClient | None
    run_id: str | None

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), _BATCH):
            self._batch(params=items[i : i + _BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log finite numeric metrics (NaN/inf, e.g. a return before the first finished episode, are skipped)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items() if _finite(v)]
        self._batch(metrics=items)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self._batch(tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.client is not None:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        if self.client is not None:
            self.client.log_text(self.run_id, text, artifact_file)

    def _batch(self, **items) -> None:
        if self.client is not None and any(items.values()):
            self.client.log_batch(self.run_id, **items)


class Tracker:
    """Logs runs to one MLflow experiment per scenario at ``uri`` (``None``: tracking off, runs are no-ops)."""

    def __init__(self, uri: str | None, experiment_name: str):
        self.uri = uri
        self.experiment_name = experiment_name
        self.client: MlflowClient | None = None
        self.experiment_id: str | None = None
        if uri is None:
            return
        path = sqlite_path(uri)
        if path is not None:
            path.resolve().parent.mkdir(parents=True, exist_ok=True)
        for noisy in ("alembic", "mlflow.store.db.utils"):  # a new sqlite store logs its schema migrations
            logging.getLogger(noisy).setLevel(logging.WARNING)
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        self.experiment_id = self._get_or_create_experiment(path)

    def _get_or_create_experiment(self, sqlite_db: Path | None) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(self.experiment_name)
        if found is not None:
            if EXPERIMENT_KIND_TAG not in found.tags:  # made by an older aolo or by hand: open it on the runs too
                self.client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
            return found.experiment_id
        # A local store keeps artifacts beside the database instead of in the current directory.
        location = (sqlite_db.resolve().parent / "mlartifacts").as_uri() if sqlite_db is not None else None
        try:
            return self.client.create_experiment(
                self.experiment_name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND}
            )
        except MlflowException:  # created meanwhile by a concurrent process (parallel trials)
            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is None:
                raise
            return found.experiment_id

    @contextlib.contextmanager
    def mlflow_run(
        self,
        run_name: str,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
        nested: bool = False,
    ) -> Iterator[TrackedRun]:
        """Open a run; it ends FINISHED on success, FAILED on an exception, KILLED on Ctrl-C or SIGTERM.

        ``parent_run_id`` nests the run under that run; ``nested=True`` without it nests under the innermost
        run this process has open (as ``mlflow.start_run(nested=True)`` does).
        """
        if self.client is None:
            yield TrackedRun(None, None)
            return
        if parent_run_id is None and nested and _OPEN_RUNS:
            parent_run_id = _OPEN_RUNS[-1]
        all_tags = {**(tags or {}), **({PARENT_RUN_TAG: parent_run_id} if parent_run_id else {})}
        created = self.client.create_run(
            self.experiment_id, run_name=run_name, tags={k: str(v) for k, v in all_tags.items()}
        )
        run = TrackedRun(self.client, created.info.run_id)
        _OPEN_RUNS.append(run.run_id)
        status = "FAILED"
        try:
            run.log_params(params or {})
            yield run
            status = "FINISHED"
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C; Ray turns SIGTERM into SystemExit in the driver
            status = "KILLED"
            raise
        finally:
            _OPEN_RUNS.remove(run.run_id)
            try:
                self.client.set_terminated(run.run_id, status=status)
            except Exception as e:  # never hide the original error behind a tracking-store hiccup
                print(f"aolo: warning: could not mark MLflow run {run.run_id} {status}: {e}", file=sys.stderr)

    def run_url(self, run_id: str) -> str:
        """Where to look at a run: the UI page for a server, the ``mlflow ui`` command and the page to open for
        a local store."""
        if urlparse(self.uri).scheme in ("http", "https"):
            return ui_url(self.uri, self.experiment_id, run_id)
        return (
            f"mlflow ui --backend-store-uri {self.uri}  then open "
            f"{ui_url('http://127.0.0.1:5000', self.experiment_id)}  (run {run_id})"
        )


#: MLflow 3.17's UI picks an experiment's landing page from a browser-wide GenAI / Model training switch that
#: starts on GenAI (the traces overview) and ignores :data:`EXPERIMENT_KIND_TAG`; this query parameter of the
#: page's URL selects Model training, whose landing page is the runs table.
MODEL_TRAINING_QUERY = "workflowType=machine_learning"


def ui_url(server: str, experiment_id: str | None, run_id: str | None = None) -> str:
    """The MLflow UI page of an experiment's runs table (or of one run) in Model training mode."""
    base = f"{server.rstrip('/')}/#/experiments/{experiment_id}"
    return f"{base}/runs/{run_id}?{MODEL_TRAINING_QUERY}" if run_id else f"{base}/runs?{MODEL_TRAINING_QUERY}"


_OPEN_RUNS: list[str] = []  #: run ids opened by :meth:`Tracker.mlflow_run` in this process, innermost last


def _finite(value: Any) -> bool:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return False
    return v == v and v not in (float("inf"), float("-inf"))
