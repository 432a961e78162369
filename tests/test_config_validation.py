"""Declarative config validation: every error of a preset or scenario at once, each under its full path."""

from __future__ import annotations

import pickle

import pytest

from aolo.envs.config import CellSpec, RadioConfig, ScenarioConfig, ServiceConfig
from aolo.errors import ConfigError
from aolo.platform.algorithms import TrainingSettings
from aolo.platform.presets import experiment_from_raw, load_experiment


def _error(build, *args, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        build(*args, **kwargs)
    return info.value


def test_three_mistakes_in_three_sections_are_reported_together(tmp_path):
    path = tmp_path / "three.yaml"
    path.write_text(
        "base: quick\n"
        "scenario:\n"
        "  cells:\n"
        "    - {name: a}\n"
        "    - {name: b, num_users: 0}\n"
        "training: {gamma: 1.5}\n"
        "compare: {seeds: [0, -1]}\n"
    )
    error = _error(load_experiment, str(path))
    assert error.errors == (
        "scenario.cells.1.num_users: must be an integer in [1, 1024], got 0",
        "training.gamma: must be in (0, 1], got 1.5",
        "compare.seeds: must be a non-empty list of integers >= 0, got [0, -1]",
    )
    lines = str(error).splitlines()
    assert lines[0] == "3 configuration errors:"
    assert lines[1:] == list(error.errors)  # one per line, in section order


def test_every_field_error_of_a_scenario_in_one_pass():
    error = _error(
        ScenarioConfig.from_dict,
        {
            "cells": [{"name": "x", "num_users": "8", "pathloss": "rma"}, {"name": "x"}],
            "radio": {"p_min_dbm": 50.0, "p_max_dbm": 40.0, "carrier_ghz": 0.0},
            "service": {"f_min": 2.0, "f_max": 1.0},
            "epochs_per_episode": 0,
        },
    )
    assert set(error.errors) == {
        "scenario.cells.0.num_users: must be an integer in [1, 1024], got '8'",
        "scenario.cells.0.pathloss: must be one of ['uma', 'umi'], got 'rma'",
        "scenario.radio.carrier_ghz: must be a number in [0.5, 100], got 0.0",
        "scenario.radio.p_min_dbm: must be below p_max_dbm (40), got 50",
        "scenario.service.f_min: must not exceed f_max (1), got 2",
        "scenario.epochs_per_episode: must be an integer >= 1, got 0",
        "scenario.cells: cell names must be unique, got ['x', 'x']",
    }


def test_a_cross_field_rule_is_skipped_when_one_of_its_fields_is_already_bad():
    error = _error(RadioConfig(p_min_dbm="high").validate)
    assert error.errors == ("radio.p_min_dbm: must be a number in [-30, 60], got 'high'",)  # no TypeError, no dupe
    error = _error(ServiceConfig(q_floor=0.9).validate)
    assert error.errors == ("service.q_floor: must not exceed q_min (0.8), got 0.9",)
    assert CellSpec(num_users=0).validation_errors() == ["cell.num_users: must be an integer in [1, 1024], got 0"]


def test_unknown_keys_are_reported_with_their_path_and_the_allowed_keys():
    error = _error(
        experiment_from_raw,
        {
            "scenario": {"radio": {"carrier_ghz": 3.5, "carier_ghz": 3.5}, "cells": [{"name": "a", "users": 4}]},
            "training": {"env_step": 100},
            "evaluation": {"days": 2},
            "algorithm": "dqn",
        },
    )
    lines = error.errors
    assert len(lines) == 5, lines
    # in the order the fields are declared (ScenarioConfig: cells before radio), then section by section
    assert lines[0].startswith("scenario.cells.0: unknown key(s) ['users']; allowed: ['bs_power_budget_w', ")
    assert "'num_users'" in lines[0]
    assert lines[1].startswith("scenario.radio: unknown key(s) ['carier_ghz']; allowed: ['bandwidth_hz', 'carrier_ghz'")
    assert lines[2].startswith("training: unknown key(s) ['env_step']; allowed: ['actor_lr', ")
    assert "'env_steps'" in lines[2]
    assert lines[3] == "evaluation: unknown key(s) ['days']; allowed: ['days_per_cell']"
    assert lines[4] == "algorithm: must be one of ['sdrl', 'sac', 'td3', 'ppo'], got 'dqn'"


def test_unknown_and_bad_values_in_the_same_section_are_both_reported():
    error = _error(TrainingSettings.from_dict, {"env_steps": 0, "hiden": [64]})
    assert error.errors[0].startswith("training: unknown key(s) ['hiden']; allowed: [")
    assert error.errors[1] == "training.env_steps: must be an integer >= 1, got 0"
    error = _error(ScenarioConfig().replace, **{"reward.carbn": 1.0, "radio.p_max_dbm": 99.0})
    assert error.errors[0].startswith("scenario.reward.carbn: unknown key; allowed: ['carbon', ")


def test_a_section_that_is_not_a_mapping_lists_the_allowed_keys():
    error = _error(experiment_from_raw, {"compare": [1, 2], "scenario": {"forecast": "noisy"}})
    assert error.errors == (
        "scenario.forecast: must be a mapping with keys among ['correlation_hours', 'growth', 'kind', 'mape_24h', "
        "'seed'], got 'noisy'",
        "compare: must be a mapping with keys among ['algorithms', 'seeds'], got [1, 2]",
    )


def test_a_single_error_keeps_the_one_line_message_and_survives_pickling():
    error = _error(ScenarioConfig.from_dict, {"accounting": "marginal"})
    assert str(error) == "scenario.accounting: must be one of ['direct', 'life-cycle'], got 'marginal'"
    several = _error(ScenarioConfig.from_dict, {"accounting": "marginal", "epoch_s": 0})
    copy = pickle.loads(pickle.dumps(several))  # Ray ships errors between processes
    assert copy.errors == several.errors and str(copy) == str(several)
    assert isinstance(copy, ValueError)


def test_the_quick_preset_still_loads_with_its_values():
    quick = load_experiment("quick")
    assert quick.name == "quick"
    assert quick.scenario.name == "quick"
    assert [c.name for c in quick.scenario.cells] == ["coal-bs/hydro-dc", "hydro-bs/coal-dc"]
    assert [c.num_users for c in quick.scenario.cells] == [8, 8]
    assert quick.scenario.cells[0].grid_region == "synthetic:coal_heavy"
    assert quick.scenario.reward.deficit_timing == "accrued"
    assert quick.scenario.radio == RadioConfig()
    assert quick.training.env_steps == 4800
    assert quick.training.hidden == (128, 128)
    assert quick.training.initial_alpha == 0.02
    assert quick.constraints.method == "lagrangian"
    assert quick.algorithm == "sdrl"
    assert quick.days_per_cell == 4
    assert quick.algorithms == ("sdrl", "sac", "td3", "ppo")
    assert quick.seeds == (0,)
    # the defaults round-trip through to_dict / from_dict unchanged
    assert ScenarioConfig.from_dict(quick.scenario.to_dict()) == quick.scenario
    assert TrainingSettings.from_dict(quick.training.to_dict()) == quick.training


def test_every_shipped_preset_loads():
    from aolo.platform.presets import available_presets

    for preset in available_presets():
        load_experiment(preset)
