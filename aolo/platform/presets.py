"""Experiment presets: ``aolo/tune_configs/<name>.yaml`` (package data) → a validated :class:`Experiment`.

A preset YAML has up to six sections, all optional (defaults in brackets)::

    scenario:    ScenarioConfig fields (aolo.envs.config)                [the default 2-cell scenario]
    training:    TrainingSettings fields (aolo.platform.algorithms)      [TrainingSettings()]
    constraints: ConstraintSettings (aolo.platform.constraints)          [method: penalty]
    evaluation:  {days_per_cell: int | null}                             [4; null = every held-out day]
    compare:     {algorithms: [sdrl, sac, td3, ppo], seeds: [0, 1, ...]} [all four, seed 0]
    algorithm:   the algorithm ``train`` and ``sweep`` use                [sdrl]

Validation reports every error of the merged preset at once: one :class:`ConfigError` lists each bad value or
unknown key as ``<path>: <what is allowed>, got <value>`` (``scenario.cells.1.num_users``, ``training.gamma``,
``compare.seeds``), one per line.

``base: <preset>`` starts from another preset and overrides only the keys given: mappings merge recursively
(``scenario: {reward: {carbon: 2.0}}`` keeps the base's other reward keys), lists and scalars are replaced, and
each ``search_space`` entry is replaced as a whole.
Sweep files (``reward_weights.yaml``) add ``search_space`` and ``selection``; see :mod:`aolo.platform.sweep`.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from aolo.envs.config import ConfigError, ScenarioConfig, Validated, bounded, is_integer, satisfies
from aolo.platform.algorithms import ALGORITHMS, TrainingSettings
from aolo.platform.constraints import ConstraintSettings, check_reward_terms

#: The shipped presets, package data read through importlib.resources (works from a wheel as from a checkout).
TUNE_CONFIGS_DIR = importlib.resources.files("aolo") / "tune_configs"
EXPERIMENT_KEYS = (
    "base",
    "description",
    "scenario",
    "training",
    "constraints",
    "evaluation",
    "compare",
    "algorithm",
    "search_space",
    "selection",
    "sweep",
)


@dataclass(frozen=True)
class Experiment:
    name: str
    scenario: ScenarioConfig
    training: TrainingSettings
    algorithm: str = "sdrl"
    days_per_cell: int | None = 4
    algorithms: tuple[str, ...] = ALGORITHMS
    seeds: tuple[int, ...] = (0,)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  #: merged YAML
    #: how the QoE-mean / latency rules are enforced (fixed penalty weights or learned multipliers)
    constraints: ConstraintSettings = field(default_factory=ConstraintSettings)


@dataclass(frozen=True)
class EvaluationSection(Validated):
    """The preset's ``evaluation`` section."""

    _path = "evaluation"

    days_per_cell: int | None = bounded(
        4, 1, integer=True, optional=True, allowed="must be an integer >= 1 or null (all held-out days)"
    )


@dataclass(frozen=True)
class CompareSection(Validated):
    """The preset's ``compare`` section: the algorithms and seeds ``aolo compare`` runs."""

    _path = "compare"

    algorithms: tuple[str, ...] = satisfies(
        ALGORITHMS,
        lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(a in ALGORITHMS for a in v),
        f"must be a non-empty list among {list(ALGORITHMS)}",
    )
    seeds: tuple[int, ...] = satisfies(
        (0,),
        lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(is_integer(s) and s >= 0 for s in v),
        "must be a non-empty list of integers >= 0",
    )


def available_presets() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in TUNE_CONFIGS_DIR.iterdir() if p.name.endswith(".yaml"))


def resolve_preset_path(preset: str) -> Path | importlib.resources.abc.Traversable:
    """A preset name (``smoke``, a shipped preset) or a path to a YAML file."""
    path = Path(preset)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise ConfigError(f"preset file {path} not found")
        return path
    path = TUNE_CONFIGS_DIR / f"{preset}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {preset!r}; available: {available_presets()} (or pass a .yaml path)")
    return path


