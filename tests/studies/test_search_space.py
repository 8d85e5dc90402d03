"""The spec's space in a real Optuna study: conditional parameters, samplers, trial configs."""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import optuna
import pytest

from studies.schedules import DecaySchedule, LRSchedule
from studies.search_space import (
    SAMPLERS,
    StratifiedStart,
    configuration_key,
    directions,
    make_sampler,
    resolve_config,
    suggest,
)
from studies.spec import StudySpec
from studies.trial_config import TrialConfig

optuna.logging.set_verbosity(optuna.logging.WARNING)

CONDITIONAL: dict[str, Any] = {
    "name": "conditional",
    "task": {"dataset": "digits", "model": "mlp", "epochs": 10, "lr": 1e-3},
    "regularizer": {"family": "pwd", "lambda": 1e-3},
    "space": {
        "family": {"type": "categorical", "choices": ["pwd", "lp_coupled", "decoupled", "l2"]},
        "p": {"type": "float", "low": 0.5, "high": 2.0, "when": {"family": ["pwd", "lp_coupled"]}},
        "lambda": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
        "schedule": {"type": "categorical", "choices": ["full", "early", "late", "none"]},
        "until": {"type": "float", "low": 0.1, "high": 0.6, "when": {"schedule": "early"}},
        "from": {
            "type": "categorical",
            "choices": [0.25, 0.5, 0.75],
            "when": {"schedule": "late"},
        },
        "batch_size": {"type": "int", "low": 32, "high": 256, "log": True},
    },
    "search": {"n_trials": 80, "seed": 7},
}
CONFIG_KEYS = {
    "dataset", "model", "model_options", "epochs", "batch_size", "optimizer", "lr", "momentum",
    "nesterov", "lr_schedule", "warmup", "family", "lam", "p", "schedule", "until", "start",
    "decay_scale", "decay_all_params", "seed", "val_fraction", "download", "augment", "amp",
    "device", "threads",
}  # fmt: skip


def _run(spec: StudySpec, n_trials: int) -> list[tuple[dict[str, Any], optuna.trial.FrozenTrial]]:
    """Ask/tell `n_trials` trials with the spec's sampler; the objective is a fake score."""
    study = optuna.create_study(directions=directions(spec), sampler=make_sampler(spec))
    seen = []
    for _ in range(n_trials):
        trial = study.ask()
        params = suggest(trial, spec)
        values = [float(len(params))] * len(spec.objectives)
        study.tell(trial, values if len(values) > 1 else values[0])
        seen.append((params, study.trials[-1]))
    return seen


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_conditional_params_appear_exactly_when_their_condition_holds(sampler: str) -> None:
    spec = StudySpec.model_validate({**CONDITIONAL, "search": {"sampler": sampler, "seed": 7}})
    trials = _run(spec, 80)
    for params, frozen in trials:
        assert frozen.params == params  # what Optuna stored is what the trial gets
        assert ("until" in params) == (params["schedule"] == "early")
        assert ("from" in params) == (params["schedule"] == "late")
        assert ("p" in params) == (params["family"] in ("pwd", "lp_coupled"))
    # over 80 trials every branch was taken, so the assertions above were exercised
    assert {p["schedule"] for p, _ in trials} == {"full", "early", "late", "none"}
    assert {p["family"] for p, _ in trials} == {"pwd", "lp_coupled", "decoupled", "l2"}


