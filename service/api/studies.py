"""The /studies routes: create, list, show, cancel, resume, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.admission import Admission
from service.api.common import Limit, Name, Offset, StudyId, once_each, study_detail
from service.auth import JSON_TYPE, ReadAccess, WriteAccess, WriteMedia, media_type
from service.deps import LauncherDep, LimitsDep, SessionDep, SettingsDep
from service.errors import LaunchFailed, error_responses
from service.launcher import ENDED_JOB_STATUSES, Launcher
from service.schemas import StudyDetail, StudyOut, StudyPage, StudySummary
from studies import policy, repository
from studies.db import Study
from studies.errors import InvalidSpec, InvalidTransition
from studies.spec import StudySpec, parse_spec_json, parse_spec_text, validate_spec
from studies.states import ACTIVE_STUDY_STATES, StudyState

router = APIRouter(prefix="/studies", tags=["studies"], dependencies=[ReadAccess])

# cancel and resume: a write (key, JSON or YAML type), on a study, in a status that allows it,
# through Ray
TRANSITION_ERRORS = error_responses(401, 404, 409, 415, 422, 503)
SPEC_BODY = {
    "required": True,
    "description": "A study spec, as JSON or as YAML text.",
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "application/yaml": {"schema": {"type": "string"}},
    },
}


async def spec_body(request: Request) -> Any:
    """The request body as plain data, parsed off the event loop (a large spec stalls no one)."""
    body = await request.body()
    return await run_in_threadpool(parse_spec_body, body, media_type(request))


def parse_spec_body(body: bytes, media: str) -> Any:
    """JSON or YAML bytes as plain data, by media type; InvalidSpec on any parse error."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidSpec(f"the spec is not UTF-8 text: {error}") from error
    return parse_spec_json(text) if media == JSON_TYPE else parse_spec_text(text)


def cluster_nodes(request: Request) -> list[dict[str, float]] | None:
    """The Ray cluster's nodes, when a launcher can list them."""
    launcher: Launcher | None = request.app.state.launcher
    return None if launcher is None else launcher.nodes()


def valid_spec(
    data: Annotated[Any, Depends(spec_body)],
    limits: LimitsDep,
    nodes: Annotated[list[dict[str, float]] | None, Depends(cluster_nodes)],
) -> StudySpec:
    """The body validated into a StudySpec within this service's limits: InvalidSpec (422)
    lists each field at fault."""
    spec = validate_spec(data)
    policy.enforce(spec, limits, nodes)
    return spec


def _enqueue(request: Request, session: Session, launcher: Launcher, study_id: str) -> Study:
    """Let the study wait for a slot and start what the slots allow: it starts now if one is
    free, else when a running study ends. A refused submit fails the study (503)."""
    session.commit()
    admission: Admission = request.app.state.admission
    refused = admission.admit(request.app.state.sessions, launcher)
    if study_id in refused:
        raise LaunchFailed(refused[study_id])
    session.expire_all()  # admission wrote through a session of its own
    return repository.get_study(session=session, study_id=study_id)


@router.post(
    "",
    status_code=201,
    response_model=StudyOut,
    responses=error_responses(401, 413, 415, 422, 503),
    dependencies=[WriteAccess, WriteMedia],
    openapi_extra={"requestBody": SPEC_BODY},
)
def create_study(
    # declared before the launcher: a bad spec is a 422 even where no launcher is configured
    spec: Annotated[StudySpec, Depends(valid_spec)],
    request: Request,
    session: SessionDep,
    launcher: LauncherDep,
    response: Response,
) -> StudyOut:
    """Validate a spec (422 naming the field), store the study, start its Ray job when a slot
    is free (it waits as queued, without a job, otherwise)."""
    study = repository.create_study(session=session, spec=spec)
    study = _enqueue(request, session, launcher, study.id)
    response.headers["Location"] = f"/studies/{study.id}"
    return StudyOut.model_validate(study)


