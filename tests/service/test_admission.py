"""Admission control: at most DECAYLAB_MAX_RUNNING_STUDIES drivers; the rest wait as queued and
start by priority, then in submission order, when a slot frees; the queue lives in the database."""

from __future__ import annotations

from collections.abc import Callable

from api_harness import JSON, Api
from factories import spec_data

from service.server import reconcile
from studies import repository
from studies.states import StudyState


def _post(api: Api, **spec: object) -> str:
    response = api.client.post("/studies", json=spec_data(**spec))
    assert response.status_code == 201, response.text
    study_id: str = response.json()["id"]
    return study_id


def _submitted(api: Api) -> list[str]:
    return [call[1] for call in api.launcher.calls if call[0] == "submit"]


def _finish(api: Api, study_id: str) -> None:
    """The driver runs and ends the study, as the real one does; its job ends."""
    with api.sessions() as session:
        study = repository.get_study(session=session, study_id=study_id)
        repository.set_study_status(session=session, study_id=study_id, status="running")
        repository.set_study_status(session=session, study_id=study_id, status="succeeded")
        session.commit()
        assert study.ray_job_id is not None
        api.launcher.jobs[study.ray_job_id] = "SUCCEEDED"


def _reconcile(api: Api) -> None:
    app = api.client.app
    reconcile(api.sessions, api.launcher, app.state.admission, resume_lost=False)  # type: ignore[attr-defined]


def test_studies_beyond_the_limit_wait_and_start_in_order(make_api: Callable[..., Api]) -> None:
    api = make_api(max_running_studies=2)
    ids = [_post(api, name=f"s{i}") for i in range(5)]
    assert _submitted(api) == ids[:2]
    waiting = [api.client.get(f"/studies/{i}").json() for i in ids[2:]]
    assert [(s["status"], s["ray_job_id"]) for s in waiting] == [("queued", None)] * 3

    _reconcile(api)  # no slot has freed: nothing starts
    assert _submitted(api) == ids[:2]
    _finish(api, ids[0])
    _reconcile(api)
    assert _submitted(api) == ids[:3]
    for study_id in ids[1:3]:
        _finish(api, study_id)
    _reconcile(api)
    assert _submitted(api) == ids


def test_a_higher_priority_starts_first(make_api: Callable[..., Api]) -> None:
    api = make_api(max_running_studies=1)
    first = _post(api, name="first")
    low, high = _post(api, name="low"), _post(api, name="high", priority=10)
    _finish(api, first)
    _reconcile(api)
    assert _submitted(api) == [first, high]
    assert api.client.get(f"/studies/{low}").json()["status"] == "queued"


def test_a_waiting_study_can_be_cancelled_and_never_starts(make_api: Callable[..., Api]) -> None:
    api = make_api(max_running_studies=1)
    running, waiting = _post(api, name="a"), _post(api, name="b")
    response = api.client.post(f"/studies/{waiting}/cancel", headers=JSON)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert ("stop", None) not in api.launcher.calls
    _finish(api, running)
    _reconcile(api)
    assert _submitted(api) == [running]


def test_the_queue_survives_a_restart(make_api: Callable[..., Api]) -> None:
    api = make_api(max_running_studies=1)
    running, waiting = _post(api, name="a"), _post(api, name="b")
    restarted = make_api(max_running_studies=1)  # a new service over the same database
    with restarted.sessions() as session:
        repository.set_study_status(session=session, study_id=running, status="running")
        repository.set_study_status(session=session, study_id=running, status="succeeded")
        session.commit()
    _reconcile(restarted)
    assert _submitted(restarted) == [waiting]


def test_a_lost_driver_at_start_up_waits_for_a_slot_like_any_study(
    make_api: Callable[..., Api],
) -> None:
    api = make_api(max_running_studies=1)
    lost, other = _post(api, name="lost"), _post(api, name="other")
    with api.sessions() as session:
        repository.set_study_status(session=session, study_id=lost, status="running")
        session.commit()
    api.launcher.jobs.clear()  # the cluster restarted: it knows no job
    app = api.client.app
    reconcile(api.sessions, api.launcher, app.state.admission, resume_lost=True)  # type: ignore[attr-defined]
    assert _submitted(api) == [lost, lost]  # started again, resumed (it had started)
    assert api.launcher.calls[-1] == ("submit", lost, True)
    with api.sessions() as session:
        assert repository.get_study(session=session, study_id=other).status == StudyState.QUEUED
