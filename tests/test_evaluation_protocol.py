"""The evaluation protocol (docs/design.md §3.1): season-spread held-out days, one independent random draw
per (cell, day), and no training episode reading a held-out day."""

import datetime as dt

import numpy as np
import pytest

from aolo.envs.cell_env import CellEnv
from aolo.envs.config import ScenarioConfig
from aolo.envs.rollout import spread_days
from aolo.platform.evaluation import evaluation_episodes

CELL = {"grid_region": "synthetic:coal_heavy", "datacenter_region": "synthetic:hydro", "num_users": 4}
TWIN = ScenarioConfig.from_dict({"name": "twin", "cells": [{"name": "a", **CELL}, {"name": "b", **CELL}]})


def _season(day: int) -> str:
    month = (dt.date(2023, 1, 1) + dt.timedelta(days=day)).month
    return {
        12: "winter",
        1: "winter",
        2: "winter",
        3: "spring",
        4: "spring",
        5: "spring",
        6: "summer",
        7: "summer",
        8: "summer",
    }.get(month, "autumn")


def test_four_evaluation_days_cover_every_season():
    pairs = evaluation_episodes(TWIN, 4)
    days = sorted({d for _, d in pairs})
    assert days == [48, 139, 230, 321]  # every 7th day is held out: days 6, 13, ..., 363 (52 days)
    assert {_season(d) for d in days} == {"winter", "spring", "summer", "autumn"}
    assert all(d % 7 == 6 for d in days)
    assert len(pairs) == 8 and {c for c, _ in pairs} == {0, 1}


@pytest.mark.parametrize("k", [1, 2, 3, 5, 13, 52, None])
def test_spread_days_is_sorted_unique_and_spans_the_set(k):
    held_out = np.arange(6, 364, 7)
    chosen = spread_days(held_out, k)
    assert len(chosen) == (len(held_out) if k is None else k)
    assert np.all(np.diff(chosen) > 0) and set(chosen) <= set(held_out)
    if k and k > 1:  # spread: the chosen days span at least (k-1)/k of the year
        assert chosen[-1] - chosen[0] >= (k - 1) / k * (held_out[-1] - held_out[0]) - 7


def test_cells_of_identical_spec_draw_independent_episodes_on_the_same_day():
    day = 139
    a = CellEnv({"scenario": TWIN, "cell_index": 0, "split": "heldout"})
    b = CellEnv({"scenario": TWIN, "cell_index": 1, "split": "heldout"})
    a.reset(seed=day, options={"day": day})
    b.reset(seed=day, options={"day": day})
    np.testing.assert_array_equal(a.episode.ci_cell_g_per_kwh, b.episode.ci_cell_g_per_kwh)  # same grid, same day
    assert not np.allclose(a.episode.large_scale_gain, b.episode.large_scale_gain, atol=0.0)
    assert not np.allclose(a.episode.fading_gain, b.episode.fading_gain)
    assert not np.array_equal(a.episode.ref_tokens, b.episode.ref_tokens)


def test_the_same_cell_and_day_replays_the_same_episode():
    day = 230
    first = CellEnv({"scenario": TWIN, "cell_index": 1, "split": "heldout"})
    second = CellEnv({"scenario": TWIN, "cell_index": 1, "split": "heldout"})
    first.reset(seed=day, options={"day": day})
    first.reset(seed=3, options={"day": 48})  # whatever ran before does not matter
    first.reset(seed=day, options={"day": day})
    second.reset(seed=day, options={"day": day})
    np.testing.assert_array_equal(first.episode.large_scale_gain, second.episode.large_scale_gain)
    np.testing.assert_array_equal(first.episode.fading_gain_estimate, second.episode.fading_gain_estimate)
    np.testing.assert_array_equal(first.episode.prompt_tokens, second.episode.prompt_tokens)


def _plain_trace(tmp_path, name, values):
    start = dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc)
    rows = ["timestamp,gco2_per_kwh"]
    rows += [f"{(start + dt.timedelta(hours=h)).isoformat()},{v:.3f}" for h, v in enumerate(values)]
    path = tmp_path / name
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def test_a_training_episode_never_reads_the_next_day(tmp_path):
    """Day 5 is a training day and day 6 is held out: changing day 6 must not change anything day 5 shows."""
    hours = np.arange(14 * 24)
    base = 300.0 + 100.0 * np.sin(2 * np.pi * hours / 24.0)
    changed = base.copy()
    changed[6 * 24 : 7 * 24] *= 3.0  # a different held-out day 6
    envs = []
    for i, values in enumerate((base, changed)):
        path = _plain_trace(tmp_path, f"trace{i}.csv", values)
        scenario = ScenarioConfig.from_dict(
            {"name": "leak", "cells": [{"name": "c", "grid_region": path, "datacenter_region": path, "num_users": 2}]}
        )
        env = CellEnv({"scenario": scenario})
        assert 5 in env.days["train"] and 6 in env.days["heldout"]
        env.reset(seed=0, options={"day": 5})
        envs.append(env)
    a, b = (e.episode for e in envs)
    np.testing.assert_array_equal(a.ci_cell_g_per_kwh, b.ci_cell_g_per_kwh)
    np.testing.assert_array_equal(a.ci_features, b.ci_features)
    np.testing.assert_array_equal(envs[0]._obs_table, envs[1]._obs_table)
