"""The real app over a real database (SQLite and PostgreSQL), driven through TestClient.

Ray stays out: the app gets a small in-process Launcher that records what it was asked to do
and answers job statuses the test sets. It is the service's seam to Ray, not a stand-in for
anything these tests claim to exercise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from api_harness import Api, RecordingLauncher, TestClient
from factories import migrated_engine

from service.app import create_app
from studies.settings import Settings

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """A migrated database without decaylab rows."""
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    migrated_engine(url).dispose()
    return url


@pytest.fixture
def make_api(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """Start the app with these settings (api_key, read_auth, max_trials, ...)."""
    stack: list[TestClient] = []

    def make(launcher: RecordingLauncher | None = None, **settings: Any) -> Api:
        launcher = launcher or RecordingLauncher()
        # explicit values, so DECAYLAB_* variables of the machine running the tests never leak in
        values = {"api_key": "", "read_auth": False, "ray_address": "", **settings}
        # every study starts at once unless a test is about the queue
        values.setdefault("max_running_studies", 1000)
        config = Settings(home=tmp_path / "home", database_url=database_url, **values)
        app = create_app(config, launcher=launcher)
        client = TestClient(app, base_url="http://127.0.0.1")  # a Host the service trusts
        client.__enter__()  # runs the lifespan: migrations up, engine disposed at exit
        stack.append(client)
        return Api(client, app.state.sessions, launcher, database_url)

    yield make
    for client in stack:
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()
