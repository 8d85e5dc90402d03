"""The in-process Launcher and the handle the service tests drive the app through."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy.orm import Session, sessionmaker

with warnings.catch_warnings():  # starlette's notice about httpx, not about our code
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


JSON = {"Content-Type": "application/json"}  # writes must say what they send


@dataclass
class RecordingLauncher:
    """Launcher that records calls; `jobs` holds the status each job id reports."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    jobs: dict[str, str] = field(default_factory=dict)
    refuse: bool = False
    cluster: list[dict[str, float]] | None = None  # what nodes() answers: None, not known

    def submit(self, study_id: str, *, resume: bool = False) -> str:
        if self.refuse:
            raise ConnectionError("Ray is not reachable at 127.0.0.1:8265")
        job_id = f"raysubmit_{len(self.jobs)}"
        self.calls.append(("submit", study_id, resume))
        self.jobs[job_id] = "PENDING"
        return job_id

    def stop(self, ray_job_id: str) -> None:
        self.calls.append(("stop", ray_job_id))
        self.jobs[ray_job_id] = "STOPPED"

    def status(self, ray_job_id: str) -> str | None:
        return self.jobs.get(ray_job_id)

    def nodes(self) -> list[dict[str, float]] | None:
        return self.cluster


@dataclass
class Api:
    client: TestClient
    sessions: sessionmaker[Session]
    launcher: RecordingLauncher
    database_url: str


@contextmanager
def served(home: Path, database_url: str) -> Iterator[str]:
    """The app over `database_url` served by uvicorn on a free loopback port, in a thread (no
    launcher: nothing reaches Ray); yields its URL."""
    from service.app import create_app
    from service.ray_head import free_port
    from studies.settings import Settings

    port = free_port()
    settings = Settings(
        home=home, database_url=database_url, api_key="", ray_address="", api_port=port
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
