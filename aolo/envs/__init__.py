"""Cell environments and their physics (docs/design.md §2–§3).

The scenario configuration is importable from here; the physics modules (``channel``, ``physics``,
``serving``, ``traces``, ``workload``) are pure numpy and import without Ray. ``CellEnv`` lives in
:mod:`aolo.envs.cell_env`, which imports Ray and registers the environment with Ray Tune as
``"aolo-cell-v0"`` (:data:`~aolo.envs.cell_env.ENV_NAME`): import it from there, explicitly. Shared serving
sites (§10): the physics in :mod:`aolo.envs.site` (pure numpy), ``SiteEnv`` in :mod:`aolo.envs.site_env`
(``"aolo-site-v0"``).
"""

from aolo.envs.config import (
    CellSpec,
    ConfigError,
    RadioConfig,
    RewardWeights,
    ScenarioConfig,
    ServiceConfig,
    SiteSpec,
)

__all__ = ["CellSpec", "ConfigError", "RadioConfig", "RewardWeights", "ScenarioConfig", "ServiceConfig", "SiteSpec"]
