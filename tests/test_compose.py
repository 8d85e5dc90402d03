"""The compose stack: docker-compose.yml valid for real Compose and wired as the README says.

Three layers, since no Docker engine runs here: the Compose JSON schema (check-jsonschema's
vendored compose-spec, always), `docker-compose config` (the real implementation, Debian's
docker-compose 1.29; skipped when it is not installed) and our cross-reference checks
(tests/compose_support.py), which must reject broken copies of the file. The read-only role of
optuna-dashboard is tested on a real PostgreSQL.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import compose_support as cs
import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

SERVICES = {"postgres", "migrate", "ray-head", "ray-worker", "api", "optuna-dashboard"}
DOCKER_COMPOSE = shutil.which("docker-compose")
needs_docker_compose = pytest.mark.skipif(
    DOCKER_COMPOSE is None,
    reason="docker-compose (the real Compose implementation) is not installed: "
    "`apt-get install -y docker-compose` to run this check; the schema and cross-reference "
    "checks still ran",
)
WRITE = "INSERT INTO study_user_attributes (study_id, key, value_json) VALUES (1, 'k', '1')"
INIT_SCRIPT = cs.ROOT / "compose" / "postgres" / "10-optuna-reader.sh"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return cs.load()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def _schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    return subprocess.run([*command, str(path)], capture_output=True, text=True, check=False)


def _docker_compose_config(
    directory: Path, compose_text: str, env_file: bool = True
) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` of `compose_text` in `directory`, .env copied from .env.example."""
    (directory / "docker-compose.yml").write_text(compose_text)
    if env_file:
        shutil.copy(cs.ENV_EXAMPLE, directory / ".env")
    env = {k: v for k, v in os.environ.items() if k not in cs.read_env_file(cs.ENV_EXAMPLE)}
    assert DOCKER_COMPOSE is not None
    return subprocess.run([DOCKER_COMPOSE, "-f", "docker-compose.yml", "config"], cwd=directory,
                          env=env, capture_output=True, text=True, check=False)  # fmt: skip


def _bytes(size: str) -> int:
    """Compose's byte sizes: 12gb, 512m, 1024."""
    match = re.fullmatch(r"(\d+)\s*([kmg]?)b?", size.lower())
    assert match is not None, f"not a byte size: {size!r}"
    return int(match[1]) * 1024 ** " kmg".index(match[2] or " ")


def _broken(old: str, new: str) -> str:
    compose_text = cs.COMPOSE_FILE.read_text()
    assert old in compose_text, f"the mutation's anchor {old!r} is gone from docker-compose.yml"
    return compose_text.replace(old, new, 1)


# a dependency on a service that does not exist (the api's on migrate, misspelt)
UNDEFINED_DEPENDENCY = (
    "      migrate:\n        condition: service_completed_successfully\n      ray-head:",
    "      migrat:\n        condition: service_completed_successfully\n      ray-head:",
)


