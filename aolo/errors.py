"""Errors a user can fix: one base class, :class:`AoloError`, for everything the CLI reports in one line.

This module imports nothing, so the CLI can catch :class:`AoloError` without loading Ray, torch or numpy.
Each subclass also derives from the built-in exception it replaced (``ValueError``, ``FileNotFoundError``), so
``except ValueError`` around a scenario build keeps catching trace, workload and fading-trace errors.

The classes stay importable from where they were first defined (``aolo.envs.config.ConfigError``,
``aolo.envs.traces.TraceError``, ``aolo.envs.workload.WorkloadError``, ``aolo.envs.channel.FadingTraceError``,
``aolo.platform.evaluation.CheckpointError``, ``aolo.platform.tracking.TrackingError``).
"""

from __future__ import annotations

__all__ = [
    "AoloError",
    "CheckpointError",
    "ConfigError",
    "FadingTraceError",
    "PolicyError",
    "TraceError",
    "TrackingError",
    "WorkloadError",
]


class AoloError(Exception):
    """An input the user can fix; ``aolo`` prints ``aolo: error: <message>`` and exits with code 2."""


class ConfigError(AoloError, ValueError):
    """A configuration value is missing, of the wrong type or out of range.

    Validation reports every error of a configuration at once: ``ConfigError(errors=[...])`` takes one line per
    error, each ``<path>: <what is allowed>, got <value>`` (``scenario.cells.1.num_users: must be an integer in
    [1, 1024], got 0``), and keeps them in :attr:`errors`; the message is that line alone, or a count followed by
    the lines. ``ConfigError("<path>: ...")`` is a single error.
    """

    def __init__(self, *args: object, errors: tuple[str, ...] | list[str] = ()) -> None:
        errors = tuple(errors)
        if errors and not args:
            args = (errors[0] if len(errors) == 1 else f"{len(errors)} configuration errors:\n" + "\n".join(errors),)
        super().__init__(*args)
        #: one line per error, ``<path>: <what is allowed>, got <value>``
        self.errors: tuple[str, ...] = errors or ((str(args[0]),) if args else ())


class TraceError(AoloError, ValueError):
    """A carbon-intensity trace input is malformed; the message says where and what was expected."""


class WorkloadError(AoloError, ValueError):
    """A workload specification or trace file is malformed; the message says where and what was expected."""


class FadingTraceError(AoloError, ValueError):
    """A recorded fading trace (``fading_trace`` of a cell) is missing or malformed."""


class PolicyError(AoloError, ValueError):
    """A policy spec (``package.module:Name``) cannot be loaded, or the policy broke the protocol (wrong action
    shape, non-finite or out-of-range actions); the message names the policy, where and what is wrong."""


class CheckpointError(AoloError, FileNotFoundError):
    """A checkpoint path does not exist or holds no aolo module."""


class TrackingError(ConfigError):
    """The tracking URI is unusable (server unreachable, store folder not writable, unsupported scheme)."""
