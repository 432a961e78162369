"""LLM request workload: prompt length and reference answer length per request (docs/design.md §3.3).

Two models draw ``(prompt_tokens, ref_output_tokens)`` pairs, both int64 and >= 1:

* :class:`LogNormalWorkload` — independent log-normal prompt and output lengths whose defaults match
  the Azure LLM inference trace 2023, conversation service (P. Patel et al., "Splitwise: Efficient
  generative LLM inference using phase splitting", ISCA 2024; data CC BY 4.0,
  Azure/AzurePublicDataset ``AzureLLMInferenceTrace_conv.csv``).
* :class:`TraceWorkload` — resamples whole rows of a CSV trace (keeps the empirical, multimodal
  distribution and the prompt/output pairing).

:func:`make_workload` turns a config value (``None``, ``"lognormal"`` or a CSV path) into one of them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aolo.envs.csv_reader import read_csv
from aolo.errors import WorkloadError  # re-exported: aolo.envs.workload.WorkloadError

_PROMPT_COLUMNS = ("contexttokens", "prompt_tokens", "input_tokens")
_OUTPUT_COLUMNS = ("generatedtokens", "output_tokens", "completion_tokens")
_MAX_LISTED = 5  # how many offending rows an error message lists


def _check_n(n: int) -> None:
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise WorkloadError(f"sample size n={n!r} is invalid; expected an integer >= 0")


@dataclass(frozen=True)
class LogNormalWorkload:
    """Independent log-normal prompt and reference-output lengths, rounded and clipped.

    ``tokens = clip(round(exp(N(mu_log, sigma_log**2))), min_tokens, max_tokens)``.

    Defaults, fitted to the Azure conv trace (19,366 requests): ``mu_log = ln(median)`` and
    ``sigma_log`` solved so that the clipped log-normal has the trace's mean, i.e. prompts median 1020
    / mean 1155 tokens, outputs median 129 / mean 211 tokens. The trace is multimodal, so no single
    log-normal matches its spread as well: these fits are narrower than the trace for prompts
    (p10-p90 ≈ 540-1930 vs 207-2735) and wider for outputs (≈ 33-510 vs 54-424). Plain MLE on log
    tokens (prompts mu 6.633, sigma 0.985; outputs mu 5.019, sigma 0.859) was not used: it puts the
    medians 25 % low (761) and 17 % high (151). Log prompt and output lengths are nearly uncorrelated
    in the trace (r = 0.09), so they are drawn independently. Clip ranges: the trace's maximum
    prompt (14,050) and the service's output cap (1,000).
    """

    prompt_mu_log: float = 6.9276
    prompt_sigma_log: float = 0.4981
    output_mu_log: float = 4.8598
    output_sigma_log: float = 1.0718
    prompt_min_tokens: int = 1
    prompt_max_tokens: int = 14_050
    output_min_tokens: int = 1
    output_max_tokens: int = 1_000

    def __post_init__(self) -> None:
        for name in ("prompt_mu_log", "prompt_sigma_log", "output_mu_log", "output_sigma_log"):
            if not math.isfinite(getattr(self, name)):
                raise WorkloadError(f"LogNormalWorkload: field {name!r} must be finite")
        for side in ("prompt", "output"):
            sigma = getattr(self, f"{side}_sigma_log")
            lo, hi = getattr(self, f"{side}_min_tokens"), getattr(self, f"{side}_max_tokens")
            if sigma < 0.0:
                raise WorkloadError(f"LogNormalWorkload: field '{side}_sigma_log' is {sigma}; expected >= 0")
            if not 1 <= lo <= hi:
                raise WorkloadError(
                    f"LogNormalWorkload: {side}_min_tokens={lo}, {side}_max_tokens={hi}; expected 1 <= min <= max"
                )

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` requests: (prompt_tokens, ref_output_tokens), each int64 array of length ``n``."""
        _check_n(n)
        log_tokens = rng.normal(
            [[self.prompt_mu_log], [self.output_mu_log]], [[self.prompt_sigma_log], [self.output_sigma_log]], (2, n)
        )
        tokens = np.rint(np.exp(log_tokens))
        prompt = np.clip(tokens[0], self.prompt_min_tokens, self.prompt_max_tokens).astype(np.int64)
        output = np.clip(tokens[1], self.output_min_tokens, self.output_max_tokens).astype(np.int64)
        return prompt, output


