"""The policy protocol (aolo.envs.protocol): external policies are scored like the built-ins, see only their
observation, and a broken policy is one clear error that leaves earlier results in place."""

from __future__ import annotations

import csv
import types
from pathlib import Path

import numpy as np
import pytest

from aolo.envs.cell_env import OBS_FEATURES, CellEnv, Episode
from aolo.envs.channel import FadingTrace
from aolo.envs.protocol import (
    OBSERVATION_COLUMNS,
    CausalReference,
    ProtocolRunner,
    load_policy,
    observe,
)
from aolo.envs.reference import ForecastPolicy, MyopicPolicy
from aolo.envs.rollout import run_episode
from aolo.envs.traces import CarbonTrace
from aolo.errors import PolicyError
from aolo.platform import cli
from aolo.platform.evaluation import evaluate
from aolo.platform.presets import load_experiment

REPO = Path(__file__).resolve().parents[1]
SMOKE = load_experiment("smoke").scenario


@pytest.fixture(scope="module")
def bound():
    return evaluate("hindsight", SMOKE, 1)


@pytest.mark.parametrize("name, controller", [("myopic", MyopicPolicy), ("forecast", ForecastPolicy)])
def test_builtin_references_through_the_external_path_give_the_builtin_numbers(name, controller, bound):
    builtin = evaluate(name, SMOKE, 1, bound).metrics
    spec = f"aolo.envs.protocol:{name.capitalize()}"
    external = evaluate(ProtocolRunner(load_policy(spec)), SMOKE, 1, bound).metrics
    on_the_env = evaluate(controller(), SMOKE, 1, bound).metrics  # the controller reading the env itself
    assert external == builtin == on_the_env
    assert builtin["num_episodes"] == 2 and builtin["gap_to_bound"] > 0.0


def _reachable(roots):
    """Every object reachable from ``roots`` through instance data (attributes, slots, containers, array bases);
    classes, modules and functions are not followed (through them any Python code reaches the whole process)."""
    seen, stack = set(), list(roots)
    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType, str, bytes)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, np.ndarray):
            stack += [] if obj.base is None else [obj.base]
            continue
        if isinstance(obj, dict):
            stack += [*obj.keys(), *obj.values()]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack += list(obj)
        stack += list(getattr(obj, "__dict__", {}).values())
        for cls in type(obj).__mro__:
            slots = getattr(cls, "__slots__", ())
            stack += [getattr(obj, s) for s in ([slots] if isinstance(slots, str) else slots) if hasattr(obj, s)]


class Snoop:
    """Tries to read beyond its observation, and records everything it was handed."""

    name = "snoop"

    def __init__(self):
        self.handed, self.attempts = [], {}

    def begin_episode(self, info):
        self.info = info
        self.handed.append(info)
        for attempt in ("env", "episode", "trace_cell", "_rng"):
            self.attempts[f"info.model.{attempt}"] = hasattr(info.model, attempt)

    def act(self, observations):
        self.handed.append(observations)
        for attempt in ("env", "episode", "_columns_of_the_day"):
            self.attempts[f"observations.{attempt}"] = hasattr(observations, attempt)
        self.attempts["features.base is a copy"] = observations.features.base is None or (
            observations.features.base.shape == observations.features.shape
        )
        return np.zeros((len(observations.agents), 2))


def test_a_policy_is_handed_only_the_present_observation():
    env = CellEnv({"scenario": SMOKE, "cell_index": 0, "split": "heldout"})
    snoop = Snoop()
    record = run_episode(env, ProtocolRunner(snoop), day=int(env.days["heldout"][0]), split="heldout", seed=1)
    assert record.fields["qoe"].shape == (2, 24)
    assert snoop.attempts == {
        "info.model.env": False,
        "info.model.episode": False,
        "info.model.trace_cell": False,
        "info.model._rng": False,
        "observations.env": False,
        "observations.episode": False,
        "observations._columns_of_the_day": False,
        "features.base is a copy": True,
    }
    users, features, actions = 2, len(OBS_FEATURES), snoop.info.action_space.shape
    for handed in snoop.handed:
        found = list(_reachable([handed]))
        assert not [o for o in found if isinstance(o, (CellEnv, Episode, CarbonTrace, FadingTrace))]
        shapes = {o.shape for o in found if isinstance(o, np.ndarray)}
        assert shapes <= {(users,), (users, features), actions}, shapes  # no (T,) trace, no (U, T) channel
    observations = snoop.handed[5]
    assert observations.epoch == 4 and set(observations) == set(OBSERVATION_COLUMNS)
    with pytest.raises(ValueError, match="read-only"):
        observations["ci_cell_g_per_kwh"][0] = 0.0


