"""Every bad path or query parameter of the read routes is a 4xx naming it, never a 500.

Each case runs on SQLite and on PostgreSQL: several of them (a NUL byte, a trial number past
32 bits) were 500s on PostgreSQL only.
"""

from __future__ import annotations

from typing import Any

import pytest
from api_harness import Api
from factories import make_study, make_trial
from sqlalchemy import func, select

from service.errors import error_responses
from service.schemas import ErrorBody
from studies.db import Metric, Study, Trial

TOO_LONG = "a" * 65  # one past a field or metric name's limit
UNKNOWN_ID = "0" * 8 + "-0000-4000-8000-" + "0" * 12  # well-formed, no such study


def _many(name: str) -> str:
    """A list parameter one past the names it may hold."""
    return "&".join(f"{name}=val_acc" for _ in range(33))


JSON = {"Content-Type": "application/json"}

# (method, path with {study} for a study that has three trials, status, parameter named)
CASES: list[tuple[str, str, int, str]] = [
    # GET /studies
    ("GET", "/studies?offset=9223372036854775808", 422, "offset"),
    ("GET", "/studies?offset=99999999999999999999999", 422, "offset"),
    ("GET", "/studies?offset=-1", 422, "offset"),
    ("GET", "/studies?offset=1.5", 422, "offset"),
    ("GET", "/studies?limit=0", 422, "limit"),
    ("GET", "/studies?limit=1001", 422, "limit"),
    ("GET", "/studies?limit=99999999999999999999", 422, "limit"),
    ("GET", "/studies?limit=ten", 422, "limit"),
    ("GET", "/studies?status=%00", 422, "status"),
    ("GET", "/studies?status=paused", 422, "status"),
    ("GET", "/studies?status=", 422, "status"),
    ("GET", f"/studies?status={TOO_LONG}", 422, "status"),
    ("GET", "/studies?limit=1&limit=2", 422, "limit"),
    ("GET", "/studies?status=queued&status=running", 422, "status"),
    # GET /studies/{id}
    ("GET", "/studies/%00", 422, "study_id"),
    ("GET", "/studies/{study}%00", 422, "study_id"),
    ("GET", f"/studies/{UNKNOWN_ID}0", 422, "study_id"),  # 37 characters
    ("GET", "/studies/a%20b", 422, "study_id"),
    ("GET", "/studies/%C3%A9t%C3%A9", 422, "study_id"),
    ("GET", f"/studies/{UNKNOWN_ID}", 404, UNKNOWN_ID),
    # GET /studies/{id}/trials
    ("GET", "/studies/%00/trials", 422, "study_id"),
    ("GET", "/studies/{study}/trials?offset=9223372036854775808", 422, "offset"),
    ("GET", "/studies/{study}/trials?offset=-1", 422, "offset"),
    ("GET", "/studies/{study}/trials?limit=0", 422, "limit"),
    ("GET", "/studies/{study}/trials?limit=1001", 422, "limit"),
    ("GET", "/studies/{study}/trials?sort=%00", 422, "sort"),
    ("GET", "/studies/{study}/trials?sort=family", 422, "sort"),
    ("GET", "/studies/{study}/trials?sort=colour", 422, "sort"),
    ("GET", f"/studies/{{study}}/trials?sort={TOO_LONG}", 422, "sort"),
    ("GET", "/studies/{study}/trials?order=sideways", 422, "order"),
    ("GET", "/studies/{study}/trials?state=%00", 422, "state"),
    ("GET", "/studies/{study}/trials?state=paused", 422, "state"),
    ("GET", "/studies/{study}/trials?family=%00", 422, "family"),
    ("GET", "/studies/{study}/trials?family=adamw", 422, "family"),
    ("GET", "/studies/{study}/trials?schedule=%00", 422, "schedule"),
    ("GET", "/studies/{study}/trials?schedule=cosine", 422, "schedule"),
    ("GET", "/studies/{study}/trials?p_min=abc", 422, "p_min"),
    ("GET", "/studies/{study}/trials?p_min=1e400", 422, "p_min"),
    ("GET", "/studies/{study}/trials?p_max=nan", 422, "p_max"),
    ("GET", "/studies/{study}/trials?lam_min=inf", 422, "lam_min"),
    ("GET", "/studies/{study}/trials?val_acc_min=-1e999", 422, "val_acc_min"),
    ("GET", "/studies/{study}/trials?sparsity%401e-08_max=nan", 422, "sparsity@1e-08_max"),
    ("GET", "/studies/{study}/trials?seed_min=abc", 422, "seed_min"),
    ("GET", "/studies/{study}/trials?colour_min=1", 422, "colour_min"),
    ("GET", "/studies/{study}/trials?family_min=1", 422, "family_min"),
    ("GET", "/studies/{study}/trials?_min=1", 422, "_min"),
    ("GET", "/studies/{study}/trials?%00_max=1", 422, "_max"),
    ("GET", "/studies/{study}/trials?p_min=1&p_min=2", 422, "p_min"),
    ("GET", "/studies/{study}/trials?limit=1&limit=2", 422, "limit"),
    ("GET", "/studies/{study}/trials?sort=p&sort=lr", 422, "sort"),
    ("GET", f"/studies/{UNKNOWN_ID}/trials", 404, UNKNOWN_ID),
    # GET /studies/{id}/trials/{n}
    ("GET", "/studies/{study}/trials/2147483648", 422, "number"),
    ("GET", "/studies/{study}/trials/9223372036854775808", 422, "number"),
    ("GET", "/studies/{study}/trials/-99999999999999999999", 422, "number"),
    ("GET", "/studies/{study}/trials/-1", 422, "number"),
    ("GET", "/studies/{study}/trials/1.5", 422, "number"),
    ("GET", "/studies/{study}/trials/%00", 422, "number"),
    ("GET", "/studies/%00/trials/0", 422, "study_id"),
    ("GET", "/studies/{study}/trials/3", 404, "trial 3"),
    # GET /studies/{id}/trials/{n}/metrics
    ("GET", "/studies/{study}/trials/2147483648/metrics", 422, "number"),
    ("GET", "/studies/{study}/trials/-1/metrics", 422, "number"),
    ("GET", "/studies/{study}/trials/0/metrics?name=%00", 422, "name"),
    ("GET", f"/studies/{{study}}/trials/0/metrics?name={TOO_LONG}", 422, "name"),
    ("GET", "/studies/{study}/trials/0/metrics?name=", 422, "name"),
    ("GET", f"/studies/{{study}}/trials/0/metrics?{_many('name')}", 422, "name"),
    ("GET", "/studies/%00/trials/0/metrics", 422, "study_id"),
    # GET /studies/{id}/best
    ("GET", "/studies/{study}/best?metric=family", 422, "metric"),
    ("GET", "/studies/{study}/best?metric=state&mode=max", 422, "metric"),
    ("GET", "/studies/{study}/best?metric=colour", 422, "metric"),
    ("GET", "/studies/{study}/best?metric=%00", 422, "metric"),
    ("GET", f"/studies/{{study}}/best?metric={TOO_LONG}", 422, "metric"),
    ("GET", f"/studies/{{study}}/best?{_many('metric')}", 422, "metric"),
    ("GET", "/studies/{study}/best?metric=angular_update", 422, "mode"),
    ("GET", "/studies/{study}/best?mode=up", 422, "mode"),
    ("GET", "/studies/{study}/best?mode=max&mode=min", 422, "mode"),
    ("GET", "/studies/%00/best", 422, "study_id"),
    # GET /studies/{id}/pareto
    ("GET", "/studies/{study}/pareto?x=family&y=val_acc&x_mode=max", 422, "x"),
    ("GET", "/studies/{study}/pareto?x=val_acc&y=family&y_mode=max", 422, "y"),
    ("GET", "/studies/{study}/pareto?x=state&y=val_acc&x_mode=max", 422, "x"),
    ("GET", "/studies/{study}/pareto?x=node&y=val_acc&x_mode=max", 422, "x"),
    ("GET", "/studies/{study}/pareto?x=colour&y=val_acc", 422, "x"),
    ("GET", "/studies/{study}/pareto?x=%00&y=val_acc", 422, "x"),
    ("GET", f"/studies/{{study}}/pareto?x=val_acc&y={TOO_LONG}", 422, "y"),
    ("GET", "/studies/{study}/pareto?x=val_acc", 422, "y"),
    ("GET", "/studies/{study}/pareto?y=val_acc", 422, "x"),
    ("GET", "/studies/{study}/pareto?x=val_acc&y=val_acc", 422, "y"),
    ("GET", "/studies/{study}/pareto?x=angular_update&y=val_acc", 422, "x_mode"),
    ("GET", "/studies/{study}/pareto?x=val_acc&y=sparsity&y_mode=up", 422, "y_mode"),
    ("GET", "/studies/{study}/pareto?x=val_acc&x=sparsity&y=val_acc", 422, "x"),
    ("GET", "/studies/%00/pareto", 422, "study_id"),
    # GET /studies/{id}/effects
    ("GET", "/studies/{study}/effects?metric=family", 422, "metric"),
    ("GET", "/studies/{study}/effects?metric=state", 422, "metric"),
    ("GET", "/studies/{study}/effects?metric=colour", 422, "metric"),
    ("GET", "/studies/{study}/effects?metric=%00", 422, "metric"),
    ("GET", "/studies/{study}/effects?factor=colour", 422, "factor"),
    ("GET", "/studies/{study}/effects?buckets=0", 422, "buckets"),
    ("GET", "/studies/{study}/effects?factor=p&buckets=101", 422, "buckets"),
    ("GET", "/studies/{study}/effects?buckets=99999999999999999999", 422, "buckets"),
    ("GET", "/studies/{study}/effects?metric=val_acc&metric=sparsity", 422, "metric"),
    ("GET", "/studies/%00/effects", 422, "study_id"),
    # GET /studies/{id}/export
    ("GET", "/studies/{study}/export?format=xml", 422, "format"),
    ("GET", "/studies/{study}/export?per=step", 422, "per"),
    ("GET", "/studies/{study}/export?format=csv&format=parquet", 422, "format"),
    ("GET", "/studies/%00/export", 422, "study_id"),
    ("GET", f"/studies/{UNKNOWN_ID}0/export", 422, "study_id"),
    # the path parameter of the writes on a study
    ("DELETE", "/studies/%00", 422, "study_id"),
    ("DELETE", f"/studies/{UNKNOWN_ID}0", 422, "study_id"),
    ("POST", "/studies/%00/cancel", 422, "study_id"),
    ("POST", "/studies/{study}%00/resume", 422, "study_id"),
]