@router.get(
    "",
    response_model=StudyPage,
    responses=error_responses(401, 422),
    dependencies=[once_each()],
)
def list_studies(
    session: SessionDep,
    status: Name | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> StudyPage:
    """Studies, newest first, optionally of one status."""
    page = repository.list_studies(session=session, status=status, limit=limit, offset=offset)
    return StudyPage(total=page.total, items=[StudySummary.model_validate(s) for s in page.items])


@router.get("/{study_id}", response_model=StudyDetail, responses=error_responses(401, 404, 422))
def get_study(study_id: StudyId, session: SessionDep) -> StudyDetail:
    """A study with its progress (trials by state of the budget) and best values so far."""
    study = repository.get_study(session=session, study_id=study_id)
    return study_detail(session, study)


@router.post(
    "/{study_id}/cancel",
    response_model=StudyOut,
    responses=TRANSITION_ERRORS,
    dependencies=[WriteAccess, WriteMedia],
)
def cancel_study(study_id: StudyId, session: SessionDep, launcher: LauncherDep) -> StudyOut:
    """Stop a queued or running study's job and mark it cancelled (409 otherwise)."""
    study = repository.get_study(session=session, study_id=study_id)
    if study.status not in ACTIVE_STUDY_STATES:
        raise InvalidTransition(f"study {study_id} is {study.status}: nothing to cancel")
    session.commit()  # hold no lock while Ray stops the job (its driver writes the study too)
    if study.ray_job_id is not None:
        try:
            launcher.stop(study.ray_job_id)
        except Exception as error:
            raise LaunchFailed(f"stopping the Ray job failed: {error}") from error
    study = repository.set_study_status(
        session=session, study_id=study_id, status=StudyState.CANCELLED
    )
    session.commit()
    return StudyOut.model_validate(study)


def _resumable(study_status: str, job_status: str | None) -> bool:
    if study_status in (StudyState.FAILED, StudyState.CANCELLED):
        return True
    return study_status == StudyState.RUNNING and (
        job_status is None or job_status in ENDED_JOB_STATUSES
    )


@router.post(
    "/{study_id}/resume",
    response_model=StudyOut,
    responses=TRANSITION_ERRORS,
    dependencies=[WriteAccess, WriteMedia],
)
def resume_study(
    study_id: StudyId, request: Request, session: SessionDep, launcher: LauncherDep
) -> StudyOut:
    """Queue a failed, cancelled or orphaned running study again; it resumes from the database
    when a slot is free."""
    study = repository.get_study(session=session, study_id=study_id)
    job_status = None
    if study.status == StudyState.RUNNING and study.ray_job_id is not None:
        job_status = launcher.status(study.ray_job_id)
    if not _resumable(study.status, job_status):
        reason = f"its job is {job_status}" if study.status == StudyState.RUNNING else study.status
        raise InvalidTransition(f"study {study_id} cannot be resumed: {reason}")
    repository.set_study_status(session=session, study_id=study_id, status=StudyState.QUEUED)
    repository.set_ray_job_id(session=session, study_id=study_id, ray_job_id=None)
    return StudyOut.model_validate(_enqueue(request, session, launcher, study_id))


@router.delete(
    "/{study_id}",
    status_code=204,
    responses=error_responses(401, 404, 409, 422),
    dependencies=[WriteAccess],
)
def delete_study(study_id: StudyId, session: SessionDep, settings: SettingsDep) -> Response:
    """Delete a study, its trials, metrics and Optuna study; a queued or running one: 409."""
    study = repository.get_study(session=session, study_id=study_id)
    if study.status == StudyState.QUEUED:  # its job is about to write to it
        raise InvalidTransition(f"study {study_id} is queued: cancel it before deleting it")
    optuna_name = study.optuna_study_name
    repository.delete_study(session=session, study_id=study_id)
    session.commit()
    # optuna costs half a second to import: only this route needs it
    from studies.optuna_tables import delete_optuna_study

    delete_optuna_study(database_url=settings.resolved_database_url(), study_name=optuna_name)
    return Response(status_code=204)
