"""Process settings from `DECAYLAB_*` variables, read once and passed down: what each kind of
process needs (the service, a study's driver); trials read none (their config says it all)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

from studies.model_catalog import DEFAULT_MAX_PARAMETERS

DEFAULT_HOME = Path(".decaylab")


class StoreSettings(BaseSettings):
    """What every decaylab process reads: where its home, database and data are."""

    model_config = SettingsConfigDict(env_prefix="DECAYLAB_", extra="ignore")

    home: Path = Field(DEFAULT_HOME, description="Working directory for the embedded default.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite under home.")
    database_url_file: Path | None = Field(
        None, description="A file holding the database URL (a Docker secret); wins if set."
    )
    data_dir: Path = Field(Path(".decaylab/data"), description="Where datasets live.")
    download: bool = Field(False, description="Allow torchvision datasets to be downloaded.")

    def resolved_database_url(self) -> str:
        """The database URL: from `database_url_file`, else `database_url`, else SQLite."""
        if self.database_url_file is not None:
            return self.database_url_file.read_text().strip()
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'decaylab.db').resolve()}"

    def public_database_url(self) -> str:
        """The database URL less its password (one in the query too): safe to show anyone."""
        url = make_url(self.resolved_database_url())
        query = {key: value for key, value in url.query.items() if "password" not in key.lower()}
        public = URL.create(url.drivername, url.username, None, url.host, url.port, url.database)
        return public.set(query=query).render_as_string(hide_password=False)


class DriverSettings(StoreSettings):
    """A study's driver (`python -m workers.run`): the store, and the service's database to
    check its own against (the service sends it less its password)."""

    expected_database_url: str = Field(
        "", description="The service's database URL less its password."
    )


class Settings(StoreSettings):
    """The service (`decaylab serve`) and its clients: the API, Ray, and the limits on studies."""

    ray_address: str = Field("", description="Ray Jobs address; empty starts a local head.")
    dashboard_url: str = Field(
        "", description="The Ray dashboard as a browser reaches it; empty: the Jobs address."
    )
    api_key: str = Field("", description="Bearer key required by write endpoints when set.")
    read_auth: bool = Field(False, description="Require the API key for reads as well.")
    api_host: str = Field("127.0.0.1", description="Where the API listens; loopback by default.")
    api_port: int = 8000
    trusted_hosts: str = Field(
        "", description="Host headers the API answers, comma-separated; empty: the bind address's."
    )
    max_body_bytes: int = Field(256 * 1024, ge=1024, description="Largest request body.")
    dashboard_port: int = 8265
    max_trials: int = 1000
    max_concurrent: int = 64
    max_epochs: int = 1000
    max_seeds: int = 20
    max_running_studies: int = Field(
        0, ge=0, description="Study drivers running at once; 0: from the machine's size."
    )
    max_trial_cpus: float = 256  # per trial, when the Ray cluster's nodes cannot be listed
    max_trial_gpus: float = 16
    max_parameters: int = DEFAULT_MAX_PARAMETERS  # of one trial's model, counted at submit

    @property
    def listens_beyond_loopback(self) -> bool:
        """Whether the API is reachable from other machines."""
        return not is_loopback(self.api_host)

    def resolved_trusted_hosts(self) -> list[str]:
        """The Host headers to answer: the configured ones, else those of the bind address."""
        if self.trusted_hosts.strip():
            return [host.strip() for host in self.trusted_hosts.split(",") if host.strip()]
        if self.api_host in ("0.0.0.0", "::", ""):
            return ["*"]  # every interface: reads and writes then need the key
        if is_loopback(self.api_host):
            return ["127.0.0.1", "localhost", "[::1]", self.api_host]
        return [self.api_host, "127.0.0.1", "localhost"]


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine's loopback interface only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def ray_environment(home: Path) -> dict[str, str]:
    """Environment for a Ray process that sends no traffic off this machine.

    Ray's dashboard probes cloud-metadata addresses unless `$HOME/ray_bootstrap_config.yaml`
    exists, so Ray runs with HOME at a project-owned directory holding that file. Token auth is
    off: whoever reaches a head's ports may run code on it. That is acceptable only for the
    embedded head, which listens on loopback alone (LocalRayHead), so that only this machine's
    processes (its other users' too) reach it; and a token file under HOME would change the next
    start. A cluster others can reach needs a private network or Ray's token auth (README,
    "Securing a cluster").
    """
    ray_home = (home / "ray-home").resolve()
    ray_home.mkdir(parents=True, exist_ok=True)
    bootstrap = ray_home / "ray_bootstrap_config.yaml"
    if not bootstrap.exists():
        bootstrap.write_text("{}\n")
    return {
        "HOME": str(ray_home),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "disabled",
        "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
        # objectives such as test_acc arrive with the last epoch only
        "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
        # the driver turns SIGINT/SIGTERM into a cancelled study itself
        "TUNE_DISABLE_SIGINT_HANDLER": "1",
    }


def apply_ray_environment(home: Path) -> None:
    """Set `ray_environment` in this process, before Ray is imported or started here.

    A study's driver on a cluster that requires Ray's token auth (its node set RAY_AUTH_MODE=token)
    keeps that mode and the token its node's HOME holds: the cluster refuses a driver without it.
    """
    environment = ray_environment(home)
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        del environment["RAY_AUTH_MODE"]
        if not {"RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"} & os.environ.keys():
            environment["RAY_AUTH_TOKEN_PATH"] = str(Path.home() / ".ray" / "auth_token")
    os.environ.update(environment)
