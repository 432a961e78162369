"""Tests of aolo.envs.traces: loaders, validation errors, synthetic archetypes, interpolation, split."""

from __future__ import annotations

import json
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from aolo.envs import traces
from aolo.envs.traces import (
    ARCHETYPES,
    HELDOUT_EVERY,
    CarbonTrace,
    TraceError,
    load_electricity_maps_csv,
    load_plain_csv,
    load_trace,
    load_uk_carbon_intensity_json,
    synthetic_trace,
)

START_2023_S = int(datetime(2023, 1, 1, tzinfo=timezone.utc).timestamp())

# Annual means (gCO2eq/kWh) of the Electricity Maps 2023 hourly files (direct, life-cycle).
REAL_MEANS = {
    "IN-WE": (691.5, 749.6),
    "DE": (329.3, 395.1),
    "US-CAL-CISO": (193.5, 261.2),
    "FR": (30.4, 49.4),
    "NO": (9.3, 34.1),
}

HEADER_2023 = (
    "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
    "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,Data Source,"
    "Data Estimated,Data Estimation Method"
)
HEADER_2024 = (
    "Datetime (UTC),Country,Zone name,Zone id,Carbon intensity gCO₂eq/kWh (direct),"
    "Carbon intensity gCO₂eq/kWh (Life cycle),Carbon-free energy percentage (CFE%),"
    "Renewable energy percentage (RE%),Data source,Data estimated,Data estimation method"
)


def em_row(hour: int, direct: str, lca: str = "200.0") -> str:
    stamp = f"2024-01-{1 + hour // 24:02d} {hour % 24:02d}:00:00"
    return f"{stamp},Germany,Germany,DE,{direct},{lca},50.0,40.0,entsoe.eu,false,"


def write(path: Path, lines: list[str], newline: str = "\n", bom: bool = False) -> Path:
    path.write_bytes((("\ufeff" if bom else "") + newline.join(lines) + newline).encode("utf-8"))
    return path


def plain_file(tmp_path: Path, values: list[str], step_min: int = 60, name: str = "plain.csv") -> Path:
    rows = [f"2023-03-01T{(i * step_min) // 60:02d}:{(i * step_min) % 60:02d}:00Z,{v}" for i, v in enumerate(values)]
    return write(tmp_path / name, ["timestamp,gco2_per_kwh", *rows])


# ---------------------------------------------------------------------------------------------
# Real Electricity Maps 2023 files
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def carbon_dir() -> Path:
    data_dir = traces.find_data_dir()
    where = data_dir / "carbon" if data_dir else "$AOLO_DATA_DIR or ../shared/data"
    if data_dir is None or not (data_dir / "carbon").is_dir():
        pytest.skip(f"shared data not found at {where}")
    return data_dir / "carbon"


@pytest.mark.parametrize("zone", sorted(REAL_MEANS))
def test_real_trace_annual_means(carbon_dir: Path, zone: str) -> None:
    path = carbon_dir / f"{zone}_2023_hourly.csv"
    direct = load_electricity_maps_csv(path)
    lca = load_electricity_maps_csv(path, accounting="life-cycle")
    mean_direct, mean_lca = REAL_MEANS[zone]
    assert direct.name == zone and direct.accounting == "direct" and lca.accounting == "life-cycle"
    assert direct.start_unix_s == START_2023_S
    assert direct.n_hours == 8760 and direct.n_days == 365
    assert direct.stats()["mean_gco2_per_kwh"] == pytest.approx(mean_direct, rel=0.005)
    assert lca.stats()["mean_gco2_per_kwh"] == pytest.approx(mean_lca, rel=0.005)
    assert np.all(lca.gco2_per_kwh >= direct.gco2_per_kwh)


def test_real_trace_stats_match_data_notes(carbon_dir: Path) -> None:
    assert b"\r\n" in (carbon_dir / "NO_2023_hourly.csv").read_bytes()[:400]  # the CRLF file
    stats = load_electricity_maps_csv(carbon_dir / "DE_2023_hourly.csv").stats()
    assert stats["p5_gco2_per_kwh"] == pytest.approx(138.9, abs=0.1)
    assert stats["p95_gco2_per_kwh"] == pytest.approx(579.4, abs=0.1)
    assert stats["daily_range_gco2_per_kwh"] == pytest.approx(181.8, abs=0.1)
    assert stats["lag1_autocorr"] == pytest.approx(0.986, abs=0.001)
    assert stats["lag24_autocorr"] == pytest.approx(0.710, abs=0.001)


