"""What the ``aolo`` commands share on the terminal: exit codes, flushed lines, argument types and tables.

Light on purpose (standard library only): the parser, ``--help`` and the one-line errors need no numpy, Ray,
torch or MLflow. Number formatting has one home here: :func:`fmt` (a value or ``-``) and :func:`pct` (a signed
percentage); :func:`format_metrics_table` is the ``eval/<metric>`` table of ``train`` and ``evaluate``, and
:func:`format_columns` lays out the left-aligned tables of ``sweep`` and ``compare``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

EXIT_USER_ERROR = 2  #: an :class:`aolo.errors.AoloError` (a mistake the user can fix) or no command given
EXIT_INTERRUPTED = 130  #: Ctrl-C

#: (metric, meaning) rows of the printed evaluation table, metric names of docs/design.md §6.
TABLE_METRICS = (
    ("carbon_g_per_request", "gCO2e per request, all parts"),
    ("carbon_inference_g", "  datacenter GPU energy"),
    ("carbon_embodied_g", "  embodied GPU share"),
    ("carbon_comm_g", "  radio downlink"),
    ("qoe_mean", "mean QoE of the answers"),
    ("qoe_violation_rate", "user-days missing Q_min / Q_floor"),
    ("latency_violation_rate", "answers over T_max"),
    ("gap_to_bound", "carbon above the strict lower bound"),
    ("actor_nj_per_decision", "policy's own energy, nJ/decision"),
)


def print_flush(line: str) -> None:
    """One progress line, flushed at once (progress must show while Ray and Tune run)."""
    print(line, flush=True)


# --- numbers and tables -----------------------------------------------------------------------------------


def fmt(value: Any, spec: str = ".4g") -> str:
    """``-`` for None, a float with ``spec``, anything else (ints, strings) as ``str``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def pct(value: float | None) -> str:
    """A fraction as a signed percentage with one decimal (``+12.3%``), ``-`` for None."""
    return "-" if value is None else f"{100 * value:+.1f}%"


def share(value: float | None) -> str:
    """A violation share as a percentage that never rounds a nonzero share to zero: ``0``, ``0.0065%``,
    ``1.25%``; ``-`` for None."""
    if value is None:
        return "-"
    return "0" if value == 0.0 else f"{100 * value:.2g}%" if value < 0.01 else f"{100 * value:.2f}%"


def format_metrics_table(columns: Mapping[str, Mapping[str, float]]) -> str:
    """``eval/<metric>`` rows × one column per policy, with what each metric means."""
    names = list(columns)
    width = max(12, *(len(n) for n in names))
    lines = [f"{'metric':<28}" + "".join(f"{n:>{width + 2}}" for n in names) + "   meaning"]
    for key, meaning in TABLE_METRICS:
        if not any(key in m for m in columns.values()):
            continue
        cells = "".join(f"{fmt(columns[n].get(key), '.6g'):>{width + 2}}" for n in names)
        lines.append(f"{'eval/' + key:<28}{cells}   {meaning}")
    return "\n".join(lines)


#: (metric, rule) rows of the printed constraint table: the share of user-days or answers breaking each rule
CONSTRAINT_METRICS = (
    ("qoe_mean_violation_rate", "user-days with mean QoE < Q_min = {q_min:g}"),
    ("qoe_shortfall", "  mean of max(0, Q_min - mean QoE) per user-day"),
    ("qoe_floor_violation_rate", "user-days with an answer's QoE < Q_floor = {q_floor:g}"),
    ("latency_violation_rate", "answers over T_max = {t_max_s:g} s"),
    ("qoe_guard_rate", "answers the mean-QoE guard lengthened"),
)


def format_constraint_table(columns: Mapping[str, Mapping[str, float]], service: Any) -> str:
    """The constraint table: one row per rule (:data:`CONSTRAINT_METRICS`) × one column per policy."""
    names = list(columns)
    width = max(12, *(len(n) for n in names))
    lines = [f"{'constraint':<28}" + "".join(f"{n:>{width + 2}}" for n in names) + "   rule"]
    for key, rule in CONSTRAINT_METRICS:
        cells = "".join(f"{fmt(columns[n].get(key), '.4g'):>{width + 2}}" for n in names)
        text = rule.format(q_min=service.q_min, q_floor=service.q_floor, t_max_s=service.t_max_s)
        lines.append(f"{'eval/' + key:<28}{cells}   {text}")
    return "\n".join(lines)


def format_columns(lines: Sequence[Sequence[str]], rule: bool = False) -> list[str]:
    """Cells left-aligned in columns two spaces apart (the first line is the header); ``rule`` puts a line of
    dashes under the header."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    if rule:
        out.insert(1, "  ".join("-" * w for w in widths))
    return out


# --- argument types ---------------------------------------------------------------------------------------
# Named with the underscore argparse has always shown: "argument --seed: invalid _non_negative_int value: 'x'".


def _at_least(kind: type, lowest: float, name: str, what: str):
    """An argparse type: ``kind(text)``, rejected below ``lowest`` with "must be <what> >= <lowest>"."""

    def parse(text: str):
        value = kind(text)
        if not value >= lowest:  # also rejects NaN
            raise argparse.ArgumentTypeError(f"must be {what} >= {lowest}, got {text}")
        return value

    parse.__name__ = name
    return parse


_non_negative_int = _at_least(int, 0, "_non_negative_int", "an integer")
_non_negative_float = _at_least(float, 0, "_non_negative_float", "a number")
_positive_int = _at_least(int, 1, "_positive_int", "an integer")
