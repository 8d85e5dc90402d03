"""A StudySpec's space as Optuna sees it: define-by-run suggestions, samplers and directions.

The space is conditional (`until` only for `early`, `p` only for the families that have it), so
the translation is define-by-run: `suggest` asks the trial for a parameter only when its `when`
holds, in an order where every condition is known before the parameter that depends on it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from studies.spec import ParamSpec, Scalar, StudySpec


def _suggest_one(trial: optuna.Trial, name: str, param: ParamSpec) -> Any:
    if param.choices is not None:
        return trial.suggest_categorical(name, param.choices)
    assert param.low is not None and param.high is not None  # the spec guarantees a range
    if param.type == "int":
        step = int(param.step or 1)
        return trial.suggest_int(name, int(param.low), int(param.high), step=step, log=param.log)
    return trial.suggest_float(name, param.low, param.high, step=param.step, log=param.log)


def is_active(param: ParamSpec, params: Mapping[str, Any]) -> bool:
    """Whether `param`'s `when` holds for the parameters suggested so far."""
    return all(k in params and params[k] in vs for k, vs in param.condition().items())


def suggest(trial: optuna.Trial, spec: StudySpec) -> dict[str, Any]:
    """Suggest every searched parameter whose condition holds; keys are the spec's names."""
    params: dict[str, Any] = {}
    for name in spec.suggestion_order():
        param = spec.space[name]
        if is_active(param, params):
            params[name] = _suggest_one(trial, name, param)
    return params


# Floats agreeing to this many significant digits are one configuration (`configuration_key`)
KEY_SIGNIFICANT_DIGITS = 6


def configuration_key(spec: StudySpec, params: Mapping[str, Any]) -> tuple[Any, ...]:
    """What identifies a configuration: its searched values, as sorted (name, value) pairs.

    Categorical values are kept as they are, ints as ints, and floats rounded to
    `KEY_SIGNIFICANT_DIGITS` (6) significant digits: values that agree that far train
    indistinguishably (seed noise is far larger), while Optuna's float suggestions otherwise never
    repeat exactly, so without rounding no continuous configuration would ever be a duplicate.
    Parameters whose `when` does not hold are absent, as are names outside the spec's space.
    """
    return tuple(
        (name, _key_value(spec.space[name], params[name]))
        for name in sorted(spec.space)
        if name in params and is_active(spec.space[name], params)
    )


def _key_value(param: ParamSpec, value: Any) -> Any:
    if param.is_categorical:
        return value
    if param.type == "int":
        return int(value)
    return float(f"{float(value):.{KEY_SIGNIFICANT_DIGITS}g}")


def resolve_config(spec: StudySpec, params: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The flat trial config the training loop takes: fixed values, overridden by `params`.

    `until`, `start` and `warmup` are set only where the schedule uses them (None or 0 otherwise).
    """
    task, reg = spec.task, spec.regularizer
    schedule = params.get("schedule", reg.schedule)
    lr_schedule = task.lr_schedule
    return {
        "dataset": task.dataset,
        "model": task.model,
        "model_options": dict(task.model_options),
        "epochs": task.epochs,
        "batch_size": int(params.get("batch_size", task.batch_size)),
        "optimizer": task.optimizer,
        "lr": float(params.get("lr", task.lr)),
        "momentum": float(params.get("momentum", task.momentum)),
        "nesterov": task.nesterov,
        "lr_schedule": lr_schedule,
        "warmup": (
            float(params.get("warmup", task.warmup)) if lr_schedule == "warmup_cosine" else 0.0
        ),
        "family": params.get("family", reg.family),
        "lam": float(params.get("lambda", reg.lam)),
        "p": float(params.get("p", reg.p)),
        "schedule": schedule,
        "until": _fraction(params.get("until", reg.until)) if schedule == "early" else None,
        "start": _fraction(params.get("from", reg.start)) if schedule == "late" else None,
        "decay_scale": reg.decay_scale,
        "decay_all_params": reg.decay_all_params,
        "seed": seed,
        "val_fraction": task.val_fraction,
        "download": task.download,
        "augment": task.augment,
        "amp": task.amp,
        # the trial's allotment: Ray makes its share of GPUs the visible ones, so "cuda" is one
        "device": "cuda" if spec.resources.gpu > 0 else "cpu",
        "threads": max(1, int(spec.resources.cpu)),
    }


def _fraction(value: Any) -> float | None:
    return None if value is None else float(value)


def directions(spec: StudySpec) -> list[str]:
    """Optuna's study directions, one per objective."""
    return ["maximize" if o.mode == "max" else "minimize" for o in spec.objectives]


def grid_search_space(spec: StudySpec) -> dict[str, list[Scalar]]:
    """Every searched parameter's grid points, for the grid sampler."""
    return {name: param.grid_values() for name, param in spec.space.items()}


class AskTellGridSampler(optuna.samplers.GridSampler):
    """GridSampler for ask-and-tell use (Ray's OptunaSearch is one).

    Optuna's GridSampler calls `study.stop()` once the grid is exhausted, which raises
    RuntimeError outside `study.optimize`; the spec already caps n_trials at the grid size.
    """

    def after_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        state: optuna.trial.TrialState,
        values: Sequence[float] | None,
    ) -> None:
        return None


def _tpe(spec: StudySpec) -> optuna.samplers.BaseSampler:
    return _grouped_tpe(spec, n_startup_trials=10)  # Optuna's own 10 random trials first