def test_observations_hold_this_epochs_values_by_name():
    env = CellEnv({"scenario": SMOKE, "cell_index": 1, "split": "heldout"})
    obs, _ = env.reset(seed=2, options={"day": int(env.days["heldout"][1])})
    env.step(env.action_for(env.episode.ref_tokens[:, 0], np.full(2, 1.0)))
    observed = observe(env, env._observations())
    ep, t = env.episode, env.t
    assert observed.epoch == t == 1
    np.testing.assert_array_equal(observed["ci_dc_g_per_kwh"], [ep.ci_dc_g_per_kwh[1]] * 2)
    np.testing.assert_array_equal(observed["ci_cell_day_mean_g_per_kwh"], [ep.forecast_cell_g_per_kwh[1, 2]] * 2)
    np.testing.assert_array_equal(observed["request_ref_tokens"], ep.ref_tokens[:, 1])
    np.testing.assert_array_equal(observed["channel_gain_known"], env.known_gain[:, 1])
    np.testing.assert_array_equal(observed["qoe_day_sum"], env._qoe_sum)
    np.testing.assert_array_equal(observed["ci_cell_now"], observed.features[:, OBS_FEATURES.index("ci_cell_now")])
    with pytest.raises(KeyError, match="no observation column 'ci_cell_tomorrow'"):
        observed["ci_cell_tomorrow"]


class Peeker:
    """A reference controller that reads the next epoch's carbon."""

    name = "peeker"

    def begin_episode(self, env):
        pass

    def act(self, env, obs):
        return env.episode.ci_cell_g_per_kwh[env.t + 1]


def test_a_reference_planning_on_the_causal_cell_cannot_read_the_future():
    env = CellEnv({"scenario": SMOKE, "cell_index": 0})
    with pytest.raises(IndexError):
        run_episode(env, ProtocolRunner(CausalReference(Peeker())), day=int(env.days["train"][0]), seed=0)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no_such_module:Policy", "no module named 'no_such_module'"),
        ("protocol_policies:NoSuchPolicy", "module 'protocol_policies' has no attribute 'NoSuchPolicy'"),
        ("protocol_policies", "expected package.module:Name"),
        ("protocol_policies:NoAct", "NoAct has no act(observations) method"),
        ("protocol_policies:RaisesOnInit", "RaisesOnInit() raised RuntimeError: needs a weights file"),
    ],
)
def test_bad_policy_specs_name_what_is_wrong(spec, message):
    with pytest.raises(PolicyError) as error:
        load_policy(spec)
    assert message in str(error.value) and spec in str(error.value)


@pytest.mark.parametrize(
    "name, message",
    [
        ("WrongShape", "act() returned shape (2,); expected (2, 2)"),
        ("NaNAtEpoch3", "epoch 3: act() returned a non-finite action (user_1[0] = nan)"),
        ("OutOfRange", "user_0[0] = 1.5, outside the action space [-1, 1]"),
        ("MissingAgent", "act() returned no action for ['user_1']"),
    ],
)
def test_bad_actions_name_the_policy_the_episode_and_what_is_wrong(name, message):
    with pytest.raises(PolicyError) as error:
        evaluate(ProtocolRunner(load_policy(f"protocol_policies:{name}")), SMOKE, 1)
    assert message in str(error.value) and "cell 'coal-bs/hydro-dc', day" in str(error.value)


def test_an_instance_is_a_policy_too():
    policy = load_policy("protocol_policies:centre_instance")
    assert evaluate(ProtocolRunner(policy), SMOKE, 1).policy == "_Centre"


def _csv_all_row(path: Path) -> dict[str, str]:
    with path.open(newline="") as f:
        return next(row for row in csv.DictReader(f) if row["cell"] == "all")


def test_the_example_is_scored_and_a_broken_policy_leaves_earlier_results(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # specs are imported from the current directory first
    common = ["--preset", "smoke", "--output", str(tmp_path), "--tracking-uri", "none"]
    assert cli.main(["evaluate", *common, "--policy", "examples.external_policy:CleanHoursHeuristic"]) == 0
    written = tmp_path / "smoke" / "evaluate" / "clean_hours.csv"
    before = written.read_bytes()
    results_before = written.with_name("clean_hours.results.json").read_bytes()
    row = _csv_all_row(written)
    assert float(row["qoe_violation_rate"]) == 0.0 and float(row["latency_violation_rate"]) == 0.0
    assert float(row["gap_to_bound"]) > 0.0  # above the strict bound, as every policy
    fixed = evaluate("fixed", SMOKE, 1).metrics["carbon_g_per_request"]
    assert float(row["carbon_g_per_request"]) < 0.8 * fixed  # carbon-aware beats carbon-agnostic by far
    assert "eval/qoe_mean_violation_rate" in capsys.readouterr().out  # the constraint table

    class Renamed:  # a failing policy that would write to the same file
        name = "clean_hours"

        def act(self, observations):
            return np.full((len(observations.agents), 2), np.nan)

    monkeypatch.setattr("protocol_policies.Renamed", Renamed, raising=False)
    assert cli.main(["evaluate", *common, "--policy", "protocol_policies:Renamed"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "policy 'clean_hours'" in err[0] and "non-finite action" in err[0]
    assert written.read_bytes() == before
    assert written.with_name("clean_hours.results.json").read_bytes() == results_before
    assert sorted(p.name for p in written.parent.iterdir()) == ["clean_hours.csv", "clean_hours.results.json"]
