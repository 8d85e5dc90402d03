"""The questions asked of a study's results: best, Pareto front, effects, export."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from service import export
from service.api.common import MAX_NAMES, Name, StudyId, metric_mode, objectives, once_each
from service.auth import KeyHolder, ReadAccess
from service.deps import SessionDep, SessionFactoryDep
from service.errors import error_responses
from service.schemas import BestTrial, Effects, ParetoFront, ParetoPoint, TrialOut
from studies import repository
from studies.analysis import effects_answer, ranked_front
from studies.errors import InvalidQuery

router = APIRouter(prefix="/studies", tags=["analysis"], dependencies=[ReadAccess])
Mode = Literal["max", "min"]
MetricQuery = Annotated[
    list[Name] | None, Query(max_length=MAX_NAMES, description="default: the study's objectives")
]
# what every route here may answer besides 200
ERRORS = error_responses(401, 404, 422)


@router.get(
    "/{study_id}/best",
    response_model=list[BestTrial],
    responses=ERRORS,
    dependencies=[once_each("metric")],
)
def best(
    study_id: StudyId,
    session: SessionDep,
    key_holder: KeyHolder,
    metric: MetricQuery = None,
    mode: Mode | None = None,
) -> list[BestTrial]:
    """Per objective (or per `metric` asked), the best completed trial."""
    study = repository.get_study(session=session, study_id=study_id)
    wanted = objectives(study.spec)
    if metric:
        # one query per metric: a metric asked twice is answered once
        wanted = [(m, metric_mode(m, mode, "metric", "mode")) for m in dict.fromkeys(metric)]
    found = repository.best_trials(session=session, study_id=study_id, objectives=wanted)
    return [
        BestTrial(
            metric=m,
            mode=d,
            trial=None if found[m] is None else TrialOut.shown(found[m], key_holder=key_holder),
        )
        for m, d in wanted
    ]


def _pareto_axes(
    spec: dict[str, Any], x: str | None, y: str | None, x_mode: Mode | None, y_mode: Mode | None
) -> list[tuple[str, str]]:
    if x is None and y is None:
        return objectives(spec)
    if x is None or y is None:
        raise InvalidQuery(f"{'x' if x is None else 'y'}: give both x and y, or neither")
    if x == y:  # one metric against itself is no trade-off (and one key of `values`)
        raise InvalidQuery(f"y: {y!r} is x as well; give two different metrics")
    return [
        (x, metric_mode(x, x_mode, "x", "x_mode")),
        (y, metric_mode(y, y_mode, "y", "y_mode")),
    ]


@router.get(
    "/{study_id}/pareto", response_model=ParetoFront, responses=ERRORS, dependencies=[once_each()]
)
def pareto(
    study_id: StudyId,
    session: SessionDep,
    key_holder: KeyHolder,
    x: Name | None = None,
    y: Name | None = None,
    x_mode: Mode | None = None,
    y_mode: Mode | None = None,
) -> ParetoFront:
    """The non-dominated completed trials over the study's objectives, or over x and y."""
    study = repository.get_study(session=session, study_id=study_id)
    axes = _pareto_axes(study.spec, x, y, x_mode, y_mode)
    metrics, modes = [m for m, _ in axes], [d for _, d in axes]
    rows = repository.trial_columns(session=session, study_id=study_id, fields=metrics)
    members, considered = ranked_front([row[1:] for row in rows], modes)  # rows: number order
    front = [rows[i] for i in members]
    trials = repository.trials_by_numbers(
        session=session, study_id=study_id, numbers=[row[0] for row in front]
    )
    by_number = {trial.number: trial for trial in trials}
    items = [
        ParetoPoint(
            values=dict(zip(metrics, row[1:], strict=True)),
            trial=TrialOut.shown(by_number[row[0]], key_holder=key_holder),
        )
        for row in front
    ]
    return ParetoFront(metrics=metrics, modes=modes, considered=considered, items=items)


@router.get(
    "/{study_id}/effects", response_model=Effects, responses=ERRORS, dependencies=[once_each()]
)
def factor_effects(
    study_id: StudyId,
    session: SessionDep,
    factor: Literal["schedule", "family", "p", "lambda"] = "schedule",
    metric: Name = "val_acc",
    buckets: Annotated[int, Query(ge=1, le=100)] = 5,
) -> Effects:
    """Mean, std, count and 95% t-interval of a metric per level of a factor.

    Every completed trial is one observation, so replicate seeds count separately; p is
    bucketed into `buckets` equal-width buckets over its range, λ likewise in log space.
    """
    repository.check_numeric(metric, "metric")
    rows = repository.trial_columns(
        session=session, study_id=study_id, fields=[factor, metric], categories=[factor]
    )
    answer = effects_answer(
        factor, metric, [r[1] for r in rows], [r[2] for r in rows], buckets=buckets
    )
    return Effects.model_validate(answer)


MEDIA_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
# what a 200 of /export is, for the OpenAPI document (a StreamingResponse declares nothing)
EXPORTED = {
    "description": "The study as a file, in the `format` asked for",
    "content": {media_type: {} for media_type in MEDIA_TYPES.values()},
    "headers": {
        "Content-Disposition": {
            "description": 'attachment; filename="<name>-<id>-<per>s.<format>"',
            "schema": {"type": "string"},
        }
    },
}


@router.get(
    "/{study_id}/export",
    response_class=StreamingResponse,
    responses={200: EXPORTED, **ERRORS},
    dependencies=[once_each()],
)
def export_study(
    study_id: StudyId,
    session: SessionDep,
    sessions: SessionFactoryDep,
    format: Literal["csv", "parquet"] = "csv",
    per: Literal["trial", "epoch"] = "trial",
) -> StreamingResponse:
    """Stream the study: one row per trial (params + final metrics) or per epoch and metric."""
    study = repository.get_study(session=session, study_id=study_id)
    if per == "trial":
        schema = export.trial_schema(study.spec)
        batches = export.trial_batches(sessions, study_id, export.extra_params(study.spec))
    else:
        schema, batches = export.EPOCH_SCHEMA, export.epoch_batches(sessions, study_id)
    if format == "csv":
        body = export.csv_stream(schema.names, batches)
    else:
        body = export.parquet_stream(schema, batches)
    filename = f"{study.name}-{study_id[:8]}-{per}s.{format}"
    return StreamingResponse(
        body,
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