def _grouped_tpe(spec: StudySpec, n_startup_trials: int) -> optuna.samplers.BaseSampler:
    # group=True lets multivariate TPE model each conditional sub-space (e.g. early + until);
    # it is stable in practice but still flagged experimental, which would warn on every study
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=spec.search.seed,
            multivariate=True,
            group=True,
            n_startup_trials=n_startup_trials,
        )


class StratifiedStart(optuna.samplers.BaseSampler):
    """The first `n_start` trials from a Latin hypercube over the spec's space, then `then`.

    A Latin hypercube puts one of the first `n_start` values in each of `n_start` equal slices of
    every parameter (each choice of a categorical equally often), so a small budget's opening
    trials cover the space rather than clump as random draws do. Trial numbers index the design:
    trial `k < n_start` takes its row `k`. `then` sees every trial (its before/after hooks run),
    so NSGA-II counts the design as its first generation and TPE learns from it.
    """

    def __init__(
        self, spec: StudySpec, then: optuna.samplers.BaseSampler, n_start: int, seed: int
    ) -> None:
        self._then, self._n_start, self._seed = then, n_start, seed
        self._dims = {name: i for i, name in enumerate(spec.space)}
        self._design = latin_hypercube(n_start, len(self._dims), np.random.default_rng(seed))

    def _in_start(self, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number < self._n_start

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if self._in_start(trial):
            return {}
        return self._then.infer_relative_search_space(study, trial)

    def sample_relative(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        if self._in_start(trial):
            return {}
        return self._then.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if self._in_start(trial) and param_name in self._dims:
            unit = float(self._design[trial.number, self._dims[param_name]])
            return from_unit(param_distribution, unit)
        return self._then.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._then.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        state: optuna.trial.TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._then.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._then.reseed_rng()


def latin_hypercube(n: int, dims: int, rng: np.random.Generator) -> np.ndarray:
    """`n` points in [0, 1)^dims, one in each of `n` equal slices of every axis."""
    slices = np.array([rng.permutation(n) for _ in range(dims)], dtype=float).T.reshape(n, dims)
    return (slices + rng.random((n, dims))) / max(n, 1)


def from_unit(distribution: BaseDistribution, unit: float) -> Any:
    """The value at `unit` (in [0, 1)) of an Optuna distribution: a choice, or a point of a
    range (on the log scale for a log range, on the grid for a step)."""
    if isinstance(distribution, CategoricalDistribution):
        choices = distribution.choices
        return choices[min(int(unit * len(choices)), len(choices) - 1)]
    assert isinstance(distribution, FloatDistribution | IntDistribution)
    low, high = distribution.low, distribution.high
    if distribution.log:
        value = math.exp(math.log(low) + unit * (math.log(high) - math.log(low)))
    else:
        value = low + unit * (high - low)
    step = distribution.step
    if step is not None:
        value = low + round((value - low) / step) * step
    value = min(max(value, low), high)
    return round(value) if isinstance(distribution, IntDistribution) else float(value)


def _nsga2(spec: StudySpec) -> optuna.samplers.BaseSampler:
    # Optuna's default generation of 50 would leave a 32-trial study in its random first
    # generation; a quarter of the budget gives a few generations to evolve
    population = max(2, min(50, spec.search.n_trials // 4))
    return optuna.samplers.NSGAIISampler(seed=spec.search.seed, population_size=population)


# the default's opening design: a quarter of the budget, at least 4 and at most 16 trials
START_FRACTION, MIN_START, MAX_START = 0.25, 4, 16


def start_size(n_trials: int) -> int:
    """How many trials the default sampler's Latin hypercube opens a study of `n_trials` with."""
    return min(n_trials, max(MIN_START, min(MAX_START, int(n_trials * START_FRACTION))))


def _default(spec: StudySpec) -> optuna.samplers.BaseSampler:
    # Chosen by bench/search.py on real quickstart results (README, "Which sampler a study
    # gets, and why"): at 16-64 trials a stratified start then grouped TPE finds more of the
    # (val_acc, sparsity) front than NSGA-II (whose small generations repeat configurations),
    # random search or Optuna's TPESampler(). TPE takes over after the design (1 startup trial:
    # the design already is its random start); one objective or several alike.
    n_start = start_size(spec.search.n_trials)
    then = _grouped_tpe(spec, n_startup_trials=1)
    return StratifiedStart(spec, then, n_start, spec.search.seed)


SAMPLERS: dict[str, Callable[[StudySpec], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "random": lambda spec: optuna.samplers.RandomSampler(seed=spec.search.seed),
    "grid": lambda spec: AskTellGridSampler(grid_search_space(spec), seed=spec.search.seed),
    "cmaes": lambda spec: optuna.samplers.CmaEsSampler(seed=spec.search.seed),
    # scrambling is what makes the seed matter for a Sobol sequence
    "qmc": lambda spec: optuna.samplers.QMCSampler(seed=spec.search.seed, scramble=True),
    "nsga2": _nsga2,
}


def make_sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    """The sampler the spec names, seeded; when it names none, the measured default: a Latin
    hypercube over the first quarter of the budget (4 to 16 trials), then grouped TPE."""
    if spec.search.sampler is None:
        return _default(spec)
    return SAMPLERS[spec.search.sampler](spec)