def test_load_trace_zone_uses_file_and_caches(carbon_dir: Path) -> None:
    data_dir = str(carbon_dir.parent)
    first = load_trace("zone:FR", data_dir=data_dir)
    assert first.source.endswith("FR_2023_hourly.csv") and first.name == "FR"
    assert load_trace("zone:FR", data_dir=data_dir) is first
    assert load_trace("zone:FR", "life-cycle", data_dir).accounting == "life-cycle"


# ---------------------------------------------------------------------------------------------
# Format variants
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "newline", "bom"),
    [(HEADER_2023, "\n", False), (HEADER_2024, "\n", False), (HEADER_2023, "\r\n", False), (HEADER_2024, "\r\n", True)],
)
def test_electricity_maps_variants(tmp_path: Path, header: str, newline: str, bom: bool) -> None:
    lines = [header, *(em_row(h, str(100.0 + h)) for h in range(48))]
    path = write(tmp_path / "DE_2024_hourly.csv", lines, newline, bom)
    direct = load_electricity_maps_csv(path)
    assert direct.name == "DE"
    assert direct.start_unix_s == int(datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp())
    np.testing.assert_allclose(direct.gco2_per_kwh, 100.0 + np.arange(48))
    np.testing.assert_allclose(load_electricity_maps_csv(path, "life-cycle").gco2_per_kwh, 200.0)
    assert load_trace(str(path)).gco2_per_kwh[5] == 105.0  # sniffed as Electricity Maps


def test_uk_json_half_hours_averaged(tmp_path: Path) -> None:
    slots = [
        {"from": f"2023-01-01T{i // 2:02d}:{30 * (i % 2):02d}Z", "to": "...",
         "intensity": {"forecast": 100 + i, "actual": 200 + 10 * i, "index": "low"}}
        for i in range(4)
    ]  # fmt: skip
    path = tmp_path / "uk.json"
    path.write_text(json.dumps({"data": slots}))
    actual = load_uk_carbon_intensity_json(path)
    assert actual.name == "GB" and actual.start_unix_s == START_2023_S
    np.testing.assert_allclose(actual.gco2_per_kwh, [205.0, 225.0])
    np.testing.assert_allclose(load_uk_carbon_intensity_json(path, field="forecast").gco2_per_kwh, [100.5, 102.5])
    np.testing.assert_allclose(load_trace(str(path)).gco2_per_kwh, [205.0, 225.0])


def test_uk_json_null_actual(tmp_path: Path) -> None:
    slots = [
        {"from": f"2023-01-01T{i // 2:02d}:{30 * (i % 2):02d}Z", "intensity": {"forecast": 150, "actual": None}}
        for i in range(4)
    ]
    slots[0]["intensity"]["actual"] = 140
    path = tmp_path / "uk.json"
    path.write_text(json.dumps({"data": slots}))
    with pytest.raises(TraceError, match=r"3 of 4 slots .*'intensity.actual': entry 2 \(from 2023-01-01T00:30Z\)"):
        load_uk_carbon_intensity_json(path)
    np.testing.assert_allclose(load_uk_carbon_intensity_json(path, field="forecast").gco2_per_kwh, [150.0, 150.0])
    slots[2]["intensity"]["forecast"] = -5
    path.write_text(json.dumps({"data": slots}))
    with pytest.raises(TraceError, match=r"'intensity.forecast': 1 invalid values: entry 3 \(-5\)"):
        load_uk_carbon_intensity_json(path, field="forecast")
    with pytest.raises(TraceError, match="field 'median' is unknown"):
        load_uk_carbon_intensity_json(path, field="median")


def test_plain_csv_hourly_and_sub_hourly(tmp_path: Path) -> None:
    hourly = load_plain_csv(plain_file(tmp_path, ["10", "20", "30.5"]))
    assert hourly.name == "plain" and hourly.n_hours == 3 and hourly.n_days == 0
    assert hourly.start_unix_s == int(datetime(2023, 3, 1, tzinfo=timezone.utc).timestamp())
    np.testing.assert_allclose(hourly.gco2_per_kwh, [10.0, 20.0, 30.5])
    quarter = load_plain_csv(plain_file(tmp_path, ["1", "2", "3", "4", "10", "10", "10", "10"], 15, "q.csv"))
    np.testing.assert_allclose(quarter.gco2_per_kwh, [2.5, 10.0])
    assert load_trace(str(tmp_path / "q.csv")).n_hours == 2  # sniffed as plain


