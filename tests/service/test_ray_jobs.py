"""What the Ray Jobs launcher tells each job: everything the driver needs, and no database
password (the Jobs API shows every job's environment to whoever asks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.ray_jobs import RayJobLauncher
from studies.settings import Settings

NO_JOBS_API = "http://127.0.0.1:9"  # never contacted: job_env asks the cluster nothing


def job_env(tmp_path: Path, **settings: object) -> dict[str, str]:
    values = {"home": tmp_path / "home", "database_url": "", "database_url_file": None}
    return RayJobLauncher(NO_JOBS_API, Settings(**(values | settings))).job_env()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("postgresql+psycopg://u:secret@host/db", "postgresql+psycopg://u@host/db"),
        ("postgresql+psycopg://u:secret@host:5433/db?sslmode=require",
         "postgresql+psycopg://u@host:5433/db?sslmode=require"),
        ("postgresql+psycopg://u@host/db?password=secret", "postgresql+psycopg://u@host/db"),
    ],
)  # fmt: skip
def test_a_password_never_goes_into_the_job(tmp_path: Path, url: str, public: str) -> None:
    env = job_env(tmp_path, database_url=url)
    assert not any("secret" in value for value in env.values()), env
    assert "DECAYLAB_DATABASE_URL" not in env
    assert env["DECAYLAB_EXPECTED_DATABASE_URL"] == public


def test_a_password_from_a_url_file_never_goes_into_the_job(tmp_path: Path) -> None:
    url_file = tmp_path / "database_url"
    url_file.write_text("postgresql+psycopg://u:secret@host/db\n")
    env = job_env(tmp_path, database_url_file=url_file)
    assert not any("secret" in value for value in env.values()), env
    assert env["DECAYLAB_EXPECTED_DATABASE_URL"] == "postgresql+psycopg://u@host/db"


@pytest.mark.parametrize(
    "url", ["", "postgresql+psycopg://u@host/db", "postgresql+psycopg:///db?host=/run/pg"]
)
def test_a_url_without_a_password_goes_as_it_is(tmp_path: Path, url: str) -> None:
    env = job_env(tmp_path, database_url=url)
    expected = url or f"sqlite:///{(tmp_path / 'home' / 'decaylab.db').resolve()}"
    assert env["DECAYLAB_DATABASE_URL"] == expected
    assert "DECAYLAB_EXPECTED_DATABASE_URL" not in env
    assert env["DECAYLAB_HOME"] == str((tmp_path / "home").resolve())