@pytest.fixture
def study(api: Api) -> str:
    """A succeeded study of three completed trials (numbers 0, 1, 2) with curves."""
    with api.sessions.begin() as session:
        study_id = make_study(session, status="succeeded").id
        for i in range(3):
            final = {"val_acc": 0.5 + i / 10, "sparsity": i / 4, "sparsity@1e-08": 0.1}
            curves = {"val_acc": [0.2, 0.5 + i / 10]}
            make_trial(session, study_id, p=0.5 + i / 2, final=final, curves=curves)
    return study_id


def _database(api: Api) -> dict[str, Any]:
    """What a request could have changed: the rows of each table and every study's status."""
    tables = (Study, Trial, Metric)
    with api.sessions() as session:
        counts = {t.__name__: session.scalar(select(func.count()).select_from(t)) for t in tables}
        statuses = dict(session.execute(select(Study.id, Study.status)).all())
    return {"counts": counts, "statuses": statuses}


@pytest.mark.parametrize(("method", "path", "status", "named"), CASES)
def test_a_bad_parameter_is_a_4xx_naming_it(
    api: Api, study: str, method: str, path: str, status: int, named: str
) -> None:
    before = _database(api)
    url = path.replace("{study}", study)
    response = api.client.request(method, url, headers=JSON if method == "POST" else None)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "errors"}
    ErrorBody.model_validate(body)
    assert named in body["detail"]
    assert _database(api) == before  # no row written, no status moved
    assert api.launcher.calls == []  # and nothing sent to Ray


