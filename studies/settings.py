"""Process settings from `DECAYLAB_*` variables, read once and passed down."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_HOME = Path(".decaylab")


class Settings(BaseSettings):
    """Everything a decaylab process reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="DECAYLAB_", extra="ignore")

    home: Path = Field(DEFAULT_HOME, description="Working directory for the embedded default.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite under home.")
    ray_address: str = Field("", description="Ray Jobs address; empty starts a local head.")
    dashboard_url: str = Field(
        "", description="The Ray dashboard as a browser reaches it; empty: the Jobs address."
    )
    data_dir: Path = Field(Path(".decaylab/data"), description="Where datasets live.")
    download: bool = Field(False, description="Allow torchvision datasets to be downloaded.")
    api_key: str = Field("", description="Bearer key required by write endpoints when set.")
    read_auth: bool = Field(False, description="Require the API key for reads as well.")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    dashboard_port: int = 8265
    max_trials: int = 1000
    max_concurrent: int = 64
    max_epochs: int = 1000
    max_seeds: int = 20

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file under `home`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'decaylab.db').resolve()}"


def ray_environment(home: Path) -> dict[str, str]:
    """Environment for a Ray process that sends no traffic off this machine.

    Ray's dashboard probes cloud-metadata addresses unless `$HOME/ray_bootstrap_config.yaml`
    exists, so Ray runs with HOME at a project-owned directory holding that file. Token auth is
    off: the embedded head listens on loopback only, and a token file would change the next start.
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
    """Set `ray_environment` in this process, before Ray is imported or started here."""
    os.environ.update(ray_environment(home))
