"""The one CSV reader behind every data file aolo reads: carbon traces, workload traces and fading traces.

UTF-8 (a BOM is allowed), LF or CRLF line ends; blank rows are skipped but counted, so every data row keeps
its line number in the file for error messages. Every problem raises the caller's error class (``TraceError``,
``WorkloadError``, ``FadingTraceError``) with the file name and what was expected.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CsvTable:
    """The rows of a CSV file as strings.

    Attributes:
        path: the file read.
        header: the first line's cells, stripped; empty when read with ``header=False``.
        lines: 1-based line number in the file of each data row.
        rows: the data rows (blank rows dropped), cells as in the file.
    """

    path: Path
    header: list[str]
    lines: list[int]
    rows: list[list[str]]

    def column(self, matches: Callable[[str], bool]) -> int | None:
        """Index of the first header cell whose lower-cased name ``matches``, else None."""
        return next((i for i, name in enumerate(self.header) if matches(name.lower())), None)

    def check_width(self, width: int, error: type[Exception]) -> None:
        """Raise ``error`` naming the first data row with fewer than ``width`` cells."""
        for line, row in zip(self.lines, self.rows, strict=True):
            if len(row) < width:
                header = f" (header has {len(self.header)})" if self.header else ""
                raise error(f"{self.path}: line {line} has {len(row)} fields; expected at least {width}{header}")


@contextmanager
def reading(file: Path, error: type[Exception], kind: str) -> Iterator[None]:
    """Turn a missing ``file`` or bytes that are not UTF-8, met inside the block, into ``error`` naming the file."""
    try:
        yield
    except FileNotFoundError:
        raise error(f"{file}: file not found") from None
    except UnicodeDecodeError as exc:
        raise error(f"{file}: byte {exc.start} is not valid UTF-8; expected a UTF-8 {kind} file") from None


def read_csv(path: str | os.PathLike[str], error: type[Exception], *, header: bool = True) -> CsvTable:
    """Read ``path``; with ``header`` the first line names the columns and at least one data row must follow."""
    file = Path(path)
    try:
        with reading(file, error, "CSV"), file.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            first = next(reader, None) if header else None
            lines: list[int] = []
            rows: list[list[str]] = []
            for row in reader:
                if any(cell.strip() for cell in row):
                    lines.append(reader.line_num)
                    rows.append(row)
    except csv.Error as exc:
        raise error(f"{file}: malformed CSV ({exc}); expected comma-separated values") from None
    if not header:
        if not rows:
            raise error(f"{file}: empty file; expected comma-separated data rows")
        return CsvTable(file, [], lines, rows)
    if first is None or not any(cell.strip() for cell in first):
        raise error(f"{file}: empty file; expected a header line followed by data rows")
    if not rows:
        raise error(f"{file}: no data rows after the header (line 1); expected at least one row")
    return CsvTable(file, [cell.strip() for cell in first], lines, rows)