def _find_column(path: Path, header: list[str], names: tuple[str, ...]) -> int:
    lowered = [cell.strip().lower() for cell in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    raise WorkloadError(f"{path}: line 1 (header): no column {' | '.join(names)} (case-insensitive); found {header}")


def _parse_tokens(path: Path, column: str, lines: list[int], cells: list[str]) -> np.ndarray:
    """Parse positive whole token counts (``12`` or ``12.0``); list how many and which rows are bad."""
    values = np.empty(len(cells), dtype=np.int64)
    bad: list[int] = []
    for i, text in enumerate(cells):
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if math.isfinite(number) and number >= 1.0 and number.is_integer():
            values[i] = int(number)
        else:
            bad.append(i)
    if bad:
        listed = ", ".join(f"line {lines[i]} ({cells[i]!r})" for i in bad[:_MAX_LISTED])
        more = f" and {len(bad) - _MAX_LISTED} more" if len(bad) > _MAX_LISTED else ""
        raise WorkloadError(
            f"{path}, column {column!r}: {len(bad)} invalid token counts: {listed}{more}; expected an integer >= 1"
        )
    return values


@dataclass(frozen=True, eq=False)
class TraceWorkload:
    """Empirical workload: each request is a uniformly drawn row (prompt, output) of a trace.

    Attributes:
        prompt_tokens: prompt length per trace row (int64, >= 1, read-only).
        output_tokens: generated length per trace row (int64, >= 1, read-only).
        source: where the rows came from (file path).
    """

    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    source: str

    def __post_init__(self) -> None:
        prompt = np.array(self.prompt_tokens, dtype=np.int64)
        output = np.array(self.output_tokens, dtype=np.int64)
        if prompt.ndim != 1 or prompt.shape != output.shape or prompt.size == 0:
            raise WorkloadError(
                f"TraceWorkload ({self.source}): prompt_tokens {prompt.shape} and output_tokens {output.shape} "
                "must be non-empty 1-D arrays of equal length"
            )
        if prompt.min() < 1 or output.min() < 1:
            raise WorkloadError(f"TraceWorkload ({self.source}): token counts must be >= 1")
        prompt.flags.writeable = False
        output.flags.writeable = False
        object.__setattr__(self, "prompt_tokens", prompt)
        object.__setattr__(self, "output_tokens", output)

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str]) -> TraceWorkload:
        """Read a CSV with a prompt column (ContextTokens | prompt_tokens | input_tokens) and an output
        column (GeneratedTokens | output_tokens | completion_tokens), matched case-insensitively.

        UTF-8 (BOM allowed), LF or CRLF; blank lines are skipped; other columns are ignored.
        """
        file = Path(path)
        table = read_csv(file, WorkloadError)
        header, lines = table.header, table.lines
        prompt_col = _find_column(file, header, _PROMPT_COLUMNS)
        output_col = _find_column(file, header, _OUTPUT_COLUMNS)
        table.check_width(max(prompt_col, output_col) + 1, WorkloadError)
        prompt_cells = [row[prompt_col] for row in table.rows]
        output_cells = [row[output_col] for row in table.rows]
        prompt = _parse_tokens(file, header[prompt_col], lines, prompt_cells)
        output = _parse_tokens(file, header[output_col], lines, output_cells)
        return cls(prompt, output, str(file))

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` rows with replacement: (prompt_tokens, ref_output_tokens), int64 arrays."""
        _check_n(n)
        rows = rng.integers(0, self.prompt_tokens.size, n)
        return self.prompt_tokens[rows], self.output_tokens[rows]


def make_workload(spec: str | None) -> LogNormalWorkload | TraceWorkload:
    """``None`` or ``"lognormal"``: the default :class:`LogNormalWorkload`; otherwise a CSV path for
    :class:`TraceWorkload`."""
    if spec is None or spec == "lognormal":
        return LogNormalWorkload()
    if not Path(spec).is_file():
        raise WorkloadError(f"workload spec {spec!r}: no such file; expected None, 'lognormal' or a CSV file path")
    return TraceWorkload.from_csv(spec)
