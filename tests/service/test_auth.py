"""API keys: writes need the bearer key when one is set; reads only with read_auth."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from api_harness import JSON, Api
from factories import make_study, make_trial, spec_data

from studies import repository

KEY = "s3cret-key-of-sixteen-chars"
WRITES = [("post", "/studies"), ("post", "/studies/nope/cancel"),
          ("post", "/studies/nope/resume"), ("delete", "/studies/nope")]  # fmt: skip
READS = [("get", "/studies"), ("get", "/studies/nope"), ("get", "/studies/nope/trials"),
         ("get", "/studies/nope/pareto"), ("get", "/studies/nope/export")]  # fmt: skip


def _call(api: Api, method: str, path: str, headers: dict[str, str]) -> int:
    body = spec_data() if path == "/studies" and method == "post" else None
    headers = {**JSON, **headers}
    return api.client.request(method, path, json=body, headers=headers).status_code


@pytest.mark.parametrize(
    ("header", "allowed"),
    [({}, False), ({"Authorization": "Bearer wrong"}, False),
     ({"Authorization": f"Basic {KEY}"}, False), ({"Authorization": "Bearer "}, False),
     ({"Authorization": f"Bearer {KEY}"}, True), ({"Authorization": f"bearer {KEY}"}, True)],
)  # fmt: skip
def test_writes_need_the_key(
    make_api: Callable[..., Api], header: dict[str, str], allowed: bool
) -> None:
    api = make_api(api_key=KEY)
    for method, path in WRITES:
        code = _call(api, method, path, header)
        if allowed:
            assert code in (201, 404), (method, path, code)  # past the check
        else:
            assert code == 401, (method, path, code)
    assert [call[0] for call in api.launcher.calls] == (["submit"] if allowed else [])
    for method, path in READS:  # reads stay open
        assert _call(api, method, path, header) in (200, 404)


def test_a_401_says_how_to_authenticate(make_api: Callable[..., Api]) -> None:
    response = make_api(api_key=KEY).client.post("/studies", json=spec_data())
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in response.json()["detail"]


@pytest.mark.parametrize(
    "settings", [{"read_auth": True}, {"api_host": "0.0.0.0"}, {"api_host": "10.1.2.3"}]
)
def test_reads_need_the_key_when_asked_or_beyond_loopback(
    make_api: Callable[..., Api], settings: dict[str, object]
) -> None:
    api = make_api(api_key=KEY, trusted_hosts="127.0.0.1", **settings)
    for method, path in READS:
        assert _call(api, method, path, {}) == 401
        assert _call(api, method, path, {"Authorization": f"Bearer {KEY}"}) in (200, 404)
    assert api.client.get("/health").status_code == 200


def test_without_a_key_everything_is_open(make_api: Callable[..., Api]) -> None:
    api = make_api(read_auth=True)  # nothing to check against
    assert _call(api, "post", "/studies", {}) == 201
    assert _call(api, "get", "/studies", {}) == 200


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"api_host": "0.0.0.0"}, "set DECAYLAB_API_KEY"),
        ({"api_host": "192.168.1.5"}, "set DECAYLAB_API_KEY"),
        ({"api_key": "short-key"}, "at least 16 characters"),
        ({"api_key": "change-me-as-well"}, "placeholder"),
        ({"api_key": "change-me-too-but-long", "api_host": "0.0.0.0"}, "placeholder"),
    ],
)
def test_the_service_refuses_to_start_open_or_with_a_weak_key(
    make_api: Callable[..., Api], settings: dict[str, object], words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        make_api(**settings)


def test_tracebacks_and_provenance_need_the_key(make_api: Callable[..., Api]) -> None:
    api = make_api(api_key=KEY)  # on loopback: reads are open, but not everything in them
    with api.sessions() as session:
        study = make_study(session)
        trial = make_trial(session, study.id, state="running")
        repository.update_trial_info(
            session=session, trial_id=trial.id, provenance={"torch": "2.14.1", "git": "abc"}
        )
        repository.finish_trial(
            session=session, trial_id=trial.id, state="failed", error="Traceback: /home/a/x.py"
        )
        session.commit()
    key = {"Authorization": f"Bearer {KEY}"}
    for path in (f"/studies/{study.id}/trials/0", f"/studies/{study.id}/trials"):
        shown, hidden = api.client.get(path, headers=key).json(), api.client.get(path).json()
        if "items" in shown:
            shown, hidden = shown["items"][0], hidden["items"][0]
        assert "x.py" in shown["error"] and hidden["error"] is None
        assert hidden["state"] == "failed" and hidden["number"] == 0
        if "provenance" in shown:
            assert shown["provenance"]["torch"] == "2.14.1" and hidden["provenance"] is None


def test_the_schema_asks_for_a_key_only_when_one_is_set(make_api: Callable[..., Api]) -> None:
    def secured(api: Api) -> set[str]:
        paths = api.client.get("/openapi.json").json()["paths"]
        return {p for p, ops in paths.items() for op in ops.values() if "security" in op}

    assert secured(make_api()) == set()
    assert "/studies" in secured(make_api(api_key=KEY))
