"""Running the service: the embedded default's Ray head, the launcher, the reconciler, uvicorn.

`serve(settings)` is what `decaylab serve` runs. With `DECAYLAB_RAY_ADDRESS` unset it starts a
local Ray head and stops it on shutdown; studies its jobs were driving are resumed from the
database by the next start (a study survives a restart of the service).
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from service.admission import Admission
from service.app import create_app
from service.launcher import ENDED_JOB_STATUSES, Launcher
from service.ray_head import LocalRayHead
from service.ray_jobs import RayJobLauncher
from studies import repository
from studies.db import Study
from studies.migrations import upgrade
from studies.optuna_tables import create_optuna_tables
from studies.settings import Settings
from studies.states import ACTIVE_STUDY_STATES, StudyState

log = logging.getLogger("decaylab.server")
RECONCILE_EVERY_S = 5.0


def reconcile(
    sessions: sessionmaker[Session],
    launcher: Launcher,
    admission: Admission,
    *,
    resume_lost: bool,
) -> None:
    """Bring queued/running studies in line with their Ray jobs, then start waiting ones.

    A study whose job is gone or ended without the driver recording an end is queued to resume
    (`resume_lost`, at start-up: its cluster may have been restarted) or marked failed with the
    job's status, so that no study stays `running` with nothing behind it.
    """
    with sessions() as session:
        for status in ACTIVE_STUDY_STATES:
            for study in repository.list_studies(session=session, status=status, limit=1000).items:
                _reconcile_one(session, launcher, study, resume_lost=resume_lost)
    admission.admit(sessions, launcher)


def _reconcile_one(
    session: Session, launcher: Launcher, study: Study, *, resume_lost: bool
) -> None:
    if study.ray_job_id is None:
        return  # waiting for a slot (admission starts it)
    job_status = launcher.status(study.ray_job_id) if study.ray_job_id else None
    if job_status is not None and job_status not in ENDED_JOB_STATUSES:
        return
    session.refresh(study)  # the driver may have recorded its end meanwhile
    if study.status not in ACTIVE_STUDY_STATES:
        return
    if resume_lost:  # back in the queue: admission resumes it when a slot is free
        repository.set_study_status(session=session, study_id=study.id, status=StudyState.QUEUED)
        repository.set_ray_job_id(session=session, study_id=study.id, ray_job_id=None)
        log.info("study %s lost its Ray job %s: queued to resume", study.id, study.ray_job_id)
    else:
        repository.set_study_status(
            session=session,
            study_id=study.id,
            status=StudyState.FAILED,
            error=f"its Ray job {study.ray_job_id} ended ({job_status or 'unknown'}) without the "
            "driver recording an end; resume it to go on",
        )
    session.commit()


class Reconciler(threading.Thread):
    """Runs `reconcile` every few seconds until stopped."""

    def __init__(
        self, sessions: sessionmaker[Session], launcher: Launcher, admission: Admission
    ) -> None:
        super().__init__(name="decaylab-reconciler", daemon=True)
        self.sessions, self.launcher, self.admission = sessions, launcher, admission
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(RECONCILE_EVERY_S):
            try:
                reconcile(self.sessions, self.launcher, self.admission, resume_lost=False)
            except Exception:  # a passing database or Ray hiccup: try again next round
                log.exception("reconciling studies with Ray jobs failed")


@contextmanager
def ray_cluster(settings: Settings) -> Iterator[str]:
    """The Jobs API address: DECAYLAB_RAY_ADDRESS, or a local head for the embedded default."""
    if settings.ray_address:
        yield settings.ray_address
        return
    head = LocalRayHead(settings.home, dashboard_port=settings.dashboard_port)
    try:  # a signal while the head starts stops what has started
        head.start()
        yield head.dashboard_url
    finally:
        head.stop()


def api_server(app: FastAPI, host: str, port: int, **options: Any) -> uvicorn.Server:
    """The uvicorn server of `app`, with the start-up heap frozen out of the garbage collector.

    Every full collection otherwise walks everything the imports and the app allocated: ~70 ms
    of a request now and then (p95 ×4 on /pareto over 10,000 trials), for objects that live
    as long as the process anyway.
    """
    gc.collect()
    gc.freeze()
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options))


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (docker stop, systemd, Kubernetes) as an orderly exit: unwinds like Ctrl-C, so
    everything the service started is stopped. Without it, uvicorn re-raises the signal after its
    own shutdown and the default action ends the process before any cleanup runs."""
    raise SystemExit(0)


def serve(settings: Settings) -> None:
    """Run the API (and, for the embedded default, its Ray head) until SIGINT or SIGTERM."""
    # uvicorn restores this handler after its shutdown and then raises the signal again
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    with ray_cluster(settings) as address:
        launcher = RayJobLauncher(address, settings)
        app = create_app(
            settings, launcher=launcher, ray_dashboard=settings.dashboard_url or address
        )
        sessions: sessionmaker[Session] = app.state.sessions
        server = api_server(app, settings.api_host, settings.api_port)
        # before reconciling and before any driver starts; the app's start-up repeats upgrade
        upgrade(settings.resolved_database_url())
        create_optuna_tables(settings.resolved_database_url())
        admission: Admission = app.state.admission
        reconcile(sessions, launcher, admission, resume_lost=True)
        reconciler = Reconciler(sessions, launcher, admission)
        reconciler.start()
        log.info(
            "decaylab API on http://%s:%d (docs at /docs), Ray dashboard at %s",
            settings.api_host,
            settings.api_port,
            address,
        )
        try:
            server.run()
        finally:
            reconciler.stopped.set()
