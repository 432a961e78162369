"""Experiment presets: ``aolo/tune_configs/<name>.yaml`` (package data) → a validated :class:`Experiment`.

A preset YAML has up to six sections, all optional (defaults in brackets)::

    scenario:    ScenarioConfig fields (aolo.envs.config)                [the default 2-cell scenario]
    training:    TrainingSettings fields (aolo.platform.algorithms)      [TrainingSettings()]
    constraints: ConstraintSettings (aolo.platform.constraints)          [method: penalty]
    evaluation:  {days_per_cell: int | null}                             [4; null = every held-out day]
    compare:     {algorithms: [sdrl, sac, td3, ppo], seeds: [0, 1, ...]} [all four, seed 0]
    algorithm:   the algorithm ``train`` and ``sweep`` use                [sdrl]

``base: <preset>`` starts from another preset and overrides only the keys given: mappings merge recursively
(``scenario: {reward: {carbon: 2.0}}`` keeps the base's other reward keys), lists and scalars are replaced, and
each ``search_space`` entry is replaced as a whole.
Sweep files (``reward_weights.yaml``) add ``search_space`` and ``selection``; see :mod:`aolo.platform.sweep`.
"""

from __future__ import annotations

import copy
import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aolo.envs.config import ConfigError, ScenarioConfig
from aolo.platform.algorithms import ALGORITHMS, TrainingSettings
from aolo.platform.constraints import ConstraintSettings

#: The shipped presets, package data read through importlib.resources (works from a wheel as from a checkout).
TUNE_CONFIGS_DIR = importlib.resources.files("aolo") / "tune_configs"
EXPERIMENT_KEYS = ("base", "description", "scenario", "training", "constraints", "evaluation", "compare",
                   "algorithm", "search_space", "selection", "sweep")


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


def experiment_from_raw(raw: dict[str, Any], name: str | None = None) -> Experiment:
    evaluation = raw.get("evaluation") or {}
    compare = raw.get("compare") or {}
    for section, allowed, value in (("evaluation", {"days_per_cell"}, evaluation),
                                    ("compare", {"algorithms", "seeds"}, compare)):
        if not isinstance(value, dict):
            raise ConfigError(f"{section}: must be a mapping with keys {sorted(allowed)}")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ConfigError(f"{section}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    days = evaluation.get("days_per_cell", 4)
    if days is not None and not (isinstance(days, int) and days >= 1):
        raise ConfigError(f"evaluation.days_per_cell: must be an integer >= 1 or null (all held-out days), got {days!r}")
    algorithm = raw.get("algorithm", "sdrl")
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"algorithm: must be one of {list(ALGORITHMS)}, got {algorithm!r}")
    algorithms = tuple(compare.get("algorithms", ALGORITHMS))
    bad = [a for a in algorithms if a not in ALGORITHMS]
    if bad or not algorithms:
        raise ConfigError(f"compare.algorithms: must be a non-empty list among {list(ALGORITHMS)}, got {list(algorithms)}")
    seeds = tuple(compare.get("seeds", (0,)))
    if not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"compare.seeds: must be a non-empty list of integers >= 0, got {list(seeds)}")
    scenario = raw.get("scenario")
    if scenario is not None and not isinstance(scenario, dict):
        raise ConfigError("scenario: must be a mapping of ScenarioConfig fields")
    return Experiment(
        name=name or raw.get("_name", "custom"),
        scenario=ScenarioConfig.from_dict(scenario),
        training=TrainingSettings.from_dict(raw.get("training")),
        constraints=ConstraintSettings.from_dict(raw.get("constraints")),
        algorithm=algorithm,
        days_per_cell=days,
        algorithms=algorithms,
        seeds=seeds,
        raw=raw,
    )


def load_experiment(preset: str) -> Experiment:
    """Load and validate a preset by name or path; every error names the key and the allowed values."""
    return experiment_from_raw(load_raw(preset))