def test_there_are_enough_cases_and_each_read_route_has_some() -> None:
    assert len(CASES) >= 80
    routes = ["/studies?", "/studies/%00", "/trials?", "/trials/-1", "/metrics", "/best",
              "/pareto", "/effects", "/export", "DELETE", "/cancel"]  # fmt: skip
    for route in routes:
        assert any(route in f"{method} {path}" for method, path, _, _ in CASES), route


def test_the_good_forms_of_the_same_queries_answer(api: Api, study: str) -> None:
    """The bounds are not too tight: the largest offset, the last trial number, ..."""
    good = [
        "/studies?offset=9223372036854775807",
        f"/studies/{study}/trials?offset=9223372036854775807&limit=1000",
        f"/studies/{study}/trials?sort=sparsity@1e-08&val_acc_min=1e308&state=completed"
        "&family=pwd&family=l2",
        f"/studies/{study}/trials/0/metrics?name=val_acc&name=weight_norm",
        f"/studies/{study}/best?metric=val_acc&metric=val_acc",
        f"/studies/{study}/pareto?x=val_acc&y=sparsity@1e-08",
        f"/studies/{study}/effects?factor=p&metric=sparsity&buckets=100",
    ]
    for url in good:
        assert api.client.get(url).status_code == 200, url
    response = api.client.get(f"/studies/{study}/trials/2147483647")
    assert response.status_code == 404 and "2147483647" in response.json()["detail"]