def test_the_compose_schema_accepts_the_file() -> None:
    result = _schema_check(cs.COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_schema_rejects_an_unknown_option(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(_broken("    shm_size: 12gb\n", "    shm_sise: 12gb\n"))
    result = _schema_check(broken)
    assert result.returncode == 1
    assert "shm_sise" in result.stdout


@needs_docker_compose
def test_docker_compose_config_accepts_the_file_and_reads_it_as_we_do(tmp_path: Path) -> None:
    result = _docker_compose_config(tmp_path, cs.COMPOSE_FILE.read_text())
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    ours = cs.load()["services"]
    assert set(resolved) == set(ours) == SERVICES
    for name, service in ours.items():
        assert cs.environment(resolved[name]) == cs.environment(service), name
        assert cs.depends_on(resolved[name]) == cs.depends_on(service), name
    devices = resolved["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]


@needs_docker_compose
def test_docker_compose_config_refuses_to_run_without_the_secrets(tmp_path: Path) -> None:
    result = _docker_compose_config(tmp_path, cs.COMPOSE_FILE.read_text(), env_file=False)
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in result.stderr


@needs_docker_compose
def test_docker_compose_config_rejects_an_undefined_dependency(tmp_path: Path) -> None:
    result = _docker_compose_config(tmp_path, _broken(*UNDEFINED_DEPENDENCY))
    assert result.returncode != 0
    assert "depends on service 'migrat' which is undefined" in result.stderr


def test_every_cross_reference_of_the_file_holds(compose: dict[str, Any]) -> None:
    assert cs.cross_reference_errors(compose) == []


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        (*UNDEFINED_DEPENDENCY, "api: depends_on 'migrat', which is not a service"),
        ("  decaylab-data:\n", "  decaylab-dat:\n", "mounts volume 'decaylab-data' on /data"),
        ("@postgres:5432/decaylab\"", "@db:5432/decaylab\"", "names host 'db'"),
        ("RAY_ADDRESS: http://ray-head:8265", "RAY_ADDRESS: http://ray-head:8266",
         "DECAYLAB_RAY_ADDRESS http://ray-head:8266, not the head's dashboard"),
        ("--address=ray-head:6379", "--address=ray-head:6380",
         "joins ray-head:6380, but the head's GCS is ray-head:6379"),
    ],
)  # fmt: skip
def test_the_cross_reference_check_rejects_a_broken_copy(
    tmp_path: Path, old: str, new: str, error: str
) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(_broken(old, new))
    errors = cs.cross_reference_errors(cs.load(broken))
    assert any(error in message for message in errors), errors


def test_services_and_their_health_checks(services: dict[str, Any]) -> None:
    assert set(services) == SERVICES
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/api/version" in " ".join(services["ray-head"]["healthcheck"]["test"])
    assert "/health" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["migrate"]["restart"] == "no"  # one-shot: it must not be restarted
    # one image and interpreter everywhere: Ray workers import the driver's code, and the API's
    # sys.executable is the job entrypoint run on the head
    images = {(services[n]["image"], services[n]["build"]["target"]) for n in SERVICES - {
        "postgres", "optuna-dashboard"}}  # fmt: skip
    assert images == {("decaylab:latest", "runtime")}


def test_the_ray_nodes(services: dict[str, Any]) -> None:
    head, worker = services["ray-head"], services["ray-worker"]
    head_words = cs.command_words(head)
    assert head_words[:2] == ["ray", "start"] and {"--head", "--block"} <= set(head_words)
    assert cs.option(head_words, "--num-gpus") == "0"
    assert cs.option(head_words, "--dashboard-host") == "0.0.0.0"
    assert head["ports"] == ["127.0.0.1:8265:8265"]  # the Jobs API runs code: loopback by default
    worker_words = cs.command_words(worker)
    assert worker_words[:2] == ["ray", "start"] and "--block" in worker_words
    # --scale ray-worker=N: nothing on the worker may be unique to one container
    assert "container_name" not in worker and "ports" not in worker
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert [d["driver"] for d in devices] == ["nvidia"]
    assert "gpu" in devices[0]["capabilities"]
    assert devices[0]["count"] == "all" or int(devices[0]["count"]) >= 1
    for node in (head, worker):
        env = cs.environment(node)
        assert env["RAY_USAGE_STATS_ENABLED"] == "0"
        assert env["RAY_AUTH_MODE"] == "disabled"  # explicit, see the comment in the file
        # above Ray's REQUIRE_SHM_SIZE_THRESHOLD (10 GB), the object store always fits /dev/shm
        assert _bytes(node["shm_size"]) > 10**10


def test_the_api_wiring(services: dict[str, Any]) -> None:
    api, postgres = cs.environment(services["api"]), cs.environment(services["postgres"])
    [database] = cs.urls(api["DECAYLAB_DATABASE_URL"])
    assert database["scheme"] == "postgresql+psycopg"
    assert database["host"] == "postgres" and database["port"] == "5432"
    assert database["user"] == postgres["POSTGRES_USER"]
    assert database["password"] == postgres["POSTGRES_PASSWORD"] == "change-me"
    assert api["DECAYLAB_DATABASE_URL"].endswith(f"/{postgres['POSTGRES_DB']}")
    migrate = cs.environment(services["migrate"])
    assert migrate["DECAYLAB_DATABASE_URL"] == api["DECAYLAB_DATABASE_URL"]
    assert api["DECAYLAB_RAY_ADDRESS"] == "http://ray-head:8265"
    assert api["DECAYLAB_API_HOST"] == "0.0.0.0"
    # published on every interface of the host, onto the port the API listens on in its container
    [published] = services["api"]["ports"]
    assert published == f"0.0.0.0:8000:{api['DECAYLAB_API_PORT']}"
    assert api["DECAYLAB_API_KEY"] == "change-me-as-well"


def test_start_order(services: dict[str, Any]) -> None:
    assert cs.depends_on(services["migrate"]) == {"postgres": "service_healthy"}
    assert cs.depends_on(services["ray-worker"]) == {"ray-head": "service_healthy"}
    assert cs.depends_on(services["api"]) == {
        "migrate": "service_completed_successfully",
        "ray-head": "service_healthy",
    }
    assert cs.depends_on(services["optuna-dashboard"]) == {
        "migrate": "service_completed_successfully"
    }


def test_the_migration_command_is_our_cli() -> None:
    from studies.migrations import main

    migrate = cs.load()["services"]["migrate"]
    script = cs.command_words(migrate)[2]
    assert script == 'python -m studies.migrations upgrade "$DECAYLAB_DATABASE_URL"'
    with pytest.raises(SystemExit, match=r"upgrade URL"):
        main(["upgrade"])  # the URL is the one argument `upgrade` takes


def test_the_data_and_database_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(compose["volumes"]) == {"postgres-data", "decaylab-data"}
    assert ("postgres-data", "/var/lib/postgresql/data", True) in cs.volume_mounts(
        services["postgres"]
    )
    for name in ("api", "ray-head", "ray-worker"):
        data_dir = cs.environment(services[name])["DECAYLAB_DATA_DIR"]
        assert ("decaylab-data", data_dir, True) in cs.volume_mounts(services[name]), name


def test_the_optuna_dashboard_reads_as_the_read_only_role(services: dict[str, Any]) -> None:
    postgres = cs.environment(services["postgres"])
    [storage] = cs.urls(cs.command_words(services["optuna-dashboard"])[0])
    assert (storage["host"], storage["user"]) == ("postgres", postgres["OPTUNA_READER_USER"])
    assert storage["password"] == postgres["OPTUNA_READER_PASSWORD"] == "change-me-too"
    assert storage["user"] != postgres["POSTGRES_USER"]
    init = f"./compose/postgres/{INIT_SCRIPT.name}:/docker-entrypoint-initdb.d/{INIT_SCRIPT.name}"
    assert f"{init}:ro" in services["postgres"]["volumes"]
    assert os.access(INIT_SCRIPT, os.X_OK)  # the image runs an executable script, sources others


def test_no_secret_is_written_into_the_file() -> None:
    raw = yaml.safe_load(cs.COMPOSE_FILE.read_text())
    assert cs.secret_literal_errors(raw) == []
    gitignore = (cs.ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in gitignore
    assert set(cs.read_env_file(cs.ENV_EXAMPLE)) >= {
        "POSTGRES_PASSWORD",
        "OPTUNA_READER_PASSWORD",
        "DECAYLAB_API_KEY",
    }
    assert all("change-me" in v for v in cs.read_env_file(cs.ENV_EXAMPLE).values())


def test_the_secret_check_rejects_a_literal_password(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    api_key = "${DECAYLAB_API_KEY:?set DECAYLAB_API_KEY in .env, see .env.example}"
    reader = "optuna_reader:${OPTUNA_READER_PASSWORD:?set OPTUNA_READER_PASSWORD in .env, see"
    broken.write_text(
        _broken(f"DECAYLAB_API_KEY: {api_key}", "DECAYLAB_API_KEY: hunter2").replace(
            f"{reader} .env.example}}@", "optuna_reader:hunter2@"
        )
    )
    errors = cs.secret_literal_errors(yaml.safe_load(broken.read_text()))
    assert errors == [
        "api: DECAYLAB_API_KEY is a literal, not a ${VARIABLE}",
        "optuna-dashboard: a URL holds a literal password",
    ]


def test_a_missing_secret_stops_our_reading_as_it_stops_compose() -> None:
    env = cs.read_env_file(cs.ENV_EXAMPLE)
    del env["DECAYLAB_API_KEY"]
    with pytest.raises(cs.MissingVariable, match=r"set DECAYLAB_API_KEY in \.env"):
        cs.load(env=env)


def test_the_dockerfile_has_the_targets_and_paths_the_stack_uses(
    services: dict[str, Any],
) -> None:
    dockerfile = (cs.ROOT / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.MULTILINE))
    targets = {s["build"]["target"] for s in services.values() if "build" in s}
    assert targets <= stages, targets - stages
    for name in ("ray-head", "ray-worker", "api"):
        env = cs.environment(services[name])
        assert f"DECAYLAB_DATA_DIR={env['DECAYLAB_DATA_DIR']}" in dockerfile
        assert f"DECAYLAB_HOME={env['DECAYLAB_HOME']}" in dockerfile
    assert "> /home/decaylab/ray_bootstrap_config.yaml" in dockerfile
    assert "HOME=/home/decaylab" in dockerfile
    ignored = (cs.ROOT / ".dockerignore").read_text().splitlines()
    assert {".venv", ".decaylab", ".git", ".env"} <= set(ignored)


@pytest.fixture
def reader_database(
    make_postgres_database: Callable[[], str],
) -> Iterator[tuple[str, str]]:
    """(owner URL, reader URL) of a fresh database after the init script; the role is dropped."""
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("no psql to run the init script with")
    owner_url = make_url(make_postgres_database())
    reader, password = f"optuna_reader_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    env = {
        **os.environ,
        "PGHOST": owner_url.host or "127.0.0.1",
        "PGPORT": str(owner_url.port or 5432),
        "PGPASSWORD": owner_url.password or "",
        "POSTGRES_USER": owner_url.username or "postgres",
        "POSTGRES_DB": owner_url.database or "",
        "OPTUNA_READER_USER": reader,
        "OPTUNA_READER_PASSWORD": password,
    }
    result = subprocess.run(["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    reader_url = owner_url.set(username=reader, password=password)
    try:
        yield owner_url.render_as_string(False), reader_url.render_as_string(False)
    finally:
        admin = create_engine(owner_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP OWNED BY "{reader}"'))
            connection.execute(text(f'DROP ROLE "{reader}"'))
        admin.dispose()


@pytest.mark.postgres
def test_the_reader_role_reads_tables_made_later_and_writes_nothing(
    reader_database: tuple[str, str],
) -> None:
    import optuna

    from studies.migrations import upgrade

    owner_url, reader_url = reader_database
    # what the migrate service does, after the init script: our tables, then Optuna's
    upgrade(owner_url)
    owner_storage = optuna.storages.RDBStorage(owner_url)
    study = optuna.create_study(storage=owner_storage, study_name="compose-check")
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=2)
    owner_storage.engine.dispose()

    # what optuna-dashboard does at start and on every page, as the read-only role
    reader_storage = optuna.storages.RDBStorage(reader_url)
    try:
        loaded = optuna.load_study(study_name="compose-check", storage=reader_storage)
        assert [t.params.keys() for t in loaded.trials] == [{"x"}, {"x"}]
    finally:
        reader_storage.engine.dispose()
    reader_engine = create_engine(reader_url)
    try:
        with reader_engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM dl_study")).scalar() == 0
            assert connection.execute(text("SELECT count(*) FROM trial_values")).scalar() == 2
        with reader_engine.connect() as connection, pytest.raises(DBAPIError) as refused:
            connection.execute(text(WRITE))
        assert "read-only transaction" in str(refused.value)
        # the role may lift its read-only default: the grants are what really holds
        for statement, denial in ((WRITE, "permission denied for table study_user_attributes"),
                                  ("CREATE TABLE intruder (id integer)",
                                   "permission denied for schema public")):  # fmt: skip
            with reader_engine.connect() as connection, pytest.raises(DBAPIError) as refused:
                connection.execute(text("SET TRANSACTION READ WRITE"))
                connection.execute(text(statement))
            assert denial in str(refused.value)
    finally:
        reader_engine.dispose()
