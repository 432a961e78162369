"""Experiment presets: ``base:`` inheritance merges nested sections key by key; presets ship inside the package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import aolo
from aolo.platform.presets import available_presets, load_experiment, load_raw


def test_base_inherits_nested_keys_it_does_not_set(tmp_path):
    """``scenario.reward.carbon`` alone must not drop the base's ``scenario.reward.deficit_timing``."""
    path = tmp_path / "carbon2.yaml"
    path.write_text("base: quick\nscenario: {reward: {carbon: 2.0}}\n")
    experiment = load_experiment(str(path))
    reward = experiment.scenario.reward
    assert reward.carbon == 2.0
    assert reward.deficit_timing == "accrued"  # from quick; the one-level merge reset it to "terminal"
    quick = load_experiment("quick")
    assert experiment.scenario.cells == quick.scenario.cells  # untouched siblings stay too
    assert experiment.training == quick.training
    assert experiment.name == "carbon2"


def test_lists_and_search_space_entries_are_replaced_not_merged(tmp_path):
    path = tmp_path / "narrow.yaml"
    path.write_text(
        "base: reward_weights\ncompare: {seeds: [3]}\nsearch_space: {scenario.reward.qoe: {choice: [0.1]}}\n"
    )
    raw = load_raw(str(path))
    assert raw["compare"]["seeds"] == [3]
    assert raw["compare"]["algorithms"] == ["sdrl", "sac", "td3", "ppo"]  # sibling key from quick
    assert raw["search_space"]["scenario.reward.qoe"] == {"choice": [0.1]}  # not {grid: ..., choice: ...}
    assert raw["search_space"]["scenario.reward.carbon"] == {"grid": [0.5, 1.0, 2.0]}  # other entries kept


def test_presets_are_package_data():
    folder = Path(aolo.__file__).parent / "tune_configs"
    assert {"smoke", "quick", "paper", "reward_weights"} <= set(available_presets())
    assert sorted(p.stem for p in folder.glob("*.yaml")) == available_presets()


def test_unknown_preset_lists_the_shipped_ones():
    from aolo.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown preset 'nope'; available: \[.*'smoke'"):
        load_raw("nope")


@pytest.mark.slow
def test_wheel_installs_and_trains_the_smoke_preset_without_the_checkout(tmp_path):
    """Build the wheel, install it (not editable) into a fresh venv and run ``aolo train --preset smoke`` there.

    The venv sees the dependencies of the interpreter running the tests (Ray, torch, MLflow are not reinstalled)
    through a ``.pth`` file listing that interpreter's site-packages folders — whether it is the system Python
    or itself a venv (``--system-site-packages`` would reach the *base* Python, which in a venv lacks them).
    Plain folders in a ``.pth`` file are not site dirs, so the ``.pth`` files inside them (an editable install
    of aolo among them) are not run: ``aolo`` itself must come from the wheel, its presets package data found
    without the source checkout.
    """
    import shutil
    import subprocess
    import sys
    import sysconfig

    repo = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"  # build from a copy: no build/ or egg-info left in the checkout
    shutil.copytree(repo / "aolo", src / "aolo", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, src / name)

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
        done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{args}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        return done

    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(tmp_path / "dist"),
        str(src),
    )
    (wheel,) = (tmp_path / "dist").glob("aolo-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    bin_dir = venv / ("Scripts" if sys.platform == "win32" else "bin")
    python = bin_dir / "python"
    run(str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel))
    shutil.rmtree(src)  # nothing of the source tree is left to fall back on

    purelib = run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    dependencies = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]
    (Path(purelib) / "test_dependencies.pth").write_text("".join(f"{p}\n" for p in dependencies))
    where = run(str(python), "-c", "import aolo; print(aolo.__file__)").stdout.strip()
    assert Path(where).is_relative_to(Path(purelib)), f"aolo imported from {where}, not the venv's {purelib}"
    assert Path(purelib) != Path(sysconfig.get_paths()["purelib"])

    out = tmp_path / "out"
    done = run(
        str(bin_dir / "aolo"), "train", "--preset", "smoke", "--output", str(out), "--tracking-uri", "none", timeout=110
    )
    assert "checkpoint:" in done.stdout
    assert (out / "smoke").is_dir()
