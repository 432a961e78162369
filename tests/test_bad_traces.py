"""Traces wrong in units or time are refused with one clear error (file, row, allowed range), not silently used."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from aolo.envs.cell_env import CellEnv
from aolo.envs.config import ConfigError, ScenarioConfig
from aolo.envs.traces import load_trace
from aolo.errors import FadingTraceError, TraceError
from aolo.platform.train import preflight

DAYS = 14  # two weeks: training days and two held-out days (6, 13)


def plain_trace(path: Path, values: list[float] | np.ndarray, start: str = "2023-01-01T00:00:00Z") -> Path:
    """A ``timestamp,gco2_per_kwh`` CSV, hourly from ``start`` (header = line 1, value i on line i + 2)."""
    t0 = np.datetime64(start.rstrip("Z"), "s")
    rows = [f"{t0 + np.timedelta64(3600 * i, 's')}Z,{v!r}" for i, v in enumerate(values)]
    path.write_text("timestamp,gco2_per_kwh\n" + "\n".join(rows) + "\n")
    return path


def scenario(grid: str, datacenter: str = "synthetic:hydro", **cell) -> ScenarioConfig:
    return ScenarioConfig.from_dict(
        {"name": "t", "cells": [{"name": "c", "grid_region": grid, "datacenter_region": datacenter, **cell}]}
    )


# --- carbon intensity outside the plausible range ----------------------------------------------------------


def test_values_in_mg_per_kwh_are_refused_naming_file_line_and_range(tmp_path):
    path = plain_trace(tmp_path / "mg.csv", [3.0e5] * 24)  # 300 g/kWh written in mg/kWh
    with pytest.raises(TraceError) as error:
        load_trace(str(path))
    message = str(error.value)
    assert "mg.csv, column 'gco2_per_kwh': 24 values above the plausible range" in message
    assert "(the values look like mg/kWh or another unit)" in message
    assert "line 2 ('300000.0')" in message and "in [0, 2500]" in message


def test_one_absurd_value_is_refused_at_its_line(tmp_path):
    values = [300.0] * 48
    values[30] = 1e300  # with this value hindsight once scored worse than myopic
    with pytest.raises(TraceError, match=r"1 values above the plausible range: line 32 \('1e\+300'\); expected"):
        load_trace(str(plain_trace(tmp_path / "huge.csv", values)))


def test_the_limit_is_configurable_per_scenario(tmp_path):
    path = plain_trace(tmp_path / "dirty.csv", [3000.0] * (24 * DAYS))
    with pytest.raises(ConfigError, match=r"dirty\.csv.*in \[0, 2500\]"):
        preflight(scenario(str(path)))
    raised = scenario(str(path)).replace(carbon_intensity_max_g_per_kwh=4000.0)
    assert CellEnv({"scenario": raised, "cell_index": 0}).trace_cell.gco2_per_kwh.max() == 3000.0


def test_a_trace_in_kg_per_kwh_warns(tmp_path):
    path = plain_trace(tmp_path / "kg.csv", [0.3] * 24)
    with pytest.warns(UserWarning, match=r"kg\.csv.*every value is below 2\.5 \(peak 0\.3\).*looks like kgCO2eq/kWh"):
        load_trace(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a real g/kWh trace warns nothing
        load_trace(str(plain_trace(tmp_path / "g.csv", [0.3, 300.0] * 12)))


# --- absolute time -----------------------------------------------------------------------------------------


def test_a_trace_not_starting_at_midnight_utc_is_refused_naming_its_first_timestamp(tmp_path):
    path = plain_trace(tmp_path / "late.csv", [300.0] * 48, start="2023-01-01T05:00:00Z")
    with pytest.raises(
        TraceError, match=r"late\.csv: first timestamp 2023-01-01 05:00 UTC; a trace must start at 00:00"
    ):
        load_trace(str(path))


def test_a_cells_traces_must_start_at_the_same_instant(tmp_path):
    path = plain_trace(tmp_path / "y2024.csv", [300.0] * (24 * DAYS), start="2024-01-01T00:00:00Z")
    with pytest.raises(ConfigError) as error:
        preflight(scenario(str(path)))  # the datacenter's synthetic:hydro is the year 2023
    message = str(error.value)
    assert "cell 'c': its grid trace" in message and "y2024.csv starts 2024-01-01 00:00 UTC" in message
    assert "datacenter trace synthetic starts 2023-01-01 00:00 UTC" in message


# --- fading traces -----------------------------------------------------------------------------------------


def fading_file(path: Path, users: int, steps: int) -> Path:
    np.savez(path, gain=np.full((users, steps), 1.0))
    return path


def test_a_fading_trace_with_fewer_users_than_the_cell_fails_before_training(tmp_path):
    path = fading_file(tmp_path / "two.npz", users=2, steps=96 * 366)
    with pytest.raises(
        FadingTraceError, match=r"two\.npz: the fading trace has 2 users \(columns\) but cell 'c' has 8"
    ):
        CellEnv({"scenario": scenario("synthetic:coal_heavy", fading_trace=str(path)), "cell_index": 0})
    with pytest.raises(ConfigError, match="has 2 users"):  # the preflight of every command
        preflight(scenario("synthetic:coal_heavy", fading_trace=str(path)))


def test_a_fading_trace_shorter_than_the_days_read_is_an_error_unless_it_wraps(tmp_path):
    path = fading_file(tmp_path / "day.npz", users=8, steps=96)  # one day of 15-min steps
    short = scenario("synthetic:coal_heavy", fading_trace=str(path))
    with pytest.raises(
        FadingTraceError, match=r"day\.npz: the fading trace has 96 steps \(rows\) but cell 'c' reads up to"
    ):
        CellEnv({"scenario": short, "cell_index": 0})
    wrapped = scenario("synthetic:coal_heavy", fading_trace=str(path), fading_trace_wrap=True)
    wrapped = wrapped.replace(**{"radio.fading_average": "instantaneous"})
    env = CellEnv({"scenario": wrapped, "cell_index": 0})
    env.reset(seed=0, options={"day": int(env.days["train"][-1])})  # a day far past the trace's end


def test_a_fading_trace_under_the_ergodic_rate_warns_that_it_cannot_matter(tmp_path):
    path = fading_file(tmp_path / "year.npz", users=8, steps=96 * 365)
    with pytest.warns(UserWarning, match=r"fading_trace .*year\.npz cannot change any result: radio\.fading_average"):
        CellEnv({"scenario": scenario("synthetic:coal_heavy", fading_trace=str(path)), "cell_index": 0})
