"""The one CSV reader behind carbon traces, workload traces and fading traces: same rules, same messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aolo.envs.channel import FadingTrace
from aolo.envs.csv_reader import read_csv
from aolo.envs.traces import load_plain_csv
from aolo.envs.workload import TraceWorkload
from aolo.errors import FadingTraceError, TraceError, WorkloadError

LOADERS = {
    "carbon": (load_plain_csv, TraceError),
    "workload": (TraceWorkload.from_csv, WorkloadError),
    "fading": (FadingTrace.load, FadingTraceError),
}


def test_rows_keep_their_file_line_numbers_blank_rows_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes("\ufeffa, b\r\n1,2\r\n\r\n  ,\r\n3,4,5\r\n".encode())
    table = read_csv(path, ValueError)
    assert table.header == ["a", "b"]  # BOM dropped, names stripped
    assert table.lines == [2, 5] and table.rows == [["1", "2"], ["3", "4", "5"]]
    assert table.column(lambda name: name == "b") == 1 and table.column(lambda name: name == "c") is None
    assert read_csv(path, ValueError, header=False).lines == [1, 2, 5]


@pytest.mark.parametrize("kind", LOADERS)
def test_every_loader_reports_the_same_file_errors(kind: str, tmp_path: Path) -> None:
    load, error = LOADERS[kind]
    with pytest.raises(error, match=r"none\.csv: file not found"):
        load(tmp_path / "none.csv")
    (tmp_path / "latin1.csv").write_bytes(b"timestamp,gco2_per_kwh\n\xe9,1\n")
    with pytest.raises(error, match=r"latin1\.csv: byte \d+ is not valid UTF-8; expected a UTF-8 CSV file"):
        load(tmp_path / "latin1.csv")
    (tmp_path / "empty.csv").write_text("\n\n")
    with pytest.raises(error, match=r"empty\.csv: empty file"):
        load(tmp_path / "empty.csv")


def test_fading_csv_short_row_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("u0,u1\n1.0,0.5\n\n0.2\n")
    with pytest.raises(FadingTraceError, match=r"f\.csv: line 4 has 1 fields; expected at least 2"):
        FadingTrace.load(path)
    path.write_text("1.0,0.5\n0.2,0.1\n")  # no header line
    assert np.array_equal(FadingTrace.load(path).power_gain, [[1.0, 0.2], [0.5, 0.1]])
