"""Tests of aolo.envs.workload: the fitted log-normal default, the CSV trace loader and make_workload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aolo.envs.traces import find_data_dir
from aolo.envs.workload import LogNormalWorkload, TraceWorkload, WorkloadError, make_workload


@pytest.fixture(scope="module")
def workload_dir() -> Path:
    data_dir = find_data_dir()
    where = data_dir / "llm_workload" if data_dir else "$AOLO_DATA_DIR or ../shared/data"
    if data_dir is None or not (data_dir / "llm_workload").is_dir():
        pytest.skip(f"shared data not found at {where}")
    return data_dir / "llm_workload"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_lognormal_default_matches_azure_conv() -> None:
    prompt, output = LogNormalWorkload().sample(np.random.default_rng(0), 200_000)
    assert prompt.dtype == np.int64 and output.dtype == np.int64
    assert prompt.shape == output.shape == (200_000,)
    assert prompt.min() >= 1 and prompt.max() <= 14_050
    assert output.min() >= 1 and output.max() <= 1_000
    # Azure LLM inference trace 2023 (conv): prompt median 1020 / mean 1155; output median 129 / mean 211.
    assert np.median(prompt) == pytest.approx(1020, rel=0.10)
    assert prompt.mean() == pytest.approx(1155, rel=0.10)
    assert np.median(output) == pytest.approx(129, rel=0.10)
    assert output.mean() == pytest.approx(211, rel=0.10)


def test_lognormal_deterministic_and_validated() -> None:
    w = LogNormalWorkload()
    a = w.sample(np.random.default_rng(7), 50)
    b = w.sample(np.random.default_rng(7), 50)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert w.sample(np.random.default_rng(0), 0)[0].shape == (0,)
    fixed = LogNormalWorkload(prompt_mu_log=np.log(100), prompt_sigma_log=0.0, output_mu_log=np.log(5000),
                              output_sigma_log=0.0)  # fmt: skip
    prompt, output = fixed.sample(np.random.default_rng(0), 3)
    assert prompt.tolist() == [100, 100, 100] and output.tolist() == [1000, 1000, 1000]  # clipped at the cap
    with pytest.raises(WorkloadError, match="'output_sigma_log' is -1.0; expected >= 0"):
        LogNormalWorkload(output_sigma_log=-1.0)
    with pytest.raises(WorkloadError, match="prompt_min_tokens=0"):
        LogNormalWorkload(prompt_min_tokens=0)
    with pytest.raises(WorkloadError, match="n=-1 is invalid"):
        w.sample(np.random.default_rng(0), -1)


@pytest.mark.parametrize(("name", "rows", "output_median"), [("conv", 19_366, 129), ("code", 8_819, 13)])
def test_trace_workload_from_azure_files(workload_dir: Path, name: str, rows: int, output_median: int) -> None:
    trace = TraceWorkload.from_csv(workload_dir / f"AzureLLMInferenceTrace_{name}.csv")
    assert trace.prompt_tokens.size == trace.output_tokens.size == rows
    assert np.median(trace.output_tokens) == output_median
    if name == "conv":
        assert np.median(trace.prompt_tokens) == 1020 and trace.output_tokens.max() == 1000
        assert trace.output_tokens.mean() == pytest.approx(211.1, abs=0.1)
    prompt, output = trace.sample(np.random.default_rng(1), 1000)
    pairs = set(zip(trace.prompt_tokens.tolist(), trace.output_tokens.tolist(), strict=False))
    assert all(
        pair in pairs for pair in zip(prompt.tolist(), output.tolist(), strict=False)
    )  # whole rows are resampled
    assert make_workload(str(workload_dir / f"AzureLLMInferenceTrace_{name}.csv")).prompt_tokens.size == rows


def test_trace_workload_alternative_headers(tmp_path: Path) -> None:
    path = write(tmp_path / "w.csv", "id,Input_Tokens,Completion_Tokens\r\na,10,3\r\n\r\nb,20.0,4\r\n")
    trace = TraceWorkload.from_csv(path)
    assert trace.prompt_tokens.tolist() == [10, 20] and trace.output_tokens.tolist() == [3, 4]
    prompt, output = trace.sample(np.random.default_rng(0), 100)
    assert set(prompt.tolist()) == {10, 20} and np.all((output == 3) == (prompt == 10))
    assert not trace.prompt_tokens.flags.writeable


def test_trace_workload_bad_files(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="empty file"):
        TraceWorkload.from_csv(write(tmp_path / "e.csv", ""))
    with pytest.raises(WorkloadError, match=r"no data rows after the header \(line 1\)"):
        TraceWorkload.from_csv(write(tmp_path / "h.csv", "prompt_tokens,output_tokens\n"))
    expected = r"line 1 \(header\): no column generatedtokens \| output_tokens .*found \['ContextTokens', 'Tokens'\]"
    with pytest.raises(WorkloadError, match=expected):
        TraceWorkload.from_csv(write(tmp_path / "m.csv", "ContextTokens,Tokens\n1,2\n"))
    bad = "prompt_tokens,output_tokens\n5,1\n0,2\n3.5,2\n-4,2\nx,2\n,2\n7,7\n"
    expected = (
        r"'prompt_tokens': 5 invalid token counts: "
        r"line 3 \('0'\), line 4 \('3.5'\), line 5 \('-4'\), line 6 \('x'\), line 7 \(''\)"
    )
    with pytest.raises(WorkloadError, match=expected):
        TraceWorkload.from_csv(write(tmp_path / "b.csv", bad))
    with pytest.raises(WorkloadError, match="line 3 has 1 fields; expected at least 2"):
        TraceWorkload.from_csv(write(tmp_path / "s.csv", "prompt_tokens,output_tokens\n5,1\n6\n"))
    with pytest.raises(WorkloadError, match="file not found"):
        TraceWorkload.from_csv(tmp_path / "none.csv")
    with pytest.raises(WorkloadError, match="equal length"):
        TraceWorkload(np.array([1, 2]), np.array([1]), "test")


def test_make_workload_specs(tmp_path: Path) -> None:
    assert make_workload(None) == LogNormalWorkload()
    assert make_workload("lognormal") == LogNormalWorkload()
    path = write(tmp_path / "w.csv", "prompt_tokens,output_tokens\n3,4\n")
    assert isinstance(make_workload(str(path)), TraceWorkload)
    with pytest.raises(WorkloadError, match=r"'azure': no such file; expected None, 'lognormal' or a CSV file path"):
        make_workload("azure")