def test_every_sampled_config_builds_valid_schedules() -> None:
    spec = StudySpec.model_validate(CONDITIONAL)
    for replicate, (params, _) in enumerate(_run(spec, 40)):
        config = resolve_config(spec, params, seed=replicate)
        assert set(config) == CONFIG_KEYS
        assert config["seed"] == replicate
        schedule = DecaySchedule(config["schedule"], config["until"], config["start"])
        assert 0.0 <= schedule.multiplier(0, 100) <= 1.0
        LRSchedule(config["lr_schedule"], config["warmup"])
        assert 32 <= config["batch_size"] <= 256 and isinstance(config["batch_size"], int)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # nothing searched: the fixed values of task and regularizer
        (
            {},
            {"family": "pwd", "lam": 1e-3, "p": 0.8, "schedule": "early", "until": 0.3,
             "start": None, "lr": 1e-3, "batch_size": 64},
        ),
        # searched values win over fixed ones, under the spec's names (lambda, from)
        (
            {"lambda": 0.05, "schedule": "late", "from": 0.5, "lr": 3e-4, "batch_size": 128},
            {"family": "pwd", "lam": 0.05, "p": 0.8, "schedule": "late", "until": None,
             "start": 0.5, "lr": 3e-4, "batch_size": 128},
        ),
        # a fixed until does not leak into a trial whose schedule does not use it
        (
            {"schedule": "full", "family": "decoupled"},
            {"family": "decoupled", "lam": 1e-3, "p": 0.8, "schedule": "full", "until": None,
             "start": None, "lr": 1e-3, "batch_size": 64},
        ),
    ],
)  # fmt: skip
def test_resolve_config_merges_fixed_and_searched(
    params: dict[str, Any], expected: dict[str, Any]
) -> None:
    spec = StudySpec.model_validate(
        {
            "name": "fixed",
            "task": {"dataset": "mnist1d", "model": "cnn1d", "batch_size": 64, "lr": 1e-3},
            "regularizer": {"family": "pwd", "lambda": 1e-3, "p": 0.8, "schedule": "early",
                            "until": 0.3, "from": 0.5},
            "space": {"schedule": {"type": "categorical", "choices": ["full", "early", "late"]}},
        }
    )  # fmt: skip
    config = resolve_config(spec, params, seed=3)
    assert {k: config[k] for k in expected} == expected
    assert config["dataset"] == "mnist1d" and config["model"] == "cnn1d"


@pytest.mark.parametrize(
    ("resources", "amp", "expected"),
    [
        ({}, False, {"device": "cpu", "threads": 1, "amp": False}),
        ({"cpu": 4}, False, {"device": "cpu", "threads": 4, "amp": False}),
        ({"cpu": 2, "gpu": 0.25}, True, {"device": "cuda", "threads": 2, "amp": True}),
        ({"cpu": 0.5, "gpu": 1}, False, {"device": "cuda", "threads": 1, "amp": False}),
    ],
)
def test_a_trial_trains_on_what_ray_allots_it(
    resources: dict[str, float], amp: bool, expected: dict[str, Any]
) -> None:
    spec = StudySpec.model_validate(
        {
            "name": "devices",
            "task": {"dataset": "cifar10", "model": "resnet18", "amp": amp},
            "resources": resources,
        }
    )
    config = resolve_config(spec, {}, seed=0)
    assert {k: config[k] for k in expected} == expected
    assert TrialConfig.model_validate(config).device == expected["device"]


RANGES = {
    "p": {"type": "float", "low": 0.5, "high": 2.0},
    "lambda": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
}
SAMPLER_SPECS: list[tuple[str, dict[str, Any], list[dict[str, str]]]] = [
    ("tpe", CONDITIONAL["space"], [{"metric": "val_acc"}]),
    ("random", CONDITIONAL["space"], [{"metric": "val_acc"}]),
    ("cmaes", RANGES, [{"metric": "val_acc"}]),
    ("qmc", RANGES, [{"metric": "val_acc"}, {"metric": "sparsity"}]),
    ("nsga2", CONDITIONAL["space"], [{"metric": "val_acc"}]),
    ("nsga2", CONDITIONAL["space"], [{"metric": "val_acc"}, {"metric": "sparsity"}]),
    ("tpe", CONDITIONAL["space"], [{"metric": "val_acc"}, {"metric": "weight_norm"}]),
]


def test_every_registered_sampler_is_covered() -> None:
    assert {name for name, *_ in SAMPLER_SPECS} | {"grid"} == set(SAMPLERS)