def load_raw(preset: str, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The preset's YAML merged over its ``base`` chain."""
    path = resolve_preset_path(preset)
    if str(path) in _seen:
        raise ConfigError(f"{path}: 'base' chain loops through {list(_seen)}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping with keys among {list(EXPERIMENT_KEYS)}")
    unknown = sorted(set(data) - set(EXPERIMENT_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; allowed: {list(EXPERIMENT_KEYS)}")
    base = data.get("base")
    merged = load_raw(base, _seen + (str(path),)) if base else {}
    for key, value in data.items():
        if key == "base":
            continue
        if key == "search_space" and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **copy.deepcopy(value)}  # an entry ({grid: ...}) is one value
        else:
            merged[key] = merge_recursive(merged.get(key), value)
    merged["_name"] = path.name.rsplit(".", 1)[0]
    return merged


def merge_recursive(base: Any, override: Any) -> Any:
    """``override`` over ``base``: mappings merge key by key at every depth; anything else replaces (a copy)."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return copy.deepcopy(override)
    merged = copy.deepcopy(base)
    for key, value in override.items():
        merged[key] = merge_recursive(base.get(key), value)
    return merged


_T = TypeVar("_T")


def _collect(errors: list[str], build: Callable[[Any], _T], data: Any) -> _T | None:
    """``build(data)``, or None with its :class:`ConfigError` lines added to ``errors``."""
    try:
        return build(data)
    except ConfigError as e:
        errors.extend(e.errors)
        return None


def experiment_from_raw(raw: Mapping[str, Any], name: str | None = None) -> Experiment:
    """A validated :class:`Experiment` from a merged preset; one :class:`ConfigError` lists every error of every
    section (unknown keys with the allowed ones, bad values with what is allowed), each under its full path."""
    name = name or raw.get("_name", "custom")
    errors: list[str] = []
    unknown = sorted((k for k in raw if k not in EXPERIMENT_KEYS and k != "_name"), key=str)
    if unknown:
        errors.append(f"{name}: unknown key(s) {unknown}; allowed: {list(EXPERIMENT_KEYS)}")
    scenario = _collect(errors, ScenarioConfig.from_dict, raw.get("scenario"))
    training = _collect(errors, TrainingSettings.from_dict, raw.get("training"))
    constraints = _collect(errors, ConstraintSettings.from_dict, raw.get("constraints"))
    evaluation = _collect(errors, EvaluationSection.from_mapping, raw.get("evaluation"))
    compare = _collect(errors, CompareSection.from_mapping, raw.get("compare"))
    reward = raw.get("scenario", {}).get("reward") if isinstance(raw.get("scenario"), Mapping) else None
    if constraints is not None and isinstance(reward, Mapping) and "terms" in reward:
        _collect(errors, functools.partial(check_reward_terms, constraints=constraints), reward["terms"])
    algorithm = raw.get("algorithm", "sdrl")
    if algorithm not in ALGORITHMS:
        errors.append(f"algorithm: must be one of {list(ALGORITHMS)}, got {algorithm!r}")
    if errors:
        raise ConfigError(errors=errors)
    return Experiment(
        name=name,
        scenario=scenario,
        training=training,
        constraints=constraints,
        algorithm=algorithm,
        days_per_cell=evaluation.days_per_cell,
        algorithms=tuple(compare.algorithms),
        seeds=tuple(compare.seeds),
        raw=raw,
    )


def experiment_config(experiment: Experiment) -> dict[str, Any]:
    """The experiment as the preset it trains with: every section validated, its defaults filled in (plain YAML
    types; ``scenario.reward.terms`` left out: ``constraints.method`` decides it). Loading it with
    :func:`experiment_from_raw` gives the same experiment; every run logs it as the ``config.yaml`` artifact."""
    scenario = experiment.scenario.to_dict()
    del scenario["reward"]["terms"]
    config = {
        "scenario": scenario,
        "training": experiment.training.to_dict(),
        "constraints": experiment.constraints.to_dict(),
        "algorithm": experiment.algorithm,
        "evaluation": {"days_per_cell": experiment.days_per_cell},
        "compare": {"algorithms": experiment.algorithms, "seeds": experiment.seeds},
    }
    return json.loads(json.dumps(config))  # tuples -> lists: what YAML writes and reads


def load_experiment(preset: str) -> Experiment:
    """Load and validate a preset by name or path; every error names the key and the allowed values."""
    return experiment_from_raw(load_raw(preset))