def test_an_empty_study_answers_every_read(api: Api) -> None:
    with api.sessions.begin() as session:
        study = make_study(session, status="succeeded").id
    for route in ("", "/trials", "/best", "/pareto", "/effects?factor=lambda",
                  "/export", "/export?per=epoch&format=parquet"):  # fmt: skip
        assert api.client.get(f"/studies/{study}{route}").status_code == 200, route


READ_ROUTES = {
    ("GET", "/studies"): (401, 422),
    ("GET", "/studies/{study_id}"): (401, 404, 422),
    ("GET", "/studies/{study_id}/trials"): (401, 404, 422),
    ("GET", "/studies/{study_id}/trials/{number}"): (401, 404, 422),
    ("GET", "/studies/{study_id}/trials/{number}/metrics"): (401, 404, 422),
    ("GET", "/studies/{study_id}/best"): (401, 404, 422),
    ("GET", "/studies/{study_id}/pareto"): (401, 404, 422),
    ("GET", "/studies/{study_id}/effects"): (401, 404, 422),
    ("GET", "/studies/{study_id}/export"): (401, 404, 422),
    ("GET", "/health"): (503,),
}


def test_openapi_declares_each_read_routes_errors_in_the_one_shape(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    for (method, path), codes in READ_ROUTES.items():
        responses = document["paths"][path][method.lower()]["responses"]
        errors = sorted(int(code) for code in responses if code.startswith(("4", "5")))
        assert errors == list(codes), (path, errors)
        for code in codes:
            schema = responses[str(code)]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, code)
    body = document["components"]["schemas"]["ErrorBody"]
    assert body["required"] == ["detail", "errors"]
    assert document["components"]["schemas"]["ErrorItem"]["properties"]["loc"]["items"] == {
        "anyOf": [{"type": "string"}, {"type": "integer"}]
    }


def test_error_responses_describe_each_code() -> None:
    responses = error_responses(401, 418)
    assert [responses[code]["model"] for code in (401, 418)] == [ErrorBody, ErrorBody]
    assert "API key" in responses[401]["description"]
    assert responses[418]["description"] == "I'm a Teapot"  # a code without our own words
