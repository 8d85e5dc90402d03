"""Schemathesis against the real `decaylab serve` (its own Ray head, SQLite): every operation of
its /openapi.json, sent data the schema allows and data it forbids, answers without a server
error and as the schema says (status code, content type, headers, body), refuses what the
schema forbids with a 4xx, and refuses it without the API key.

The service runs with an API key that reads need too (DECAYLAB_READ_AUTH=1): the schema
declares the key on every /studies route, and this deployment is the one where that is so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from engine_support import Service, wait_until
from factories import training_spec_data
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

pytestmark = pytest.mark.slow

API_KEY = "schemathesis-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
# every check schemathesis has (server errors; status code, content type, headers and body as
# declared; data the schema forbids refused with a 4xx; the key enforced; Allow on a 405) but
# one: data the schema allows may still be refused (a 422 naming the field), as the schema
# does not say it all. A spec body is declared as any object (its rules, caps and the budgets
# checked against the Ray cluster are the service's); names are free strings checked against
# what exists (`status`, `family`, metrics such as `sparsity@1e-08`); cancel and resume take
# no body yet want a JSON type, which OpenAPI has no way to state.
EXCLUDED_CHECKS = [positive_data_acceptance]
# per operation, for the fuzzing phase; the coverage phase adds its boundary cases on top
MAX_EXAMPLES = 25
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
FINISHED = ("succeeded", "failed", "cancelled")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's fixture-loaded schemas read and rename `request.node._nodeid`,
    which pytest 9.2 no longer has; the node id pytest reports stays its own."""
    request.node._nodeid = request.node.nodeid


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    home, data = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("data")
    running = Service(home, data, api_key=API_KEY, read_auth="1")
    running.start()
    yield running
    running.stop()


def study_status(service: Service, study_id: str) -> str:
    response = httpx.get(f"{service.url}/studies/{study_id}", headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


@pytest.fixture(scope="module")
def seeded_study(service: Service) -> str:
    """One real study (one trial of one epoch), submitted as JSON; returns its id."""
    spec = training_spec_data(n_trials=1, epochs=1, width=8, name="seed")
    created: dict[str, Any] = {}

    def submitted() -> bool:
        response = httpx.post(f"{service.url}/studies", json=spec, headers=AUTH, timeout=60)
        # Ray's state API may list no node for a moment after start-up, and the service then
        # refuses every spec as needing more CPUs than the largest node has (0)
        if response.status_code == 422:
            assert response.json()["errors"][0]["loc"] == ["resources", "cpu"], response.text
            return False
        assert response.status_code == 201, response.text
        created.update(response.json())
        return True

    wait_until(submitted, timeout=60)
    return str(created["id"])


def openapi_schema(service: Service, **config: Any) -> Any:
    """The service's /openapi.json as a schemathesis schema: seeded, bounded, with the key."""
    project = {
        "seed": 10,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
        "auth": {"openapi": {"HTTPBearer": {"bearer": API_KEY}}},
        **config,
    }
    return schemathesis.openapi.from_url(
        f"{service.url}/openapi.json", config=schemathesis.Config.from_dict(project)
    )


@pytest.fixture
def any_ids(service: Service, seeded_study: str) -> Any:
    """Generated ids, which name no study (404) while the seeded one trains."""
    return openapi_schema(service)


@pytest.fixture
def seeded_ids(service: Service, seeded_study: str) -> Any:
    """Half the cases name the seeded study, once it has finished, and half its trial 0."""
    wait_until(lambda: study_status(service, seeded_study) in FINISHED, timeout=180)
    assert study_status(service, seeded_study) == "succeeded", service.log()
    return openapi_schema(
        service,
        dictionaries={"study": {"values": [seeded_study]}, "trial": {"values": [0]}},
        parameters={
            "path.study_id": {"dictionary": "study", "probability": 0.5},
            "path.number": {"dictionary": "trial", "probability": 0.5},
        },
        # cancel and resume take no body but, as writes, a JSON type (as the CLI sends it):
        # with it they reach the study and answer 409 (it has finished) instead of 415
        operations=[
            {
                "include-path-regex": "/(cancel|resume)$",
                "headers": {"Content-Type": "application/json"},
            }
        ],
    )


@schemathesis.pytest.from_fixture("any_ids").parametrize()
@FUZZ
def test_every_operation_answers_as_its_schema_says(case: schemathesis.Case) -> None:
    case.call_and_validate(excluded_checks=EXCLUDED_CHECKS)


# DELETE would remove the study the other operations read; the test above runs it
@schemathesis.pytest.from_fixture("seeded_ids").exclude(method="DELETE").parametrize()
@FUZZ
def test_every_operation_on_a_real_study_answers_as_its_schema_says(
    case: schemathesis.Case,
) -> None:
    case.call_and_validate(excluded_checks=EXCLUDED_CHECKS)