@pytest.mark.parametrize(("sampler", "space", "objectives"), SAMPLER_SPECS)
def test_sampler_runs_a_study_and_is_reproducible(
    sampler: str, space: dict[str, Any], objectives: list[dict[str, str]]
) -> None:
    data = {**CONDITIONAL, "space": space, "objectives": objectives,
            "search": {"sampler": sampler, "n_trials": 12, "seed": 3}}  # fmt: skip
    spec = StudySpec.model_validate(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's experimental-feature notices
        first = [params for params, _ in _run(spec, 12)]
        again = [params for params, _ in _run(spec, 12)]
    assert first == again  # the spec's seed makes a study repeatable
    assert len({tuple(sorted(p.items())) for p in first}) > 1


def test_default_sampler_is_a_stratified_start_then_tpe_for_any_number_of_objectives() -> None:
    # what it does is in test_default_sampler.py; bench/search.py measured why
    two = [{"metric": "val_acc"}, {"metric": "sparsity"}]
    multi = StudySpec.model_validate({**CONDITIONAL, "objectives": two})
    assert isinstance(make_sampler(multi), StratifiedStart)
    assert directions(multi) == ["maximize", "maximize"]
    single = StudySpec.model_validate({**CONDITIONAL, "objectives": [{"metric": "val_loss"}]})
    assert isinstance(make_sampler(single), StratifiedStart)
    assert directions(single) == ["minimize"]


def test_grid_sampler_visits_every_grid_point_once() -> None:
    spec = StudySpec.model_validate(
        {
            **CONDITIONAL,
            "space": {
                "p": {"type": "float", "low": 0.5, "high": 1.5, "step": 0.25},
                "lambda": {"type": "categorical", "choices": [1e-4, 1e-3]},
                "batch_size": {"type": "int", "low": 32, "high": 64, "step": 32},
            },
            "search": {"sampler": "grid", "n_trials": 20},
        }
    )
    visited = {(p["p"], p["lambda"], p["batch_size"]) for p, _ in _run(spec, 20)}
    expected = set(itertools.product([0.5, 0.75, 1.0, 1.25, 1.5], [1e-4, 1e-3], [32, 64]))
    assert visited == expected


KEYED = StudySpec.model_validate(CONDITIONAL)


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        # floats agree to 6 significant digits, whatever their magnitude
        ({"lambda": 1.2345671e-3}, {"lambda": 1.2345674e-3}, True),
        ({"lambda": 1.23456e-3}, {"lambda": 1.23457e-3}, False),
        ({"lambda": 0.0123456}, {"lambda": 0.01234561}, True),
        # ints are ints, categorical values are compared as they are
        ({"batch_size": 64}, {"batch_size": 64.0}, True),
        ({"batch_size": 64}, {"batch_size": 65}, False),
        ({"from": 0.25}, {"from": 0.5}, False),
        # a value whose condition does not hold is no part of the configuration
        ({"until": 0.3}, {"until": 0.5}, True),
        ({"schedule": "early", "until": 0.3}, {"schedule": "early", "until": 0.5}, False),
        # nor is a name outside the space, nor the order the values came in
        ({"lr": 0.1}, {"lr": 0.2}, True),
    ],
)
def test_configuration_key_says_which_configurations_are_the_same(
    first: dict[str, Any], second: dict[str, Any], same: bool
) -> None:
    base = {"family": "pwd", "p": 1.0, "lambda": 1e-3, "schedule": "late", "from": 0.25}
    base |= {"batch_size": 64}
    one, two = {**base, **first}, dict(reversed({**base, **second}.items()))
    assert (configuration_key(KEYED, one) == configuration_key(KEYED, two)) is same


def test_configuration_key_holds_the_searched_values_by_name() -> None:
    params = {"family": "l2", "p": 1.5, "lambda": 0.000123456789, "schedule": "full"}
    params |= {"until": 0.4, "batch_size": 100}
    assert configuration_key(KEYED, params) == (
        ("batch_size", 100),
        ("family", "l2"),
        ("lambda", 0.000123457),
        ("schedule", "full"),
    )
