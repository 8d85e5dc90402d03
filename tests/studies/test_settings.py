"""Settings that keep secrets and Ray's token auth where they belong."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest

from studies.settings import Settings, apply_ray_environment


def settings(tmp_path: Path, **values: object) -> Settings:
    defaults = {"home": tmp_path, "database_url": "", "database_url_file": None}
    return Settings(**(defaults | values))  # type: ignore[arg-type]


def test_the_database_url_file_is_read_and_stripped(tmp_path: Path) -> None:
    secret_file = tmp_path / "database_url"
    secret_file.write_text("  postgresql+psycopg://u:pw@db/decaylab\n")
    with mock.patch.dict(os.environ, {"DECAYLAB_DATABASE_URL_FILE": str(secret_file)}):
        assert Settings().resolved_database_url() == "postgresql+psycopg://u:pw@db/decaylab"
    # the file wins over a URL from elsewhere (a Ray node's own environment, say)
    both = settings(tmp_path, database_url="sqlite:///x.db", database_url_file=secret_file)
    assert both.resolved_database_url() == "postgresql+psycopg://u:pw@db/decaylab"


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("postgresql+psycopg://u:p%40ss@db:5433/x", "postgresql+psycopg://u@db:5433/x"),
        ("postgresql+psycopg://u:@db/x", "postgresql+psycopg://u@db/x"),
        ("postgresql+psycopg://u@db/x?sslmode=require&PassWord=p",
         "postgresql+psycopg://u@db/x?sslmode=require"),
        ("postgresql+psycopg://u@db/x", "postgresql+psycopg://u@db/x"),
        ("sqlite:////tmp/a/decaylab.db", "sqlite:////tmp/a/decaylab.db"),
    ],
)  # fmt: skip
def test_the_public_database_url_has_no_password(tmp_path: Path, url: str, public: str) -> None:
    assert settings(tmp_path, database_url=url).public_database_url() == public


def applied(home: Path, environment: dict[str, str]) -> dict[str, str]:
    """The environment after `apply_ray_environment` in a process that had `environment`."""
    cleared = {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"}
    start = {k: v for k, v in os.environ.items() if k not in cleared} | environment
    with mock.patch.dict(os.environ, start, clear=True):
        apply_ray_environment(home)
        return dict(os.environ)


def test_a_driver_keeps_its_nodes_token_auth(tmp_path: Path) -> None:
    node_home = tmp_path / "node-home"
    env = applied(tmp_path / "home", {"RAY_AUTH_MODE": "token", "HOME": str(node_home)})
    assert env["RAY_AUTH_MODE"] == "token"
    # HOME moves to the project's directory; the token stays the one in the node's HOME
    assert env["HOME"] == str((tmp_path / "home" / "ray-home").resolve())
    assert env["RAY_AUTH_TOKEN_PATH"] == str(node_home / ".ray" / "auth_token")
    given = applied(tmp_path / "home", {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "t"})
    assert given["RAY_AUTH_TOKEN"] == "t" and "RAY_AUTH_TOKEN_PATH" not in given


def test_without_token_auth_ray_runs_with_auth_disabled(tmp_path: Path) -> None:
    env = applied(tmp_path / "home", {"HOME": str(tmp_path / "node-home")})
    assert env["RAY_AUTH_MODE"] == "disabled" and "RAY_AUTH_TOKEN_PATH" not in env
    assert (tmp_path / "home" / "ray-home" / "ray_bootstrap_config.yaml").exists()
