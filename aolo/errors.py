"""Errors a user can fix: one base class, :class:`AoloError`, for everything the CLI reports in one line.

This module imports nothing, so the CLI can catch :class:`AoloError` without loading Ray, torch or numpy.
Each subclass also derives from the built-in exception it replaced (``ValueError``, ``FileNotFoundError``), so
``except ValueError`` around a scenario build keeps catching trace, workload and fading-trace errors.

The classes stay importable from where they were first defined (``aolo.envs.config.ConfigError``,
``aolo.envs.traces.TraceError``, ``aolo.envs.workload.WorkloadError``, ``aolo.envs.channel.FadingTraceError``,
``aolo.platform.evaluation.CheckpointError``, ``aolo.platform.tracking.TrackingError``).
"""

from __future__ import annotations

__all__ = ["AoloError", "CheckpointError", "ConfigError", "FadingTraceError", "TraceError", "TrackingError",
           "WorkloadError"]


class AoloError(Exception):
    """An input the user can fix; ``aolo`` prints ``aolo: error: <message>`` and exits with code 2."""


class ConfigError(AoloError, ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


class TraceError(AoloError, ValueError):
    """A carbon-intensity trace input is malformed; the message says where and what was expected."""


class WorkloadError(AoloError, ValueError):
    """A workload specification or trace file is malformed; the message says where and what was expected."""


class FadingTraceError(AoloError, ValueError):
    """A recorded fading trace (``fading_trace`` of a cell) is missing or malformed."""


class CheckpointError(AoloError, FileNotFoundError):
    """A checkpoint path does not exist or holds no aolo module."""


class TrackingError(ConfigError):
    """The tracking URI is unusable (server unreachable, store folder not writable, unsupported scheme)."""
