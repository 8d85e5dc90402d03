"""API keys: writes need the bearer key when one is set; reads only with read_auth."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from api_harness import JSON, Api
from factories import spec_data

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


def test_read_auth_closes_the_reads_but_not_health(make_api: Callable[..., Api]) -> None:
    api = make_api(api_key=KEY, read_auth=True)
    for method, path in READS:
        assert _call(api, method, path, {}) == 401
        assert _call(api, method, path, {"Authorization": f"Bearer {KEY}"}) in (200, 404)
    assert api.client.get("/health").status_code == 200


def test_without_a_key_everything_is_open(make_api: Callable[..., Api]) -> None:
    api = make_api(read_auth=True)  # nothing to check against
    assert _call(api, "post", "/studies", {}) == 201
    assert _call(api, "get", "/studies", {}) == 200
