"""The sampler a study gets when its spec names none: a Latin hypercube, then grouped TPE.

bench/search.py measured why (README: "Which sampler a study gets, and why"); these tests check
what it does in a real Optuna study: the opening design's stratification, the hand-over to TPE,
reproducibility, a resumed study that does not replay the design, and the values it maps to.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from studies.search_space import (
    StratifiedStart,
    directions,
    from_unit,
    latin_hypercube,
    make_sampler,
    start_size,
    suggest,
)
from studies.spec import StudySpec

optuna.logging.set_verbosity(optuna.logging.WARNING)

QUICKSTART_LIKE: dict[str, Any] = {
    "name": "default-sampler",
    "task": {"dataset": "mnist1d", "model": "mlp", "epochs": 30, "lr": 3e-3},
    "regularizer": {"family": "pwd"},
    "space": {
        "p": {"type": "float", "low": 0.5, "high": 2.0},
        "lambda": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
        "schedule": {"type": "categorical", "choices": ["full", "early"]},
        "until": {"type": "float", "low": 0.2, "high": 0.6, "when": {"schedule": "early"}},
    },
    "objectives": [{"metric": "val_acc"}, {"metric": "sparsity"}],
}


def spec(n_trials: int, seed: int = 0, **search: Any) -> StudySpec:
    data = {**QUICKSTART_LIKE, "search": {"n_trials": n_trials, "seed": seed, **search}}
    return StudySpec.model_validate(data)


def run(study_spec: StudySpec, n: int, study: optuna.Study | None = None) -> list[dict[str, Any]]:
    """Ask/tell `n` trials; the objectives are a smooth fake of accuracy and sparsity."""
    if study is None:
        sampler = make_sampler(study_spec)
        study = optuna.create_study(directions=directions(study_spec), sampler=sampler)
    suggested = []
    for _ in range(n):
        trial = study.ask()
        params = suggest(trial, study_spec)
        sparsity = max(0.0, 2 - params["p"]) * math.log10(params["lambda"] * 1e4) / 4.5
        study.tell(trial, [0.65 - 0.05 * sparsity**4, sparsity])
        suggested.append(params)
    return suggested


@pytest.mark.parametrize(
    ("n_trials", "start"),
    [(1, 1), (3, 3), (4, 4), (16, 4), (20, 5), (32, 8), (64, 16), (65, 16), (1000, 16)],
)
def test_the_start_is_a_quarter_of_the_budget_from_4_to_16(n_trials: int, start: int) -> None:
    assert start_size(n_trials) == start


def test_the_first_trials_put_one_value_in_each_slice_of_every_range() -> None:
    params = run(spec(32), 8)  # the design: 8 trials for 32
    p_slices = sorted(int((x["p"] - 0.5) / 1.5 * 8) for x in params)
    lam_slices = sorted(int(math.log10(x["lambda"] / 1e-3) / 2 * 8) for x in params)
    assert p_slices == lam_slices == list(range(8))
    assert sorted(x["schedule"] for x in params) == ["early"] * 4 + ["full"] * 4
    assert all(0.2 <= x["until"] <= 0.6 for x in params if x["schedule"] == "early")


def test_tpe_takes_over_after_the_design_and_goes_where_the_front_is() -> None:
    params = run(spec(32), 32)
    later = params[8:]
    assert len({(x["p"], x["lambda"]) for x in later}) == len(later)  # no repeats
    # the fake front needs p < 2 and a large lambda: TPE goes there more than the design did
    design_lam = np.median([math.log10(x["lambda"]) for x in params[:8]])
    assert np.median([math.log10(x["lambda"]) for x in later]) > design_lam


def test_the_seed_makes_a_study_repeatable() -> None:
    first, again, other = run(spec(16, seed=3), 12), run(spec(16, seed=3), 12), run(spec(16), 12)
    assert first == again
    assert first[:4] != other[:4]


def test_a_resumed_study_does_not_replay_the_design() -> None:
    study_spec = spec(16)
    storage = optuna.storages.InMemoryStorage()
    first = optuna.create_study(
        storage=storage, directions=directions(study_spec), sampler=make_sampler(study_spec)
    )
    design = run(study_spec, 6, first)
    resumed_sampler = make_sampler(study_spec)  # a new driver builds the same sampler
    resumed = optuna.load_study(
        study_name=first.study_name, storage=storage, sampler=resumed_sampler
    )
    after = run(study_spec, 4, resumed)
    assert not any(a == d for a in after for d in design)


def test_named_samplers_are_kept_as_they_were() -> None:
    assert type(make_sampler(spec(32, sampler="tpe"))) is optuna.samplers.TPESampler
    nsga2 = make_sampler(spec(32, sampler="nsga2"))
    assert isinstance(nsga2, optuna.samplers.NSGAIISampler)
    assert nsga2._population_size == 8
    assert type(make_sampler(spec(32, sampler="random"))) is optuna.samplers.RandomSampler


def test_a_latin_hypercube_has_one_point_per_slice_of_each_axis() -> None:
    design = latin_hypercube(10, 3, np.random.default_rng(1))
    assert design.shape == (10, 3)
    for axis in range(3):
        assert sorted((design[:, axis] * 10).astype(int)) == list(range(10))
    assert latin_hypercube(0, 3, np.random.default_rng(1)).shape == (0, 3)


@pytest.mark.parametrize(
    ("distribution", "unit", "value"),
    [
        (CategoricalDistribution(["full", "early"]), 0.0, "full"),
        (CategoricalDistribution(["full", "early"]), 0.49, "full"),
        (CategoricalDistribution(["full", "early"]), 0.5, "early"),
        (CategoricalDistribution(["full", "early"]), 0.999, "early"),
        (FloatDistribution(0.5, 2.0), 0.5, 1.25),
        (FloatDistribution(1e-3, 1e-1, log=True), 0.5, 1e-2),
        (FloatDistribution(0.5, 2.0, step=0.25), 0.3, 1.0),  # 0.95 to the grid
        (FloatDistribution(0.5, 2.0, step=0.25), 0.999, 2.0),
        (IntDistribution(32, 256, log=True), 0.5, 91),  # sqrt(32 * 256) = 90.5
        (IntDistribution(0, 10, step=5), 0.6, 5),
    ],
)
def test_from_unit_maps_a_fraction_onto_each_kind_of_parameter(
    distribution: Any, unit: float, value: Any
) -> None:
    got = from_unit(distribution, unit)
    assert got == pytest.approx(value)
    assert distribution._contains(distribution.to_internal_repr(got))


def test_the_default_sampler_is_what_make_sampler_gives_when_none_is_named() -> None:
    sampler = make_sampler(spec(32))
    assert isinstance(sampler, StratifiedStart)
    assert isinstance(sampler._then, optuna.samplers.TPESampler)
