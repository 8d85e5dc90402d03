"""Parameter importances of a study's trials, computed by Optuna's fANOVA from the API's rows.

Our trials are replayed into an in-memory Optuna study (create_trial + add_trials), so the
report needs neither the Optuna storage nor the driver's study: only what GET /trials returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.importance import FanovaImportanceEvaluator
from optuna.study import StudyDirection

MIN_TRIALS = 4
MIN_VARYING = 2


def final_metric(trial: Mapping[str, Any], name: str) -> float | None:
    """A final metric of an API trial dict, None when missing or not finite."""
    value = (trial.get("final_metrics") or {}).get(name)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def used_params(trial: Mapping[str, Any]) -> dict[str, Any]:
    """The searched parameters a trial really used.

    The recorder stores every searched name, with None for an inactive conditional one
    (`until` outside `early`); `p` of a family without p is the unused fixed value, which the
    typed `p` column shows as null.
    """
    params = {k: v for k, v in (trial.get("params") or {}).items() if v is not None}
    if "p" in params and trial.get("p") is None:
        del params["p"]
    return params


def shared_varying(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Parameters every row has that take at least two values, sorted by name."""
    if not rows:
        return []
    common = set.intersection(*(set(row) for row in rows))
    return sorted(n for n in common if len({repr(row[n]) for row in rows}) > 1)


def distribution(space: Mapping[str, Any] | None, values: Sequence[Any]) -> BaseDistribution:
    """The spec's distribution of a parameter, widened to hold every observed value."""
    space = space or {}
    if space.get("type") == "categorical" or any(isinstance(v, str | bool) for v in values):
        return CategoricalDistribution(
            list(dict.fromkeys([*(space.get("choices") or []), *values]))
        )
    ends = [float(v) for v in (space.get("low"), space.get("high")) if v is not None]
    low, high = min([*values, *ends]), max([*values, *ends])
    log = bool(space.get("log")) and low > 0
    if space.get("type") == "int" and all(float(v).is_integer() for v in (*values, *ends)):
        return IntDistribution(int(low), int(high), log=log)
    return FloatDistribution(float(low), float(high), log=log)


def param_importances(
    space: Mapping[str, Any], trials: Sequence[Mapping[str, Any]], metric: str, mode: str
) -> dict[str, float] | str:
    """fANOVA importance of each shared, varying parameter for `metric`, or why there is none.

    Args:
        space: the spec's `space` section (how each parameter was searched).
        trials: completed trials as the API returns them.
    """
    rows = [(used_params(t), v) for t in trials if (v := final_metric(t, metric)) is not None]
    if len(rows) < MIN_TRIALS:
        return (
            f"importance needs at least {MIN_TRIALS} completed trials reporting {metric}; "
            f"there are {len(rows)}"
        )
    names = shared_varying([params for params, _ in rows])
    if len(names) < MIN_VARYING:
        return (
            f"importance needs at least {MIN_VARYING} searched parameters that every "
            f"completed trial sets and that vary; found {', '.join(names) or 'none'}"
        )
    if len({v for _, v in rows}) < 2:
        return f"{metric} is the same in every completed trial: nothing to explain"
    way = StudyDirection.MAXIMIZE if mode == "max" else StudyDirection.MINIMIZE
    scores = _fanova(space, rows, names, way)
    if any(not math.isfinite(s) for s in scores.values()):
        return f"fANOVA could not attribute the variance of {metric} (a non-finite importance)"
    return scores


def _fanova(
    space: Mapping[str, Any],
    rows: list[tuple[dict[str, Any], float]],
    names: list[str],
    way: StudyDirection,
) -> dict[str, float]:
    distributions = {n: distribution(space.get(n), [p[n] for p, _ in rows]) for n in names}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line per report
    try:
        study = optuna.create_study(direction=way)
        study.add_trials(
            optuna.trial.create_trial(
                params={n: p[n] for n in names}, distributions=distributions, value=value
            )
            for p, value in rows
        )
        scores = optuna.importance.get_param_importances(
            study, evaluator=FanovaImportanceEvaluator(seed=0), params=names
        )
    finally:
        optuna.logging.set_verbosity(verbosity)
    return {name: float(score) for name, score in scores.items()}
