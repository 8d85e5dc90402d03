"""What several routers share: bounded parameters, and what they read from a stored study
(its objectives, budget and progress)."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from pydantic import StringConstraints
from sqlalchemy.orm import Session

from service.schemas import BestValue, Progress, StudyDetail, StudyOut
from studies import repository
from studies.catalog import FINAL_METRICS
from studies.db import Study
from studies.errors import InvalidQuery
from studies.states import FINISHED_TRIAL_STATES

# bounded parameters: a value out of bounds is a 422 naming it, never an overflow in the database
StudyId = Annotated[
    str,
    Path(pattern=repository.STUDY_ID_PATTERN, description="the id POST /studies returned"),
]
TrialNumber = Annotated[int, Path(ge=0, le=repository.MAX_TRIAL_NUMBER)]
Limit = Annotated[int, Query(ge=1, le=repository.MAX_PAGE)]
Offset = Annotated[int, Query(ge=0, le=repository.MAX_OFFSET)]
# a field or metric name: printable (PostgreSQL refuses a NUL) and as long as dl_metric.name
NAME_LENGTH = 64
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=NAME_LENGTH, pattern=r"^[^\x00-\x1f\x7f]+$")
]
# names a list parameter may repeat: each is one query (a metric of /best) or one bind
# parameter, so a URL of thousands would cost thousands
MAX_NAMES = 32


def once_each(*lists: str) -> Any:
    """A route dependency: a 422 naming any query parameter given twice, except `lists`.

    FastAPI would keep the last of `limit=1&limit=2` and drop the first without a word.
    """

    def check(request: Request) -> None:
        counts = Counter(key for key, _ in request.query_params.multi_items())
        repeated = sorted(key for key, n in counts.items() if n > 1 and key not in lists)
        if repeated:
            name = repeated[0]
            raise InvalidQuery(f"{name}: given {counts[name]} times; give it once")

    return Depends(check)


def objectives(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(metric, mode) of each objective of a stored spec (stored validated, modes filled in)."""
    return [(o["metric"], o["mode"]) for o in spec.get("objectives", [])]


def budget(spec: dict[str, Any]) -> int:
    """Training runs the study asks for: n_trials × seeds."""
    return int(spec["search"]["n_trials"]) * int(spec.get("seeds", 1))


def metric_mode(metric: str, mode: str | None, parameter: str, mode_parameter: str) -> str:
    """An explicit mode, else the metric's natural direction; InvalidQuery when it has none.

    Args:
        parameter, mode_parameter: the query parameters of the metric and of its mode, which
            an InvalidQuery names.
    """
    repository.check_numeric(metric, parameter)
    if mode is not None:
        return mode
    natural = FINAL_METRICS.get(metric)
    if natural is None:
        raise InvalidQuery(f"{mode_parameter}: {metric!r} has no natural direction; give one")
    return natural


def study_detail(session: Session, study: Study) -> StudyDetail:
    """A study with its progress and the best value of each objective so far."""
    counts = repository.count_trials_by_state(session=session, study_id=study.id)
    wanted = objectives(study.spec)
    best = repository.best_trials(session=session, study_id=study.id, objectives=wanted)
    values = [
        BestValue(
            metric=metric,
            mode=mode,
            trial=None if (trial := best[metric]) is None else trial.number,
            value=None if trial is None else repository.trial_metric(trial, metric),
        )
        for metric, mode in wanted
    ]
    duplicates = repository.count_duplicates(
        session=session, optuna_study_name=study.optuna_study_name
    )
    seeds = int(study.spec.get("seeds", 1))
    progress = Progress(
        budget=budget(study.spec),
        finished=sum(counts[state] for state in FINISHED_TRIAL_STATES) + duplicates * seeds,
        counts=counts,
        duplicates=duplicates,
    )
    out = StudyOut.model_validate(study)
    return StudyDetail(**out.model_dump(), progress=progress, best=values)
