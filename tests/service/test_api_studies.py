"""The study lifecycle over HTTP: create, list, show, cancel, resume, delete, health."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import optuna
import pytest
import yaml
from api_harness import JSON, Api
from factories import make_study, make_trial, spec_data

from service.deps import get_session_factory
from studies import repository
from studies.db import make_engine, session_factory

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _post(api: Api, **overrides: Any) -> str:
    response = api.client.post("/studies", json=spec_data(**overrides))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _move(api: Api, study_id: str, *statuses: str) -> None:
    with api.sessions.begin() as session:
        for status in statuses:
            repository.set_study_status(session=session, study_id=study_id, status=status)


def test_a_json_spec_becomes_a_queued_study_with_its_ray_job(api: Api) -> None:
    response = api.client.post("/studies", json=spec_data())
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/studies/{body['id']}"
    assert (body["name"], body["status"], body["ray_job_id"]) == (
        "quickstart", "queued", "raysubmit_0"
    )  # fmt: skip
    assert body["spec"]["regularizer"]["lambda"] == 1e-3
    assert api.launcher.calls == [("submit", body["id"], False)]
    shown = api.client.get(f"/studies/{body['id']}").json()
    assert (shown["status"], shown["ray_job_id"]) == ("queued", "raysubmit_0")


def test_a_yaml_spec_is_accepted_with_yaml_numbers(api: Api) -> None:
    text = yaml.safe_dump(spec_data()).replace("0.001", "1e-3")  # YAML 1.1 reads 1e-3 as text
    assert "1e-3" in text
    response = api.client.post(
        "/studies", content=text, headers={"content-type": "application/yaml"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["regularizer"]["lambda"] == 1e-3


def _edit(change: Callable[[dict[str, Any]], Any]) -> str:
    data = spec_data()
    change(data)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("body", "content_type", "loc", "words"),
    [
        (_edit(lambda d: d.pop("task")), "application/json", ["task"], "required"),
        (_edit(lambda d: d.update(colour=1)), "application/json", ["colour"], "not permitted"),
        (_edit(lambda d: d["space"]["p"].update(low=0.0)), "application/json",
         ["space", "p", "low"], "> 0"),
        (_edit(lambda d: d["space"]["lambda"].update(low=0.5, high=0.1)), "application/json",
         ["space", "lambda", "high"], "greater than low"),
        (_edit(lambda d: d["space"]["lambda"].update(low=-1.0)), "application/json",
         ["space", "lambda", "low"], "log range"),
        (_edit(lambda d: d["task"].update(dataset="imagenet")), "application/json",
         ["task", "dataset"], "unknown dataset"),
        (_edit(lambda d: d["objectives"].append({"metric": "f1"})), "application/json",
         ["objectives", 2, "metric"], "unknown metric"),
        (_edit(lambda d: d["search"].update(n_trials=600)), "application/json",
         ["search", "n_trials"], "over the limit"),
        ("name: [unclosed", "application/yaml", None, "not valid YAML"),
        ("{'name': ", "application/json", None, "not valid JSON"),
        ("[1, 2]", "application/json", None, "must be a mapping"),
    ],
)  # fmt: skip
def test_a_bad_spec_is_a_422_naming_the_field_and_never_reaches_ray(
    api: Api, body: str, content_type: str, loc: list[Any] | None, words: str
) -> None:
    response = api.client.post("/studies", content=body, headers={"content-type": content_type})
    assert response.status_code == 422
    error = response.json()
    assert words in error["detail"]
    if loc is not None:
        assert loc in [e["loc"] for e in error["errors"]]
    assert api.launcher.calls == []
    assert api.client.get("/studies").json()["total"] == 0


def test_the_configured_limits_apply(make_api: Callable[..., Api]) -> None:
    api = make_api(max_trials=4)  # the spec asks for 4 trials × 2 seeds
    response = api.client.post("/studies", json=spec_data())
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["search", "n_trials"]


# what a web page can send cross-origin without a preflight: none of it may write
SIMPLE_TYPES = [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]


@pytest.mark.parametrize("content_type", SIMPLE_TYPES)
@pytest.mark.parametrize("path", ["", "/{id}/cancel", "/{id}/resume"])
def test_a_write_in_another_media_type_is_a_415_and_changes_nothing(
    api: Api, content_type: str | None, path: str
) -> None:
    study = _post(api)
    before = len(api.launcher.calls)
    headers = {} if content_type is None else {"content-type": content_type}
    body = json.dumps(spec_data())
    response = api.client.post(f"/studies{path.format(id=study)}", content=body, headers=headers)
    assert response.status_code == 415
    assert "content-type" in response.json()["detail"]
    assert len(api.launcher.calls) == before
    assert api.client.get("/studies").json()["total"] == 1


def test_a_refused_submit_is_a_503_and_leaves_the_study_failed(api: Api) -> None:
    api.launcher.refuse = True
    response = api.client.post("/studies", json=spec_data())
    assert response.status_code == 503 and "not reachable" in response.json()["detail"]
    (study,) = api.client.get("/studies").json()["items"]
    assert study["status"] == "failed" and "Ray job failed" in study["error"]


def test_without_a_launcher_good_specs_are_a_503_and_bad_ones_still_a_422(
    make_api: Callable[..., Api],
) -> None:
    api = make_api()
    api.client.app.state.launcher = None  # type: ignore[attr-defined]
    assert api.client.post("/studies", json={"name": "x"}).status_code == 422
    assert api.client.post("/studies", json=spec_data()).status_code == 503
    assert api.client.get("/studies").json()["total"] == 0


def test_studies_are_listed_newest_first_with_totals_and_a_status_filter(api: Api) -> None:
    with api.sessions.begin() as session:
        statuses = ["queued", "running", "failed", "succeeded", "failed"]
        ids = [make_study(session, status=s, name=f"s{i}").id for i, s in enumerate(statuses)]
    page = api.client.get("/studies", params={"limit": 2}).json()
    assert page["total"] == 5 and [s["id"] for s in page["items"]] == ids[::-1][:2]
    assert [s["id"] for s in api.client.get("/studies?offset=4").json()["items"]] == ids[:1]
    failed = api.client.get("/studies", params={"status": "failed"}).json()
    assert failed["total"] == 2 and {s["id"] for s in failed["items"]} == {ids[2], ids[4]}
    assert "spec" not in failed["items"][0]


@pytest.mark.parametrize(
    ("query", "field"),
    [("status=paused", "status"), ("limit=0", "limit"), ("limit=1001", "limit"),
     ("offset=-1", "offset")],
)  # fmt: skip
def test_bad_list_parameters_are_a_422_naming_them(api: Api, query: str, field: str) -> None:
    response = api.client.get(f"/studies?{query}")
    assert response.status_code == 422 and field in response.json()["detail"]


def test_a_study_shows_its_progress_and_best_values_so_far(api: Api) -> None:
    with api.sessions.begin() as session:
        study = make_study(session, status="running").id
        make_trial(session, study, final={"val_acc": 0.8, "sparsity": 0.5})
        make_trial(session, study, final={"val_acc": 0.9, "sparsity": 0.1})
        make_trial(session, study, state="failed")
        make_trial(session, study, state="pruned", final={"val_acc": 0.95, "sparsity": 0.9})
        make_trial(session, study, state="running")
    body = api.client.get(f"/studies/{study}").json()
    assert body["progress"]["budget"] == 8  # 4 trials × 2 seeds
    assert body["progress"]["finished"] == 4
    assert {k: v for k, v in body["progress"]["counts"].items() if v} == {
        "completed": 2, "failed": 1, "pruned": 1, "running": 1
    }  # fmt: skip
    assert body["best"] == [  # a pruned trial's numbers are not results
        {"metric": "val_acc", "mode": "max", "trial": 1, "value": 0.9},
        {"metric": "sparsity", "mode": "max", "trial": 0, "value": 0.5},
    ]


def test_an_unknown_study_is_a_404_everywhere(api: Api) -> None:
    for method, path in [("get", ""), ("post", "/cancel"), ("post", "/resume"),
                         ("delete", ""), ("get", "/trials"), ("get", "/best")]:  # fmt: skip
        response = api.client.request(method, f"/studies/nope{path}", headers=JSON)
        assert response.status_code == 404
        assert response.json() == {"detail": "study 'nope' not found", "errors": []}


@pytest.mark.parametrize(
    ("path", "code"),
    [([], 200), (["running"], 200), (["running", "succeeded"], 409),
     (["running", "failed"], 409), (["cancelled"], 409)],
)  # fmt: skip
def test_cancel_stops_the_job_of_a_queued_or_running_study(
    api: Api, path: list[str], code: int
) -> None:
    study = _post(api)
    _move(api, study, *path)
    response = api.client.post(f"/studies/{study}/cancel", headers=JSON)
    assert response.status_code == code
    stops = [call for call in api.launcher.calls if call[0] == "stop"]
    if code == 200:
        assert response.json()["status"] == "cancelled"
        assert stops == [("stop", "raysubmit_0")]
    else:
        assert stops == [] and "nothing to cancel" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "job", "code"),
    [(["running", "failed"], None, 200), (["cancelled"], None, 200),
     (["running"], "FAILED", 200),  # the driver died without saying so
     (["running"], "RUNNING", 409), ([], None, 409), (["running", "succeeded"], None, 409)],
)  # fmt: skip
def test_resume_submits_a_new_job_only_for_a_study_that_stopped(
    api: Api, path: list[str], job: str | None, code: int
) -> None:
    study = _post(api)
    _move(api, study, *path)
    if job is not None:
        api.launcher.jobs["raysubmit_0"] = job
    response = api.client.post(f"/studies/{study}/resume", headers=JSON)
    assert response.status_code == code, response.text
    submits = [call for call in api.launcher.calls if call[0] == "submit"]
    if code == 200:
        # --resume for a study whose driver had begun; one cancelled while queued starts afresh
        assert submits[1:] == [("submit", study, "running" in path)]
        body = response.json()
        assert (body["status"], body["ray_job_id"], body["error"]) == (
            "queued", "raysubmit_1", None
        )  # fmt: skip
    else:
        assert len(submits) == 1 and "cannot be resumed" in response.json()["detail"]


def _optuna_study(url: str, name: str) -> optuna.storages.RDBStorage:
    storage = optuna.storages.RDBStorage(url)
    optuna.create_study(storage=storage, study_name=name)
    return storage


def test_delete_removes_the_study_its_trials_and_its_optuna_study(api: Api) -> None:
    with api.sessions.begin() as session:
        gone, keep = make_study(session, status="succeeded"), make_study(session, name="keep")
        ids = {gone.id: gone.optuna_study_name, keep.id: keep.optuna_study_name}
        make_trial(session, gone.id, curves={"val_acc": [0.5, 0.6]})
        make_trial(session, keep.id)
    (gone_id, gone_name), (keep_id, keep_name) = ids.items()
    storage = _optuna_study(api.database_url, gone_name)
    _optuna_study(api.database_url, keep_name).engine.dispose()
    response = api.client.delete(f"/studies/{gone_id}")
    assert response.status_code == 204
    assert api.client.get(f"/studies/{gone_id}").status_code == 404
    assert api.client.get(f"/studies/{keep_id}/trials").json()["total"] == 1
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    assert gone_name not in names and keep_name in names
    storage.engine.dispose()


def test_delete_without_an_optuna_study_still_succeeds(api: Api) -> None:
    with api.sessions.begin() as session:
        study = make_study(session, status="failed").id
    assert api.client.delete(f"/studies/{study}").status_code == 204


@pytest.mark.parametrize("path", [[], ["running"]])
def test_delete_refuses_a_study_that_may_still_write(api: Api, path: list[str]) -> None:
    study = _post(api)
    _move(api, study, *path)
    response = api.client.delete(f"/studies/{study}")
    assert response.status_code == 409 and "cancel it" in response.json()["detail"]
    assert api.client.get(f"/studies/{study}").status_code == 200


def test_health_reports_the_database(api: Api) -> None:
    body = api.client.get("/health").json()
    assert body["status"] == "ok"
    dialect = "sqlite" if api.database_url.startswith("sqlite") else "postgresql"
    assert body["database"] == dialect


def test_health_is_a_503_that_leaves_the_connection_details_to_the_log(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")  # a closed port
    app = api.client.app
    app.dependency_overrides[get_session_factory] = lambda: session_factory(nowhere)  # type: ignore[attr-defined]
    try:
        with caplog.at_level("WARNING", logger="service.api.health"):
            response = api.client.get("/health")
    finally:
        app.dependency_overrides.clear()  # type: ignore[attr-defined]
        nowhere.dispose()
    assert response.status_code == 503
    assert response.json() == {
        "detail": "the database is unreachable",
        "errors": [{"loc": ["database"], "msg": "unreachable"}],
    }
    # /health needs no key: the host, port and user go to the service's log only
    assert "OperationalError" in caplog.text and "127.0.0.1" in caplog.text
