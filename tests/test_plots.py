"""Data behind ``aolo compare``'s figures, checked on hand-computed values (not pixels)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aolo.platform.plots import learning_curve_bands, plot_cell_carbon, plot_learning_curves
from aolo.platform.results import cell_means

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _history(points):
    return [{"env_steps": s, "episode_return_mean": r} for s, r in points]


def test_learning_curve_bands_are_median_and_quartiles_per_user_epoch():
    histories = {
        "sac": [
            _history([(0, -100), (10, -50), (20, -10), (30, math.nan)]),  # NaN (no finished episode) is dropped
            _history([(0, -200), (10, -100), (20, -20)]),
            _history([(5, -40), (20, 0)]),  # starts later: the band covers 5..20, where every seed has data
        ]
    }
    band = learning_curve_bands(histories, users_per_episode=2, epochs_per_episode=5)["sac"]  # / 10
    assert band.n == 3
    np.testing.assert_allclose(band.env_steps, [5, 10, 20])
    # step 5: seeds interpolate to -75, -150, -40 -> /10: -7.5, -15, -4; numpy's linear quartiles of
    # [-15, -7.5, -4]: q25 = -15 + 0.5·7.5 = -11.25, q75 = -7.5 + 0.5·3.5 = -5.75
    # step 10: -50, -100, -26.667 -> sorted [-10, -5, -2.6667]; step 20: -10, -20, 0 -> [-2, -1, 0]
    np.testing.assert_allclose(band.median, [-7.5, -5.0, -1.0])
    np.testing.assert_allclose(band.q25, [-11.25, -7.5, -1.5])
    np.testing.assert_allclose(band.q75, [-5.75, -5 + 0.5 * (5 - 8 / 3), -0.5])  # -3.8333 at step 10
    # a diverging seed moves the median band by its rank only, not by its size (mean ± sd would)
    wild = learning_curve_bands(
        {"a": [_history([(0, 1), (1, 1)]), _history([(0, 2), (1, 2)]), _history([(0, -1e6), (1, -1e6)])]}
    )["a"]
    np.testing.assert_allclose(wild.median, [1, 1])
    assert wild.q75.max() == pytest.approx(1.5)


def test_learning_curve_bands_skip_empty_runs_and_check_the_scale():
    assert learning_curve_bands({"td3": [_history([(0, math.nan)])]}) == {}
    with pytest.raises(ValueError, match="users_per_episode"):
        learning_curve_bands({}, users_per_episode=0)


def test_cell_means_average_episodes_per_cell_without_the_all_row():
    rows = [
        {"cell": "a", "carbon_g_per_request": "0.002"},
        {"cell": "a", "carbon_g_per_request": "0.004"},
        {"cell": "b", "carbon_g_per_request": "0.01", "bound_g_per_request": ""},
        {"cell": "all", "carbon_g_per_request": "1"},
    ]
    assert cell_means(rows) == pytest.approx({"a": 0.003, "b": 0.01})
    assert cell_means(rows, "bound_g_per_request") == {}  # empty cells are not values


def test_plots_write_pngs(tmp_path):
    path = plot_cell_carbon(
        {"sdrl": {"a": 0.004, "b": 0.002}, "myopic": {"a": 0.005}}, tmp_path / "c.png", bound={"a": 0.0035, "b": 0.0018}
    )
    assert path.read_bytes()[:8] == PNG_MAGIC
    path = plot_learning_curves({"sac": [_history([(0, -1), (10, -0.5)])] * 2}, tmp_path / "l.png", 2, 24)
    assert path.read_bytes()[:8] == PNG_MAGIC