# ---------------------------------------------------------------------------------------------
# Validation errors
# ---------------------------------------------------------------------------------------------


def test_empty_and_header_only(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(TraceError, match=r"empty\.csv: empty file"):
        load_plain_csv(tmp_path / "empty.csv")
    write(tmp_path / "head.csv", ["timestamp,gco2_per_kwh"])
    with pytest.raises(TraceError, match=r"head\.csv: no data rows after the header \(line 1\)"):
        load_plain_csv(tmp_path / "head.csv")
    with pytest.raises(TraceError, match="file not found"):
        load_plain_csv(tmp_path / "missing.csv")


def test_missing_column_lists_found_and_expected(tmp_path: Path) -> None:
    header = "Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (direct)"
    path = write(tmp_path / "em.csv", [header, "2023-01-01 00:00:00,DE,1"])
    with pytest.raises(TraceError, match=r"line 1 \(header\): missing column.*\(LCA\).*found \['Datetime \(UTC\)'"):
        load_electricity_maps_csv(path, "life-cycle")
    bad = write(tmp_path / "p.csv", ["time,value", "2023-01-01 00:00:00,1"])
    with pytest.raises(TraceError, match=r"expected 'timestamp' and 'gco2_per_kwh'; found \['time', 'value'\]"):
        load_plain_csv(bad)
    with pytest.raises(TraceError, match="unrecognised CSV format"):
        load_trace(str(bad))


def test_unparsable_timestamp(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", ["timestamp,gco2_per_kwh", "2023-01-01T00:00Z,1", "01/01/2023 01:00,2"])
    expected = r"line 3, column 'timestamp': cannot parse timestamp '01/01/2023 01:00'.*ISO-8601"
    with pytest.raises(TraceError, match=expected):
        load_plain_csv(path)


def test_duplicate_and_backwards_timestamps(tmp_path: Path) -> None:
    rows = ["timestamp,gco2_per_kwh", "2023-01-01 00:00,1", "2023-01-01 01:00,1", "2023-01-01 01:00,1"]
    with pytest.raises(TraceError, match=r"duplicate timestamps: line 3 \(2023-01-01 01:00:00 UTC\) then line 4"):
        load_plain_csv(write(tmp_path / "d.csv", rows))
    rows[3] = "2023-01-01 00:30,1"
    with pytest.raises(TraceError, match="non-increasing timestamps: line 3 .* then line 4 .*00:30:00"):
        load_plain_csv(write(tmp_path / "b.csv", rows))


def test_gaps_and_irregular_steps(tmp_path: Path) -> None:
    hours = [0, 1, 2, 4, 5, 6, 9]
    rows = ["timestamp,gco2_per_kwh", *(f"2023-01-01 {h:02d}:00,1" for h in hours)]
    expected = r"2 gaps or irregular steps: line 4 .* -> line 5 .*line 7 .* -> line 8.*every 3600 s"
    with pytest.raises(TraceError, match=expected):
        load_plain_csv(write(tmp_path / "g.csv", rows))
    rows = ["timestamp,gco2_per_kwh", *(f"2023-01-01 00:{m:02d},1" for m in (0, 7, 14, 21))]
    with pytest.raises(TraceError, match="420 s apart; expected hourly or a regular sub-hourly step"):
        load_plain_csv(write(tmp_path / "s.csv", rows))
    with pytest.raises(TraceError, match="3 samples at 1800 s do not fill whole hours"):
        load_plain_csv(plain_file(tmp_path, ["1", "2", "3"], 30, "h.csv"))


def test_bad_values_counted_and_located(tmp_path: Path) -> None:
    values = [str(v) for v in range(10)]
    values[2], values[5], values[6], values[8] = "-3", "", "nan", "abc"
    expected = r"'gco2_per_kwh': 4 invalid values: line 4 \('-3'\), line 7 \(''\), line 8 \('nan'\), line 10 \('abc'\)"
    with pytest.raises(TraceError, match=expected):
        load_plain_csv(plain_file(tmp_path, values))
    lines = [HEADER_2023, *(em_row(h, "-1") for h in range(8))]
    with pytest.raises(TraceError, match=r"8 invalid values: line 2 .*line 6 \('-1'\) and 3 more"):
        load_electricity_maps_csv(write(tmp_path / "em.csv", lines))


def test_short_row_and_unknown_accounting(tmp_path: Path) -> None:
    path = write(tmp_path / "em.csv", [HEADER_2023, em_row(0, "1"), "2024-01-01 01:00:00,Germany"])
    with pytest.raises(TraceError, match="line 3 has 2 fields; expected at least 5"):
        load_electricity_maps_csv(path)
    with pytest.raises(TraceError, match=r"accounting 'market' is unknown; expected one of \('direct', 'life-cycle'\)"):
        load_electricity_maps_csv(path, accounting="market")
    with pytest.raises(TraceError, match="accounting 'market' is unknown"):
        load_trace("synthetic:hydro", accounting="market")
    with pytest.raises(TraceError, match="field 'accounting'"):
        CarbonTrace("x", 0, np.ones(3), "test", accounting="lca")


def test_carbon_trace_rejects_bad_values() -> None:
    with pytest.raises(TraceError, match=r"2 invalid values .*hour 1 \(-1.0\), hour 3 \(nan\)"):
        CarbonTrace("x", 0, np.array([1.0, -1.0, 2.0, np.nan]), "test")
    with pytest.raises(TraceError, match="non-empty 1-D"):
        CarbonTrace("x", 0, np.ones((2, 2)), "test")
    trace = CarbonTrace("x", 0, [1, 2], "test")
    assert trace.gco2_per_kwh.dtype == np.float64 and not trace.gco2_per_kwh.flags.writeable


# ---------------------------------------------------------------------------------------------
# Interpolation, split, statistics
# ---------------------------------------------------------------------------------------------


def test_value_i_holds_for_the_hour_starting_at_i() -> None:
    trace = CarbonTrace("x", 0, np.array([100.0, 200.0, 200.0, 50.0]), "test")
    # :15, :30 and :45 of hour 0 read hour 0's value (no mixing in the next hour); hour 3 holds past the end
    got = trace.values_at(np.array([0.0, 0.25, 0.5, 0.75, 0.999, 1.0, 2.75, 3.0, 10.0, -1.0]))
    np.testing.assert_array_equal(got, [100.0, 100.0, 100.0, 100.0, 100.0, 200.0, 200.0, 50.0, 50.0, 100.0])
    assert trace.values_at(np.zeros((2, 3))).shape == (2, 3)
    # an epoch grid of 15 min (900 s / 3600 s in float) lands each epoch in its own hour: 4 epochs per value
    epochs = np.arange(16) * (900.0 / 3600.0)
    np.testing.assert_array_equal(trace.values_at(epochs), np.repeat(trace.gco2_per_kwh, 4))
    # 6 min epochs: the mean over a whole day of epochs is the mean of the hourly values (each hour weighs alike)
    day = CarbonTrace("d", 0, np.arange(24.0), "test")
    epochs = np.arange(24 * 60 // 6) * 0.1
    assert day.values_at(epochs).mean() == pytest.approx(np.arange(24.0).mean())


def test_train_heldout_split() -> None:
    trace = CarbonTrace("x", 0, np.ones(24 * 30 + 5), "test")
    assert trace.n_days == 30
    held, train = trace.heldout_days(), trace.train_days()
    np.testing.assert_array_equal(held, [6, 13, 20, 27])
    assert HELDOUT_EVERY == 7 and np.intersect1d(held, train).size == 0
    np.testing.assert_array_equal(np.union1d(held, train), np.arange(30))
    assert train.dtype.kind == "i" and held.dtype.kind == "i"


def test_stats_on_hand_made_series() -> None:
    ramp = np.tile(np.arange(24.0), 3)  # each day goes 0 .. 23
    stats = CarbonTrace("x", 0, ramp, "test").stats()
    assert stats["mean_gco2_per_kwh"] == 11.5
    assert stats["daily_range_gco2_per_kwh"] == 23.0
    assert stats["p5_gco2_per_kwh"] == pytest.approx(np.percentile(ramp, 5))
    assert stats["lag24_autocorr"] == pytest.approx(2 / 3)  # 48 of 72 products, same values
    assert np.isnan(CarbonTrace("c", 0, np.ones(30), "test").stats()["lag1_autocorr"])


# ---------------------------------------------------------------------------------------------
# Synthetic archetypes and load_trace
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ARCHETYPES))
def test_synthetic_archetype_matches_targets(name: str) -> None:
    targets = ARCHETYPES[name].targets
    for seed in (0, 1):
        trace = synthetic_trace(name, seed=seed)
        stats = trace.stats()
        assert trace.n_hours == 8760 and trace.start_unix_s == START_2023_S
        assert trace.name == f"synthetic:{name}" and trace.source == "synthetic"
        assert np.all(trace.gco2_per_kwh >= 0.0)
        assert stats["mean_gco2_per_kwh"] == pytest.approx(targets.mean_gco2_per_kwh, rel=0.03)
        assert stats["p5_gco2_per_kwh"] == pytest.approx(targets.p5_gco2_per_kwh, rel=0.10)
        assert stats["p95_gco2_per_kwh"] == pytest.approx(targets.p95_gco2_per_kwh, rel=0.10)
        assert stats["lag1_autocorr"] == pytest.approx(targets.lag1_autocorr, abs=0.03)
        assert stats["daily_range_gco2_per_kwh"] == pytest.approx(targets.daily_range_gco2_per_kwh, rel=0.20)
        assert stats["lag24_autocorr"] == pytest.approx(targets.lag24_autocorr, abs=0.15)
    lca = synthetic_trace(name, accounting="life-cycle")
    assert lca.stats()["mean_gco2_per_kwh"] == pytest.approx(targets.lca_mean_gco2_per_kwh, rel=0.03)


def test_synthetic_deterministic_and_seeded() -> None:
    a = synthetic_trace("wind_coal", seed=3)
    np.testing.assert_array_equal(a.gco2_per_kwh, synthetic_trace("wind_coal", seed=3).gco2_per_kwh)
    assert not np.array_equal(a.gco2_per_kwh, synthetic_trace("wind_coal", seed=4).gco2_per_kwh)
    assert not np.array_equal(a.gco2_per_kwh, synthetic_trace("wind_coal", year=2022, seed=3).gco2_per_kwh)
    leap = synthetic_trace("hydro", year=2024)
    assert leap.n_hours == 8784 and leap.n_days == 366
    with pytest.raises(TraceError, match="seed -1 is invalid"):
        synthetic_trace("hydro", seed=-1)


def test_solar_duck_minimum_near_20_utc() -> None:
    daily = synthetic_trace("solar_duck").gco2_per_kwh.reshape(-1, 24).mean(axis=0)
    assert 18 <= int(np.argmin(daily)) <= 22


def test_unknown_names_list_allowed() -> None:
    with pytest.raises(TraceError, match=r"archetype 'gas' is unknown; expected one of \['coal_heavy', 'hydro', "):
        synthetic_trace("gas")
    expected = r"'zone:XX'.*expected one of the zones \['DE', 'FR', 'IN-WE', 'NO', 'US-CAL-CISO'\]"
    with pytest.raises(TraceError, match=expected):
        load_trace("zone:XX", data_dir="/nonexistent")
    with pytest.raises(TraceError, match="not understood; expected 'synthetic:<archetype>'"):
        load_trace("DE")


def test_zone_falls_back_to_synthetic_with_warning(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="using the synthetic archetype 'hydro' calibrated to NO"):
        trace = load_trace("zone:NO", data_dir=str(tmp_path))
    np.testing.assert_array_equal(trace.gco2_per_kwh, synthetic_trace("hydro").gco2_per_kwh)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_trace("zone:NO", data_dir=str(tmp_path)) is trace  # cached: no second warning
    assert load_trace("synthetic:hydro") is load_trace("synthetic:hydro")


def test_find_data_dir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOLO_DATA_DIR", str(tmp_path))
    assert traces.find_data_dir() == tmp_path
    monkeypatch.setenv("AOLO_DATA_DIR", str(tmp_path / "nope"))
    with pytest.raises(TraceError, match="AOLO_DATA_DIR"):
        traces.find_data_dir()


def test_relative_path_resolved_under_data_dir(tmp_path: Path) -> None:
    plain_file(tmp_path, ["7", "8"], name="mine.csv")
    assert load_trace("mine.csv", data_dir=str(tmp_path)).gco2_per_kwh.tolist() == [7.0, 8.0]
    with pytest.raises(TraceError, match="direct intensity only"):
        load_trace("uk.json", accounting="life-cycle", data_dir=str(tmp_path))


def test_zone_file_lookup_in_data_dir(tmp_path: Path) -> None:
    (tmp_path / "carbon").mkdir()
    lines = [HEADER_2024, *(em_row(h, "321") for h in range(24))]
    write(tmp_path / "carbon" / "DE_2024_hourly.csv", lines)
    trace = load_trace("zone:DE", data_dir=str(tmp_path))
    assert trace.name == "DE" and trace.n_days == 1 and trace.stats()["mean_gco2_per_kwh"] == 321.0
    write(tmp_path / "carbon" / "DE_2023_hourly.csv", lines)
    with pytest.raises(TraceError, match="several files match"):
        load_trace("zone:DE", "life-cycle", str(tmp_path))
