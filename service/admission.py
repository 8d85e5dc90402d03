"""Admission control: at most `limit` study drivers run at once; the rest wait as `queued`.

A driver holds about a gigabyte before its first trial, so twenty studies started together would
exhaust a workstation. A study waits in the database (queued, no Ray job yet), so the queue
survives a restart of the service; waiting studies start by priority (higher first), then in
submission order, whenever a slot frees: after a submit, and on every round of the reconciler.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from service.launcher import Launcher
from studies import repository
from studies.db import Study
from studies.states import ACTIVE_STUDY_STATES, StudyState

log = logging.getLogger("decaylab.admission")
DRIVER_GIB = 1.0  # what one driver holds before its trials start (measured: 1.0-1.1 GB)


def default_limit() -> int:
    """Drivers this machine can hold beside their trials: half its cores, at most a quarter of
    its memory in drivers, and never fewer than two."""
    cores = os.cpu_count() or 2
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory_gib = 8.0
    return max(2, min(cores // 2, int(memory_gib / 4 / DRIVER_GIB)))


def priority(study: Study) -> int:
    value = study.spec.get("priority", 0)
    return value if isinstance(value, int) else 0


@dataclass
class Admission:
    """Starts waiting studies while fewer than `limit` drivers run (one service, one lock)."""

    limit: int
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def admit(self, sessions: sessionmaker[Session], launcher: Launcher) -> dict[str, str]:
        """Submit waiting studies into the free slots; returns {study id: error} of the ones
        whose submit Ray refused (each marked failed with that reason)."""
        refused: dict[str, str] = {}
        with self.lock, sessions() as session:
            active = [
                study
                for status in ACTIVE_STUDY_STATES
                for study in repository.list_studies(
                    session=session, status=status, limit=1000
                ).items
            ]
            waiting = [s for s in active if s.status == StudyState.QUEUED and not s.ray_job_id]
            free = self.limit - (len(active) - len(waiting))
            waiting.sort(key=lambda s: (-priority(s), s.created_at, s.id))
            for study in waiting[: max(0, free)]:
                error = _start(session, launcher, study)
                if error is not None:
                    refused[study.id] = error
        return refused


def _start(session: Session, launcher: Launcher, study: Study) -> str | None:
    """Submit one study's driver (resuming it if it ran before); the error, if Ray refused."""
    try:
        job_id = launcher.submit(study.id, resume=study.started_at is not None)
    except Exception as error:
        message = f"submitting the study's Ray job failed: {error}"
        repository.set_study_status(
            session=session, study_id=study.id, status=StudyState.FAILED, error=message
        )
        session.commit()
        return message
    repository.set_ray_job_id(session=session, study_id=study.id, ray_job_id=job_id)
    session.commit()
    log.info("study %s started as Ray job %s", study.id, job_id)
    return None
