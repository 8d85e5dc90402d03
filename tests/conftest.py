"""Database fixtures shared by every test package: SQLite files and PostgreSQL databases.

PostgreSQL: the server at DECAYLAB_TEST_POSTGRES_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test, present on development machines and CI);
if none answers, a throwaway server started with initdb/pg_ctl when the binaries exist; else
the tests that need it are skipped with the reason. Each test session works in databases of its
own (decaylab_test_<random>), dropped at the end, so parallel runs never clobber each other.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _answers(url: str) -> bool:
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))[-1:]
    return found if isinstance(found, str) else (found[0] if found else None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_throwaway_postgres() -> tuple[str, Callable[[], None]] | None:
    """initdb + pg_ctl on a free port, as the postgres user when we are root (initdb refuses)."""
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        return None
    data = tempfile.mkdtemp(prefix="decaylab-pg-")
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if prefix:
        shutil.chown(data, "postgres")
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c fsync=off -k {data}"
    try:
        subprocess.run([*prefix, initdb, "-D", data, "--auth=trust", "-U", "postgres"],
                       check=True, capture_output=True)  # fmt: skip
        subprocess.run([*prefix, pg_ctl, "-D", data, "-o", options, "-l", f"{data}/log", "-w",
                        "start"], check=True, capture_output=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        shutil.rmtree(data, ignore_errors=True)
        return None

    def stop() -> None:
        subprocess.run([*prefix, pg_ctl, "-D", data, "-m", "immediate", "stop"],
                       capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(data, ignore_errors=True)

    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", stop


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A URL on a PostgreSQL server where databases may be created (skips when there is none)."""
    url = os.environ.get("DECAYLAB_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    for candidate in (url, make_url(url).set(database="postgres").render_as_string(False)):
        if _answers(candidate):
            yield candidate
            return
    throwaway = _start_throwaway_postgres()
    if throwaway is None:
        pytest.skip(f"no PostgreSQL at {url} and no initdb/pg_ctl to start a throwaway server")
    admin_url, stop = throwaway
    try:
        yield admin_url
    finally:
        stop()


@pytest.fixture(scope="session")
def make_postgres_database(postgres_admin_url: str) -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty PostgreSQL databases, all dropped at the end of the session."""
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def make() -> str:
        name = f"decaylab_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return make_url(postgres_admin_url).set(database=name).render_as_string(False)

    yield make
    with admin.connect() as connection:
        for name in created:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_url(make_postgres_database: Callable[[], str]) -> str:
    """One empty PostgreSQL database for the whole test session."""
    return make_postgres_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file of this test's own."""
    return f"sqlite:///{tmp_path / 'decaylab.sqlite'}"
