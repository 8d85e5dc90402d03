"""A StudySpec's space as Optuna sees it: define-by-run suggestions, samplers and directions.

The space is conditional (`until` only for `early`, `p` only for the families that have it), so
the translation is define-by-run: `suggest` asks the trial for a parameter only when its `when`
holds, in an order where every condition is known before the parameter that depends on it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna

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
    # group=True lets multivariate TPE model each conditional sub-space (e.g. early + until);
    # it is stable in practice but still flagged experimental, which would warn on every study
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=spec.search.seed, multivariate=True, group=True)


def _nsga2(spec: StudySpec) -> optuna.samplers.BaseSampler:
    # Optuna's default generation of 50 would leave a 32-trial study in its random first
    # generation; a quarter of the budget gives a few generations to evolve
    population = max(2, min(50, spec.search.n_trials // 4))
    return optuna.samplers.NSGAIISampler(seed=spec.search.seed, population_size=population)


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
    """The spec's sampler (tpe by default, nsga2 for several objectives), seeded."""
    return SAMPLERS[spec.sampler_name](spec)
