"""The /studies/{id}/trials routes: the filtered trial list, one trial, its metric curves."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from service.api.common import (
    MAX_NAMES,
    Limit,
    Name,
    Offset,
    StudyId,
    TrialNumber,
    once_each,
)
from service.auth import KeyHolder, ReadAccess
from service.deps import SessionDep
from service.errors import error_responses
from service.schemas import MetricPoint, TrialDetail, TrialOut, TrialPage
from studies import repository
from studies.catalog import DECAY_SCHEDULES, FAMILIES, api_name
from studies.errors import InvalidQuery
from studies.states import TrialState

router = APIRouter(prefix="/studies", tags=["trials"], dependencies=[ReadAccess])

RANGE_SUFFIXES = {"_min": 0, "_max": 1}
# query names for the spec's parameter names that are python keywords
FloatQuery = Annotated[float | None, Query()]
# what every route here may answer besides 200
ERRORS = error_responses(401, 404, 422)


def ranges_from_query(params: Mapping[str, str]) -> dict[str, tuple[float | None, float | None]]:
    """Every `<field>_min` / `<field>_max` query parameter as {field: (low, high)}.

    Any numeric field or final metric works (`val_acc_min`, `sparsity@1e-08_max`); the
    repository refuses unknown fields.
    """
    ranges: dict[str, list[float | None]] = {}
    for key, text in params.items():
        suffix = key[-4:]
        if suffix not in RANGE_SUFFIXES:
            continue
        field = api_name(key[:-4])
        repository.check_numeric(field, key)  # a 422 naming the key, `_min` alone included
        try:
            value = float(text)
        except ValueError:
            raise InvalidQuery(f"{key} must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise InvalidQuery(f"{key} must be finite, got {text!r}")
        ranges.setdefault(field, [None, None])[RANGE_SUFFIXES[suffix]] = value
    return {field: (low, high) for field, (low, high) in ranges.items()}


def known_values(parameter: str, values: list[str] | None, choices: Sequence[str]) -> list[str]:
    """The distinct values of a list parameter; a 422 naming it for one no trial can have."""
    unknown = sorted(set(values or []) - set(choices))
    if unknown:
        raise InvalidQuery(f"{parameter}: unknown {unknown}; choose from {', '.join(choices)}")
    return sorted(set(values or []))


@router.get(
    "/{study_id}/trials",
    response_model=TrialPage,
    responses=ERRORS,
    dependencies=[once_each("state", "family", "schedule")],
)
def list_trials(
    study_id: StudyId,
    request: Request,
    session: SessionDep,
    key_holder: KeyHolder,
    state: Annotated[list[str] | None, Query()] = None,
    family: Annotated[list[str] | None, Query()] = None,
    schedule: Annotated[list[str] | None, Query()] = None,
    p_min: FloatQuery = None,
    p_max: FloatQuery = None,
    lam_min: FloatQuery = None,
    lam_max: FloatQuery = None,
    lr_min: FloatQuery = None,
    lr_max: FloatQuery = None,
    sort: Name = "number",
    order: Literal["asc", "desc"] = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> TrialPage:
    """A page of trials: filter by state, family, schedule and ranges, sort by any metric.

    Ranges: `<field>_min` / `<field>_max` (inclusive) for p, lam, lr, until, seed and every
    final metric, e.g. `val_acc_min=0.9`. Trials missing the sort key come last.
    """
    # p_min ... lr_max are declared for the docs; every range is read from the query string
    states = known_values("state", state, tuple(TrialState))
    one_of = {
        "family": known_values("family", family, FAMILIES),
        "schedule": known_values("schedule", schedule, DECAY_SCHEDULES),
    }
    page = repository.list_trials(
        session=session,
        study_id=study_id,
        states=states or None,
        ranges=ranges_from_query(request.query_params),
        one_of={name: values for name, values in one_of.items() if values},
        sort_by=sort,
        descending=order == "desc",
        limit=limit,
        offset=offset,
    )
    items = [TrialOut.shown(t, key_holder=key_holder) for t in page.items]
    return TrialPage(total=page.total, items=items)


@router.get(
    "/{study_id}/trials/{number}",
    response_model=TrialDetail,
    responses=ERRORS,
)
def get_trial(
    study_id: StudyId, number: TrialNumber, session: SessionDep, key_holder: KeyHolder
) -> TrialDetail:
    """One trial with its resolved config and provenance."""
    repository.get_study(session=session, study_id=study_id)
    trial = repository.get_trial(session=session, study_id=study_id, number=number)
    return TrialDetail.shown(trial, key_holder=key_holder)


@router.get(
    "/{study_id}/trials/{number}/metrics",
    response_model=dict[str, list[MetricPoint]],
    responses=ERRORS,
    dependencies=[once_each("name")],
)
def trial_curves(
    study_id: StudyId,
    number: TrialNumber,
    session: SessionDep,
    name: Annotated[
        list[Name] | None,
        Query(max_length=MAX_NAMES, description="metric names; all when absent"),
    ] = None,
) -> dict[str, list[MetricPoint]]:
    """A trial's metrics over epochs: {name: [{epoch, value}]}; a name it never reported: []."""
    repository.get_study(session=session, study_id=study_id)
    trial = repository.get_trial(session=session, study_id=study_id, number=number)
    curves = repository.trial_metrics(session=session, trial_id=trial.id, names=name)
    return {
        metric: [MetricPoint(epoch=epoch, value=value) for epoch, value in curves.get(metric, [])]
        for metric in [*(name or []), *curves]
    }
